"""Build a TensorRT engine from a fetalplanes ONNX: FP32, FP16 or INT8, dynamic batch, with its sidecar.

INT8 comes two ways, chosen from the ONNX and the TensorRT version:

* explicit quantization: the ONNX carries Q/DQ nodes (``fetalplanes quantize --target
  tensorrt`` writes them in the form TensorRT's parser accepts, checked by
  :mod:`calibration.trt_qdq_check` before parsing); built on TensorRT 8.6, 10.x and 11.x
  (JetPack 6.x; JetPack 5.1 ships 8.5.2, which takes the calibrator route);
* implicit quantization: a plain FP32 ONNX plus an entropy calibrator
  (``IInt8EntropyCalibrator2``) fed with the calibration set and a calibration
  cache; only TensorRT < 11 (JetPack 5/6), since 11 removed calibrators and the
  INT8 builder flag.

On TensorRT < 11 both INT8 routes also set the FP16 flag, as ``trtexec --int8 --fp16``:
layers left unquantized (the ones the quantize search kept in float, the softmax-free
head) may then run in FP16 instead of FP32; selftest's tolerance covers the difference.

TensorRT 11 also removed the FP16 builder flag: FP16 there needs an FP16 ONNX
(ModelOpt AutoCast). tensorrt and pycuda are imported inside the functions that
use them. This path has NOT been run on real TensorRT by the project (it cannot be
installed where it is developed); ``fetalplanes selftest`` verifies it on a GPU box.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edge import __version__
from edge.backends.engine_sidecar import EngineSidecar, write_sidecar
from edge.files import sha256_file
from edge.backends.tensorrt_runner import gpu_identity, import_pycuda, import_tensorrt, version_tuple
from edge.backends.tensorrt_versions import QDQ_MIN_VERSION, qdq_refusal_hint
from edge.errors import EXIT_FAILURE, EXIT_USAGE, FetalPlanesError
from edge.modelinfo import ModelInfo, read_onnx_metadata

PRECISIONS = ("fp32", "fp16", "int8")
QDQ_ROUTE = (
    "quantize the ONNX with Q/DQ nodes first: `fetalplanes quantize --onnx MODEL.onnx --data DIR --target tensorrt "
    "--out MODEL.int8.onnx`, then `fetalplanes build-engine --onnx MODEL.int8.onnx --precision int8 --out MODEL.engine`"
)
#: INT8 builds on TensorRT < 11 also allow FP16 for the layers left unquantized (trtexec --int8 --fp16)
INT8_FLAGS = ["INT8", "FP16"]


@dataclass
class EngineBuildConfig:
    """Everything `build-engine` needs; defaults suit a classifier on a Jetson."""

    onnx: str
    out: str
    precision: str = "fp16"
    max_batch: int = 8
    opt_batch: int = 1
    workspace_mb: int = 1024
    data_dir: str | None = None  # calibration images (implicit INT8)
    calib_size: int = 500
    calib_batch: int = 8
    calib_cache: str | None = None
    seed: int = 0
    device: int = 0

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise FetalPlanesError(f"--precision {self.precision}: unknown", hint=f"use one of {', '.join(PRECISIONS)}")
        if self.max_batch < 1 or not (1 <= self.opt_batch <= self.max_batch):
            raise FetalPlanesError(
                f"--max-batch {self.max_batch} (opt {self.opt_batch}): need 1 <= opt <= max",
                hint="e.g. --max-batch 8",
            )
        if self.workspace_mb < 16:
            raise FetalPlanesError(f"--workspace-mb {self.workspace_mb}: too small", hint="give at least 16 (MiB)")
        if self.calib_batch < 1 or self.calib_size < 1:
            raise FetalPlanesError("--calib-size and the calibration batch must be >= 1", hint="e.g. --calib-size 500")
        if not Path(self.onnx).is_file():
            raise FetalPlanesError(f"{self.onnx}: ONNX file not found", hint="check --onnx (export one with `fetalplanes export`)")
        out = Path(self.out)
        if out.suffix.lower() not in (".engine", ".plan", ".trt"):
            raise FetalPlanesError(f"--out {self.out}: an engine file must end in .engine, .plan or .trt", hint="e.g. --out model.engine")


@dataclass
class BuildPlan:
    """How to build: which builder flags, whether a calibrator is used, the mode recorded in the sidecar."""

    mode: str
    flags: list[str] = field(default_factory=list)
    calibrator: bool = False
    network_flags: list[str] = field(default_factory=list)


def plan_build(precision: str, tensorrt_version: str, has_qdq: bool, has_fp16_types: bool, have_calibration: bool) -> BuildPlan:
    """Choose the build route, or refuse clearly (pure logic: no TensorRT needed).

    ``have_calibration``: a calibration set (``--data``) or an existing cache was given.
    """
    major = version_tuple(tensorrt_version)[0]
    net_flags = network_flag_names(tensorrt_version)
    if major >= 11:  # strongly typed only: precision comes from the ONNX itself
        if precision == "int8" and not has_qdq:
            raise FetalPlanesError(
                f"TensorRT {tensorrt_version} removed implicit INT8 (calibrators and the INT8 builder flag); "
                "this ONNX has no Q/DQ nodes",
                hint=QDQ_ROUTE,
            )
        if precision == "fp16" and not has_fp16_types:
            raise FetalPlanesError(
                f"TensorRT {tensorrt_version} removed the FP16 builder flag; this ONNX is FP32",
                hint="convert it to mixed precision with NVIDIA ModelOpt "
                "(`python -m modelopt.onnx.autocast --onnx_path MODEL.onnx --output_path MODEL.fp16.onnx`) and build that, "
                "or build --precision fp32, or --precision int8 from a Q/DQ ONNX",
            )
        if precision == "fp32" and (has_qdq or has_fp16_types):
            raise FetalPlanesError(
                f"this ONNX is {'Q/DQ-quantized' if has_qdq else 'FP16'}; TensorRT {tensorrt_version} builds it as typed",
                hint=f"use --precision {'int8' if has_qdq else 'fp16'}",
            )
        kind = "int8-qdq" if has_qdq else ("fp16" if has_fp16_types else "fp32")
        return BuildPlan(mode=f"strongly-typed-{kind}", network_flags=net_flags)
    if has_qdq and precision != "int8":
        raise FetalPlanesError(
            "this ONNX carries Q/DQ nodes (it is already quantized)",
            hint="build it with --precision int8, or give the FP32 ONNX for fp32/fp16",
        )
    if precision == "fp32":
        return BuildPlan(mode="fp32", network_flags=net_flags)
    if precision == "fp16":
        return BuildPlan(mode="fp16-flag", flags=["FP16"], network_flags=net_flags)
    if has_qdq:
        if version_tuple(tensorrt_version)[:2] < QDQ_MIN_VERSION:
            raise FetalPlanesError(
                f"fetalplanes builds explicit (Q/DQ) INT8 from TensorRT 8.6 on; this is TensorRT {tensorrt_version}",
                hint=qdq_refusal_hint(tensorrt_version),
            )
        return BuildPlan(mode="int8-explicit-qdq", flags=list(INT8_FLAGS), network_flags=net_flags)
    if not have_calibration:
        raise FetalPlanesError(
            "--precision int8 from an FP32 ONNX needs calibration images: --data DIR (or an existing --calib-cache FILE)",
            hint="give --data with the FETAL_PLANES_DB folder the model was trained on, or " + QDQ_ROUTE,
        )
    return BuildPlan(mode="int8-implicit-calibrator", flags=list(INT8_FLAGS), calibrator=True, network_flags=net_flags)


# --- calibration data: batching and cache (pure Python, unit-tested) ---------------------------------
def iter_calibration_batches(data: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Full batches of ``batch_size`` (the calibration profile is fixed); the last, partial batch is
    completed with samples from the start, so every sample is seen and every batch has the same shape."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    n = data.shape[0]
    if n == 0:
        return
    for start in range(0, n, batch_size):
        batch = data[start : start + batch_size]
        if batch.shape[0] < batch_size:
            fill = np.take(data, np.arange(batch_size - batch.shape[0]) % n, axis=0)
            batch = np.concatenate([batch, fill], axis=0)
        yield batch


class CalibrationFeeder:
    """Feeds calibration batches and keeps the calibration cache file; the TensorRT calibrator delegates here.

    ``next_batch()`` returns the next float32 batch or None at the end of the data.
    ``source_sha256`` (of the ONNX) and ``tensorrt_version`` are stamped beside the cache
    (``<cache>.source``), so that a cache made for another model or by another TensorRT
    (whose cache format TensorRT does not read: it would recalibrate, and with no data fail)
    is refused clearly instead.
    """

    def __init__(
        self,
        batches: Iterable[np.ndarray] | None,
        batch_size: int,
        cache_path: str | Path | None = None,
        source_sha256: str = "",
        tensorrt_version: str = "",
    ):
        self.batch_size = int(batch_size)
        self.cache_path = Path(cache_path) if cache_path else None
        self.source_sha256 = source_sha256
        self.tensorrt_version = tensorrt_version
        self._batches = iter(batches) if batches is not None else iter(())
        self.delivered = 0

    def next_batch(self) -> np.ndarray | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        if batch.shape[0] != self.batch_size:
            raise FetalPlanesError(
                f"calibration batch of {batch.shape[0]} samples, expected {self.batch_size}",
                hint="this is a bug in the caller: batches must come from iter_calibration_batches",
                exit_code=EXIT_FAILURE,
            )
        self.delivered += 1
        return np.ascontiguousarray(batch, dtype=np.float32)

    @property
    def stamp_path(self) -> Path | None:
        return Path(str(self.cache_path) + ".source") if self.cache_path else None

    def read_cache(self) -> bytes | None:
        """The cache's bytes if present (None: calibrate from the data); refuses a cache stamped for another ONNX."""
        if not (self.cache_path and self.cache_path.is_file() and self.cache_path.stat().st_size > 0):
            return None
        lines = self.stamp_path.read_text().split() if self.stamp_path.is_file() else []
        stamp = lines[0] if lines else ""
        stamp_trt = lines[2] if len(lines) > 2 and lines[1] == "tensorrt" else ""
        fix = f"delete {self.cache_path} (and {self.stamp_path.name}) to recalibrate, or give another --calib-cache"
        if self.source_sha256 and stamp and stamp != self.source_sha256:
            raise FetalPlanesError(
                f"{self.cache_path}: calibration cache was made for another model (ONNX sha256 {stamp[:12]}..., "
                f"this one {self.source_sha256[:12]}...)",
                hint=fix,
            )
        if self.tensorrt_version and stamp_trt and stamp_trt != self.tensorrt_version:
            raise FetalPlanesError(
                f"{self.cache_path}: calibration cache was written by TensorRT {stamp_trt}, this is TensorRT "
                f"{self.tensorrt_version} (TensorRT reads only its own version's caches)",
                hint=fix + "; give --data so that it can recalibrate",
            )
        return self.cache_path.read_bytes()

    def write_cache(self, cache: Any) -> None:
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            self.cache_path.write_bytes(bytes(cache))
            if self.source_sha256:
                trt = f" tensorrt {self.tensorrt_version}" if self.tensorrt_version else ""
                self.stamp_path.write_text(self.source_sha256 + trt + "\n")


