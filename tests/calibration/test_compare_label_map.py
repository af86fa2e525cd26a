"""fetalplanes compare on models whose own labels are mapped onto the task's (SonoNet-style)."""

from __future__ import annotations

import json

import numpy as np
from calib_fixtures import phantom_db  # noqa: F401
from tiny_onnx_model import SONONET, SONONET_MAP, make_tiny_onnx

from edge.backends import open_runner
from edge.cli import main
from edge.labels import PLANES
from fetaldata import FetalPlanesDB, SplitConfig, task_samples


def test_compare_scores_mapped_models_on_the_task_labels(phantom_db, tmp_path, capsys):
    kw = dict(input_size=(32, 40), labels=SONONET, label_map=SONONET_MAP)
    ref = make_tiny_onnx(tmp_path / "ref.onnx", seed=0, **kw)
    cand = make_tiny_onnx(tmp_path / "cand.onnx", seed=4, **kw)
    code = main(["compare", "--reference", str(ref), "--candidate", str(cand), "--data", str(phantom_db),
                 "--max-drop", "100", "--out", str(tmp_path / "cmp")])
    assert code == 0, capsys.readouterr()
    r = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert r["labels"] == list(PLANES)
    # recompute by hand: native probabilities summed per plane, argmax agreement in plane space
    db = FetalPlanesDB.open(phantom_db)
    samples = task_samples(db, "test", SplitConfig())
    images = [db.load(s.record) for s in samples]
    m = np.zeros((len(SONONET), len(PLANES)))
    for i, label in enumerate(SONONET):
        m[i, PLANES.index(SONONET_MAP[label])] = 1
    with open_runner(ref) as a, open_runner(cand) as b:
        pa, pb = a.predict(images) @ m, b.predict(images) @ m
    assert r["agreement"] == np.mean(pa.argmax(1) == pb.argmax(1))


def test_compare_refuses_models_with_different_label_maps(phantom_db, tmp_path, capsys):
    ref = make_tiny_onnx(tmp_path / "ref.onnx", labels=SONONET, label_map=SONONET_MAP)
    other = {**SONONET_MAP, "Lips": "Fetal abdomen"}
    cand = make_tiny_onnx(tmp_path / "cand.onnx", labels=SONONET, label_map=other)
    code = main(["compare", "--reference", str(ref), "--candidate", str(cand), "--data", str(phantom_db)])
    assert code == 2 and "differ from the reference" in capsys.readouterr().err
