"""Fixtures of the training/export tests: a small phantom dataset and a quickly trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

#: tiny, fast settings for every training test (2 shared CPU cores)
TINY = dict(arch="mobilenet_v3_small", pretrained="none", image_size=32, batch_size=8, workers=0,
            max_per_split=16, progress=False, lr=3e-3)


@pytest.fixture
def tiny() -> dict:
    """The tiny training settings (a fresh copy)."""
    return dict(TINY)


@pytest.fixture(scope="session")
def phantom_db(tmp_path_factory) -> Path:
    """A phantom FETAL_PLANES_DB (fetaldata.phantom, the release's exact layout): 30 patients, 48 px wide images."""
    from fetaldata.phantom.dataset import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "db", patients=30, seed=0, size=48)


@pytest.fixture(scope="session")
def trained_run(phantom_db, tmp_path_factory) -> Path:
    """A run folder after one tiny epoch of training; returns its best.pt."""
    from export.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run") / "run"
    return train(TrainConfig(data=str(phantom_db), out=str(out), epochs=1, **TINY))
