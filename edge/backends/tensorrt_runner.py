"""TensorRT engine backend (NVIDIA GPUs, Jetson): pinned host memory, device buffers, one async stream.

Written against TensorRT's documented Python API: the name-based tensor API
(``num_io_tensors`` / ``get_tensor_mode`` / ``set_input_shape`` /
``set_tensor_address`` / ``execute_async_v3``), which TensorRT has from 8.5 on
(JetPack 5.1's 8.5.2 included), chosen whenever the engine offers it; the binding
API (``num_bindings`` / ``binding_is_input`` / ``set_binding_shape`` /
``execute_async_v2``, deprecated in 8.5, removed in 10) only for older engines.
Device memory through pycuda, on the device's primary context (the one TensorRT's
CUDA runtime uses): retained and pushed while the runner works, popped between
calls, detached while pushed when the runner closes (pycuda's pattern: detaching
a context that is not current is the leak the docs warn about).
tensorrt and pycuda are imported in :meth:`TensorRTRunner.activate_impl` only.

NOT run on real TensorRT by the project (it cannot be installed where the project
is developed); its logic is tested against a stand-in (tests/fakes). Run
``fetalplanes selftest`` on a GPU box to verify it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import Runner, check_input_shape
from edge.backends.engine_sidecar import load_sidecar, verify_sidecar
from edge.backends.tensorrt_versions import version_tuple  # noqa: F401  (one parser of TensorRT versions)
from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.modelinfo import ModelInfo

INSTALL_HINT = (
    "pip install 'fetalplanes[tensorrt]' on an x86 box with an NVIDIA driver and CUDA "
    "(TensorRT wheels come from NVIDIA's index, pycuda needs the CUDA toolkit); on Jetson, TensorRT comes "
    "with JetPack (python3-libnvinfer) and pycuda is `pip install pycuda` with nvcc on PATH; "
    "or use the ONNX model with ONNX Runtime instead"
)


def import_tensorrt():
    """``import tensorrt`` or a FetalPlanesError saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise FetalPlanesError(
            f"TensorRT engines need the Python package 'tensorrt', which is not importable here ({exc})",
            hint=INSTALL_HINT,
        ) from None
    return tensorrt


def import_pycuda():
    """``import pycuda.driver`` (initialised) or a FetalPlanesError saying how to get it."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise FetalPlanesError(
            f"TensorRT engines need the Python package 'pycuda' (GPU buffers), which is not importable here ({exc})",
            hint=INSTALL_HINT,
        ) from None
    try:
        cuda.init()
    except Exception as exc:  # pycuda.driver.Error and friends
        raise FetalPlanesError(
            f"CUDA could not be initialised ({exc})",
            hint="check the NVIDIA driver (`nvidia-smi`, or `tegrastats` on Jetson) and that this user may use the GPU",
            exit_code=EXIT_FAILURE,
        ) from None
    return cuda


def io_api_for(version: str) -> str:
    """The I/O API TensorRT documents for a version: 'tensors' from 8.5 on, 'bindings' before (removed in 10).

    Only an expectation for messages and tests: the runner decides by what the engine offers
    (:func:`io_api_of`)."""
    return "tensors" if version_tuple(version)[:2] >= (8, 5) else "bindings"


def io_api_of(engine: Any, context: Any) -> str:
    """'tensors' when the engine and its context have the named-tensor API (TensorRT 8.5+), else 'bindings'."""
    if all(hasattr(engine, a) for a in ("num_io_tensors", "get_tensor_name", "get_tensor_mode")) and all(
        hasattr(context, a) for a in ("set_input_shape", "set_tensor_address", "execute_async_v3")
    ):
        return "tensors"
    if hasattr(engine, "num_bindings") and hasattr(context, "execute_async_v2"):
        return "bindings"
    raise FetalPlanesError(
        "this TensorRT engine offers neither the tensor API (execute_async_v3) nor the binding API (execute_async_v2)",
        hint="use TensorRT 8.5 or newer (JetPack 5.1+)",
        exit_code=EXIT_FAILURE,
    )


def gpu_identity(cuda: Any, device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'M.m') of a CUDA device, through pycuda."""
    dev = cuda.Device(device)
    major, minor = dev.compute_capability()
    return str(dev.name()), f"{major}.{minor}"


@dataclass
class IOTensor:
    """One engine input or output: name, binding index (8.x), engine shape (-1 = dynamic), numpy dtype."""

    name: str
    index: int
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype


def list_io_tensors(trt: Any, engine: Any, api: str) -> list[IOTensor]:
    """The engine's inputs and outputs through the binding API (8.x) or the tensor API (10+)."""
    out = []
    if api == "bindings":
        for i in range(engine.num_bindings):
            out.append(
                IOTensor(
                    engine.get_binding_name(i),
                    i,
                    bool(engine.binding_is_input(i)),
                    tuple(engine.get_binding_shape(i)),
                    np.dtype(trt.nptype(engine.get_binding_dtype(i))),
                )
            )
    else:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            out.append(
                IOTensor(
                    name,
                    i,
                    engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                    tuple(engine.get_tensor_shape(name)),
                    np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                )
            )
    return out


