"""Fault class: metadata CSVs as users' tools save them (Excel: BOM, CRLF, UTF-16, a workbook; binary, empty,
header only, a cut last row). Accepted where the content is right, else one message naming the file and
line and exit 2 - through `data check` and through `train`, which read it the same way."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import FetalPlanesError
from fetaldata import FetalPlanesDB
from faults_common import assert_clean_error, run_cli

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train"
ROWS = [
    "Patient00001_Plane1_1_of_2;1;Other;Not A Brain;Other;Aloka;1 ",
    "Patient00002_Plane6_1_of_1;2;Fetal thorax;Not A Brain;Op. 2;Voluson E6;0 ",
]
TEXT = "\n".join([HEADER, *ROWS]) + "\n"

ACCEPTED = {
    "bom-crlf": ("\ufeff" + TEXT.replace("\n", "\r\n")).encode("utf-8"),
    "utf16-excel-unicode": TEXT.encode("utf-16"),
    "latin1-accent": TEXT.replace("Op. 2", "Opé 2").encode("latin-1"),
    "no-final-newline": TEXT.rstrip("\n").encode(),
}
REFUSED = {
    "empty": (b"", "the file is empty"),
    "header-only": ((HEADER + "\n").encode(), "no data rows"),
    "binary": (bytes(range(256)) * 4, "not a text CSV"),
    "nul-bytes": (TEXT.replace("Aloka", "Al\0oka").encode(), "not a text CSV"),
    "xlsx-renamed": (b"PK\x03\x04" + b"\0" * 200, "Excel workbook"),
    "cut-last-row": ((HEADER + "\n" + ROWS[0] + "\nPatient00002_Plane6_1_of_1;2;Fetal\n").encode(), "line 3: 3 fields"),
    "comma-separated": (TEXT.replace(";", ",").encode(), "not ';'-separated"),
}


def _db(tmp_path: Path, csv_bytes: bytes) -> Path:
    root = tmp_path / "db"
    (root / "Images").mkdir(parents=True)
    (root / "FETAL_PLANES_DB_data.csv").write_bytes(csv_bytes)
    for r in ROWS:
        cv2.imwrite(str(root / "Images" / f"{r.split(';')[0]}.png"), np.full((40, 60), 90, np.uint8))
    return root


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_csv_variants_with_right_content_are_read(name, tmp_path):
    db = FetalPlanesDB.open(_db(tmp_path, ACCEPTED[name]))
    assert [r.image_name for r in db.records] == [r.split(";")[0] for r in ROWS]
    assert [r.train for r in db.records] == [True, False]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_broken_csvs_are_one_clear_error(name, tmp_path):
    data, needle = REFUSED[name]
    root = _db(tmp_path, data)
    with pytest.raises(FetalPlanesError) as err:
        FetalPlanesDB.open(root)
    assert needle in err.value.message and "FETAL_PLANES_DB_data.csv" in err.value.message and err.value.hint
    assert err.value.exit_code == 2


def test_cli_exit_codes_for_broken_csvs(tmp_path):
    root = _db(tmp_path, REFUSED["xlsx-renamed"][0])
    assert_clean_error(run_cli(["data", "check", str(root)]), 2, "Excel workbook", "FETAL_PLANES_DB_data.csv")
    r = run_cli(["train", "--data", str(root), "--out", str(tmp_path / "run"), "--epochs", "1"])
    assert_clean_error(r, 2, "Excel workbook")
    assert not (tmp_path / "run").exists()
