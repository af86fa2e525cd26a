"""Fault class: odd image files (truncated, empty, not an image, 16-bit, RGBA). One message naming the file,
no decoder chatter on stderr, the other images still classified; 16-bit images scaled by their real depth."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import preprocess
from edge.errors import FetalPlanesError
from edge.images import decode_image
from edge.preprocess import read_gray, to_gray
from faults_common import run_cli

GOOD = "Patient00097_Plane4_1_of_1.png"  # an 8-bit gray real image
RGBA = "Patient00001_Plane1_10_of_15.png"  # the release's RGBA image


@pytest.fixture
def real_gray(real_db_dir) -> np.ndarray:
    img = cv2.imread(str(real_db_dir / "Images" / GOOD), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.ndim == 2
    return img


@pytest.fixture(autouse=True)
def _fresh_warnings():
    preprocess._warned.clear()
    yield
    preprocess._warned.clear()


def _odd_files(folder: Path, real_db_dir: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = (real_db_dir / "Images" / GOOD).read_bytes()
    files = {
        "truncated": folder / "Patient00001_Plane1_1_of_4.png",
        "empty": folder / "Patient00001_Plane1_2_of_4.png",
        "text": folder / "Patient00001_Plane1_3_of_4.png",
        "jpeg-truncated": folder / "Patient00001_Plane1_4_of_4.jpg",
    }
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["empty"].write_bytes(b"")
    files["text"].write_text("Image_name;Patient_num\n")
    ok, jpg = cv2.imencode(".jpg", cv2.imread(str(real_db_dir / "Images" / GOOD), cv2.IMREAD_GRAYSCALE))
    files["jpeg-truncated"].write_bytes(jpg.tobytes()[: len(jpg) // 2])
    return files


@pytest.mark.parametrize("kind,needle", [
    ("truncated", "truncated PNG"), ("empty", "empty file"), ("text", "not a readable image"),
    ("jpeg-truncated", "not a readable image"),
])
def test_odd_file_is_one_clear_error(kind, needle, real_db_dir, tmp_path):
    path = _odd_files(tmp_path, real_db_dir)[kind]
    with pytest.raises(FetalPlanesError) as err:
        read_gray(path)
    assert needle in err.value.message and path.name in err.value.message and err.value.hint
    with pytest.raises(FetalPlanesError):
        decode_image(path)


def test_classify_reports_each_odd_file_once_and_nothing_else_on_stderr(real_db_dir, tiny_onnx, tmp_path):
    folder = tmp_path / "archive"
    odd = _odd_files(folder, real_db_dir)
    (folder / GOOD).write_bytes((real_db_dir / "Images" / GOOD).read_bytes())
    out = tmp_path / "r.csv"
    r = run_cli(["classify", str(folder), "--model", str(tiny_onnx), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    rows = {Path(row["file"]).name: row for row in csv.DictReader(open(out, encoding="utf-8"))}
    assert rows[GOOD]["label"] and not rows[GOOD]["error"]
    for kind, path in odd.items():
        assert rows[path.name]["error"] and not rows[path.name]["label"], kind
    # the tool's own summary only: no "libpng error", no OpenCV "[ WARN", no traceback
    assert "libpng" not in r.stderr and "WARN" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "4 unreadable" in r.stderr


def test_data_check_lists_odd_images_without_decoder_chatter(real_db_dir, tmp_path):
    from faults_common import real_subset_db

    db = real_subset_db(real_db_dir, tmp_path / "db")
    victim = db / "Images" / GOOD
    victim.write_bytes(victim.read_bytes()[:5000])
    r = run_cli(["data", "check", str(db)])
    assert r.returncode == 1 and GOOD in r.stdout + r.stderr
    assert "libpng" not in r.stderr and "WARN" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_twelve_bit_in_sixteen_is_scaled_by_its_depth(real_gray, tmp_path):
    twelve = (real_gray.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    path = tmp_path / "twelve.png"
    assert cv2.imwrite(str(path), twelve)
    gray = read_gray(path)
    assert gray.dtype == np.uint8
    assert np.abs(gray.astype(int) - real_gray.astype(int)).max() <= 1  # not 16 x darker
    sixteen = (real_gray.astype(np.uint32) * 257).astype(np.uint16)  # full 16-bit range
    assert np.abs(to_gray(sixteen).astype(int) - real_gray.astype(int)).max() <= 1


def test_0_255_stored_as_uint16_is_kept(real_gray, tmp_path):
    path = tmp_path / "wide.png"
    assert cv2.imwrite(str(path), real_gray.astype(np.uint16))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert np.array_equal(read_gray(path), real_gray)  # was: all black (>> 8)
    bgr16 = cv2.cvtColor(real_gray, cv2.COLOR_GRAY2BGR).astype(np.uint16)
    assert np.abs(to_gray(bgr16).astype(int) - real_gray.astype(int)).max() <= 1


def test_implausible_range_warns_once(caplog):
    dark = np.zeros((120, 160), np.uint16)
    dark[40:80, 40:80] = 300
    dark[0, 0] = 65535  # one hot pixel sets the depth to 16 bits: the image itself turns black
    with caplog.at_level(logging.WARNING, logger="fetalplanes.preprocess"):
        for _ in range(3):
            to_gray(dark, source="dark.png")
    warnings = [r for r in caplog.records if "almost no contrast" in r.getMessage()]
    assert len(warnings) == 1 and "dark.png" in warnings[0].getMessage()
    assert "65535" in warnings[0].getMessage() and "16-bit" in warnings[0].getMessage()


def test_plausible_16_bit_does_not_warn(real_gray, caplog):
    twelve = (real_gray.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    with caplog.at_level(logging.WARNING, logger="fetalplanes.preprocess"):
        to_gray(twelve)
        to_gray(real_gray.astype(np.uint16))
    assert not [r for r in caplog.records if "contrast" in r.getMessage()]


def test_release_rgba_image_reads_as_its_gray(real_db_dir):
    path = real_db_dir / "Images" / RGBA
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 3 and raw.shape[2] == 4
    assert np.array_equal(read_gray(path), cv2.cvtColor(raw, cv2.COLOR_BGRA2GRAY))
