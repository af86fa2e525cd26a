"""ONNX Runtime static INT8 quantization (QDQ), with calibration methods that really differ.

Steps (:func:`quantize_onnx`): ``quant_pre_process`` (shape inference, Conv+BN
fusion), calibration of every activation's range on the calibration set
(:func:`calibrate_ranges`, run once and cached as JSON so that the layer search
can re-quantize without re-calibrating), then ``quantize_static`` in QDQ format
with per-channel weights and the activation flavour of the target, and finally
the model's fetalplanes metadata copied into the INT8 file.

Why calibration runs here rather than inside ``quantize_static``: that function
forwards only a few calibration options to the calibrator, not the histogram
bin counts, so ``entropy`` with its default 128 bins over 128 quantized bins
returns exactly the min-max ranges. Here ``num_bins`` / ``num_quantized_bins`` /
``percentile`` reach the calibrator.

onnx and onnxruntime.quantization are imported inside the functions.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError, require
from edge.modelinfo import ModelInfo, info_from_onnx_model, set_onnx_model_info, write_onnx_info

METHODS = ("minmax", "entropy", "percentile")
#: ``--method auto``: calibrate with each of METHODS and keep the one whose fully INT8 model is closest to FP32.
AUTO = "auto"
ACTIVATIONS = ("uint8", "int8")
FLOAT_WEIGHTS = ("auto", "int8", "fp16", "fp32")
TARGETS = ("cpu", "tensorrt")
#: ONNX Runtime's ``quantize_static`` options for a Q/DQ file TensorRT's ONNX parser accepts (the options ORT
#: documents in quantize_static's docstring; the same choice as NVIDIA ModelOpt's TensorRT settings):
#: biases stay float (ORT's default INT32 bias feeding DequantizeLinear is refused by TensorRT), weights stay
#: float behind a QuantizeLinear/DequantizeLinear pair (TensorRT 8.x documents FP32 weights for Q/DQ models and
#: quantizes them itself; per-channel on the output-channel axis, ORT's default per op), one Q/DQ pair per
#: consumer so TensorRT can fuse each, and Relu/Clip kept so its optimiser sees the float op.
TENSORRT_QDQ_OPTIONS: dict[str, Any] = {
    "QuantizeBias": False,
    "AddQDQPairToWeight": True,
    "DedicatedQDQPair": True,
    "QDQKeepRemovableActivations": True,
}


@dataclass
class QuantizeConfig:
    """How to quantize one ONNX model.

    ``activations`` None: the target's flavour (cpu: asymmetric uint8, what ONNX
    Runtime's x86/ARM kernels run fastest; tensorrt: symmetric int8, the only
    flavour TensorRT's explicit quantization accepts). Weights are always
    symmetric int8, per output channel unless ``per_channel`` is False.
    """

    method: str = "entropy"  # or AUTO (the quantize flow then picks one of METHODS)
    target: str = "cpu"
    activations: str | None = None
    per_channel: bool = True
    reduce_range: bool = False
    num_bins: int | None = None  # histogram bins (entropy default 512, percentile default 2048)
    num_quantized_bins: int = 128  # entropy: bins of the quantized distribution
    percentile: float = 99.999
    batch: int = 16  # calibration batch (1 if the model's batch is fixed)
    nodes_to_exclude: list[str] = field(default_factory=list)
    float_layer_weights: str = "auto"  # storage of the weights of layers kept in float: FLOAT_WEIGHTS
    #: with int8 storage: layers kept in float whose weights are stored fp16 instead (int8 rounding of just their
    #: weights costs accuracy, e.g. the first convolution); the quantize flow finds them
    fp16_weight_nodes: list[str] = field(default_factory=list)

    @property
    def float_weight_storage(self) -> str:
        """How the weights of layers kept in float are stored: "int8", "fp16" or "fp32".

        "int8" and "fp16" store each weight as ``Mul(Cast(W_int8), scale)`` or
        ``Cast(W_fp16)`` of initializers, which ONNX Runtime folds back into one
        float tensor when the session is created: those layers compute in float
        at FP32 speed from a quarter or half of the bytes. "auto" is "int8" for
        the CPU (the quantize flow switches to "fp32" when int8 rounding of the
        weights alone already costs the accuracy) and "fp32" for TensorRT files.
        """
        if self.float_layer_weights != "auto":
            return self.float_layer_weights
        return "fp32" if self.target == "tensorrt" else "int8"

    def validate(self) -> None:
        for name, value, allowed in (
            ("--method", self.method, METHODS + (AUTO,)),
            ("--target", self.target, TARGETS),
            ("--activations", self.activations or self.activation_type, ACTIVATIONS),
            ("--float-layer-weights", self.float_layer_weights, FLOAT_WEIGHTS),
        ):
            if value not in allowed:
                raise FetalPlanesError(f"{name} {value!r} is unknown", hint=f"use one of: {', '.join(allowed)}")
        if self.target == "tensorrt" and self.activation_type != "int8":
            raise FetalPlanesError(
                "--target tensorrt needs --activations int8 (TensorRT reads only symmetric int8 Q/DQ)",
                hint="drop --activations, or use --target cpu for uint8 activations",
            )
        if self.target == "tensorrt" and self.float_weight_storage == "int8":
            raise FetalPlanesError(
                "--target tensorrt cannot store float-layer weights as int8 (Cast of an INT8 initializer: TensorRT "
                "reaches INT8 only through DequantizeLinear)",
                hint="drop --float-layer-weights (TensorRT files keep them fp32), or use fp16",
            )
        if not 50.0 < self.percentile <= 100.0:
            raise FetalPlanesError(f"--percentile {self.percentile} is not in (50, 100]", hint="use e.g. 99.99")
        if self.num_bins is not None and self.num_bins < self.num_quantized_bins:
            raise FetalPlanesError(
                f"--num-bins {self.num_bins} is below the {self.num_quantized_bins} quantized bins",
                hint="use e.g. 2048 histogram bins",
            )

    @property
    def activation_type(self) -> str:
        return self.activations or ("int8" if self.target == "tensorrt" else "uint8")

    @property
    def symmetric_activations(self) -> bool:
        return self.activation_type == "int8"

    def calibrator_options(self) -> dict[str, Any]:
        """The options ORT's ``create_calibrator`` reads (the ones quantize_static drops included)."""
        opts: dict[str, Any] = {"symmetric": self.symmetric_activations}
        if self.method == "entropy":
            # ORT's KL search is pure Python, O(num_bins^2 / 2) per tensor: 512 bins (thresholds down to
            # a quarter of the largest value) keep it to seconds; --num-bins 2048 is TensorRT's choice.
            opts.update(num_bins=self.num_bins or 512, num_quantized_bins=self.num_quantized_bins)
        elif self.method == "percentile":
            opts.update(num_bins=self.num_bins or 2048, percentile=self.percentile)
        return opts

    def describe(self) -> dict[str, Any]:
        """What goes into the INT8 file's metadata and the report."""
        d = asdict(self)
        d["activations"] = self.activation_type
        d["activation_symmetric"] = self.symmetric_activations
        d["weights"] = "int8 symmetric" + (" per-channel" if self.per_channel else " per-tensor")
        d["format"] = "QDQ"
        d["float_layer_weights"] = self.float_weight_storage
        d["calibrator_options"] = self.calibrator_options()
        return d