def make_entropy_calibrator(trt: Any, cuda: Any, feeder: CalibrationFeeder, input_shape: tuple[int, ...]):
    """An ``IInt8EntropyCalibrator2`` whose batches go to the GPU through one pycuda buffer."""
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise FetalPlanesError(
            f"TensorRT {trt.__version__} has no IInt8EntropyCalibrator2 (removed in 11)", hint=QDQ_ROUTE
        )

    class EntropyCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self):
            base.__init__(self)
            self.feeder = feeder
            self.error: Exception | None = None
            nbytes = int(np.prod(input_shape)) * 4
            self.device_input = cuda.mem_alloc(nbytes)

        def get_batch_size(self):
            return feeder.batch_size

        def get_batch(self, names):
            # Exceptions must not cross into TensorRT's C++ callback: keep it, end the data, re-raise after the build.
            try:
                batch = feeder.next_batch()
                if batch is None:
                    return None
                cuda.memcpy_htod(self.device_input, batch)
                return [int(self.device_input)]
            except Exception as exc:
                self.error = exc
                return None

        def read_calibration_cache(self):
            try:
                return feeder.read_cache()
            except Exception as exc:
                self.error = exc
                return None

        def write_calibration_cache(self, cache):
            feeder.write_cache(cache)

    return EntropyCalibrator()


