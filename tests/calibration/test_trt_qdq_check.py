"""TensorRT-target Q/DQ files: what TensorRT's ONNX parser accepts (onnx-tensorrt's operator table), checked here.

No TensorRT runs here: calibration.trt_qdq_check encodes the documented rules, and these tests
prove that `quantize --target tensorrt` files pass them while ONNX Runtime's defaults (INT32
biases into DequantizeLinear, the file every Q/DQ build used to get) do not.
"""

from __future__ import annotations

import numpy as np
import pytest

from calibration.quantize_ort import (
    QuantizeConfig,
    calibrate_ranges,
    prepare_for_quantization,
    quantize_for_tensorrt,
    quantize_with_ranges,
    quantizable_nodes,
)
from calibration.trt_qdq_check import check_tensorrt_qdq, tensorrt_qdq_problems
from edge.errors import FetalPlanesError

VERSIONS = [None, "8.5.2.2", "8.6.2.3", "10.3.0.30", "11.0.0"]


@pytest.fixture(scope="module")
def calib():
    return np.random.default_rng(0).normal(0, 0.6, (8, 1, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def ort_default_qdq(tiny_onnx, calib, tmp_path_factory):
    """What quantize (and selftest) wrote before: ORT's quantize_static defaults, symmetric int8, biases INT32."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.items, None)

    out = tmp_path_factory.mktemp("old") / "old.qdq.onnx"
    quantize_static(str(tiny_onnx), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_ort_defaults_feed_int32_biases_to_dequantize(ort_default_qdq, version):
    problems = tensorrt_qdq_problems(ort_default_qdq, version)
    assert len(problems) == 2  # the Conv's and the Gemm's bias
    assert all("DequantizeLinear fed by INT32 bias" in p and "only activation types" in p for p in problems)


@pytest.mark.parametrize("version", VERSIONS)
def test_tensorrt_target_files_pass(tiny_onnx, calib, tmp_path, version):
    out = quantize_for_tensorrt(tiny_onnx, tmp_path / "m.trt.onnx", calib)
    assert tensorrt_qdq_problems(out, version) == []
    import onnx

    model = onnx.load(str(out))
    dq_inputs = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    q_outputs = {n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert dq_inputs and dq_inputs <= q_outputs  # every DQ reads an int8 Q output: weights and activations alike
    assert not [i for i in model.graph.initializer if i.data_type in (2, 3, 6) and i.name.endswith("_quantized")]
    assert model.metadata_props and any(p.key == "fetalplanes" for p in model.metadata_props)


def test_quantize_with_ranges_checks_tensorrt_files_and_cpu_files_are_not_for_tensorrt(tiny_onnx, calib, tmp_path):
    prep = prepare_for_quantization(tiny_onnx, tmp_path / "prep.onnx")
    cpu = QuantizeConfig(method="minmax", target="cpu")
    cache = calibrate_ranges(prep, calib, cpu, tmp_path / "r.json")
    cpu_file = quantize_with_ranges(prep, tmp_path / "cpu.onnx", cache, cpu)
    problems = tensorrt_qdq_problems(cpu_file)
    assert any("UINT8" in p for p in problems)  # asymmetric uint8: the CPU flavour
    with pytest.raises(FetalPlanesError) as err:
        check_tensorrt_qdq(cpu_file)
    assert "would reject" in err.value.message and "--target tensorrt" in err.value.hint and err.value.exit_code == 1
    trt = QuantizeConfig(method="minmax", target="tensorrt")
    cache = calibrate_ranges(prep, calib, trt, tmp_path / "r2.json")
    gemm = [n for n in quantizable_nodes(prep) if n.startswith("Gemm")]
    assert gemm
    out = quantize_with_ranges(prep, tmp_path / "trt.onnx", cache, trt, nodes_to_exclude=gemm)  # a layer kept float
    assert tensorrt_qdq_problems(out) == []
    with pytest.raises(FetalPlanesError, match="cannot store float-layer weights as int8"):
        QuantizeConfig(target="tensorrt", float_layer_weights="int8").validate()


# --- each rule on a hand-made graph -----------------------------------------------------------------
def _graph(nodes, inits, opset=17, inputs=(("x", 1, [1, 4]),)):
    from onnx import TensorProto, helper

    model = helper.make_model(
        helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
            [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)], inits,
        ),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    return model


def _t(name, dtype, values, dims=None):
    from onnx import helper

    values = list(values)
    return helper.make_tensor(name, dtype, dims if dims is not None else [len(values)] if len(values) > 1 else [], values)


def _qdq(x_zero=0, q_type=3):
    from onnx import helper

    return _graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        [_t("s", 1, [0.1]), _t("z", q_type, [x_zero])],
    )


def test_symmetric_int8_passes_and_nonzero_or_uint8_zero_points_do_not():
    assert tensorrt_qdq_problems(_qdq()) == []
    assert any("zero point 'z' is not 0" in p for p in tensorrt_qdq_problems(_qdq(x_zero=3)))
    assert any("quantizes to UINT8" in p for p in tensorrt_qdq_problems(_qdq(x_zero=128, q_type=2)))


def test_dequantize_input_types_follow_the_tensorrt_version():
    from onnx import TensorProto, helper

    def dq_of(dtype):
        return _graph([helper.make_node("DequantizeLinear", ["w", "s"], ["y"])], [_t("w", dtype, [0, 0, 0, 0], [4]), _t("s", 1, [0.5])])

    fp8, int4 = TensorProto.FLOAT8E4M3FN, TensorProto.INT4
    assert tensorrt_qdq_problems(dq_of(TensorProto.INT8), "8.5.2") == []
    assert tensorrt_qdq_problems(dq_of(fp8), "8.6.2") and tensorrt_qdq_problems(dq_of(fp8)) and not tensorrt_qdq_problems(dq_of(fp8), "10.3.0")
    assert tensorrt_qdq_problems(dq_of(int4), "9.3.0") and not tensorrt_qdq_problems(dq_of(int4), "10.3.0")
    assert "INT32" in tensorrt_qdq_problems(dq_of(TensorProto.INT32), "10.3.0")[0]


def test_int8_initializers_reach_only_dequantize_and_unsupported_ops_are_named():
    from onnx import TensorProto, helper

    cast = _graph([helper.make_node("Cast", ["w"], ["y"], to=TensorProto.FLOAT)], [_t("w", TensorProto.INT8, [1, 2], [2])])
    assert "only through DequantizeLinear" in tensorrt_qdq_problems(cast)[0]
    ql = helper.make_node("QLinearConv", ["x"] * 8, ["y"])
    assert "QLinearConv is not supported" in tensorrt_qdq_problems(_graph([ql], []))[0]
    ms = helper.make_node("QGemm", ["x"], ["y"], domain="com.microsoft")
    assert "no TensorRT importer" in tensorrt_qdq_problems(_graph([ms], []))[0]


def test_opset_ceiling_of_tensorrt_8():
    from onnx import helper

    relu19 = _graph([helper.make_node("Relu", ["x"], ["y"])], [], opset=19)
    assert "opsets up to 17" in tensorrt_qdq_problems(relu19, "8.6.2")[0]
    assert "opsets up to 17" in tensorrt_qdq_problems(relu19)[0]  # no version: JetPack 5's 8.5 must read it too
    assert tensorrt_qdq_problems(relu19, "10.3.0") == []
