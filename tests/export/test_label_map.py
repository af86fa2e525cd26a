"""Scoring a model whose own labels are mapped onto the task's (SonoNet's 14 outputs -> the 6 planes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.backends import open_runner
from edge.cli import main
from edge.labels import PLANES
from export.evaluate import evaluate_model
from fetaldata import FetalPlanesDB

from tiny_onnx_model import SONONET, SONONET_MAP


def test_evaluate_maps_native_probabilities_onto_the_task(make_tiny_onnx, phantom_db, tmp_path):
    model = make_tiny_onnx(tmp_path / "sono.onnx", input_size=(32, 40), labels=SONONET, label_map=SONONET_MAP,
                           normalization="per_image", scale=255.0, gray="mean", interpolation="linear")
    result = evaluate_model(model, phantom_db, "test")
    assert result.labels == list(PLANES) and result.unmapped_labels == ["Maternal cervix"]
    probs = result.probabilities
    assert probs.shape == (len(result.predictions), 6) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.all(probs[:, PLANES.index("Maternal cervix")] == 0)
    # the same images straight through the runner, mapped by hand: the same task probabilities
    db = FetalPlanesDB.open(phantom_db)
    names = [p.image for p in result.predictions[:4]]
    records = {r.image_name: r for r in db.records}
    with open_runner(model) as runner:
        native = runner.predict([db.load(records[n], "mean") for n in names])
    index = {t: j for j, t in enumerate(PLANES)}
    by_hand = np.zeros((len(names), 6))
    for i, label in enumerate(SONONET):
        by_hand[:, index[SONONET_MAP[label]]] += native[:, i]
    assert np.allclose(probs[:4], by_hand, atol=1e-5)
    assert [p.predicted for p in result.predictions[:4]] == list(by_hand.argmax(1))

    out = tmp_path / "ev"
    assert main(["evaluate", "--model", str(model), "--data", str(phantom_db), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == list(PLANES) and metrics["unmapped_labels"] == ["Maternal cervix"]
    assert metrics["model_info"]["label_map"] == SONONET_MAP and metrics["model_info"]["input_size"] == [32, 40]
    assert "no output maps to Maternal cervix" in (out / "metrics.md").read_text()


def test_images_of_a_class_the_model_lacks_are_reported_apart(make_tiny_onnx, phantom_db, tmp_path):
    model = make_tiny_onnx(tmp_path / "sono.onnx", input_size=(32, 40), labels=SONONET, label_map=SONONET_MAP,
                           normalization="per_image", scale=255.0, gray="mean", interpolation="linear")
    result = evaluate_model(model, phantom_db, "test")
    cervix = PLANES.index("Maternal cervix")
    n_cervix = sum(p.target == cervix for p in result.predictions)
    assert n_cervix > 0
    u = result.unmapped_images()
    assert u["classes"]["Maternal cervix"]["images"] == n_cervix
    assert sum(u["classes"]["Maternal cervix"]["read_as"].values()) == n_cervix
    assert "Maternal cervix" not in u["classes"]["Maternal cervix"]["read_as"]  # it can never be predicted
    rest = [p for p in result.predictions if p.target != cervix]
    assert u["other_images"] == len(rest) and u["other_images_correct"] == sum(p.predicted == p.target for p in rest)
    from export.reports import metrics_markdown

    assert "The model has no class for these images" in metrics_markdown(result)


def test_quantize_scores_a_label_mapped_model_on_the_task_labels(make_tiny_onnx, phantom_db, tmp_path, capsys):
    """quantize's top-1 of the FP32 model on its validation images is evaluate's on the same images."""
    model = make_tiny_onnx(tmp_path / "sono.onnx", input_size=(32, 40), labels=SONONET, label_map=SONONET_MAP,
                           normalization="per_image", scale=255.0, gray="mean", interpolation="linear")
    out = tmp_path / "sono.int8.onnx"
    code = main(["quantize", "--onnx", str(model), "--data", str(phantom_db), "--out", str(out), "--calib-size", "16",
                 "--method", "minmax", "--max-drop", "100", "--min-agreement", "0", "--threads", "1",
                 "--speed-seconds", "0.1", "--speed-rounds", "1"])
    assert code == 0, capsys.readouterr()
    report = json.loads((tmp_path / "sono.int8.quantize.json").read_text())
    assert list(report["calibration"]["per_class"]) == list(PLANES)
    ev = evaluate_model(model, phantom_db, "val")
    assert report["validation"]["fp32"]["top1_accuracy"] == pytest.approx(ev.metrics.top1_accuracy)
