"""A small but real ONNX classifier with fetalplanes metadata, for tests (importable as `tiny_onnx_model`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: SonoNet-16's outputs and their map onto FETAL_PLANES_DB's planes (../shared/models/sononet/README.md)
SONONET = ["3VV", "4CH", "Abdominal", "Background", "Brain (Cb.)", "Brain (Tv.)", "Femur", "Kidneys", "Lips",
           "LVOT", "Profile", "RVOT", "Spine (cor.)", "Spine (sag.)"]
SONONET_MAP = {
    "3VV": "Fetal thorax", "4CH": "Fetal thorax", "LVOT": "Fetal thorax", "RVOT": "Fetal thorax",
    "Abdominal": "Fetal abdomen", "Brain (Cb.)": "Fetal brain", "Brain (Tv.)": "Fetal brain", "Femur": "Fetal femur",
    "Background": "Other", "Kidneys": "Other", "Lips": "Other", "Profile": "Other", "Spine (cor.)": "Other",
    "Spine (sag.)": "Other",
}


def make_tiny_onnx(path: Path, task: str = "planes", input_size: int | tuple[int, int] = 32, seed: int = 0,
                   **info_fields) -> Path:
    """A small but real ONNX classifier (conv -> relu -> global pool -> gemm) with fetalplanes metadata.

    Its weights are random (seeded): it exercises runtimes, not accuracy. ``input_size``: an int (square)
    or (height, width); ``info_fields`` override the ModelInfo's fields (e.g. labels, label_map,
    normalization).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge.labels import labels_for
    from edge.modelinfo import ModelInfo, set_onnx_model_info

    labels = list(info_fields.pop("labels", labels_for(task)))
    ih, iw = (input_size, input_size) if isinstance(input_size, int) else input_size
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
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, ih, iw])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(labels)])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fc, "fc"), (fcb, "fcb"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fields = dict(task=task, labels=labels, arch="tiny-test-net", input_size=[ih, iw], mean=127.5, std=127.5)
    info = ModelInfo(**{**fields, **info_fields})
    set_onnx_model_info(model, info)
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
