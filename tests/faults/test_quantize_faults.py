"""Fault class: calibration data that cannot represent the model's classes. `quantize` reports the
calibration set's class coverage and refuses (exit 2) when a class has no training image, unless
--allow-missing-classes (then the report records which)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration.calibset import check_class_coverage, class_coverage
from edge.errors import FetalPlanesError
from faults_common import assert_clean_error, run_cli

pytest.importorskip("onnx")
QUICK = ["--calib-size", "24", "--method", "minmax", "--max-drop", "100", "--min-agreement", "0", "--threads", "1",
         "--speed-seconds", "0.2", "--speed-rounds", "1", "--no-search"]


@pytest.fixture(scope="module")
def no_femur_for_training(phantom_db, tmp_path_factory) -> Path:
    """The phantom with every Fetal femur row moved out of the training split (Train = 1 dropped)."""
    dst = tmp_path_factory.mktemp("nofemur") / "db"
    dst.mkdir()
    (dst / "Images").symlink_to(phantom_db / "Images", target_is_directory=True)
    lines = (phantom_db / "FETAL_PLANES_DB_data.csv").read_text(encoding="utf-8-sig").splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if not (ln.split(";")[2] == "Fetal femur" and ln.split(";")[6].strip() == "1")]
    assert len(kept) < len(lines)
    (dst / "FETAL_PLANES_DB_data.csv").write_text("\n".join(kept) + "\n")
    return dst


def test_coverage_counts_and_refusal():
    from types import SimpleNamespace

    samples = [SimpleNamespace(label=i) for i in (0, 0, 2)]
    assert class_coverage(samples, ["a", "b", "c"]) == {"a": 2, "b": 0, "c": 1}
    with pytest.raises(FetalPlanesError) as err:
        check_class_coverage(samples, ["a", "b", "c"], "db")
    assert err.value.exit_code == 2 and "1 class(es): b" in err.value.message and "a 2, b 0, c 1" in err.value.message
    assert "--allow-missing-classes" in err.value.hint
    assert check_class_coverage(samples, ["a", "b", "c"], "db", allow_missing=True) == ["b"]


def test_quantize_refuses_a_calibration_set_without_a_class(no_femur_for_training, make_tiny_onnx, tmp_path):
    src = make_tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "out" / "tiny.int8.onnx"
    r = run_cli(["quantize", "--onnx", str(src), "--data", str(no_femur_for_training), "--out", str(out), *QUICK])
    assert_clean_error(r, 2, "no training image of 1 class(es): Fetal femur", "Fetal femur 0", "--allow-missing-classes")
    assert "per class:" in r.stdout
    assert not out.exists() and not list(out.parent.glob(".fetalplanes-quantize-*"))


def test_allow_missing_classes_goes_ahead_and_records_them(no_femur_for_training, make_tiny_onnx, tmp_path):
    src = make_tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "tiny.int8.onnx"
    r = run_cli(["quantize", "--onnx", str(src), "--data", str(no_femur_for_training), "--out", str(out),
                 "--allow-missing-classes", *QUICK])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "WARNING: no calibration image of Fetal femur" in r.stdout
    report = json.loads((tmp_path / "tiny.int8.quantize.json").read_text())
    assert report["calibration"]["missing_classes"] == ["Fetal femur"]
    assert report["calibration"]["per_class"]["Fetal femur"] == 0
    assert sum(report["calibration"]["per_class"].values()) == report["calibration"]["images"]
    assert "no calibration image of Fetal femur" in (tmp_path / "tiny.int8.quantize.md").read_text()
