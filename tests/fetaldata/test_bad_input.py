"""Each kind of broken dataset gets one clear message naming the file/row and the fix."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from fetaldata import FetalPlanesDB
from edge.errors import FetalPlanesError

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train"
ROWS = [
    "Patient00001_Plane1_1_of_2;1;Other;Not A Brain;Other;Aloka;1 ",
    "Patient00001_Plane3_2_of_2;1;Fetal brain;Trans-thalamic;Op. 1;Aloka;1 ",
    "Patient00002_Plane6_1_of_1;2;Fetal thorax;Not A Brain;Op. 2;Voluson E6;0 ",
]


def make_db(tmp_path: Path, header: str = HEADER, rows=ROWS, images=True) -> Path:
    root = tmp_path / "db"
    (root / "Images").mkdir(parents=True)
    (root / "FETAL_PLANES_DB_data.csv").write_text("\n".join([header, *rows]) + "\n")
    if images:
        for r in rows:
            name = r.split(";")[0].split(",")[0]
            cv2.imwrite(str(root / "Images" / f"{name}.png"), np.full((40, 60), 90, np.uint8))
    return root


def test_valid_layout_with_header_space_and_rgba(tmp_path):
    root = make_db(tmp_path, header=HEADER + " ")
    rgba = np.zeros((30, 50, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[..., 3] = 255
    cv2.imwrite(str(root / "Images" / "Patient00001_Plane1_1_of_2.png"), rgba)
    db = FetalPlanesDB.open(root)
    assert [r.train for r in db.records] == [True, True, False]
    img = db.load(db.records[0])
    assert img.shape == (30, 50) and img.dtype == np.uint8 and 100 < img.mean() < 140


@pytest.mark.parametrize(
    "header,rows,match",
    [
        ("Image_name;Patient_num;Plane;Operator;US_Machine;Train", ROWS, r"missing column\(s\) Brain_plane"),
        (HEADER.replace(";", ","), [r.replace(";", ",") for r in ROWS], "not ';'-separated.*','"),
        (HEADER, [ROWS[0], "Patient00001_Plane9_1_of_1;1;Fetal heart;Not A Brain;Other;Aloka;1 "], r"line 3: unknown Plane 'Fetal heart'"),
        (HEADER, [ROWS[0], "X_Plane3_1_of_1;1;Fetal brain;Coronal;Other;Aloka;1 "], r"line 3: unknown Brain_plane 'Coronal'"),
        (HEADER, [ROWS[0], ROWS[0]], r"line 3: duplicate Image_name 'Patient00001_Plane1_1_of_2' \(first on line 2\)"),
        (HEADER, [ROWS[0], "Y;1;Other;Not A Brain;Other;Aloka;yes"], r"line 3: Train 'yes' is not 0 or 1"),
        (HEADER, [ROWS[0], "Z;one;Other;Not A Brain;Other;Aloka;1"], r"line 3: Patient_num 'one'"),
        (HEADER, [ROWS[0], "W;1;Other;Not A Brain;Other;Aloka;0"], r"patient 1 is in both the train and the test split"),
    ],
)
def test_bad_csv_gives_one_clear_error(tmp_path, header, rows, match):
    root = make_db(tmp_path, header, rows, images=False)
    with pytest.raises(FetalPlanesError, match=match) as info:
        FetalPlanesDB.open(root)
    assert info.value.hint and "FETAL_PLANES_DB_data.csv" in str(info.value)
    assert main(["data", "check", str(root)]) == 2


def test_missing_folder_and_csv(tmp_path):
    with pytest.raises(FetalPlanesError, match="dataset folder not found"):
        FetalPlanesDB.open(tmp_path / "nope")
    with pytest.raises(FetalPlanesError, match="metadata CSV not found") as info:
        FetalPlanesDB.open(tmp_path)
    assert "phantom" in info.value.hint


def test_missing_and_unreadable_images_are_listed_and_exit_1(tmp_path, capsys):
    root = make_db(tmp_path)
    (root / "Images" / "Patient00001_Plane1_1_of_2.png").unlink()
    (root / "Images" / "Patient00002_Plane6_1_of_1.png").write_bytes(b"not a png")
    assert main(["data", "check", str(root), "--json", str(tmp_path / "c.json")]) == 1
    out = capsys.readouterr().out
    assert "1 missing image(s)" in out and "Patient00001_Plane1_1_of_2.png" in out
    assert "1 unreadable image(s)" in out and "Patient00002_Plane6_1_of_1.png" in out
    rep = json.loads((tmp_path / "c.json").read_text())
    assert rep["ok"] is False and rep["rows"] == 3
    db = FetalPlanesDB.open(root)
    with pytest.raises(FetalPlanesError, match="image file not found"):
        db.load(db.records[0])
    with pytest.raises(FetalPlanesError, match="not a readable image"):
        db.load(db.records[2])
    skipping = FetalPlanesDB.open(root, skip_missing=True)
    assert len(skipping.records) == 2 and len(skipping.skipped) == 1


def test_check_ok_exits_0(tmp_path, capsys):
    root = make_db(tmp_path)
    assert main(["data", "check", str(root)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
