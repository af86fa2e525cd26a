"""score_against_truth: accuracy, flicker, missing frames, sector IoU (synthetic jsonl + sidecar)."""

import json

import pytest

from edge.errors import FetalPlanesError
from fetaldata.scoring import score_against_truth


def write(tmp_path, truth, preds):
    t = tmp_path / "v.truth.csv"
    lines = ["frame,time_s,plane,brain_plane,state,x,y,w,h"]
    for i, (plane, state) in enumerate(truth):
        lines.append(f"{i},{i / 30:.3f},{plane},Not A Brain,{state},10,10,100,100")
    t.write_text("\n".join(lines) + "\n")
    p = tmp_path / "p.jsonl"
    with open(p, "w") as f:
        for i, (label, state) in preds.items():
            f.write(json.dumps({"frame": i, "label": label, "state": state, "box": [10, 10, 100, 50]}) + "\n")
    return p, t


def test_accuracy_flicker_and_missing(tmp_path):
    truth = [("Fetal brain", "scan")] * 5 + [("Fetal femur", "scan")] * 3 + [("Fetal femur", "frozen")] * 2
    preds = {i: ("Fetal brain", "ok") for i in range(5)}
    preds.update({5: ("Fetal brain", "ok"), 6: ("Fetal femur", "ok"), 7: ("Fetal brain", "ok")})  # late + flicker
    preds[8] = ("Fetal femur", "frozen")  # frame 9 missing (dropped)
    p, t = write(tmp_path, truth, preds)
    r = score_against_truth(p, t)
    assert r["frames_truth"] == 10 and r["frames_scored"] == 9 and r["frames_missing"] == 1
    assert r["accuracy"] == pytest.approx(7 / 9, abs=1e-4)
    assert r["label_changes"] == 3 and r["label_changes_truth"] == 1 and r["flicker"] == 2
    assert r["accuracy_by_state"] == {"frozen": 1.0, "scan": pytest.approx(6 / 8, abs=1e-4)}
    assert r["freeze"] == {"frames_true": 1, "frames_predicted": 1, "frames_both": 1}
    assert r["sector_iou_mean"] == pytest.approx(0.5)


def test_uncertain_counts_as_wrong_but_reported(tmp_path):
    truth = [("Other", "scan")] * 4
    preds = {0: ("Other", "ok"), 1: ("Other", "uncertain"), 2: ("Other", "ok"), 3: ("Other", "ok")}
    r = score_against_truth(*write(tmp_path, truth, preds))
    assert r["accuracy"] == 0.75 and r["accuracy_confident"] == 1.0 and r["coverage"] == 0.75


def test_missing_files_are_clear(tmp_path):
    with pytest.raises(FetalPlanesError, match="predictions file not found"):
        score_against_truth(tmp_path / "nope.jsonl", tmp_path / "nope.csv")


def test_steady_frames_scored_apart_from_transitions(tmp_path):
    labels = ["Fetal brain", "Fetal femur", "Other"]

    def rec(i, label, state, lead=None):
        probs = {lab: 0.1 for lab in labels}
        probs[lead or label] = 0.8
        return {"frame": i, "label": label, "state": state, "probs": probs}

    truth = [("Fetal brain", "steady")] * 4 + [("Fetal femur", "transition")] * 2 + [("Fetal femur", "steady")] * 4 \
        + [("Fetal femur", "frozen")] * 2
    t = tmp_path / "v.truth.csv"
    t.write_text("frame,time_s,plane,brain_plane,state,x,y,w,h\n" + "".join(
        f"{i},{i / 30:.3f},{plane},Not A Brain,{state},0,0,10,10\n" for i, (plane, state) in enumerate(truth)))
    preds = [rec(0, "Fetal brain", "ok"), rec(1, "Other", "ok"), rec(2, "Fetal brain", "ok"), rec(3, "Fetal brain", "ok"),
             rec(4, "Fetal brain", "ok"), rec(5, "Fetal brain", "ok"),  # transition: not in the steady scores
             rec(6, "Fetal brain", "ok"),  # lag: still the previous plane
             rec(7, "Fetal femur", "uncertain", lead="Fetal femur"),  # right leader, shown uncertain
             rec(8, "Fetal femur", "ok"), rec(9, "Fetal femur", "ok"), rec(10, "Fetal femur", "frozen"),
             rec(11, "Fetal femur", "frozen")]
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in preds))
    r = score_against_truth(p, t)
    assert r["frames_by_state"] == {"frozen": 2, "steady": 8, "transition": 2}
    assert r["accuracy_steady"] == 0.7  # frames 1, 6, 7 wrong out of 10 steady/frozen frames
    assert r["accuracy_steady_top1"] == 0.8  # frame 7's leader is right
    assert r["uncertain_steady"] == 0.1
    assert r["accuracy_by_class_steady"] == {"Fetal brain": 0.75, "Fetal femur": pytest.approx(4 / 6, abs=1e-4)}
    assert r["steady_segments"] == 2 and r["segments_never_right"] == 0
    assert r["flicker_steady"] == 2  # brain -> Other -> brain; the femur segment's late switch is lag, not flicker
    assert r["lag_frames"] == {"median": 2, "max": 2}
    assert r["accuracy_by_state"]["transition"] == 0.0
