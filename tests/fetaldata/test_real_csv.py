"""The reader against the real FETAL_PLANES_DB release (CSV + 12 real images in ../shared/data)."""

import re
from collections import Counter

import numpy as np
import pytest

from fetaldata import FetalPlanesDB, SplitConfig, split_patients, task_samples
from edge.labels import BRAIN, PLANES

# Independent of the CSV's Plane column: the release's file names carry the plane as PlaneK.
PLANE_BY_NAME_CODE = {1: "Other", 2: "Fetal abdomen", 3: "Fetal brain", 4: "Maternal cervix", 5: "Fetal femur", 6: "Fetal thorax"}


@pytest.fixture(scope="module")
def db(real_db_dir):
    return FetalPlanesDB.open(real_db_dir)


def test_table1_facts(db):
    assert len(db.records) == 12400
    assert len(db.patients()) == 1792
    assert Counter(r.plane for r in db.records) == {
        "Fetal abdomen": 711, "Fetal brain": 3092, "Fetal femur": 1040,
        "Fetal thorax": 1718, "Maternal cervix": 1626, "Other": 4213,
    }
    brain = Counter(r.brain_plane for r in db.records if r.plane == "Fetal brain")
    assert brain == {"Trans-thalamic": 1638, "Trans-cerebellum": 714, "Trans-ventricular": 597, "Other": 143}
    train = [r for r in db.records if r.train]
    test = [r for r in db.records if not r.train]
    assert (len(train), len(test)) == (7129, 5271)
    assert len({r.patient for r in train}) == 896 and len({r.patient for r in test}) == 896


def test_quirks_are_stripped(db, real_db_dir):
    raw = (real_db_dir / "FETAL_PLANES_DB_data.csv").read_text().splitlines()
    assert raw[1].endswith("1 "), "the release's Train values carry a trailing space"
    assert {r.train for r in db.records} == {True, False}
    assert all(not r.image_name.endswith(".png") and r.image_name == r.image_name.strip() for r in db.records)


def test_every_label_index_agrees_with_the_file_name_code(db):
    for task in ("planes",):
        for split in ("train", "val", "test"):
            for s in task_samples(db, split, SplitConfig(task=task)):
                code = int(re.search(r"_Plane(\d)_", s.record.image_name).group(1))
                assert PLANES[s.label] == PLANE_BY_NAME_CODE[code]


def test_splits_are_patient_level_stable_and_disjoint(db):
    a = split_patients(db.records, 0.1, seed=0)
    b = split_patients(db.records, 0.1, seed=0)
    c = split_patients(db.records, 0.1, seed=1)
    assert a == b and a["val"] != c["val"]
    assert len(a["val"]) == 90 and len(a["train"]) == 806 and len(a["test"]) == 896
    sets = [set(a[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    train_ids = {r.patient for r in db.records if r.train}
    assert sets[0] | sets[1] == train_ids


def test_brain_task(db):
    cfg = SplitConfig(task="brain")
    tr = task_samples(db, "train", cfg)
    labels = Counter(BRAIN[s.label] for s in tr)
    assert labels["Not A Brain"] == 500
    assert all(s.record.brain_plane != "Other" for s in tr)
    n_brain_train = sum(
        1 for r in db.records if r.patient in set(split_patients(db.records)["train"])
        and r.brain_plane in ("Trans-thalamic", "Trans-cerebellum", "Trans-ventricular")
    )
    assert sum(v for k, v in labels.items() if k != "Not A Brain") == n_brain_train
    assert task_samples(db, "train", cfg) == tr  # deterministic


def test_learning_curve_limit_keeps_first_patients(db):
    cfg = SplitConfig(max_train_patients=100)
    tr = task_samples(db, "train", cfg)
    pats = sorted({s.record.patient for s in tr})
    assert len(pats) == 100 and pats == split_patients(db.records)["train"][:100]


def test_the_12_real_images_load_and_get_the_right_label(real_db_dir):
    db = FetalPlanesDB.open(real_db_dir, skip_missing=True)
    assert len(db.records) == 12 and len(db.skipped) == 12388
    samples = [s for split in ("train", "val", "test") for s in task_samples(db, split, SplitConfig())]
    assert len(samples) == 12
    for s in samples:
        img = db.load(s.record)
        assert img.dtype == np.uint8 and img.ndim == 2 and min(img.shape) > 200
        code = int(re.search(r"_Plane(\d)_", s.record.image_name).group(1))
        assert PLANES[s.label] == PLANE_BY_NAME_CODE[code]
    rgba = next(s for s in samples if s.record.image_name == "Patient00001_Plane1_10_of_15")
    assert db.load(rgba.record).shape == (382, 649)  # RGBA converted to gray
