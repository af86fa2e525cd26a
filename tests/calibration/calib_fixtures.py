"""Fixtures of the calibration tests (imported by the test modules; no conftest here so that
`from conftest import make_tiny_onnx` keeps meaning tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def phantom_db(tmp_path_factory) -> Path:
    """A 24-patient phantom FETAL_PLANES_DB with 64 px wide images (about 2 s to write)."""
    from edge.phantom.dataset import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "db", patients=24, seed=0, size=64)


def db_with_rows(src: Path, dst: Path, keep) -> Path:
    """A copy of dataset ``src`` at ``dst`` whose CSV keeps the data lines for which ``keep(fields)`` is true."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = (src / "FETAL_PLANES_DB_data.csv").read_text().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.strip() and keep(ln.split(";"))]
    (dst / "FETAL_PLANES_DB_data.csv").write_text("\n".join(kept) + "\n")
    if not (dst / "Images").exists():
        shutil.copytree(src / "Images", dst / "Images")
    return dst