# --- the build ------------------------------------------------------------------------------
def network_flag_names(tensorrt_version: str) -> list[str]:
    """EXPLICIT_BATCH for TensorRT < 10 (ONNX needs it there); none from 10 on (deprecated, removed in 11)."""
    return ["EXPLICIT_BATCH"] if version_tuple(tensorrt_version)[0] < 10 else []


def _parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: str):
    flags = 0
    for name in network_flag_names(trt.__version__):
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path)) if hasattr(parser, "parse_from_file") else parser.parse(Path(onnx_path).read_bytes())
    if not ok:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise FetalPlanesError(
            f"{onnx_path}: TensorRT's ONNX parser rejected the model: " + " | ".join(errors[:5]),
            hint="check the ONNX opset and operators (`fetalplanes export` writes opset 17), or re-export it",
        )
    return network, parser


def network_properties(trt: Any, network: Any) -> tuple[bool, bool]:
    """(has Q/DQ layers, has FP16-typed tensors) of a parsed network."""
    qdq_types = {getattr(trt.LayerType, n) for n in ("QUANTIZE", "DEQUANTIZE") if hasattr(trt.LayerType, n)}
    has_qdq = has_half = False
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        has_qdq |= layer.type in qdq_types
        for k in range(layer.num_outputs):
            has_half |= layer.get_output(k).dtype == trt.DataType.HALF
    return has_qdq, has_half


