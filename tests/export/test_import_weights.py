"""`fetalplanes import-weights`: the published SonoNet release -> a self-describing ONNX model or checkpoint;
the vendored default model (edge/models/sononet16.onnx) is what it makes; classify/evaluate/run on real images
through the product path (--roi for screen grabs); the TensorRT code path on the SonoNet ONNX (stand-in only)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edge.cli import main  # noqa: E402
from edge.default_model import DEFAULT_MODEL  # noqa: E402
from edge.labels import PLANES  # noqa: E402
from edge.modelinfo import read_onnx_metadata  # noqa: E402
from export.sononet import EXAMPLE_ROI, SONONET_LABELS, SONONET_TO_PLANES, new_sononet  # noqa: E402
from export.sononet_weights import release_arrays  # noqa: E402


@pytest.fixture(scope="module")
def fake_npz(tmp_path_factory) -> Path:
    """A file in the release's layout from a random SonoNet-16 (random BN statistics too)."""
    torch.manual_seed(1)
    model = new_sononet("sononet16").eval()
    g = torch.Generator().manual_seed(1)
    for _, bn in model.conv_bn_pairs():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
    path = tmp_path_factory.mktemp("npz") / "SonoNet16.npz"
    np.savez(path, *release_arrays(model))
    return path


def _check_description(info) -> None:
    assert info.labels == SONONET_LABELS and info.label_map == SONONET_TO_PLANES and info.task == "planes"
    assert info.input_hw == (224, 288) and info.normalization == "per_image" and info.scale == 255.0
    assert info.gray == "mean" and info.interpolation == "area" and info.channels == 1
    assert info.task_labels == list(PLANES) and info.missing_task_labels == ["Maternal cervix"]
    src = info.extra["source"]
    assert src["licence"] == "Apache-2.0" and "baumgach/SonoNet-weights" in src["repository"] and src["commit"]


def test_import_to_onnx_carries_the_description_and_passes_parity(fake_npz, tmp_path, capsys):
    out = tmp_path / "s16.onnx"
    assert main(["import-weights", "sononet16", "--weights", str(fake_npz), "--out", str(out), "--samples", "3",
                 "--no-opencv"]) == 0
    text = capsys.readouterr().out
    assert "PASS" in text and "onnxruntime  max abs diff" in text
    info = read_onnx_metadata(out)
    _check_description(info)
    report = json.loads(out.with_suffix(".export.json").read_text())
    assert report["passed"] and report["onnxruntime"]["argmax_agreement"] == 1.0


def test_import_to_checkpoint_then_export(fake_npz, tmp_path, capsys):
    ckpt = tmp_path / "s16.pt"
    assert main(["import-weights", "SonoNet-16", "--weights", str(fake_npz), "--out", str(ckpt)]) == 0
    out = tmp_path / "s16.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--samples", "2", "--no-opencv"]) == 0
    assert "PASS" in capsys.readouterr().out
    _check_description(read_onnx_metadata(out))


