"""Fault class: real DICOM. pydicom's bundled ultrasound examples (RGB; YBR_FULL_422 JPEG, a 30-frame cine
loop; PALETTE COLOR; JPEG 2000) through `classify` and `run`, their photometric conversions, and a missing
decoder: exit 2 naming the file, its compression and the extra to install, before any work."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from faults_common import assert_clean_error, run_cli

pydicom = pytest.importorskip("pydicom", minversion="3.0")
from pydicom import examples  # noqa: E402
from pydicom.pixels import apply_color_lut, pixel_array  # noqa: E402

from edge.dicom import open_dicom, read_dicom  # noqa: E402
from edge.errors import FetalPlanesError  # noqa: E402
from edge.preprocess import read_gray, to_gray  # noqa: E402

NAMES = ("rgb_color", "ybr_color", "palette_color", "jpeg2k")
#: what blocks every decoder of compressed pixel data in a child process
NO_DECODERS = "for m in ('PIL', 'pylibjpeg', 'libjpeg', 'openjpeg', 'gdcm'): sys.modules[m] = None"


def _path(name: str) -> Path:
    return Path(getattr(examples, name).filename)


@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dicom")
    for name in NAMES:
        shutil.copyfile(_path(name), d / f"{name}.dcm")
    return d


def _gray_of_rgb(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def test_the_examples_are_what_this_suite_expects():
    got = {n: (str(getattr(examples, n).PhotometricInterpretation), int(getattr(examples, n).get("NumberOfFrames", 1)))
           for n in NAMES}
    assert got == {"rgb_color": ("RGB", 1), "ybr_color": ("YBR_FULL_422", 30),
                   "palette_color": ("PALETTE COLOR", 1), "jpeg2k": ("YBR_RCT", 1)}
    assert all(getattr(examples, n).Modality == "US" for n in NAMES)


def test_rgb_is_converted_as_bgr():
    image, exam = read_dicom(_path("rgb_color"))
    rgb = pixel_array(str(_path("rgb_color")))
    assert image.shape == rgb.shape and np.array_equal(image, rgb[..., ::-1]) and exam
    assert np.array_equal(to_gray(image), _gray_of_rgb(rgb))


def test_every_frame_of_the_ybr_jpeg_cine_loop():
    """YBR_FULL_422 is converted to RGB once (by pydicom): the gray image is the luma the scanner stored."""
    dcm = open_dicom(_path("ybr_color"))
    assert dcm.frames == 30
    frames = list(dcm)
    assert len(frames) == 30
    for i, frame in enumerate(frames):
        luma = pixel_array(str(_path("ybr_color")), index=i, as_rgb=False)[..., 0]
        gray = to_gray(frame)
        assert gray.shape == luma.shape == (240, 320)
        assert np.abs(gray.astype(int) - luma.astype(int)).mean() < 1.5, i  # converted twice: far off
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # a moving loop, not one frame 30 times
    middle, _ = read_dicom(_path("ybr_color"))
    assert np.array_equal(middle, frames[15])


def test_palette_color_goes_through_its_lookup_table():
    ds = pydicom.dcmread(str(_path("palette_color")))
    rgb16 = apply_color_lut(ds.pixel_array, ds)
    expected = _gray_of_rgb((rgb16 / 257.0 + 0.5).astype(np.uint8))
    image, _ = read_dicom(_path("palette_color"))
    assert image.shape == (350, 800, 3)
    assert np.abs(to_gray(image).astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(to_gray(image), ds.pixel_array)  # the indices are not the image


def test_jpeg2000_ybr_rct_matches_the_rgb_original():
    """The JPEG 2000 and the RGB example are the same picture (at 2 x): the same gray image."""
    big = to_gray(read_dicom(_path("jpeg2k"))[0])
    small = to_gray(read_dicom(_path("rgb_color"))[0])
    assert big.shape == (480, 640)
    down = cv2.resize(big, (320, 240), interpolation=cv2.INTER_AREA)
    assert np.abs(down.astype(int) - small.astype(int)).mean() < 3


def test_monochrome1_and_deep_monochrome(tmp_path):
    ds = pydicom.dcmread(str(_path("rgb_color")))
    gray12 = (_gray_of_rgb(ds.pixel_array).astype(np.uint16) * 16)  # 12 bits stored
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.SamplesPerPixel = 1
    del ds.PlanarConfiguration
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelData = gray12.tobytes()
    ds.save_as(tmp_path / "mono2.dcm")
    mono2 = read_gray(tmp_path / "mono2.dcm")
    assert np.abs(mono2.astype(int) - (gray12 * 255.0 / 4095).round().astype(int)).max() <= 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "mono1.dcm")
    assert np.array_equal(read_gray(tmp_path / "mono1.dcm"), 255 - mono2)


def test_classify_reads_every_example(dicom_folder, tiny_onnx, tmp_path):
    out = tmp_path / "r.csv"
    r = run_cli(["classify", str(dicom_folder), "--model", str(tiny_onnx), "--out", str(out)])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    rows = {Path(row["file"]).stem: row for row in csv.DictReader(open(out, encoding="utf-8"))}
    assert set(rows) == set(NAMES)
    for name, row in rows.items():
        assert row["label"] and not row["error"] and "/" in row["exam"], (name, row)  # PatientID/StudyInstanceUID
    assert (rows["ybr_color"]["width"], rows["ybr_color"]["height"]) == ("320", "240")


def test_run_reads_every_frame_of_a_dicom_folder(dicom_folder, tiny_onnx, tmp_path):
    pred = tmp_path / "p.jsonl"
    r = run_cli(["run", "--model", str(tiny_onnx), "--input", str(dicom_folder), "--output", f"jsonl://{pred}",
                 "--quiet"])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    lines = [json.loads(line) for line in pred.read_text().splitlines()]
    assert len(lines) == 30 + 3  # the cine loop's 30 frames and the 3 single images
    assert all(line.get("label") for line in lines)


def test_missing_decoder_is_a_clear_error_before_any_work(dicom_folder, tiny_onnx, tmp_path):
    out = tmp_path / "r.csv"
    r = run_cli(["classify", str(dicom_folder), "--model", str(tiny_onnx), "--out", str(out)], prelude=NO_DECODERS)
    err = assert_clean_error(r, 2, "no decoder for it is installed", "fetalplanes[dicom]")
    assert "JPEG" in err and ".dcm" in err
    assert not out.exists()
    pred = tmp_path / "p.jsonl"
    r = run_cli(["run", "--model", str(tiny_onnx), "--input", str(dicom_folder), "--output", f"jsonl://{pred}"],
                prelude=NO_DECODERS)
    assert_clean_error(r, 2, "no decoder for it is installed", "fetalplanes[dicom]")
    assert not pred.exists() or pred.stat().st_size == 0
    # uncompressed DICOM needs no decoder
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copyfile(_path("rgb_color"), plain / "rgb.dcm")
    r = run_cli(["classify", str(plain), "--model", str(tiny_onnx), "--out", str(out)], prelude=NO_DECODERS)
    assert r.returncode == 0, r.stderr


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")
def test_broken_dicom_files(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "text.dcm").write_text("not dicom")
    data = _path("ybr_color").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    for name in ("empty.dcm", "text.dcm", "cut.dcm"):
        with pytest.raises(FetalPlanesError) as err:
            dcm = open_dicom(tmp_path / name)
            list(dcm)
        assert name in err.value.message and err.value.hint


def test_a_broken_dicom_in_a_folder_is_one_unreadable_image(dicom_folder, tiny_onnx, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(dicom_folder, folder)
    (folder / "broken.dcm").write_text("not dicom")
    out = tmp_path / "r.csv"
    r = run_cli(["classify", str(folder), "--model", str(tiny_onnx), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    rows = {Path(row["file"]).stem: row for row in csv.DictReader(open(out, encoding="utf-8"))}
    assert "not a readable DICOM file" in rows["broken"]["error"] and all(rows[n]["label"] for n in NAMES)
    pred = tmp_path / "p.jsonl"
    r = run_cli(["run", "--model", str(tiny_onnx), "--input", str(folder), "--output", f"jsonl://{pred}", "--quiet"])
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    assert len(pred.read_text().splitlines()) == 33
