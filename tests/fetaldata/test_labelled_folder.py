"""Labelled image folders (labels.csv) as data: reading, bad rows, splits, and every consumer of --data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.labels import PLANES
from fetaldata import FetalPlanesDB, LabelledFolder, SplitConfig, open_dataset, task_samples


def _write_images(root: Path, names: list[str], size=(40, 56)) -> None:
    import cv2

    rng = np.random.default_rng(0)
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 255, size, dtype=np.uint8))


@pytest.fixture
def folder(tmp_path) -> Path:
    """12 images, 2 per plane, one in a subfolder, extra columns, a brain_plane column partly filled."""
    root = tmp_path / "folder"
    names = [f"img{i:02d}.png" for i in range(11)] + ["sub/img11.png"]
    _write_images(root, names)
    planes = [PLANES[i // 2] for i in range(12)]
    brain = {"img02.png": "Trans-cerebellum", "img03.png": ""}
    lines = ["file,plane,brain_plane,notes"] + [f"{n},{p},{brain.get(n, '')},x" for n, p in zip(names, planes)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_reads_rows_and_ignores_other_columns(folder):
    db = open_dataset(folder)
    assert isinstance(db, LabelledFolder) and len(db.records) == 12 and db.kind == "folder"
    r = db.records[2]
    assert (r.image_name, r.plane, r.brain_plane, r.row, r.patient) == ("img02.png", "Fetal brain", "Trans-cerebellum", 4, 4)
    assert db.records[3].brain_plane == "Other" and db.records[0].brain_plane == "Not A Brain"
    assert db.image_path(db.records[11]) == folder / "sub" / "img11.png"
    assert db.load(db.records[0]).shape == (40, 56)
    assert open_dataset(folder / "labels.csv").root == folder  # the CSV itself works too


def test_splits_test_is_everything_train_and_val_a_seeded_per_plane_holdout(folder):
    db = open_dataset(folder)
    cfg = SplitConfig()
    test = task_samples(db, "test", cfg)
    train, val = task_samples(db, "train", cfg), task_samples(db, "val", cfg)
    assert len(test) == 12 and len(train) == 6 and len(val) == 6
    names = lambda s: {x.record.image_name for x in s}  # noqa: E731
    assert names(train).isdisjoint(names(val)) and names(train) | names(val) == names(test)
    assert sorted(x.label for x in train) == [0, 1, 2, 3, 4, 5]  # one of each plane's two images
    assert names(task_samples(db, "train", cfg)) == names(train)  # deterministic
    others = [names(task_samples(db, "train", SplitConfig(seed=s))) for s in range(1, 6)]
    assert any(o != names(train) for o in others)  # the seed chooses
    brain = task_samples(db, "test", SplitConfig(task="brain"))
    assert "img03.png" not in names(brain) and "img02.png" in names(brain)  # brain image without sub-plane left out


def _bad(tmp_path, text: str, files=("a.png",)) -> Path:
    root = tmp_path / "bad"
    _write_images(root, list(files))
    (root / "labels.csv").write_text(text)
    return root


@pytest.mark.parametrize("text,says", [
    ("file,plane\na.png,Fetal brain\nmissing.png,Other\n", ["line 3", "missing.png", "not found"]),
    ("file,plane\na.png,Fetal head\n", ["line 2", "a.png", "unknown plane 'Fetal head'", "Fetal abdomen"]),
    ("file,label\na.png,Other\n", ["line 1", "missing column(s) plane"]),
    ("file,plane\na.png,Other\na.png,Other\n", ["line 3", "duplicate file 'a.png' (first on line 2)"]),
    ("file,plane,brain_plane\na.png,Other,Trans-thalamic\n", ["line 2", "contradicts"]),
    ("file,plane,brain_plane\na.png,Fetal brain,TT\n", ["line 2", "unknown brain_plane 'TT'"]),
    ("file,plane\n,Other\n", ["line 2", "empty file name"]),
    ("", ["empty"]),
])
def test_bad_rows_name_the_file_and_line(tmp_path, text, says):
    root = _bad(tmp_path, text)
    with pytest.raises(FetalPlanesError) as e:
        open_dataset(root)
    assert e.value.exit_code == 2
    assert str(root / "labels.csv") in e.value.message
    for part in says:
        assert part in e.value.message + e.value.hint, (part, e.value.message)


def test_skip_missing_leaves_rows_out_and_lists_them(tmp_path):
    root = _bad(tmp_path, "file;plane\na.png;fetal brain\nmissing.png;Other\n")  # ';' and lower case accepted
    db = open_dataset(root, skip_missing=True)
    assert [r.plane for r in db.records] == ["Fetal brain"] and db.skipped == [str(root / "missing.png")]


def test_neither_kind_names_both_layouts(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(FetalPlanesError) as e:
        open_dataset(tmp_path / "x")
    assert "FETAL_PLANES_DB_data.csv" in e.value.message and "labels.csv" in e.value.message
    with pytest.raises(FetalPlanesError):
        open_dataset(tmp_path / "nowhere")


def test_real_folders_and_the_real_csv(hc18_dir, sononet_examples_dir, real_db_dir):
    hc = open_dataset(hc18_dir)
    assert len(hc.records) == 120 and {r.plane for r in hc.records} == {"Fetal brain"}
    assert {r.brain_plane for r in hc.records} == {"Trans-thalamic"}
    assert len(task_samples(hc, "train", SplitConfig())) == 60 and len(task_samples(hc, "val", SplitConfig())) == 60
    assert len(task_samples(hc, "test", SplitConfig(task="brain"))) == 120
    ex = open_dataset(sononet_examples_dir)  # columns file,sononet_label,plane: sononet_label ignored
    assert len(ex.records) == 13 and ex.records[0].image_name == "3VV.tiff" and ex.records[0].plane == "Fetal thorax"
    assert ex.load(ex.records[0]).shape == (735, 975)
    assert isinstance(open_dataset(real_db_dir), FetalPlanesDB)


# --------------------------------------------------------------------------- the consumers
def test_evaluate_on_a_folder_reports_the_interval(folder, tiny_onnx, tmp_path, capsys):
    from edge.cli import main

    assert main(["evaluate", "--model", str(tiny_onnx), "--data", str(folder), "--out", str(tmp_path / "ev"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert data["metrics"]["n"] == 12 and data["data_kind"] == "folder" and "Labelled image folder" in data["data_notice"]
    assert "95 % CI" in out and "of 12 images" in out
    names = [p["image"] for p in data["predictions"]]
    assert names[0] == "img00.png" and "sub/img11.png" in names


def test_compare_and_calibration_on_a_folder_are_held_apart(folder, make_tiny_onnx, tiny_onnx, tmp_path):
    from calibration.calibset import select_calibration_samples
    from calibration.compare import CompareJob, compare_models
    from calibration.evaluation import load_split
    from edge.backends import read_model_info

    info = read_model_info(tiny_onnx)
    calib = select_calibration_samples(folder, "planes", size=6, min_size=1)
    check = load_split(folder, info, "val")
    assert len(calib) == 6 and len(check.samples) == 6
    assert {s.record.image_name for s in calib}.isdisjoint(check.names)
    other = make_tiny_onnx(tmp_path / "other.onnx", seed=1)
    report = compare_models(CompareJob(reference=tiny_onnx, candidate=other, data=folder, split="val",
                                       out=tmp_path / "cmp", max_drop=100.0))
    assert report["images"] == 6 and report["split"] == "val"
    with pytest.raises(FetalPlanesError) as e:  # too few for the default minimum, and says why
        select_calibration_samples(folder, "planes", size=500)
    assert "half of its images" in e.value.message


def test_classify_results_scored_against_a_folder(folder, tiny_onnx, tmp_path, monkeypatch):
    from edge.live.classify import classify_paths
    from edge.cli import main
    from fetaldata.classify_scoring import score_classify_csv

    out = tmp_path / "results.csv"
    result = classify_paths([str(folder)], str(tiny_onnx), str(out))
    report = score_classify_csv(out, folder)
    assert report["images"] == 12 and report["unmatched_rows"] == 0 and report["not_classified"] == 0
    db = open_dataset(folder)
    truth = {str(db.image_path(r)): r.plane for r in db.records}
    expected = sum(truth[row["file"]] == row["label"] for row in result.rows)
    assert report["correct"] == expected and report["task"] == "planes"
    assert report["accuracy_text"].startswith(f"{100 * expected / 12:.1f} % (95 % CI")
    # through a label map (a model with native labels), and from the command line
    mapped = score_classify_csv(out, folder, label_map={p: "Other" for p in PLANES})
    assert mapped["correct"] == 2  # everything read as Other: the two Other images are right
    assert main(["data", "score", str(out), "--data", str(folder), "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["images"] == 12
    assert main(["data", "score", str(tmp_path / "nope.csv"), "--data", str(folder)]) == 2


def test_quantize_calibrates_on_one_half_and_checks_on_the_other(folder, tiny_onnx, tmp_path):
    from edge.cli import main

    out = tmp_path / "q" / "tiny.int8.onnx"
    assert main(["quantize", "--onnx", str(tiny_onnx), "--data", str(folder), "--out", str(out), "--calib-size", "6",
                 "--method", "minmax", "--no-search", "--speed-seconds", "0.05", "--speed-rounds", "1",
                 "--agreement-images", "0"]) == 0
    report = json.loads(out.with_suffix(".quantize.json").read_text())
    assert report["calibration"]["images"] == 6 and report["calibration"]["split"] == "train"
    assert report["validation"]["split"] == "val" and report["validation"]["images"] == 6
