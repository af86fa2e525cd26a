"""export.reports: JSON, markdown, per-image CSV and confusion-matrix PNGs of an evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.labels import BRAIN, PLANES
from fetaldata.metrics import classification_metrics


def make_result(data_dir: Path, labels=PLANES, seed: int = 0, n: int = 40):
    from export.evaluate import EvaluationResult, Prediction

    rng = np.random.default_rng(seed)
    targets = rng.integers(0, len(labels), n)
    logits = rng.normal(0, 1, (n, len(labels)))
    logits[np.arange(n), targets] += 1.5  # mostly right
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    metrics = classification_metrics(probs, targets, labels)
    preds = [
        Prediction(f"img{i}", 100 + i, "Op. 1", "Aloka", int(targets[i]), int(probs[i].argmax()),
                   float(probs[i].max()), [float(x) for x in probs[i]])
        for i in range(n)
    ]
    return EvaluationResult(
        model_path="runs/x/model.onnx", data_dir=str(data_dir), split="test", task="planes" if labels == PLANES else "brain",
        labels=list(labels), runner="onnxruntime:model.onnx", model_info={"arch": "mobilenet_v2", "input_size": 224},
        split_config={"task": "planes"}, dataset_fingerprint="abc123", metrics=metrics, predictions=preds, seconds=0.5,
    )


def test_write_reports_files_are_readable_and_consistent(tmp_path):
    import cv2

    from export.reports import write_reports

    res = make_result(tmp_path)
    paths = write_reports(res, tmp_path / "out")
    assert set(paths) == {"json", "markdown", "predictions", "confusion_counts", "confusion_percent"}
    data = json.loads(paths["json"].read_text())
    assert data["metrics"]["top1_error"] == pytest.approx(res.metrics.top1_error)
    assert data["metrics"]["confusion"] == res.metrics.confusion.tolist()
    assert len(data["predictions"]) == 40 and data["data_kind"] == "other"
    assert "Not the published FETAL_PLANES_DB" in data["data_notice"]
    md = paths["markdown"].read_text()
    m = res.metrics
    row = (f"| {m.n} | {100 * m.top1_error:.1f} | {100 * m.top3_error:.1f} | "
           f"{100 * m.class_accuracy_mean:.1f} ± {100 * m.class_accuracy_std:.1f} |")
    assert row in md
    for pc in m.per_class:
        assert f"| {pc['label']} | {pc['support']} | {100 * pc['precision']:.1f} | {100 * pc['recall']:.1f} |" in md
    with paths["predictions"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and sum(int(r["correct"]) for r in rows) == round((1 - m.top1_error) * 40)
    assert rows[0]["true"] == PLANES[res.predictions[0].target]
    counts = cv2.imread(str(paths["confusion_counts"]))
    pct = cv2.imread(str(paths["confusion_percent"]))
    assert counts is not None and pct is not None and counts.shape[0] > 200
    assert not np.array_equal(counts, pct)  # different numbers drawn


def test_phantom_data_is_flagged(tmp_path):
    from export.reports import data_notice, write_reports

    (tmp_path / "PHANTOM.txt").write_text("synthetic")
    res = make_result(tmp_path)
    paths = write_reports(res, tmp_path / "out")
    assert "synthetic phantom data" in paths["markdown"].read_text().lower()
    assert json.loads(paths["json"].read_text())["data_kind"] == "phantom"
    assert "synthetic" not in data_notice(tmp_path / "elsewhere", "f").lower()


def test_the_release_csv_is_recognised(real_db_dir, tmp_path):
    """The real CSV matches the release digest; the same rows with one value changed do not."""
    from export.reports import data_notice, dataset_kind

    assert dataset_kind(real_db_dir) == "release"
    assert data_notice(real_db_dir, "f", skipped=0).startswith("Data: FETAL_PLANES_DB as released")
    assert "Incomplete data" in data_notice(real_db_dir, "f", skipped=5)
    text = (real_db_dir / "FETAL_PLANES_DB_data.csv").read_text(encoding="utf-8")
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text(text.replace(";Op. 3;", ";Op. 2;", 1), encoding="utf-8")
    assert dataset_kind(tmp_path) == "other"
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text(text.replace("Train\n", "Train \n", 1).replace("\n", "\r\n"),
                                                       encoding="utf-8")
    assert dataset_kind(tmp_path) == "release"  # header spaces and CRLF do not matter


def test_plot_confusion_brain_labels_and_shape_check(tmp_path):
    import cv2

    from export.reports import plot_confusion

    cm = np.array([[5, 1, 0, 0], [0, 3, 2, 0], [0, 0, 0, 0], [1, 0, 0, 9]])
    p = plot_confusion(cm, BRAIN, tmp_path / "b.png", normalize=True)
    assert cv2.imread(str(p)) is not None
    with pytest.raises(FetalPlanesError, match="does not fit 6 labels"):
        plot_confusion(cm, PLANES, tmp_path / "bad.png")


def test_small_evaluations_report_a_wilson_interval(tmp_path):
    """Fewer than 300 images: the top-1 accuracy comes with its 95 % interval; 300 and more: the table only."""
    from export.reports import metrics_markdown
    from fetaldata.metrics import wilson_interval

    probs = np.eye(6)[[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 1]]  # 12 of 13 right
    targets = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0])
    res = make_result(tmp_path)
    res.metrics = classification_metrics(probs, targets, PLANES)
    md = metrics_markdown(res, notice="x")
    assert "Top-1 accuracy: **92.3 % (95 % CI 66.7–98.6 %)**, 12 of 13 images" in md
    assert res.metrics.to_dict()["top1_accuracy_ci95"] == pytest.approx(list(wilson_interval(12, 13)))
    big = make_result(tmp_path, n=300)
    assert "95 % CI" not in metrics_markdown(big, notice="x")
