"""End to end on phantom-trained models (slow: trains two small CNNs on the CPU, several minutes each on 2 cores).

The issue's "done when", asserted as stated: for MobileNetV3-small and ResNet-18 trained on the phantom
(240 patients, 64 px input, seed 0, val fraction 0.2: the recipe of benchmarks/results/quantize_phantom.md),
the INT8 ONNX is at most a third of the FP32 size, its top-1 drop on the test split is at most 1 point with
argmax agreement at least 99 %, `compare` says so (exit 0, PASS), and `quantize` names the precision to
deploy on this machine with the measured Hz behind it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phantom240(tmp_path_factory) -> Path:
    from fetaldata.phantom.dataset import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("e2e") / "phantom", patients=240, seed=0, size=128)


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "resnet18"])
def test_phantom_int8_done_when(phantom240, tmp_path, arch):
    run, onnx_path = tmp_path / "run", tmp_path / f"{arch}.onnx"
    assert main(["train", "--data", str(phantom240), "--arch", arch, "--pretrained", "none", "--image-size", "64",
                 "--epochs", "15", "--val-fraction", "0.2", "--seed", "0", "--workers", "0", "--no-progress",
                 "--out", str(run)]) == 0
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(onnx_path), "--data", str(phantom240),
                 "--split", "val"]) == 0
    int8 = tmp_path / f"{arch}.int8.onnx"
    code = main(["quantize", "--onnx", str(onnx_path), "--data", str(phantom240), "--out", str(int8),
                 "--method", "auto", "--calib-size", "300", "--threads", "2", "--speed-seconds", "0.5"])
    q = json.loads((tmp_path / f"{arch}.int8.quantize.json").read_text())
    assert code == 0 and q["accuracy_holds"], q["validation"]["int8"]
    # size: at most a third of FP32
    assert q["sizes"]["int8_bytes"] == int8.stat().st_size
    assert q["sizes"]["int8_over_fp32"] <= 1 / 3 and q["sizes"]["within_a_third"]
    # the precision to deploy here, with the measured Hz behind it
    rec = q["recommendation"]
    by_path = {c["path"]: c for c in q["speed"]["candidates"]}
    assert rec["precision"] in ("int8", "fp32") and Path(rec["file"]).is_file()
    assert rec["hz"] == by_path[rec["file"]]["hz"] > 0 and f"{rec['hz']:.0f} Hz" in rec["reason"]
    assert rec["hz"] == max(c["hz"] for c in q["speed"]["candidates"] if c["holds"]) or rec["precision"] == "fp32"
    assert "Deploy here" in (tmp_path / f"{arch}.int8.quantize.md").read_text()
    # the test split: drop <= 1 point, agreement >= 99 %, and compare says so
    assert main(["compare", "--reference", str(onnx_path), "--candidate", str(int8), "--data", str(phantom240),
                 "--split", "test", "--max-drop", "1.0", "--min-agreement", "0.99", "--out", str(tmp_path / "cmp")]) == 0
    c = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert c["passed"] and c["top1_drop_points"] <= 1.0 and c["agreement"] >= 0.99
    assert c["images"] >= 500  # the whole test split, not a sample
    assert "PASS" in (tmp_path / "cmp" / "compare.md").read_text()
