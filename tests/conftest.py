"""Shared fixtures: where the real data is, a tiny ONNX classifier, a small phantom dataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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


def make_tiny_onnx(path: Path, task: str = "planes", input_size: int = 32, seed: int = 0) -> Path:
    """A small but real ONNX classifier (conv -> relu -> global pool -> gemm) with fetalplanes metadata.

    Its weights are random (seeded): it exercises runtimes, not accuracy.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge.labels import labels_for
    from edge.modelinfo import METADATA_KEY, ModelInfo

    labels = list(labels_for(task))
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32)
    b = np.zeros(8, np.float32)
    fc = rng.normal(0, 0.5, (len(labels), 8)).astype(np.float32)
    fcb = rng.normal(0, 0.1, len(labels)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, input_size, input_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(labels)])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fc, "fc"), (fcb, "fcb"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(task=task, labels=labels, arch="tiny-test-net", input_size=input_size, mean=127.5, std=127.5)
    helper.set_model_props(model, {METADATA_KEY: info.to_json()})
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


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
    from edge.phantom.dataset import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "db", patients=24, seed=0, size=48)
