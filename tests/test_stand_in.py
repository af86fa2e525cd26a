"""The STAND-IN tensorrt/pycuda (tests/fakes) enforce what the real ones enforce, one test per rule.

Each rule is taken from NVIDIA's documentation (onnx-tensorrt's operator table, the TensorRT
Python API and migration guides) or pycuda's; a stand-in that accepts what TensorRT rejects
is how issue 16's unparseable Q/DQ files passed. None of this runs real TensorRT.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.fakes import install_fake_tensorrt


def _network(trt):
    builder = trt.Builder(trt.Logger())
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if trt.__version__.startswith("8.") else 0
    return builder, builder.create_network(flags)


def _parse(trt, model):
    _, network = _network(trt)
    parser = trt.OnnxParser(network, None)
    ok = parser.parse(model.SerializeToString())
    return ok, [parser.get_error(i) for i in range(parser.num_errors)]


def _model(nodes, inits, opset=17):
    from onnx import TensorProto, helper

    return helper.make_model(
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, [1, 4])], inits),
        opset_imports=[helper.make_opsetid("", opset)],
    )


def _qdq_model(zero_point=0, zp_type=None):
    from onnx import TensorProto, helper

    zp_type = zp_type or TensorProto.INT8
    return _model(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", zp_type, [], [zero_point])],
    )


# --- ONNX parser: onnx-tensorrt's operator table ------------------------------------------------------
def test_parser_imports_symmetric_int8_qdq(monkeypatch):
    trt, _ = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    assert _parse(trt, _qdq_model()) == (True, [])


def test_parser_refuses_int32_into_dequantize(monkeypatch):
    from onnx import TensorProto, helper

    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    bias = _model([helper.make_node("DequantizeLinear", ["b", "s"], ["y"])],
                  [helper.make_tensor("b", TensorProto.INT32, [2], [1, 2]), helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])])
    ok, errors = _parse(trt, bias)
    assert not ok and "only activation types allowed as input to this layer" in errors[0]


def test_parser_refuses_asymmetric_and_uint8_quantization(monkeypatch):
    from onnx import TensorProto

    trt, _ = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    ok, errors = _parse(trt, _qdq_model(zero_point=5))
    assert not ok and "zero point must be 0" in errors[0]
    ok, errors = _parse(trt, _qdq_model(zero_point=0, zp_type=TensorProto.UINT8))
    assert not ok and "does not support quantizing to ONNX type 2" in errors[0]


def test_parser_refuses_int8_weights_outside_dequantize_and_unknown_ops(monkeypatch):
    from onnx import TensorProto, helper

    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    cast = _model([helper.make_node("Cast", ["w"], ["y"], to=TensorProto.FLOAT)], [helper.make_tensor("w", TensorProto.INT8, [2], [1, 2])])
    ok, errors = _parse(trt, cast)
    assert not ok and "may only feed DequantizeLinear" in errors[0]
    ok, errors = _parse(trt, _model([helper.make_node("QLinearConv", ["x"] * 8, ["y"])], []))
    assert not ok and "No importer registered for op: QLinearConv" in errors[0]


def test_parser_opset_ceiling_on_tensorrt_8(monkeypatch):
    from onnx import helper

    relu19 = _model([helper.make_node("Relu", ["x"], ["y"])], [], opset=19)
    trt, _ = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    ok, errors = _parse(trt, relu19)
    assert not ok and "opsets up to 17" in errors[0]
    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    assert _parse(trt, relu19)[0]


# --- builder config: only the attributes of the version ----------------------------------------------
def test_builder_config_rejects_removed_and_unknown_attributes(monkeypatch):
    trt, _ = install_fake_tensorrt(monkeypatch, "8.5.2.2")
    config = trt.Builder(trt.Logger()).create_builder_config()
    config.max_workspace_size = 1 << 20  # deprecated, still there in 8.x
    with pytest.raises(AttributeError):
        config.builder_optimization_level = 3  # from 8.6
    with pytest.raises(AttributeError):
        config.max_worspace_size = 1  # a typo is an error, as on pybind11 objects
    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    config = trt.Builder(trt.Logger()).create_builder_config()
    config.builder_optimization_level = 3
    with pytest.raises(AttributeError, match="max_workspace_size"):
        config.max_workspace_size = 1 << 20  # removed in 10: set_memory_pool_limit
    trt, _ = install_fake_tensorrt(monkeypatch, "11.0.0")
    with pytest.raises(AttributeError, match="int8_calibrator"):
        trt.Builder(trt.Logger()).create_builder_config().int8_calibrator = object()


# --- profiles -----------------------------------------------------------------------------------------
def test_invalid_profiles_return_minus_one_or_false(monkeypatch):
    trt, _ = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    builder = trt.Builder(trt.Logger())
    config = builder.create_builder_config()
    bad = builder.create_optimization_profile()
    bad.set_shape("input", (4, 1, 8, 8), (2, 1, 8, 8), (8, 1, 8, 8))  # min > opt: logged, not raised
    assert config.add_optimization_profile(bad) == -1
    assert config.set_calibration_profile(bad) is False
    good = builder.create_optimization_profile()
    good.set_shape("input", (1, 1, 8, 8), (2, 1, 8, 8), (8, 1, 8, 8))
    assert config.add_optimization_profile(good) == 0 and config.set_calibration_profile(good) is True


def test_profiles_must_match_static_dimensions(monkeypatch, tmp_path, make_tiny_onnx):
    import onnx

    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    src = make_tiny_onnx(tmp_path / "m.onnx")
    model = onnx.load(str(src))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2  # fixed batch 2
    builder, network = _network(trt)
    assert trt.OnnxParser(network, None).parse(model.SerializeToString())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 1, 32, 32), (2, 1, 32, 32), (4, 1, 32, 32))
    assert config.add_optimization_profile(profile) == 0  # partial validation only: the build finds it
    assert builder.build_serialized_network(network, config) is None
    assert "does not match its static dimensions" in trt.build_log[-1]["error"]


# --- calibration ------------------------------------------------------------------------------------------
def _calibrated_build(trt, cuda, tmp_path, make_tiny_onnx, batch_size, cache=None, data=True):
    builder, network = _network(trt)
    assert trt.OnnxParser(network, None).parse(make_tiny_onnx(tmp_path / "m.onnx").read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (2, 1, 32, 32), (2, 1, 32, 32), (2, 1, 32, 32))
    config.add_optimization_profile(profile)
    config.set_flag(trt.BuilderFlag.INT8)
    cuda.init()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    buf = cuda.mem_alloc(2 * 32 * 32 * 4)
    cuda.memcpy_htod(buf, np.ones((2, 1, 32, 32), np.float32))

    class Calib(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.left, self.written = (1 if data else 0), None

        def get_batch_size(self):
            return batch_size

        def get_batch(self, names):
            self.left -= 1
            return [int(buf)] if self.left >= 0 else None

        def read_calibration_cache(self):
            return cache

        def write_calibration_cache(self, c):
            self.written = bytes(c)

    calib = Calib()
    config.int8_calibrator = calib
    plan = builder.build_serialized_network(network, config)
    ctx.detach()
    return plan, calib


def test_calibration_asks_get_batch_size(monkeypatch, tmp_path, make_tiny_onnx):
    trt, cuda = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    plan, _ = _calibrated_build(trt, cuda, tmp_path, make_tiny_onnx, batch_size=2)
    assert plan is not None and trt.build_log[-1]["calibrator_batch_size"] == 2
    plan, _ = _calibrated_build(trt, cuda, tmp_path, make_tiny_onnx, batch_size=0)
    assert plan is None and "get_batch_size() returned 0" in trt.build_log[-1]["error"]


def test_calibration_caches_are_tied_to_the_tensorrt_version(monkeypatch, tmp_path, make_tiny_onnx):
    trt, cuda = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    _, calib = _calibrated_build(trt, cuda, tmp_path, make_tiny_onnx, 2)
    assert calib.written.startswith(b"TRT-")
    plan, _ = _calibrated_build(trt, cuda, tmp_path, make_tiny_onnx, 2, cache=calib.written, data=False)
    assert plan is not None and trt.build_log[-1]["calibration"] == "from-cache"
    trt, cuda = install_fake_tensorrt(monkeypatch, "10.3.0")
    plan, _ = _calibrated_build(trt, cuda, tmp_path, make_tiny_onnx, 2, cache=calib.written, data=True)
    assert plan is not None and "cache_ignored" in trt.build_log[-1] and trt.build_log[-1]["calibration"] == "from-data"
    plan, _ = _calibrated_build(trt, cuda, tmp_path, make_tiny_onnx, 2, cache=calib.written, data=False)
    assert plan is None and "calibration failure" in trt.build_log[-1]["error"]


# --- engines and contexts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("version, tensors, bindings", [("8.4.3", False, True), ("8.5.2.2", True, True),
                                                        ("8.6.1.6", True, True), ("10.3.0", True, False)])
def test_io_api_per_version(monkeypatch, tmp_path, tiny_onnx, version, tensors, bindings):
    from tests.fakes import build_fake_engine

    trt, _ = install_fake_tensorrt(monkeypatch, version)
    engine_path = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(engine_path.read_bytes())
    context = engine.create_execution_context()
    assert hasattr(engine, "num_io_tensors") == tensors and hasattr(context, "execute_async_v3") == tensors
    assert hasattr(engine, "num_bindings") == bindings and hasattr(context, "execute_async_v2") == bindings
    trt.fail_context = True  # TensorRT returns None when it cannot allocate the context's memory
    assert engine.create_execution_context() is None


def test_pycuda_context_stack_is_per_thread(monkeypatch):
    _, cuda = install_fake_tensorrt(monkeypatch, "10.3.0")
    cuda.init()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    cuda.mem_alloc(16)  # current here
    seen = {}

    def other():
        try:
            cuda.mem_alloc(16)
        except cuda.Error as exc:
            seen["error"] = str(exc)
        ctx.push()  # a context can be made current in another thread too
        seen["alloc"] = int(cuda.mem_alloc(16))
        cuda.Context.pop()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert "no current CUDA context in this thread" in seen["error"] and seen["alloc"]
    assert cuda._context_stack() == [ctx]
    ctx.detach()  # while current: popped too
    assert cuda._context_stack() == [] and cuda._state["detached_not_current"] == 0
    with pytest.raises(cuda.Error, match="invalid context"):
        ctx.push()
