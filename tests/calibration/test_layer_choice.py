"""Speed-aware mixed precision (issue 17): layers to keep in float ranked by KL regained per microsecond they
cost in float (ONNX Runtime's profile of the FP32 and the INT8 file), not by sensitivity alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.quantize_ort import QuantizeConfig, calibrate_ranges, prepare_for_quantization, quantize_with_ranges
from calibration.sensitivity import (
    LayerSensitivity,
    _profiled_node,
    float_costs,
    speed_aware_ranking,
)


def _sens(node: str, kl: float) -> LayerSensitivity:
    return LayerSensitivity(node=node, op_type="Conv", agreement=1.0, mean_abs_prob_diff=0.0, max_abs_prob_diff=0.0,
                            kl=kl)


def test_cheap_sensitive_layers_come_first():
    by_sensitivity = [_sens("big", 1.0), _sens("small", 0.5), _sens("harmless", 0.001)]
    costs = {"big": 100.0, "small": 2.0, "harmless": 0.0}
    order = [r.node for r in speed_aware_ranking(by_sensitivity, costs)]
    assert order == ["small", "big", "harmless"]  # 0.5 / 5 (the floor) > 1.0 / 100 > 0.001 / 5
    # equal costs: the sensitivity order stands
    assert [r.node for r in speed_aware_ranking(by_sensitivity, dict.fromkeys(costs, 10.0))] == ["big", "small", "harmless"]


def test_profiled_kernel_names_map_back_to_graph_nodes():
    assert _profiled_node("/features/features.0/features.0.0/Conv_token_12") == "/features/features.0/features.0.0/Conv"
    assert _profiled_node("/features/features.0/features.0.0/Conv_output_0_nchwc") == "/features/features.0/features.0.0/Conv_output_0"
    assert _profiled_node("head") == "head"


def _two_conv_onnx(path: Path) -> Path:
    """input -> small conv (1->4 channels, stride 4) ... and a big conv (4->64, 3x3) on the same resolution -> head."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge.labels import PLANES
    from edge.modelinfo import ModelInfo, set_onnx_model_info

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "w_small"),
        numpy_helper.from_array(rng.normal(0, 0.1, (64, 4, 3, 3)).astype(np.float32), "w_big"),
        numpy_helper.from_array(rng.normal(0, 0.5, (len(PLANES), 64)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w_small"], ["a"], pads=[1, 1, 1, 1], name="small"),
        helper.make_node("Relu", ["a"], ["ar"], name="relu_a"),
        helper.make_node("Conv", ["ar", "w_big"], ["b"], pads=[1, 1, 1, 1], name="big"),
        helper.make_node("Relu", ["b"], ["br"], name="relu_b"),
        helper.make_node("GlobalAveragePool", ["br"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1, name="head"),
    ]
    graph = helper.make_graph(nodes, "two-conv",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 96, 96])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(PLANES)])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_onnx_model_info(model, ModelInfo(task="planes", labels=list(PLANES), arch="two-conv-test-net",
                                         input_size=96, mean=127.5, std=127.5))
    onnx.save(model, str(path))
    return path


def test_measured_costs_reorder_the_layers_on_a_small_model(tmp_path):
    """The big convolution costs more in float than the small one (measured), so with the big one more
    sensitive, but by less than it costs, speed ranks the small one first where sensitivity ranks the big one."""
    src = _two_conv_onnx(tmp_path / "m.onnx")
    prepared = prepare_for_quantization(src, tmp_path / "prepared.onnx")
    x = np.random.default_rng(1).uniform(-1, 1, (16, 1, 96, 96)).astype(np.float32)
    config = QuantizeConfig(method="minmax")
    cache = calibrate_ranges(prepared, x, config, tmp_path / "ranges.json")
    int8 = quantize_with_ranges(prepared, tmp_path / "int8.onnx", cache, config, metadata=False)
    costs = float_costs(prepared, int8, ["small", "big", "head"], x, threads=1, runs=20)
    assert costs["big"] > 0, costs  # INT8 speeds the 64-channel 3x3 convolution up: float costs time there
    assert costs["big"] > 3 * max(costs["small"], 0.0), costs
    # the big one twice as sensitive, but it costs more than 3x as much in float: 0.5 / cost(small) > 1 / cost(big)
    by_sensitivity = [_sens("big", 1.0), _sens("small", 0.5), _sens("head", 1e-4)]
    speed = [r.node for r in speed_aware_ranking(by_sensitivity, costs)]
    assert [r.node for r in by_sensitivity][:2] == ["big", "small"]
    assert speed[:2] == ["small", "big"], (speed, costs)
