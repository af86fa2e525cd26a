"""train -> evaluate -> export on the phantom; ONNX metadata and outputs against PyTorch; checkpoint errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edge.backends import open_runner, read_model_info  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.errors import FetalPlanesError  # noqa: E402
from edge.modelinfo import METADATA_KEY  # noqa: E402
from edge.preprocess import read_gray  # noqa: E402
from edge.files import sha256_file  # noqa: E402
from export.models import load_checkpoint  # noqa: E402
from export.onnx_export import _compare, export_onnx  # noqa: E402
from export.torch_runner import TorchRunner  # noqa: E402


def test_train_evaluate_export_on_the_phantom(trained_run, phantom_db, tmp_path, capsys):
    # evaluate the checkpoint (one code path with model files)
    assert main(["evaluate", "--model", str(trained_run), "--data", str(phantom_db), "--out", str(tmp_path / "ev"),
                 "--quiet", "--max-images", "12"]) == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    # export with the dataset's test images as comparison inputs
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(trained_run), "--out", str(out), "--data", str(phantom_db),
                 "--samples", "8"]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime  max abs diff" in text and "PASS" in text
    report = json.loads(out.with_suffix(".export.json").read_text())
    assert report["passed"] and report["onnxruntime"]["argmax_agreement"] == 1.0 and report["opset"] == 17
    assert report["opencv"]["within_tolerance"], report["opencv"]  # OpenCV DNN reads it with the same outputs
    # the ONNX file carries everything later stages need
    info = read_model_info(out)
    _, ck_info, _ = load_checkpoint(trained_run)
    assert info.labels == ck_info.labels and info.task == "planes" and info.arch == ck_info.arch
    assert (info.input_size, info.mean, info.std) == (ck_info.input_size, ck_info.mean, ck_info.std)
    assert info.checkpoint_sha256 == sha256_file(trained_run)
    assert info.dataset_fingerprint == ck_info.dataset_fingerprint and info.input_name == "input"
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert METADATA_KEY in {p.key for p in model.metadata_props}
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    # the ONNX model and the checkpoint agree through the same runner interface, batch 1 and batch 5
    images = [read_gray(p) for p in sorted((phantom_db / "Images").glob("*.png"))[:5]]
    with TorchRunner(str(trained_run)) as tr, open_runner(out) as ort_runner:
        p_torch, p_onnx = tr.predict(images), ort_runner.predict(images)
        assert np.abs(p_torch - p_onnx).max() < 1e-4
        assert np.abs(ort_runner.predict(images[:1]) - p_torch[:1]).max() < 1e-4
    assert ev["runner"].startswith("torch") and ev["model_info"]["arch"] == ck_info.arch and ev["task"] == "planes"


def test_export_on_phantom_images_without_data(trained_run, tmp_path):
    report = export_onnx(trained_run, tmp_path / "p.onnx", samples=6, check_opencv=False)
    assert report.passed and report.samples == 6 and "phantom" in report.inputs
    assert report.batch1_max_abs_diff is not None and report.batch1_max_abs_diff < 1e-4


def test_tolerance_decides():
    ref = np.array([[1.0, 2.0, 0.5], [3.0, -1.0, 0.0]], np.float32)
    assert _compare("x", ref + 1e-5, ref, 1e-3, 1e-3, 1.0).within_tolerance
    off = _compare("x", ref + np.array([[0, 0, 0], [0, 0, 0.1]], np.float32), ref, 1e-3, 1e-3, 1.0)
    assert not off.within_tolerance and off.max_abs_diff == pytest.approx(0.1) and off.argmax_agreement == 1.0
    flipped = _compare("x", ref[:, ::-1].copy(), ref, 10.0, 0.0, 1.0)
    assert flipped.argmax_agreement == 0.5 and not flipped.within_tolerance


def test_export_exits_1_when_outputs_differ(trained_run, tmp_path, monkeypatch, capsys):
    import export.onnx_export as ox

    monkeypatch.setattr(ox, "_compare", lambda name, *a: ox.Comparison(name, 0.5, 0.5, False))
    assert main(["export", "--checkpoint", str(trained_run), "--out", str(tmp_path / "bad.onnx"), "--samples", "2",
                 "--no-opencv"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_checkpoint_errors(trained_run, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(FetalPlanesError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"conv.weight": torch.zeros(1)}, plain)
    with pytest.raises(FetalPlanesError, match="not a fetalplanes checkpoint"):
        load_checkpoint(plain)
    # a checkpoint whose weights do not fit its own description (edited / other version)
    ckpt = torch.load(str(trained_run), map_location="cpu", weights_only=True)
    ckpt["model_info"]["labels"] = ckpt["model_info"]["labels"][:4]
    edited = tmp_path / "edited.pt"
    torch.save(ckpt, edited)
    with pytest.raises(FetalPlanesError) as e:
        load_checkpoint(edited)
    assert "incompatible checkpoint" in e.value.message and "4 classes" in e.value.message
    assert main(["export", "--checkpoint", str(trained_run), "--out", str(tmp_path / "x.txt")]) == 2