def batch_profile(network: Any, info: ModelInfo, opt_batch: int, max_batch: int) -> dict[str, dict[str, list[int]]]:
    """min/opt/max shapes per network input: batch 1 / opt / max; other dynamic dims from the metadata."""
    profile = {}
    expected = info.input_shape(1)
    for i in range(network.num_inputs):
        t = network.get_input(i)
        shape = list(t.shape)
        if len(shape) != len(expected):
            raise FetalPlanesError(
                f"network input '{t.name}' has {len(shape)} dims {tuple(shape)}, the metadata says {expected}",
                hint="re-export the ONNX with `fetalplanes export`",
            )
        tail = [int(e) if d < 0 else int(d) for d, e in zip(shape[1:], expected[1:])]
        if shape[0] >= 0:  # static batch: the profile is that batch only
            b = int(shape[0])
            profile[t.name] = {"min": [b] + tail, "opt": [b] + tail, "max": [b] + tail}
        else:
            profile[t.name] = {"min": [1] + tail, "opt": [opt_batch] + tail, "max": [max_batch] + tail}
    return profile


def build_engine(config: EngineBuildConfig, calibration_data: np.ndarray | None = None) -> EngineSidecar:
    """Build ``config.out`` and its ``.json`` sidecar; returns the sidecar.

    ``calibration_data`` (N, C, H, W float32) overrides building the calibration set from ``config.data_dir``.
    """
    config.validate()
    info = read_onnx_metadata(config.onnx)
    trt = import_tensorrt()
    cuda = import_pycuda()
    gpu_name, cc = gpu_identity(cuda, config.device)
    ctx = cuda.Device(config.device).retain_primary_context()
    ctx.push()
    try:
        return _build(trt, cuda, config, info, gpu_name, cc, calibration_data)
    finally:
        try:
            ctx.detach()  # while pushed: pycuda releases the primary context and pops it
        except Exception:  # pycuda.driver.Error: already gone
            pass


def _build(trt, cuda, config: EngineBuildConfig, info: ModelInfo, gpu_name: str, cc: str, calibration_data) -> EngineSidecar:
    version = trt.__version__
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    _check_qdq_before_parsing(config.onnx, version)
    network, _parser = _parse_onnx(trt, builder, logger, config.onnx)
    has_qdq, has_half = network_properties(trt, network)
    have_cache = bool(config.calib_cache and Path(config.calib_cache).is_file())
    plan = plan_build(config.precision, version, has_qdq, has_half, bool(config.data_dir) or calibration_data is not None or have_cache)

    bconfig = builder.create_builder_config()
    bconfig.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_mb) << 20)
    for name in plan.flags:
        bconfig.set_flag(getattr(trt.BuilderFlag, name))
    shapes = batch_profile(network, info, config.opt_batch, config.max_batch)
    profile = builder.create_optimization_profile()
    for name, s in shapes.items():
        profile.set_shape(name, s["min"], s["opt"], s["max"])
    if bconfig.add_optimization_profile(profile) < 0:
        raise FetalPlanesError(
            f"TensorRT {version} refused the optimization profile {shapes} for {config.onnx} (see TensorRT's log)",
            hint="check --max-batch / --opt-batch against the model's input (a fixed-batch ONNX allows only its batch)",
            exit_code=EXIT_FAILURE,
        )

    calibrator = None
    if plan.calibrator:
        calibrator = _attach_calibrator(trt, cuda, builder, bconfig, network, info, config, calibration_data, have_cache)

    serialized = builder.build_serialized_network(network, bconfig)
    if calibrator is not None:
        try:
            calibrator.device_input.free()
        except Exception:
            pass
        if calibrator.error is not None:
            raise calibrator.error
    if serialized is None:
        raise FetalPlanesError(
            f"TensorRT {version} could not build an engine from {config.onnx} ({plan.mode}); see TensorRT's log above",
            hint="try --precision fp32 to isolate the layer at fault, a larger --workspace-mb, or a smaller --max-batch",
            exit_code=EXIT_FAILURE,
        )
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(serialized))
    options = asdict(config)
    options.pop("onnx"), options.pop("out")
    options.update(flags=plan.flags, network_flags=plan.network_flags)
    if calibrator is not None:
        options["calibration_batches"] = calibrator.feeder.delivered
    sidecar = EngineSidecar(
        model_info=info.to_dict(),
        precision=config.precision,
        mode=plan.mode,
        tensorrt_version=version,
        gpu_name=gpu_name,
        compute_capability=cc,
        onnx_path=str(Path(config.onnx).resolve()),
        onnx_sha256=sha256_file(config.onnx),
        build_options=options,
        profile=shapes,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        fetalplanes_version=__version__,
    )
    write_sidecar(out, sidecar)
    return sidecar


