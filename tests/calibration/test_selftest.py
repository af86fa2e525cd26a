"""`fetalplanes selftest`: refuses clearly without TensorRT; PASS/FAIL logic checked with the STAND-IN.

The stand-in runs ONNX Runtime underneath, so a PASS here proves only the selftest's own
plumbing and verdict logic; the real check is the gpu-marked test on a box with TensorRT.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from calibration.selftest import CheckRow, planned_rows, SelftestConfig
from edge.cli import main
from tests.fakes import hide_tensorrt, install_fake_tensorrt


def test_without_tensorrt_it_says_what_to_install_and_exits_2(monkeypatch, capsys):
    hide_tensorrt(monkeypatch)
    assert main(["selftest"]) == 2
    err = capsys.readouterr().err
    assert "selftest cannot run on this machine" in err and "'tensorrt'" in err and "'pycuda'" in err
    assert "Nothing was tested" in err
    assert "pip install 'fetalplanes[tensorrt]'" in err and "JetPack" in err


def test_command_module_only_parses_arguments():
    """The selftest's logic is the library module calibration/selftest.py; the command only wires arguments."""
    from pathlib import Path

    import calibration.commands.selftest as command

    text = Path(command.__file__).read_text()
    assert "def run_selftest" not in text and "quantize_static" not in text and "np." not in text
    assert "from calibration.selftest import" in text


def test_rows_follow_the_tensorrt_version():
    cfg = SelftestConfig()
    assert [r.name for r in planned_rows("8.6.1.6", cfg)] == ["fp16", "int8-calibrated", "int8-qdq"]
    rows11 = planned_rows("11.0.0", cfg)
    assert [(r.name, r.result) for r in rows11] == [("fp32", "FAIL"), ("fp16", "SKIP"), ("int8-qdq", "FAIL")]
    assert isinstance(rows11[0], CheckRow)


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0", "11.0.0"])
def test_selftest_passes_with_agreeing_engines(monkeypatch, tmp_path, capsys, version):
    install_fake_tensorrt(monkeypatch, version)
    assert main(["selftest", "--samples", "6", "--max-batch", "4", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "STAND-IN tensorrt: NOT a real check" in out and out.rstrip().endswith("selftest: PASS")
    report = json.loads((tmp_path / "selftest.json").read_text())
    ran = [r for r in report["rows"] if r["result"] != "SKIP"]
    assert report["passed"] and report["stand_in"] and len(ran) >= 2
    assert all(r["agreement"] == 1.0 and r["max_prob_diff"] <= r["tolerance"] for r in ran)
    assert all((tmp_path / f"selftest.{r['name']}.engine.json").is_file() for r in ran)
    # the Q/DQ file the int8-qdq engine is built from comes from calibration.quantize_ort (quantize's own code)
    from edge.backends import read_model_info

    quant = read_model_info(tmp_path / "selftest.qdq.onnx").extra["quantization"]
    assert quant["target"] == "tensorrt" and quant["activations"] == "int8" and quant["method"] == "minmax"
    assert not list(tmp_path.glob("*.prepared.onnx")) and not list(tmp_path.glob("*.ranges.json"))


def test_selftest_fails_when_an_engine_disagrees(monkeypatch, tmp_path, capsys):
    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    trt.corrupt_outputs = True  # the stand-in writes class-reversed outputs
    assert main(["selftest", "--samples", "6", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  (agreement" in out and out.rstrip().endswith("selftest: FAIL")
    assert not json.loads((tmp_path / "selftest.json").read_text())["passed"]


def test_selftest_on_given_model_and_real_images(monkeypatch, tmp_path, capsys, tiny_onnx, real_db_dir):
    install_fake_tensorrt(monkeypatch, "8.6.1.6")
    args = ["selftest", "--onnx", str(tiny_onnx), "--data", str(real_db_dir / "Images"), "--samples", "4", "--out", str(tmp_path)]
    assert main(args) in (0, 1)  # random tiny weights: the verdict is not the point here
    out = capsys.readouterr().out
    assert f"model {tiny_onnx}" in out and f"4 images from {real_db_dir / 'Images'}" in out
    rows = json.loads((tmp_path / "selftest.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["fp16", "int8-calibrated", "int8-qdq"]
    assert all(0.0 <= r["agreement"] <= 1.0 and r["result"] in ("PASS", "FAIL") for r in rows)
    assert main(["selftest", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2


@pytest.mark.gpu
def test_selftest_on_real_tensorrt(tmp_path, capsys):
    """The real check: on a box with TensorRT, pycuda and an NVIDIA GPU (run with `pytest -m gpu`)."""
    if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("pycuda") is None:
        pytest.skip("tensorrt and pycuda are not installed here")
    code = main(["selftest", "--samples", "32", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "STAND-IN" not in out
    assert code == 0, out
