"""A non-square model end to end on the phantom: train (--image-size 32x40, per-image normalisation, mean gray,
bilinear) -> checkpoint -> ONNX export (H x W input, parity with PyTorch) -> ONNX Runtime -> live loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edge.backends import open_runner, read_model_info  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.labels import PLANES  # noqa: E402
from edge.live.config import RunConfig  # noqa: E402
from edge.live.loop import run_loop  # noqa: E402
from edge.preprocess import prepare  # noqa: E402
from export.models import load_checkpoint  # noqa: E402
from export.torch_runner import TorchRunner  # noqa: E402

SETTINGS = {"normalization": "per_image", "gray": "mean", "interpolation": "linear"}


@pytest.fixture(scope="module")
def nonsquare_run(phantom_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("nonsquare") / "run"
    code = main(["train", "--data", str(phantom_db), "--out", str(out), "--arch", "mobilenet_v3_small",
                 "--pretrained", "none", "--image-size", "32x40", "--epochs", "1", "--batch-size", "8",
                 "--workers", "0", "--max-per-split", "16", "--no-progress", "--lr", "3e-3",
                 "--normalization", "per_image", "--gray", "mean", "--interpolation", "linear"])
    assert code == 0
    return out / "best.pt"


def test_checkpoint_describes_the_non_square_input(nonsquare_run):
    model, info, ckpt = load_checkpoint(nonsquare_run)
    assert info.input_size == [32, 40] and info.input_hw == (32, 40) and info.input_shape(2) == (2, 1, 32, 40)
    assert {k: getattr(info, k) for k in SETTINGS} == SETTINGS
    assert ckpt["model_info"]["schema"] == 2 and info.extra["args"]["image_size"] == [32, 40]
    config = json.loads((nonsquare_run.parent / "config.json").read_text())
    assert config["input_size"] == [32, 40] and config["normalization"] == "per_image"
    with torch.inference_mode():
        assert model(torch.zeros(info.input_shape(1))).shape == (1, len(PLANES))


def test_export_runs_at_h_x_w_and_matches_pytorch(nonsquare_run, phantom_db, tmp_path):
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(nonsquare_run), "--out", str(out), "--data", str(phantom_db),
                 "--samples", "6", "--no-opencv"]) == 0
    report = json.loads(out.with_suffix(".export.json").read_text())
    assert report["passed"] and report["onnxruntime"]["argmax_agreement"] == 1.0
    model = onnx.load(str(out))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 32, 40]  # dynamic batch, fixed H x W
    info = read_model_info(out)
    _, ck_info, _ = load_checkpoint(nonsquare_run)
    assert info.preprocessing_key() == ck_info.preprocessing_key() and info.labels == ck_info.labels
    assert {k: getattr(info, k) for k in SETTINGS} == SETTINGS
    # ONNX Runtime and PyTorch agree on colour frames through the one preprocessing chain
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (60 + 7 * i, 90, 3), dtype=np.uint8) for i in range(3)]
    with TorchRunner(str(nonsquare_run)) as tr, open_runner(out) as ort_runner:
        p_torch, p_onnx = tr.predict(frames), ort_runner.predict(frames)
    assert p_onnx.shape == (3, len(PLANES)) and np.abs(p_torch - p_onnx).max() < 1e-4
    assert prepare(frames[0], info).shape == (1, 1, 32, 40)

    # the live loop on a phantom scanner video, a few frames
    from fetaldata.phantom.video import write_phantom_video

    video = write_phantom_video(tmp_path / "clip.avi", seconds=1.0, fps=6, width=320, height=240, seed=1)
    jsonl = tmp_path / "p.jsonl"
    s = run_loop(RunConfig(model=str(out), input=str(video), outputs=[f"jsonl://{jsonl}"], max_frames=5, log_every_s=0))
    assert s.frames == 5 and s.errors == 0 and s.exit_code == 0
    recs = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(recs) == 5 and all(r["label"] in PLANES and abs(sum(r["probs"].values()) - 1) < 1e-2 for r in recs)