def _attach_calibrator(trt, cuda, builder, bconfig, network, info, config, calibration_data, have_cache):
    """Entropy calibrator on a fixed calibration profile (batch = calib_batch)."""
    batch = int(config.calib_batch)
    data = calibration_data
    if data is None and config.data_dir:
        from calibration.calibset import build_calibration_set

        data = build_calibration_set(config.data_dir, info, size=config.calib_size, seed=config.seed)
    if data is not None:
        data = np.asarray(data, dtype=np.float32)
        if data.ndim != 4 or tuple(data.shape[1:]) != info.input_shape(1)[1:]:
            raise FetalPlanesError(
                f"calibration data has shape {data.shape}, the model takes (N, {info.input_shape(1)[1:]})",
                hint="build the calibration set from the model's own metadata (calibration.calibset)",
                exit_code=EXIT_USAGE,
            )
        if data.shape[0] == 0:
            raise FetalPlanesError("the calibration set is empty", hint="check --data (training images are needed)")
        batch = min(batch, data.shape[0])
    elif not have_cache:
        raise FetalPlanesError("implicit INT8 needs --data or an existing --calib-cache", hint=QDQ_ROUTE)
    net_input = network.get_input(0)
    static_batch = int(net_input.shape[0]) if len(net_input.shape) and int(net_input.shape[0]) >= 0 else None
    if static_batch is not None:  # a fixed-batch ONNX: the calibration profile must be that batch
        batch = static_batch
    input_shape = (batch,) + tuple(info.input_shape(1)[1:])
    feeder = CalibrationFeeder(
        iter_calibration_batches(data, batch) if data is not None else None, batch, config.calib_cache,
        sha256_file(config.onnx), trt.__version__,
    )
    feeder.read_cache()  # refuse a cache made for another model now, not inside TensorRT's callback
    calibrator = make_entropy_calibrator(trt, cuda, feeder, input_shape)
    calib_profile = builder.create_optimization_profile()
    calib_profile.set_shape(net_input.name, input_shape, input_shape, input_shape)
    bconfig.int8_calibrator = calibrator
    if hasattr(bconfig, "set_calibration_profile") and bconfig.set_calibration_profile(calib_profile) is False:
        raise FetalPlanesError(
            f"TensorRT {trt.__version__} refused the calibration profile {input_shape} for input '{net_input.name}' "
            f"{tuple(net_input.shape)} (see TensorRT's log)",
            hint="this is a bug in fetalplanes if the model's input is 4-D (N, C, H, W); please report it",
            exit_code=EXIT_FAILURE,
        )
    return calibrator


def _check_qdq_before_parsing(onnx_path: str, tensorrt_version: str) -> None:
    """A Q/DQ file TensorRT's parser would refuse is named here, with the fix, instead of by the parser."""
    try:
        import onnx
    except ImportError:  # the [tensorrt] extra brings onnx; without it TensorRT's parser has the last word
        return
    from calibration.trt_qdq_check import check_tensorrt_qdq

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:  # unreadable: TensorRT's parser reports it
        return
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        check_tensorrt_qdq(model, tensorrt_version, source=str(onnx_path))
