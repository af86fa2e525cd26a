"""Calibration sets: training patients only, stratified, deterministic, preprocessed from the model's metadata."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from calib_fixtures import db_with_rows, phantom_db  # noqa: F401
from tiny_onnx_model import make_tiny_onnx

from calibration.calibset import build_calibration_set, select_calibration_samples, split_config_for
from edge.backends import read_model_info
from fetaldata import FetalPlanesDB, SplitConfig, split_patients, task_samples
from edge.errors import FetalPlanesError
from edge.preprocess import preprocess


def test_only_training_patients_and_deterministic(phantom_db):
    db = FetalPlanesDB.open(phantom_db)
    parts = split_patients(db.records, 0.1, seed=0)
    a = select_calibration_samples(phantom_db, "planes", size=40, seed=0)
    b = select_calibration_samples(phantom_db, "planes", size=40, seed=0)
    c = select_calibration_samples(phantom_db, "planes", size=40, seed=1)
    assert [s.path for s in a] == [s.path for s in b]
    assert {s.record.patient for s in a} <= set(parts["train"])
    assert not {s.record.patient for s in a} & (set(parts["val"]) | set(parts["test"]))
    assert len(a) == 40 and len({s.path for s in a}) == 40
    # a different seed gives another split and another draw, still from its own training patients
    parts1 = split_patients(db.records, 0.1, seed=1)
    assert {s.record.patient for s in c} <= set(parts1["train"])
    assert [s.path for s in a] != [s.path for s in c]


def test_stratified_over_classes_machines_operators(phantom_db):
    db = FetalPlanesDB.open(phantom_db)
    pool = task_samples(db, "train", SplitConfig())
    pool_classes = Counter(s.label for s in pool)
    size = 30
    chosen = select_calibration_samples(db, "planes", size=size, seed=0)
    got = Counter(s.label for s in chosen)
    assert set(got) == set(pool_classes)  # every class present
    # classes take turns: a class gets less than its fair share only when it ran out
    fair = size // len(pool_classes)
    for label, n in got.items():
        assert n >= min(fair, pool_classes[label])
    # within a class, (machine, operator) groups take turns
    for label in got:
        groups = Counter((s.record.machine, s.record.operator) for s in pool if s.label == label)
        taken = Counter((s.record.machine, s.record.operator) for s in chosen if s.label == label)
        not_exhausted = [taken[g] for g in groups if taken[g] < groups[g]]
        if not_exhausted:
            assert max(taken.values()) - min(not_exhausted) <= 1


def test_build_calibration_set_uses_model_metadata(phantom_db, tmp_path):
    model = make_tiny_onnx(tmp_path / "m.onnx", input_size=40)
    info = read_model_info(model)
    x = build_calibration_set(phantom_db, info, size=12, seed=0)
    assert x.shape == (12, 1, 40, 40) and x.dtype == np.float32
    first = select_calibration_samples(phantom_db, "planes", size=12, seed=0)[0]
    db = FetalPlanesDB.open(phantom_db)
    np.testing.assert_array_equal(x[0:1], preprocess(db.load(first.record), info))


def test_split_recorded_by_training_is_used():
    from edge.modelinfo import ModelInfo

    info = ModelInfo(task="planes", labels=["a"], arch="x", input_size=32, mean=0, std=1,
                     extra={"args": {"seed": 7, "val_fraction": 0.2, "epochs": 3}})
    cfg = split_config_for(info, seed=0)
    assert (cfg.seed, cfg.val_fraction, cfg.task) == (7, 0.2, "planes")
    assert split_config_for(ModelInfo(task="brain", labels=["a"], arch="x", input_size=32, mean=0, std=1), 3).seed == 3


def test_empty_training_split_is_a_clear_error(phantom_db, tmp_path):
    only_test = db_with_rows(phantom_db, tmp_path / "only_test", lambda f: f[6].strip() == "0")
    with pytest.raises(FetalPlanesError, match="training split .* is empty") as e:
        select_calibration_samples(only_test, "planes", size=10)
    assert e.value.exit_code == 2 and "Train = 1" in e.value.hint


def test_too_small_set_is_a_clear_error(phantom_db, tmp_path):
    db = FetalPlanesDB.open(phantom_db)
    first_train = min(r.patient for r in db.records if r.train)
    few = db_with_rows(phantom_db, tmp_path / "few", lambda f: f[6].strip() == "0" or int(f[1]) == first_train)
    with pytest.raises(FetalPlanesError, match="too few for a calibration set"):
        select_calibration_samples(few, "planes", size=500)
    with pytest.raises(FetalPlanesError, match="at least one image"):
        select_calibration_samples(phantom_db, "planes", size=0)
