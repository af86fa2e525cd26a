"""fetalplanes compare: same images through both models, metrics, deltas, agreement, changed labels, exit codes."""

from __future__ import annotations

import json

import numpy as np
from calib_fixtures import phantom_db  # noqa: F401
from tiny_onnx_model import make_tiny_onnx

from edge.backends import open_runner
from edge.cli import main
from fetaldata import FetalPlanesDB, SplitConfig, task_samples


def test_model_against_itself_passes(phantom_db, tmp_path, capsys):
    m = make_tiny_onnx(tmp_path / "m.onnx")
    code = main(["compare", "--reference", str(m), "--candidate", str(m), "--data", str(phantom_db),
                 "--split", "val", "--out", str(tmp_path / "cmp"), "--min-agreement", "0.99"])
    assert code == 0, capsys.readouterr()
    r = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert r["top1_drop_points"] == 0.0 and r["agreement"] == 1.0 and r["changed"]["count"] == 0
    assert r["prob_abs_diff"]["max"] == 0.0 and r["passed"] is True
    assert "**PASS**" in (tmp_path / "cmp" / "compare.md").read_text()


def test_different_models_report_every_changed_image(phantom_db, tmp_path, capsys):
    ref = make_tiny_onnx(tmp_path / "ref.onnx", seed=0)
    cand = make_tiny_onnx(tmp_path / "cand.onnx", seed=3)
    code = main(["compare", "--reference", str(ref), "--candidate", str(cand), "--data", str(phantom_db),
                 "--max-drop", "100", "--min-agreement", "0"])
    assert code == 0, capsys.readouterr()
    r = json.loads((tmp_path / "cand.compare.json").read_text())
    # recompute independently, image by image, through the runners' own predict()
    db = FetalPlanesDB.open(phantom_db)
    samples = task_samples(db, "test", SplitConfig())
    images = [db.load(s.record) for s in samples]
    with open_runner(ref) as a, open_runner(cand) as b:
        pa, pb = a.predict(images), b.predict(images)
    targets = np.array([s.label for s in samples])
    changed = {samples[i].record.image_name for i in np.flatnonzero(pa.argmax(1) != pb.argmax(1))}
    assert r["images"] == len(samples)
    assert r["changed"]["count"] == len(changed) > 0
    assert {c["image"] for c in r["changed"]["listed"]} == changed
    assert abs(r["agreement"] - np.mean(pa.argmax(1) == pb.argmax(1))) < 1e-12
    drop = 100 * (np.mean(pa.argmax(1) == targets) - np.mean(pb.argmax(1) == targets))
    assert abs(r["top1_drop_points"] - drop) < 1e-9
    assert abs(r["prob_abs_diff"]["max"] - np.abs(pa - pb).max()) < 1e-5
    recall_delta = sum(c["delta_recall_points"] * c["support"] for c in r["per_class"]) / len(samples)
    assert abs(recall_delta + drop) < 1e-6  # per-class deltas add up to the overall one
    # the same comparison with a threshold the drop exceeds fails with exit 1
    code = main(["compare", "--reference", str(ref), "--candidate", str(cand), "--data", str(phantom_db),
                 "--max-drop", str(drop - 0.5), "--min-agreement", "0"])
    assert code == 1
    assert json.loads((tmp_path / "cand.compare.json").read_text())["passed"] is False


def test_label_mismatch_is_a_clear_error(phantom_db, tmp_path, capsys):
    planes = make_tiny_onnx(tmp_path / "planes.onnx", task="planes")
    brain = make_tiny_onnx(tmp_path / "brain.onnx", task="brain")
    code = main(["compare", "--reference", str(planes), "--candidate", str(brain), "--data", str(phantom_db)])
    assert code == 2 and "differ from the reference" in capsys.readouterr().err


def test_corrupt_candidate_is_a_clear_error(phantom_db, tmp_path, capsys):
    ref = make_tiny_onnx(tmp_path / "ref.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    code = main(["compare", "--reference", str(ref), "--candidate", str(bad), "--data", str(phantom_db)])
    assert code == 2 and "bad.onnx" in capsys.readouterr().err
