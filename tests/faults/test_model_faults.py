"""Fault class: model files that are not what a command needs (not ONNX, truncated, no or broken metadata,
an input shape that disagrees with the metadata). Each is one clear message and exit 2, before any output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.backends import open_runner
from edge.backends.base import check_input_shape
from edge.errors import FetalPlanesError
from edge.modelinfo import ModelInfo
from faults_common import assert_clean_error, onnx_with_input_shape, run_cli


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory, make_tiny_onnx) -> Path:
    """A real ONNX model that takes 64 x 64 inputs, whose metadata says 32 px."""
    d = tmp_path_factory.mktemp("mismatch")
    return onnx_with_input_shape(make_tiny_onnx(d / "tiny.onnx", input_size=32), d / "wrong.onnx", ("batch", 1, 64, 64))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    import cv2
    import numpy as np

    d = tmp_path_factory.mktemp("imgs")
    for i in range(3):
        cv2.imwrite(str(d / f"Patient0000{i + 1}_Plane1_1_of_1.png"), np.full((40, 50), 60 * i, np.uint8))
    return d


def test_the_one_shape_check():
    info = ModelInfo(task="planes", labels=["a", "b"], arch="x", input_size=32, mean=0.0, std=1.0)
    check_input_shape(("batch", 1, 32, 32), info, "m.onnx")  # symbolic batch
    check_input_shape((-1, 1, None, "h"), info, "m.onnx")  # free dimensions match anything
    check_input_shape(None, info, "m.onnx")  # a runner that cannot tell
    for bad in ((1, 1, 64, 64), ("N", 3, 32, 32), ("N", 32, 32, 1), ("N", 1, 32)):
        with pytest.raises(FetalPlanesError) as err:
            check_input_shape(bad, info, "m.onnx")
        assert err.value.exit_code == 2 and "(N, 1, 32, 32)" in err.value.message and "m.onnx" in err.value.message


def test_runner_refuses_a_shape_mismatch_when_it_loads(mismatched):
    runner = open_runner(mismatched)
    with pytest.raises(FetalPlanesError) as err:
        runner.activate()
    assert "(N, 1, 64, 64)" in err.value.message and "(N, 1, 32, 32)" in err.value.message
    assert not runner.is_active and runner.session is None  # released again


def test_classify_and_run_refuse_it_and_write_nothing(mismatched, images, tmp_path):
    out = tmp_path / "c.csv"
    r = run_cli(["classify", str(images), "--model", str(mismatched), "--out", str(out)])
    assert_clean_error(r, 2, "(N, 1, 64, 64)", "(N, 1, 32, 32)", "wrong.onnx")
    assert not out.exists()
    pred = tmp_path / "p.jsonl"
    r = run_cli(["run", "--model", str(mismatched), "--input", str(images), "--output", f"jsonl://{pred}"])
    assert_clean_error(r, 2, "(N, 1, 64, 64)", "(N, 1, 32, 32)")
    assert not pred.exists() or pred.stat().st_size == 0


def test_evaluate_compare_quantize_refuse_it(mismatched, make_tiny_onnx, phantom_db, tmp_path):
    good = make_tiny_onnx(tmp_path / "good.onnx", input_size=32)
    r = run_cli(["evaluate", "--model", str(mismatched), "--data", str(phantom_db), "--out", str(tmp_path / "ev")])
    assert_clean_error(r, 2, "(N, 1, 64, 64)", "(N, 1, 32, 32)")
    r = run_cli(["compare", "--reference", str(good), "--candidate", str(mismatched), "--data", str(phantom_db)])
    assert_clean_error(r, 2, "(N, 1, 64, 64)", "(N, 1, 32, 32)")
    q = tmp_path / "q.int8.onnx"
    r = run_cli(["quantize", "--onnx", str(mismatched), "--data", str(phantom_db), "--out", str(q)])
    assert_clean_error(r, 2, "(N, 1, 64, 64)", "(N, 1, 32, 32)")
    assert not q.exists() and not list(tmp_path.glob(".fetalplanes-quantize-*"))


def _no_metadata(src: Path, dst: Path) -> Path:
    import onnx

    m = onnx.load(str(src))
    del m.metadata_props[:]
    onnx.save(m, str(dst))
    return dst


def _bad_metadata(src: Path, dst: Path, text: str) -> Path:
    import onnx

    from edge.modelinfo import METADATA_KEY

    m = onnx.load(str(src))
    del m.metadata_props[:]
    onnx.helper.set_model_props(m, {METADATA_KEY: text})
    onnx.save(m, str(dst))
    return dst


@pytest.mark.parametrize("kind,needle", [
    ("text", "cannot load"),
    ("empty", "cannot load"),
    ("truncated", "cannot load"),
    ("no-metadata", "carries no 'fetalplanes' metadata"),
    ("metadata-not-json", "not valid JSON"),
    ("metadata-incomplete", "lacks"),
    ("metadata-invalid", "invalid fetalplanes metadata"),
    ("suffix", "unknown model file type"),
    ("missing", "not found"),
])
def test_odd_model_files(kind, needle, make_tiny_onnx, images, tmp_path):
    good = make_tiny_onnx(tmp_path / "good.onnx")
    path = tmp_path / "m.onnx"
    if kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "no-metadata":
        _no_metadata(good, path)
    elif kind == "metadata-not-json":
        _bad_metadata(good, path, "{labels: [")
    elif kind == "metadata-incomplete":
        _bad_metadata(good, path, json.dumps({"task": "planes", "labels": ["a"]}))
    elif kind == "metadata-invalid":
        _bad_metadata(good, path, json.dumps({"task": "planes", "labels": ["a"], "arch": "x", "input_size": 32,
                                              "mean": 0, "std": -1, "layout": "CHWN"}))
    elif kind == "suffix":
        path = tmp_path / "m.pkl"
        path.write_bytes(good.read_bytes())
    out = tmp_path / "c.csv"
    r = run_cli(["classify", str(images), "--model", str(path), "--out", str(out)])
    assert_clean_error(r, 2, needle, str(path.name))
    assert not out.exists()


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0.26"])
def test_tensorrt_runner_refuses_it_too(monkeypatch, tmp_path, mismatched, version):
    """Against the stand-in tensorrt (tests/fakes, never real TensorRT): the engine's declared input is checked
    by the same Runner.activate."""
    from edge.backends.tensorrt_runner import TensorRTRunner
    from tests.fakes import build_fake_engine, install_fake_tensorrt

    trt, cuda = install_fake_tensorrt(monkeypatch, version)
    engine = build_fake_engine(mismatched, tmp_path / "m.engine", trt)
    runner = TensorRTRunner(str(engine))
    with pytest.raises(FetalPlanesError) as err:
        runner.activate()
    assert "(N, 1, 64, 64)" in err.value.message and "(N, 1, 32, 32)" in err.value.message
    assert not runner.is_active and cuda._memory == {}  # released again


def test_new_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path, capsys):
    """`qat --out`, `import-weights --out`, `data score --json`, `data phantom-video --out` and `data slideshow --out`
    in a folder that takes no file: exit 2 naming it."""
    from edge.cli import main

    bad = "/proc/fetalplanes-no/x"
    csv = tmp_path / "results.csv"
    csv.write_text("exam,file,label\n", encoding="utf-8")
    labelled = tmp_path / "folder"
    labelled.mkdir()
    (labelled / "labels.csv").write_text("file,plane\n", encoding="utf-8")
    assert main(["data", "score", str(csv), "--data", str(labelled), "--json", bad + ".json"]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and "Traceback" not in err
    under_a_file = tmp_path / "a-file"
    under_a_file.write_text("x", encoding="utf-8")
    for out in (bad + ".avi", str(under_a_file / "x.avi")):  # the video commands (a traceback before)
        assert main(["data", "phantom-video", "--out", out, "--seconds", "1"]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}" in err and "Traceback" not in err, err
        assert main(["data", "slideshow", "--out", out, "--folder", str(labelled)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}" in err and "Traceback" not in err, err
    pytest.importorskip("torch")
    ckpt = tmp_path / "junk.pt"
    ckpt.write_bytes(b"not a checkpoint")  # the output is checked before the checkpoint is even read
    code = main(["qat", "--checkpoint", str(ckpt), "--data", str(labelled), "--out", bad + ".onnx", "--distill"])
    err = capsys.readouterr().err
    assert code == 2 and f"--out {bad}.onnx" in err and "Traceback" not in err, err
    code = main(["import-weights", "sononet16", "--weights", str(ckpt), "--out", bad + ".onnx"])
    err = capsys.readouterr().err
    assert code == 2 and f"--out {bad}.onnx" in err and "Traceback" not in err, err