def test_import_refuses_what_is_not_the_release(fake_npz, tmp_path, capsys):
    pth = tmp_path / "w.npz"
    torch.save({"a": torch.zeros(2)}, pth)
    assert main(["import-weights", "sononet16", "--weights", str(pth), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "PyTorch checkpoint" in capsys.readouterr().err
    assert main(["import-weights", "sononet99", "--weights", str(fake_npz), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "sononet16, sononet32, sononet64" in capsys.readouterr().err
    assert main(["import-weights", "sononet32", "--weights", str(fake_npz), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "sononet16 weights" in capsys.readouterr().err
    assert main(["import-weights", "sononet16", "--weights", str(fake_npz), "--out", str(tmp_path / "x.h5")]) == 2
    assert not (tmp_path / "x.onnx").exists()


# --------------------------------------------------------------------------- the vendored model
def _initializers(path: Path) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_vendored_model_is_what_import_weights_makes(sononet16_npz, tmp_path):
    assert DEFAULT_MODEL.is_file(), "edge/models/sononet16.onnx is vendored"
    assert (DEFAULT_MODEL.parent / "LICENSE").is_file() and "Baumgartner" in (DEFAULT_MODEL.parent / "NOTICE").read_text()
    vendored = read_onnx_metadata(DEFAULT_MODEL)
    _check_description(vendored)
    out = tmp_path / "fresh.onnx"
    assert main(["import-weights", "sononet16", "--weights", str(sononet16_npz), "--out", str(out), "--samples", "2",
                 "--no-opencv"]) == 0
    fresh = read_onnx_metadata(out)
    assert vendored.checkpoint_sha256 == fresh.checkpoint_sha256 == vendored.extra["source"]["weights_sha256"]
    a, b = _initializers(DEFAULT_MODEL), _initializers(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    skip = {"code_version", "extra"}
    assert {k: v for k, v in vendored.to_dict().items() if k not in skip} == \
        {k: v for k, v in fresh.to_dict().items() if k not in skip}


def test_classify_reads_13_of_13_examples_with_the_known_area(sononet_examples_dir, tmp_path, capsys):
    """The reference check through the product path: `classify --roi` with the vendored ONNX model."""
    out = tmp_path / "ex.csv"
    assert main(["classify", str(sononet_examples_dir), "--roi", EXAMPLE_ROI, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "SonoNet-16" in err and "Apache-2.0" in err and "another cohort" in err  # which default model runs
    with open(sononet_examples_dir / "labels.csv", newline="") as f:
        truth = {r["file"]: r for r in csv.DictReader(f)}
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13
    assert [r["native_label"] for r in rows] == [truth[Path(r["file"]).name]["sononet_label"] for r in rows]
    assert [r["label"] for r in rows] == [truth[Path(r["file"]).name]["plane"] for r in rows]


def test_evaluate_with_roi_scores_the_examples(sononet_examples_dir, tmp_path, capsys):
    assert main(["evaluate", "--model", str(DEFAULT_MODEL), "--data", str(sononet_examples_dir), "--roi", EXAMPLE_ROI,
                 "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["metrics"]["n"] == 13 and metrics["metrics"]["top1_accuracy"] == 1.0
    assert metrics["unmapped_labels"] == ["Maternal cervix"]
    assert main(["evaluate", "--model", str(DEFAULT_MODEL), "--data", str(sononet_examples_dir), "--roi", "5000,0,10,10",
                 "--out", str(tmp_path / "ev2"), "--quiet"]) == 2
    assert "outside" in capsys.readouterr().err


def test_run_without_model_uses_the_default_on_an_image_folder(hc18_dir, tmp_path, capsys):
    jsonl = tmp_path / "p.jsonl"
    assert main(["run", "--input", str(hc18_dir), "--max-frames", "4", "--output", f"jsonl://{jsonl}", "-q"]) == 0
    assert "SonoNet-16" in capsys.readouterr().err
    records = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(records) == 4 and all(r["label"] in SONONET_LABELS and r["plane"] == SONONET_TO_PLANES[r["label"]]
                                      for r in records)


def test_overlay_text_names_the_native_label_with_its_plane():
    info = read_onnx_metadata(DEFAULT_MODEL)
    assert info.display_label(SONONET_LABELS.index("4CH"), sep=" - ") == "4CH - Fetal thorax"


def test_tensorrt_code_path_on_the_sononet_onnx(monkeypatch, tmp_path, capsys):
    """build-engine and selftest on the SonoNet ONNX against the STAND-IN tensorrt (the code path only:
    this is not TensorRT running)."""
    from tests.fakes import install_fake_tensorrt

    install_fake_tensorrt(monkeypatch, "8.6.1.6")
    engine = tmp_path / "s16.engine"
    assert main(["build-engine", "--onnx", str(DEFAULT_MODEL), "--precision", "fp16", "--out", str(engine),
                 "--max-batch", "2"]) == 0
    sidecar = json.loads((tmp_path / "s16.engine.json").read_text())
    assert sidecar["model_info"]["label_map"] == SONONET_TO_PLANES and sidecar["model_info"]["input_size"] == [224, 288]
    capsys.readouterr()
    code = main(["selftest", "--onnx", str(DEFAULT_MODEL), "--samples", "2", "--max-batch", "2", "--out",
                 str(tmp_path / "st")])
    out = capsys.readouterr().out
    assert code in (0, 1) and "STAND-IN tensorrt: NOT a real check" in out
    rows = json.loads((tmp_path / "st" / "selftest.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["fp16", "int8-calibrated", "int8-qdq"]


def test_the_wheel_carries_the_default_model_with_its_licence():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    data = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    edge = data["tool"]["setuptools"]["package-data"]["edge"]
    assert {"models/*.onnx", "models/LICENSE", "models/NOTICE"} <= set(edge)