def _quantization():
    require("onnx", "dev", "INT8 quantization")
    return require("onnxruntime.quantization", "dev", "INT8 quantization")


def _ort_method(name: str):
    q = _quantization()
    return {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }[name]


def load_onnx(path: str | Path):
    """Load and check an ONNX file; a corrupt or missing file is a clear error."""
    onnx = require("onnx", "dev", "INT8 quantization")
    path = Path(path)
    if not path.is_file():
        raise FetalPlanesError(f"{path}: ONNX file not found", hint="check the --onnx path")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise FetalPlanesError(
            f"{path}: not a valid ONNX model ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})",
            hint="the file is corrupt or truncated: re-run `fetalplanes export`",
        ) from None
    return model


def read_info(model) -> ModelInfo:
    """The ModelInfo stored in a loaded ONNX model's metadata (:func:`edge.modelinfo.info_from_onnx_model`)."""
    return info_from_onnx_model(model)


def write_info(path: str | Path, info: ModelInfo) -> None:
    """Set (replace) the fetalplanes metadata of an ONNX file in place (:func:`edge.modelinfo.write_onnx_info`)."""
    write_onnx_info(path, info)


def prepare_for_quantization(src: str | Path, dst: str | Path) -> Path:
    """``quant_pre_process``: ONNX + symbolic shape inference and ORT graph optimisation (Conv+BN fusion).

    Every node gets a unique name (``nodes_to_exclude`` works by name); the
    fetalplanes metadata is kept.
    """
    onnx = require("onnx", "dev", "INT8 quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = load_onnx(src)
    info = read_info(model)
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    except Exception as exc:  # symbolic shape inference fails on some graphs: retry without it
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        except Exception:
            raise FetalPlanesError(
                f"{src}: ONNX Runtime's quantization pre-processing failed ({str(exc).splitlines()[0][:200]})",
                hint="check that the model runs in ONNX Runtime (`fetalplanes classify`), then re-export it",
                exit_code=EXIT_FAILURE,
            ) from None
    prepared = onnx.load(str(dst))
    seen: set[str] = set()
    for i, node in enumerate(prepared.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    set_onnx_model_info(prepared, info)
    onnx.save(prepared, str(dst))
    return Path(dst)


def _fixed_batch(model_path: str | Path) -> int | None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    dim = sess.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None


class ArrayDataReader:
    """An ORT ``CalibrationDataReader`` over a preprocessed array, in batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch: int = 16):
        self.input_name = input_name
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.batch = max(1, int(batch))
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self.data):
            return None
        chunk = self.data[self._i : self._i + self.batch]
        self._i += self.batch
        return {self.input_name: chunk}

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item

    def __len__(self) -> int:
        return (len(self.data) + self.batch - 1) // self.batch

    def rewind(self) -> None:
        self._i = 0


def calibrate_ranges(model_path: str | Path, calib: np.ndarray, config: QuantizeConfig, cache_path: str | Path) -> Path:
    """Run the calibrator of ``config.method`` over ``calib`` and save the ranges as an ORT calibration cache."""
    q = _quantization()
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    if calib.ndim != 4 or len(calib) == 0:
        raise FetalPlanesError(
            f"the calibration set is empty or not (N, C, H, W): shape {calib.shape}",
            hint="give --data a dataset with training images of the model's task",
        )
    fixed = _fixed_batch(model_path)
    batch = fixed or config.batch
    if fixed is None and config.method != "minmax":
        # the histogram calibrators stack every batch's outputs: batches must be of equal size
        batch = max(b for b in range(1, min(batch, len(calib)) + 1) if len(calib) % b == 0)
    model = load_onnx(model_path)
    input_name = model.graph.input[0].name
    import contextlib
    import io

    with tempfile.TemporaryDirectory(prefix="fetalplanes-calib-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(
            Path(model_path),
            None,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_ort_method(config.method),
            extra_options=config.calibrator_options(),
        )
        calibrator.collect_data(ArrayDataReader(input_name, calib, batch))
        ranges = calibrator.compute_data()
        del calibrator
    if not isinstance(ranges, q.calibrate.TensorsData):  # pragma: no cover - ORT API drift
        raise FetalPlanesError("ONNX Runtime's calibrator returned no ranges", hint="upgrade onnxruntime", exit_code=1)
    save_tensors_data(ranges, Path(cache_path))
    return Path(cache_path)


def read_ranges(cache_path: str | Path) -> dict[str, tuple[float, float]]:
    """{tensor name: (low, high)} from an ORT calibration cache (for reports and tests)."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    data = load_tensors_data(Path(cache_path))
    out = {}
    for name, td in data.items():
        low, high = td.range_value
        out[name] = (float(np.min(low)), float(np.max(high)))
    return out


def quantize_with_ranges(
    prepared: str | Path,
    out: str | Path,
    cache_path: str | Path,
    config: QuantizeConfig,
    nodes_to_exclude: Sequence[str] = (),
    info: ModelInfo | None = None,
    note: dict[str, Any] | None = None,
    nodes_to_quantize: Sequence[str] | None = None,
    metadata: bool = True,
) -> Path:
    """QDQ-quantize a prepared model with cached ranges; keep ``nodes_to_exclude`` in float.

    ``nodes_to_quantize`` (if given) quantizes only those nodes (the layer
    sensitivity scan). The fetalplanes metadata (``info``, default: the prepared model's) goes into the
    output with the quantization settings under ``info.extra["quantization"]``.
    """
    q = _quantization()
    import inspect

    if "calibration_cache_path" not in inspect.signature(q.quantize_static).parameters:
        raise FetalPlanesError(
            "this onnxruntime is too old for cached calibration ranges (quantize_static lacks calibration_cache_path)",
            hint="pip install -U onnxruntime (1.32 or newer) on the machine that quantizes",
            exit_code=EXIT_FAILURE,
        )
    qtype = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}
    extra = {
        "ActivationSymmetric": config.symmetric_activations,
        "WeightSymmetric": True,
        "QDQKeepRemovableActivations": False,
    }
    if config.target == "tensorrt":
        extra.update(TENSORRT_QDQ_OPTIONS)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        q.quantize_static(
            str(prepared),
            str(out),
            calibration_data_reader=None,
            quant_format=q.QuantFormat.QDQ,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            activation_type=qtype[config.activation_type],
            weight_type=q.QuantType.QInt8,
            nodes_to_exclude=list(nodes_to_exclude),
            nodes_to_quantize=list(nodes_to_quantize) if nodes_to_quantize else None,
            calibrate_method=_ort_method(config.method),
            extra_options=extra,
            calibration_cache_path=str(cache_path),
        )
    except FetalPlanesError:
        raise
    except Exception as exc:
        raise FetalPlanesError(
            f"{prepared}: ONNX Runtime's quantize_static failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            hint="try --method minmax, or report the model's architecture",
            exit_code=EXIT_FAILURE,
        ) from None
    if nodes_to_exclude and not nodes_to_quantize and config.float_weight_storage != "fp32":
        storage = config.float_weight_storage
        keep16 = set(config.fp16_weight_nodes) if storage == "int8" else set()
        compress_float_weights(out, out, [n for n in nodes_to_exclude if n not in keep16], storage)
        if keep16 & set(nodes_to_exclude):
            compress_float_weights(out, out, [n for n in nodes_to_exclude if n in keep16], "fp16")
    if config.target == "tensorrt":
        from calibration.trt_qdq_check import check_tensorrt_qdq

        check_tensorrt_qdq(out)  # what TensorRT's ONNX parser would refuse, named here instead of on the box
    if not metadata:
        return out
    if info is None:
        info = read_info(load_onnx(prepared))
    qinfo = ModelInfo.from_dict(info.to_dict())
    setting = config.describe()
    setting["nodes_to_exclude"] = list(nodes_to_exclude)
    setting.update(note or {})
    qinfo.extra = dict(qinfo.extra)
    qinfo.extra["quantization"] = setting
    write_info(out, qinfo)
    return out


def quantize_for_tensorrt(
    onnx_path: str | Path, out: str | Path, calibration: np.ndarray, method: str = "minmax", per_channel: bool = True
) -> Path:
    """Every layer INT8, in the Q/DQ flavour TensorRT parses: pre-process, calibrate on ``calibration``
    (N, C, H, W float32, preprocessed), quantize with :data:`TENSORRT_QDQ_OPTIONS`, check with
    :func:`calibration.trt_qdq_check.check_tensorrt_qdq`. No accuracy search (that is ``fetalplanes quantize``);
    this is what ``selftest`` builds its ``int8-qdq`` engine from. The fetalplanes metadata is carried over.
    """
    config = QuantizeConfig(method=method, target="tensorrt", per_channel=per_channel)
    config.validate()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetalplanes-trt-qdq-") as tmp:
        prepared = prepare_for_quantization(onnx_path, Path(tmp) / "prepared.onnx")
        cache = calibrate_ranges(prepared, np.asarray(calibration, np.float32), config, Path(tmp) / "ranges.json")
        return quantize_with_ranges(prepared, out, cache, config)


#: ops whose input 1 is a weight matrix / kernel, and the output-channel axis of that weight
_WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "Gemm": None, "MatMul": -1}
COMPRESSED_SUFFIX = "_int8w"


