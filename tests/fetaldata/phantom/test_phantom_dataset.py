"""The phantom dataset: the release's layout and quirks, its proportions, determinism, the images."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fetaldata import FetalPlanesDB, SplitConfig, split_patients, task_samples
from edge.labels import BRAIN, PLANES
from fetaldata.phantom.dataset import phantom_rows, write_phantom_dataset
from fetaldata.phantom.render import render_image
from fetaldata.phantom.stats import compute_stats, load_stats

HEADER = b"Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train\n"
NAME = re.compile(r"^Patient(\d{5})_Plane([1-6])_(\d+)_of_(\d+)$")


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "db", patients=24, seed=0, size=48)


def test_layout_and_quirks_as_released(phantom):
    raw = (phantom / "FETAL_PLANES_DB_data.csv").read_bytes()
    assert raw.startswith(HEADER)
    lines = raw.decode().splitlines()[1:]
    stats = load_stats()
    for line in lines:
        name, patient, plane, brain, operator, machine, train = line.split(";")
        m = NAME.match(name)
        assert m, name
        assert int(m.group(1)) == int(patient)
        assert int(m.group(2)) == stats["plane_index"][plane]
        assert 1 <= int(m.group(3)) <= int(m.group(4))
        assert train in ("1 ", "0 ")  # the release's trailing space
        assert (brain == "Not A Brain") == (plane != "Fetal brain")
        assert operator in stats["operators"] and machine in stats["machines"]
        assert (phantom / "Images" / f"{name}.png").is_file()
    assert len(list((phantom / "Images").glob("*.png"))) == len(lines)


def test_readable_by_the_dataset_reader_and_tasks(phantom):
    db = FetalPlanesDB.open(phantom)
    assert len(db.patients()) == 24
    assert db.find_image_problems() == {"missing": [], "unreadable": []}
    img = db.load(db.records[0])
    assert img.dtype == np.uint8 and img.ndim == 2 and img.shape[1] == 48
    # first half of the patients (chronologically) trains, second half tests
    assert {r.patient for r in db.records if r.train} == set(range(1, 13))
    parts = split_patients(db.records)
    assert not (set(parts["train"]) & set(parts["val"])) and not (set(parts["train"]) & set(parts["test"]))
    for task, labels in (("planes", PLANES), ("brain", BRAIN)):
        for split in ("train", "val", "test"):
            samples = task_samples(db, split, SplitConfig(task=task))
            assert samples, (task, split)
            assert all(0 <= s.label < len(labels) and s.path.is_file() for s in samples)


def test_proportions_follow_the_real_csv():
    stats = load_stats()
    rows = phantom_rows(patients=600, seed=3)
    n = len(rows)
    per_patient_real = stats["images"] / stats["patients"]
    assert abs(n / 600 - per_patient_real) < 0.2 * per_patient_real
    for key, field in (("planes", "plane"), ("operators", "operator"), ("machines", "machine")):
        got = Counter(getattr(r, field) for r in rows)
        for value, count in stats[key].items():
            want = count / stats["images"]
            assert abs(got[value] / n - want) < max(0.03, 0.3 * want), (key, value, got[value] / n, want)
    brain = [r.brain_plane for r in rows if r.plane == "Fetal brain"]
    real_brain = sum(stats["brain_planes"].values())
    for value, count in stats["brain_planes"].items():  # includes the sub-plane 'Other'
        assert abs(brain.count(value) / len(brain) - count / real_brain) < 0.06, value
    train = [r for r in rows if r.train]
    assert {r.patient for r in train} == set(range(1, 301))


def test_committed_statistics_match_the_real_csv(real_db_dir):
    assert compute_stats(real_db_dir / "FETAL_PLANES_DB_data.csv") == {**load_stats()}
    assert load_stats()["images"] == 12400 and load_stats()["patients"] == 1792


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_phantom_dataset(tmp_path / "a", patients=6, seed=5, size=40)
    b = write_phantom_dataset(tmp_path / "b", patients=6, seed=5, size=40)
    c = write_phantom_dataset(tmp_path / "c", patients=6, seed=6, size=40)
    assert _digest(a) == _digest(b)
    da, dc = _digest(a), _digest(c)
    assert da != dc
    common = set(da) & set(dc)
    assert not common or any(da[k] != dc[k] for k in common)


def test_rendered_images_look_like_exported_sectors():
    rng = np.random.default_rng(0)
    means = {}
    for plane in PLANES:
        brain = "Trans-thalamic" if plane == "Fetal brain" else "Not A Brain"
        img = render_image(plane, brain, "Voluson E6", rng, 200, 138)
        assert img.dtype == np.uint8 and img.shape == (138, 200)
        assert (img < 8).mean() > 0.1  # outside the sector (and in fluid/shadows): black
        assert img[60:100, 80:120].std() > 10  # speckled tissue inside
        means[plane] = img
    # classes differ from each other
    assert len({hashlib.sha256(m.tobytes()).hexdigest() for m in means.values()}) == len(PLANES)


def test_default_sizes_vary_like_the_release(tmp_path):
    out = write_phantom_dataset(tmp_path / "full", patients=2, seed=1, size=None)
    import cv2

    widths = {cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).shape[1] for p in (out / "Images").glob("*.png")}
    assert all(380 <= w <= 1140 for w in widths), widths


def test_bad_arguments_raise_clear_errors(tmp_path):
    from edge.errors import FetalPlanesError

    with pytest.raises(FetalPlanesError, match="patients"):
        write_phantom_dataset(tmp_path / "x", patients=0)
    with pytest.raises(FetalPlanesError, match="size"):
        write_phantom_dataset(tmp_path / "y", patients=2, size=4)
