"""TensorRTRunner's own logic against a STAND-IN tensorrt/pycuda (tests/fakes): never real TensorRT.

The stand-in's engine runs the ONNX with ONNX Runtime and copies the result into the
output device buffer, so the runner's shapes, dtypes, buffers, batch chunking and
both APIs (8.x bindings, 10+ tensors) are checked against ONNX Runtime directly.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge.backends import open_runner
from edge.backends.onnxruntime_runner import OnnxRuntimeRunner
from edge.backends.tensorrt_runner import TensorRTRunner, io_api_for, version_tuple
from edge.errors import FetalPlanesError
from tests.fakes import build_fake_engine, hide_tensorrt, install_fake_tensorrt

VERSIONS = ["8.4.3", "8.5.2.2", "8.6.1.6", "10.3.0.26", "11.0.0"]


def test_api_choice_by_version():
    assert version_tuple("8.6.1.6") == (8, 6, 1, 6) and version_tuple("10.0.0b6") == (10, 0, 0)
    # TensorRT documents the named-tensor API from 8.5 on (bindings deprecated there, removed in 10)
    assert [io_api_for(v) for v in ("8.4.3", "8.5.2", "8.6.1.6", "10.0.1", "10.3.0", "11.0.0")] == [
        "bindings", "tensors", "tensors", "tensors", "tensors", "tensors"
    ]


@pytest.fixture()
def batch():
    return np.random.default_rng(3).normal(0, 0.6, (10, 1, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("version", VERSIONS)
def test_outputs_match_onnxruntime_for_any_batch(monkeypatch, tmp_path, tiny_onnx, batch, version):
    trt, cuda = install_fake_tensorrt(monkeypatch, version)
    engine = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt, max_batch=4)
    with OnnxRuntimeRunner(str(tiny_onnx)) as ort_runner:
        expected = ort_runner.infer(batch)
    runner = open_runner(engine)
    assert isinstance(runner, TensorRTRunner)
    with runner:
        assert runner.api == io_api_for(version)  # chosen from what the engine offers: 8.5/8.6 have both APIs
        assert runner.max_batch == 4  # from the optimization profile
        for n in (1, 3, 4, 10):  # 10 > max batch: three chunks of 4, 4, 2
            out = runner.infer(batch[:n])
            assert out.dtype == np.float32 and out.shape == (n, 6)
            np.testing.assert_allclose(out, expected[:n], rtol=1e-5, atol=1e-6)
        assert runner._context.executions == 1 + 1 + 1 + 3
        assert cuda._context_stack() == []  # every push popped
    assert cuda._memory == {}  # device buffers freed on deactivate
    assert cuda._state["detached"] == 1 and cuda._state["detached_not_current"] == 0  # detached while pushed
    assert cuda._context_stack() == []


def test_inference_from_another_thread(monkeypatch, tmp_path, tiny_onnx, batch):
    """The live loop may infer from a worker thread: CUDA's current context is per thread, so each call pushes."""
    import threading

    trt, cuda = install_fake_tensorrt(monkeypatch, "10.3.0")
    engine = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt)
    out = {}
    with TensorRTRunner(str(engine)) as runner, OnnxRuntimeRunner(str(tiny_onnx)) as ort_runner:
        t = threading.Thread(target=lambda: out.update(y=runner.infer(batch[:3])))
        t.start()
        t.join()
        np.testing.assert_allclose(out["y"], ort_runner.infer(batch[:3]), rtol=1e-5, atol=1e-6)


def test_no_execution_context_is_a_clear_error(monkeypatch, tmp_path, tiny_onnx):
    trt, cuda = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    engine = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt)
    trt.fail_context = True  # what TensorRT does when the GPU memory is exhausted (small Jetsons)
    runner = TensorRTRunner(str(engine))
    with pytest.raises(FetalPlanesError) as err:
        runner.activate()
    assert "could not create an execution context" in err.value.message and "--max-batch" in err.value.hint
    assert err.value.exit_code == 1 and not runner.is_active
    assert cuda._memory == {} and cuda._context_stack() == [] and cuda._state["detached_not_current"] == 0


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0.26"])
def test_predict_from_images_equals_onnxruntime(monkeypatch, tmp_path, tiny_onnx, version):
    trt, _ = install_fake_tensorrt(monkeypatch, version)
    engine = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt)
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (50, 70), np.uint8),
        rng.integers(0, 255, (64, 64, 3), np.uint8),
        rng.integers(0, 255, (40, 33, 4), np.uint8),
    ]
    with TensorRTRunner(str(engine)) as trt_runner, OnnxRuntimeRunner(str(tiny_onnx)) as ort_runner:
        p_trt, p_ort = trt_runner.predict(images), ort_runner.predict(images)
    np.testing.assert_allclose(p_trt.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p_trt, p_ort, atol=1e-6)


def test_wrong_input_shape_is_a_clear_error(monkeypatch, tmp_path, tiny_onnx):
    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    engine = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt)
    with TensorRTRunner(str(engine)) as runner:
        with pytest.raises(FetalPlanesError, match=r"takes \(N, 1, 32, 32\)"):
            runner.infer(np.zeros((2, 1, 64, 64), np.float32))
        assert runner.infer(np.zeros((0, 1, 32, 32), np.float32)).shape == (0, 6)


def test_engine_from_other_tensorrt_version_is_refused(monkeypatch, tmp_path, tiny_onnx):
    trt, _ = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    engine = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt)
    install_fake_tensorrt(monkeypatch, "10.3.0")  # the box was upgraded (JetPack 5 -> 6)
    with pytest.raises(FetalPlanesError) as err:
        TensorRTRunner(str(engine)).activate()
    assert "TensorRT 8.6.1.6" in err.value.message and "10.3.0" in err.value.message
    assert "build-engine" in err.value.hint


def test_engine_from_other_gpu_is_refused(monkeypatch, tmp_path, tiny_onnx):
    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    engine = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt)
    install_fake_tensorrt(monkeypatch, "10.3.0", gpu_name="NVIDIA T4", compute_capability=(7, 5))
    runner = TensorRTRunner(str(engine))
    with pytest.raises(FetalPlanesError, match="compute capability 7.5"):
        runner.activate()
    assert not runner.is_active


def test_stale_engine_is_refused_at_load(monkeypatch, tmp_path, make_tiny_onnx):
    onnx = make_tiny_onnx(tmp_path / "model.onnx")
    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    engine = build_fake_engine(onnx, tmp_path / "m.engine", trt)
    make_tiny_onnx(onnx, seed=5)  # retrained over the same file
    with pytest.raises(FetalPlanesError, match="stale engine"):
        open_runner(engine).activate()


def test_missing_tensorrt_names_the_install(monkeypatch, tmp_path, tiny_onnx):
    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0")
    engine = build_fake_engine(tiny_onnx, tmp_path / "m.engine", trt)
    hide_tensorrt(monkeypatch)
    runner = TensorRTRunner(str(engine))  # constructing reads only the sidecar
    assert runner.info.num_classes == 6
    with pytest.raises(FetalPlanesError) as err:
        runner.activate()
    assert "'tensorrt'" in err.value.message
    assert "pip install 'fetalplanes[tensorrt]'" in err.value.hint and "JetPack" in err.value.hint


def test_edge_backends_import_without_tensorrt_or_pycuda():
    code = (
        "import sys\n"
        "for m in ('tensorrt', 'pycuda', 'torch'): sys.modules[m] = None\n"
        "import edge.backends.tensorrt_runner, edge.backends.engine_sidecar, edge.backends\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