def profile_max_shape(engine: Any, tensor: IOTensor, api: str, profile: int = 0) -> tuple[int, ...]:
    """The largest input shape the engine's optimization profile allows (the shape itself if static)."""
    if all(d >= 0 for d in tensor.shape):
        return tensor.shape
    if api == "bindings":
        _min, _opt, mx = engine.get_profile_shape(profile, tensor.index)
    else:
        _min, _opt, mx = engine.get_tensor_profile_shape(tensor.name, profile)
    return tuple(int(d) for d in mx)


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine (``.engine`` / ``.plan`` / ``.trt``) with its sidecar.

    Options: ``device`` (CUDA device index), ``onnx`` (the ONNX the engine must come
    from; checked by hash), ``info`` (override the sidecar's ModelInfo; rarely needed).
    The sidecar is checked against this machine's TensorRT version and GPU on
    activation; a mismatch is refused with the rebuild command.
    Batches larger than the profile's max batch are run in chunks.
    """

    name = "tensorrt"

    def __init__(self, path: str, info: ModelInfo | None = None, device: int = 0, onnx: str | None = None, **_ignored: Any):
        self.sidecar = load_sidecar(path)
        super().__init__(path, info or self.sidecar.info(source=f"{path}.json"))
        self.device = int(device)
        self.onnx = onnx
        self.api = ""
        self.max_batch = 0
        self._trt = self._cuda = self._cuda_ctx = None
        self._engine = self._context = self._stream = None
        self._runtime = self._logger = None
        self._input: IOTensor | None = None
        self._output: IOTensor | None = None
        self._host: dict[str, np.ndarray] = {}
        self._device_mem: dict[str, Any] = {}
        self._io: list[IOTensor] = []

    # --- lifecycle -----------------------------------------------------
    def activate_impl(self) -> None:
        trt = import_tensorrt()
        cuda = import_pycuda()
        self._trt, self._cuda = trt, cuda
        gpu_name, cc = gpu_identity(cuda, self.device)
        verify_sidecar(self.path, self.sidecar, trt.__version__, gpu_name, cc, self.onnx)
        # TensorRT uses the CUDA runtime, i.e. the device's primary context: retain and push it.
        self._cuda_ctx = cuda.Device(self.device).retain_primary_context()
        self._cuda_ctx.push()
        try:
            self._load(trt, cuda)
        except BaseException:
            self._release()
            self._detach()  # while pushed: detach also pops it
            raise
        self._cuda_ctx.pop()

    def _load(self, trt: Any, cuda: Any) -> None:
        # logger and runtime must outlive the engine: keep them on the runner
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(Path(self.path).read_bytes())
        if engine is None:
            raise FetalPlanesError(
                f"{self.path}: TensorRT {trt.__version__} could not deserialize this engine (see TensorRT's log above)",
                hint="rebuild it on this machine with `fetalplanes build-engine`",
                exit_code=EXIT_FAILURE,
            )
        self._engine = engine
        self._context = engine.create_execution_context()
        if self._context is None:  # TensorRT returns None (and logs why) e.g. when GPU memory runs out
            raise FetalPlanesError(
                f"{self.path}: TensorRT {trt.__version__} could not create an execution context for this engine "
                "(see TensorRT's log above; usually the GPU is out of memory)",
                hint="close other GPU programs (`tegrastats` / `nvidia-smi` show the memory), or rebuild the engine with "
                "a smaller --max-batch or --workspace-mb",
                exit_code=EXIT_FAILURE,
            )
        self.api = io_api_of(engine, self._context)
        self._io = list_io_tensors(trt, engine, self.api)
        inputs = [t for t in self._io if t.is_input]
        outputs = [t for t in self._io if not t.is_input]
        if len(inputs) != 1 or not outputs:
            raise FetalPlanesError(
                f"{self.path}: expected one input and at least one output, the engine has "
                f"{[t.name for t in inputs]} -> {[t.name for t in outputs]}",
                hint="build the engine from a fetalplanes ONNX export (one image input, logits output)",
            )
        self._input = inputs[0]
        check_input_shape(self._input.shape, self.info, self.path)  # before buffers are sized from it
        named = [t for t in outputs if t.name == self.info.output_name]
        self._output = named[0] if named else outputs[0]
        max_in = profile_max_shape(engine, self._input, self.api)
        self.max_batch = int(max_in[0])
        self._stream = cuda.Stream()
        for t in self._io:
            shape = max_in if t.is_input else self._max_output_shape(t)
            host = cuda.pagelocked_empty(int(np.prod(shape)), t.dtype)
            self._host[t.name] = host
            self._device_mem[t.name] = cuda.mem_alloc(max(host.nbytes, 1))
        if self.api == "tensors":  # addresses are fixed for the runner's lifetime
            for t in self._io:
                self._context.set_tensor_address(t.name, int(self._device_mem[t.name]))

    def _max_output_shape(self, t: IOTensor) -> tuple[int, ...]:
        if all(d >= 0 for d in t.shape):
            return t.shape
        self._set_input_shape((self.max_batch,) + tuple(self._input_shape_tail()))
        shape = self._current_shape(t)
        if any(d < 0 for d in shape):
            raise FetalPlanesError(
                f"{self.path}: output '{t.name}' has an unresolved shape {shape}",
                hint="export the model with a static class dimension",
                exit_code=EXIT_FAILURE,
            )
        return shape

    def deactivate_impl(self) -> None:
        if self._cuda_ctx is not None:
            self._cuda_ctx.push()
            try:
                self._release()
            finally:
                self._detach()  # while pushed: pycuda detaches and pops it

    def _release(self) -> None:
        """Free device buffers, then context and engine (while the CUDA context is current)."""
        for mem in self._device_mem.values():
            try:
                mem.free()
            except Exception:  # already freed with its context
                pass
        self._device_mem.clear()
        self._host.clear()
        self._context = self._engine = self._stream = None
        self._runtime = self._logger = None

    def _detach(self) -> None:
        """Release the retained primary context; call while it is current (pycuda pops it then)."""
        try:
            self._cuda_ctx.detach()
        except Exception:  # pycuda.driver.Error: the context is already gone
            pass
        self._cuda_ctx = None

    def model_input_shape(self) -> tuple | None:
        return tuple(self._input.shape) if self._input is not None else None

    # --- inference -----------------------------------------------------
    def _input_shape_tail(self) -> tuple[int, ...]:
        tail = self._input.shape[1:]
        if any(d < 0 for d in tail):  # dynamic spatial dims: take them from the model metadata
            tail = self.info.input_shape(1)[1:]
        return tuple(int(d) for d in tail)

    def _set_input_shape(self, shape: tuple[int, ...]) -> None:
        if self.api == "tensors":
            ok = self._context.set_input_shape(self._input.name, shape)
        else:
            ok = self._context.set_binding_shape(self._input.index, shape)
        if ok is False:
            raise FetalPlanesError(
                f"{self.path}: TensorRT refused input shape {shape} (profile max batch {self.max_batch})",
                hint="give images of the model's input size, or rebuild with a larger --max-batch",
                exit_code=EXIT_FAILURE,
            )

    def _current_shape(self, t: IOTensor) -> tuple[int, ...]:
        if self.api == "tensors":
            return tuple(int(d) for d in self._context.get_tensor_shape(t.name))
        return tuple(int(d) for d in self._context.get_binding_shape(t.index))

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        tail = self._input_shape_tail()
        if batch.ndim != 4 or tuple(batch.shape[1:]) != tail:
            raise FetalPlanesError(
                f"{self.path}: input batch has shape {tuple(batch.shape)}, the engine takes (N, {', '.join(map(str, tail))})",
                hint="preprocess images with edge.preprocess (the model's metadata gives the size)",
            )
        if batch.shape[0] == 0:
            return np.zeros((0, self.info.num_classes), np.float32)
        self._cuda_ctx.push()
        try:
            parts = [self._infer_chunk(batch[i : i + self.max_batch]) for i in range(0, batch.shape[0], self.max_batch)]
        finally:
            self._cuda_ctx.pop()
        return np.concatenate(parts, axis=0)

    def _infer_chunk(self, chunk: np.ndarray) -> np.ndarray:
        cuda, t_in, t_out = self._cuda, self._input, self._output
        n = chunk.shape[0]
        if any(d < 0 for d in t_in.shape):
            self._set_input_shape((n,) + tuple(chunk.shape[1:]))
        elif n != t_in.shape[0]:  # static batch: pad up to it
            pad = np.zeros((t_in.shape[0] - n,) + chunk.shape[1:], chunk.dtype)
            chunk = np.concatenate([chunk, pad], axis=0)
        host_in = self._host[t_in.name]
        flat = np.ascontiguousarray(chunk, dtype=t_in.dtype).reshape(-1)
        host_in[: flat.size] = flat
        cuda.memcpy_htod_async(self._device_mem[t_in.name], host_in[: flat.size], self._stream)
        if self.api == "tensors":
            ok = self._context.execute_async_v3(stream_handle=self._stream.handle)
        else:
            bindings = [int(self._device_mem[t.name]) for t in sorted(self._io, key=lambda t: t.index)]
            ok = self._context.execute_async_v2(bindings=bindings, stream_handle=self._stream.handle)
        if ok is False:
            raise FetalPlanesError(f"{self.path}: TensorRT execution failed (see TensorRT's log)", exit_code=EXIT_FAILURE)
        out_shape = self._current_shape(t_out)
        size = int(np.prod(out_shape))
        host_out = self._host[t_out.name]
        cuda.memcpy_dtoh_async(host_out[:size], self._device_mem[t_out.name], self._stream)
        self._stream.synchronize()
        result = np.array(host_out[:size], dtype=np.float32).reshape(out_shape)
        return result[:n]
