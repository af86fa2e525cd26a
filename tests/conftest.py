"""Shared fixtures: where the real data is, a tiny ONNX classifier, a small phantom dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tiny_onnx_model import make_tiny_onnx  # noqa: F401  (re-exported for fixtures)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`../shared/data` beside the checkout (or $FETALPLANES_SHARED_DATA)."""
    env = os.environ.get("FETALPLANES_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_db_dir() -> Path:
    d = shared_data_dir() / "fetal_planes_db"
    if not (d / "FETAL_PLANES_DB_data.csv").is_file():
        pytest.skip(f"real FETAL_PLANES_DB CSV not found under {d}")
    return d


@pytest.fixture(scope="session")
def real_videos() -> list[Path]:
    d = shared_data_dir() / "scanner_video"
    clips = sorted(p for p in d.glob("*") if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv"))
    if not clips:
        pytest.skip(f"real scanner recordings not found under {d}")
    return clips


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A random-weight 32 px planes classifier in ONNX, with metadata."""
    return make_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="session", name="make_tiny_onnx")
def make_tiny_onnx_fixture():
    """The `make_tiny_onnx(path, task=..., input_size=..., seed=...)` factory, for tests that need several."""
    return make_tiny_onnx


@pytest.fixture(scope="session")
def phantom_db(tmp_path_factory) -> Path:
    """A small phantom dataset in FETAL_PLANES_DB's layout (24 patients, 48 px wide images)."""
    from fetaldata.phantom.dataset import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "db", patients=24, seed=0, size=48)


def shared_models_dir() -> Path:
    """`../shared/models` beside the checkout (or $FETALPLANES_SHARED_MODELS)."""
    env = os.environ.get("FETALPLANES_SHARED_MODELS")
    return Path(env) if env else REPO.parent / "shared" / "models"


@pytest.fixture(scope="session")
def sononet16_npz() -> Path:
    """The published SonoNet16.npz (../shared/models/sononet/)."""
    p = shared_models_dir() / "sononet" / "SonoNet16.npz"
    if not p.is_file():
        pytest.skip(f"SonoNet-16 weights not found at {p}")
    return p


@pytest.fixture(scope="session")
def sononet_examples_dir() -> Path:
    """13 real screen grabs of SonoNet's standard planes, with labels.csv (file,sononet_label,plane)."""
    d = shared_data_dir() / "sononet_examples"
    if not (d / "labels.csv").is_file():
        pytest.skip(f"sononet_examples not found under {d}")
    return d


@pytest.fixture(scope="session")
def hc18_dir() -> Path:
    """120 real HC18 fetal-head images, with labels.csv (file,plane,brain_plane,pixel_size_mm)."""
    d = shared_data_dir() / "hc18_sample"
    if not (d / "labels.csv").is_file():
        pytest.skip(f"hc18_sample not found under {d}")
    return d