def compress_float_weights(
    src: str | Path, dst: str | Path, node_names: Sequence[str], storage: str = "int8"
) -> dict[str, int]:
    """Store the float weights of ``node_names`` (Conv, ConvTranspose, Gemm, MatMul) as int8 or fp16.

    ``storage`` "int8": symmetric per output channel, the weight becomes
    ``Mul(Cast(W_int8, float), scale)``; "fp16": ``Cast(W_fp16, float)``. Every
    input is an initializer, so ONNX Runtime's constant folding turns it back
    into one float tensor when the session is created (DequantizeLinear would
    not be folded and would run on every call). The layer then computes in
    float, at FP32 speed, from a quarter (int8) or half (fp16) of the bytes.
    Returns {weight name: bytes saved}. Weights shared with other nodes, 1-D
    tensors and non-float tensors are left alone.
    """
    onnx = require("onnx", "dev", "INT8 quantization")
    from onnx import TensorProto, helper, numpy_helper

    if storage not in ("int8", "fp16"):
        raise ValueError(f"storage {storage!r}: expected int8 or fp16")
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    wanted = set(node_names)
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    replaced: set[str] = set()
    saved: dict[str, int] = {}
    new_nodes = []
    for node in graph.node:
        if node.name not in wanted or node.op_type not in _WEIGHT_AXIS or len(node.input) < 2:
            continue
        wname = node.input[1]
        init = inits.get(wname)
        if init is None or init.data_type != TensorProto.FLOAT or len(init.dims) < 2 or consumers.get(wname, 0) != 1:
            continue
        w = numpy_helper.to_array(init).astype(np.float32)
        base = wname + COMPRESSED_SUFFIX + ("" if storage == "int8" else "_" + storage)
        if storage == "fp16":
            graph.initializer.append(numpy_helper.from_array(w.astype(np.float16), base))
            new_nodes.append(helper.make_node("Cast", [base], [base + "_weight"], name=base + "_Cast",
                                              to=TensorProto.FLOAT))
            saved[wname] = 2 * w.size
        else:
            axis = _WEIGHT_AXIS[node.op_type]
            if axis is None:  # Gemm: B is (K, N), or (N, K) with transB
                axis = 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
            axis %= w.ndim
            reduce = tuple(i for i in range(w.ndim) if i != axis)
            scale = np.abs(w).max(axis=reduce) / 127.0
            scale[scale == 0] = 1.0
            shape = [1] * w.ndim
            shape[axis] = -1
            scale = scale.astype(np.float32).reshape(shape)
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            graph.initializer.extend([numpy_helper.from_array(q, base), numpy_helper.from_array(scale, base + "_scale")])
            new_nodes += [
                helper.make_node("Cast", [base], [base + "_float"], name=base + "_Cast", to=TensorProto.FLOAT),
                helper.make_node("Mul", [base + "_float", base + "_scale"], [base + "_weight"], name=base + "_Mul"),
            ]
            saved[wname] = 4 * w.size - (q.size + 4 * scale.size)
        node.input[1] = base + "_weight"
        replaced.add(wname)
    if replaced:
        keep = [i for i in graph.initializer if i.name not in replaced]
        del graph.initializer[:]
        graph.initializer.extend(keep)
        nodes = new_nodes + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
    onnx.save(model, str(dst))
    return saved


