"""Fixtures of the calibration tests, imported by the test modules that use them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def phantom_db(tmp_path_factory) -> Path:
    """A 24-patient phantom FETAL_PLANES_DB with 64 px wide images (about 2 s to write)."""
    from fetaldata.phantom.dataset import write_phantom_dataset

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


def make_outlier_onnx(path: Path, input_size: int = 32, seed: int = 0) -> Path:
    """A tiny classifier that per-tensor INT8 breaks: one conv channel, ignored by the head, is 1000x larger.

    Quantizing the tensors that carry that channel flattens the small channels the head reads, so the
    quantize flow must keep some layers in float. Random (seeded) weights: it tests mechanics, not accuracy.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge.labels import PLANES
    from edge.modelinfo import METADATA_KEY, ModelInfo

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32)
    w[7] = 1000.0
    fc = rng.normal(0, 2.0, (len(PLANES), 8)).astype(np.float32)
    fc[:, 7] = 0.0
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1, name="head"),
    ]
    graph = helper.make_graph(
        nodes, "outlier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, input_size, input_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(PLANES)])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(task="planes", labels=list(PLANES), arch="outlier-test-net", input_size=input_size,
                     mean=127.5, std=127.5)
    helper.set_model_props(model, {METADATA_KEY: info.to_json()})
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return Path(path)


@pytest.fixture(scope="session")
def phantom_db_60(tmp_path_factory) -> Path:
    """A 60-patient phantom (48 px wide images): enough validation images for the layer search."""
    from fetaldata.phantom.dataset import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("phantom60") / "db", patients=60, seed=0, size=48)
