"""The loop on a phantom scanner video, scored against its ground-truth sidecar."""

import json

import pytest

from edge.live.config import RunConfig
from edge.live.loop import run_loop
from fetaldata.scoring import main as scoring_main
from fetaldata.scoring import score_against_truth


def test_phantom_video_scored_against_truth(tiny_onnx, tmp_path, capsys):
    video_mod = pytest.importorskip("fetaldata.phantom.video")
    video = video_mod.write_phantom_video(tmp_path / "ph.avi", seconds=12, fps=15, width=320, height=240, seed=2)
    truth = video.with_suffix(".truth.csv")
    jsonl = tmp_path / "p.jsonl"
    s = run_loop(RunConfig(model=str(tiny_onnx), input=str(video), outputs=[f"jsonl://{jsonl}"], log_every_s=0))
    r = score_against_truth(jsonl, truth)
    # unpaced files are lossless: every truth frame has a prediction
    assert r["frames_truth"] == r["frames_scored"] == s.frames and r["frames_missing"] == 0
    assert 0.0 <= r["accuracy"] <= 1.0 and r["flicker"] >= 0 and r["label_changes"] == s.label_changes
    assert set(r["accuracy_by_state"]) <= {"steady", "transition", "frozen"}
    assert 0.0 <= r.get("sector_iou_mean", 0.0) <= 1.0
    if r["freeze"]["frames_true"] >= 12:  # a freeze long enough to be detected (8 unchanged frames)
        assert r["freeze"]["frames_both"] > 0 and s.stored_planes >= 1
    assert scoring_main([str(jsonl), str(truth)]) == 0
    assert json.loads(capsys.readouterr().out)["frames_scored"] == r["frames_scored"]