def quantizable_nodes(prepared: str | Path) -> list[str]:
    """Names of the nodes ONNX Runtime's QDQ quantizer would quantize, in graph order."""
    q = _quantization()
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    op_types = set(QDQRegistry) | set(QLinearOpsRegistry)
    model = load_onnx(prepared)
    del q
    return [n.name for n in model.graph.node if n.op_type in op_types]


def node_op_types(path: str | Path) -> dict[str, str]:
    """{node name: op type} of an ONNX file."""
    return {n.name: n.op_type for n in load_onnx(path).graph.node}


def count_qdq(path: str | Path) -> dict[str, int]:
    """How many QuantizeLinear / DequantizeLinear nodes a file has (0 means nothing was quantized)."""
    ops = [n.op_type for n in load_onnx(path).graph.node]
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear")}


def file_size(path: str | Path) -> int:
    return os.path.getsize(path)


def node_weight_bytes(path: str | Path) -> dict[str, int]:
    """{node name: bytes of its float constant inputs (initializers)}: what INT8 would shrink."""
    onnx = require("onnx", "dev", "INT8 quantization")
    model = load_onnx(path)
    sizes = {}
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            sizes[init.name] = 4 * int(np.prod(init.dims)) if len(init.dims) else 4
    return {n.name: sum(sizes.get(i, 0) for i in n.input) for n in model.graph.node}
