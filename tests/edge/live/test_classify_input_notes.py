"""classify says once (not per image) what the model cannot take as it is, and counts it; --roi crops."""

from __future__ import annotations

import csv
import logging

import cv2
import numpy as np

from edge.cli import main


def test_small_images_are_said_once_and_counted(tiny_onnx, tmp_path, caplog, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"small{i}.png"), np.full((12, 10), 100 + i, np.uint8))  # the model reads 32x32
    cv2.imwrite(str(folder / "big.png"), np.full((64, 64), 90, np.uint8))
    out = tmp_path / "r.csv"
    with caplog.at_level(logging.WARNING, logger="fetalplanes.classify"):
        assert main(["classify", str(folder), "--model", str(tiny_onnx), "--out", str(out)]) == 0
    said = [r for r in caplog.records if "smaller than the model's input" in r.getMessage()]
    assert len(said) == 1
    assert "3 images smaller than the model's input" in capsys.readouterr().err
    rows = list(csv.DictReader(open(out, newline="")))
    assert len(rows) == 4 and all(r["label"] and r["native_label"] == r["label"] for r in rows)


def test_roi_outside_an_image_is_that_row_s_error(tiny_onnx, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 40), 90, np.uint8))
    out = tmp_path / "r.csv"
    assert main(["classify", str(tmp_path / "a.png"), "--model", str(tiny_onnx), "--roi", "100,0,5,5",
                 "--out", str(out)]) == 1
    row = next(csv.DictReader(open(out, newline="")))
    assert "outside" in row["error"] and not row["label"]
    assert main(["classify", str(tmp_path / "a.png"), "--model", str(tiny_onnx), "--roi", "1,2,3",
                 "--out", str(out)]) == 2
