"""Would TensorRT's ONNX parser accept this Q/DQ file? A check written from onnx-tensorrt's operator table.

TensorRT reads INT8 only through explicit ``QuantizeLinear`` / ``DequantizeLinear``
pairs, with rules that ONNX Runtime's defaults break (onnx-tensorrt ``docs/operators.md``,
releases 8.5, 9.2 and 10.x):

* ``DequantizeLinear`` takes INT8 input only (FP8 from TensorRT 9, INT4 from 10).
  ONNX Runtime quantizes biases to INT32 by default and feeds them to a
  ``DequantizeLinear``: TensorRT refuses the node ("only activation types allowed as
  input to this layer", onnx/onnx-tensorrt#850, microsoft/onnxruntime#14229).
* ``QuantizeLinear`` takes FP32/FP16 (BF16 from 9) input; both zero points must be 0
  (symmetric), so UINT8 (asymmetric, the CPU flavour) never passes.
* INT8 (and the other quantized types) exist in TensorRT only as the output of a
  quantization: an INT8 initializer may feed a ``DequantizeLinear`` and nothing else
  (e.g. not the ``Cast`` of int8 weight storage).
* QOperator nodes (``QLinearConv``, ``ConvInteger``, ...) and ONNX Runtime's own
  domains have no TensorRT importer; TensorRT 8.5/8.6 parse opsets up to 17.

:func:`tensorrt_qdq_problems` lists every violation (empty: the file passes);
:func:`check_tensorrt_qdq` raises a :class:`FetalPlanesError` naming them. With no
TensorRT version given the strictest rules apply (the file must parse on every
version fetalplanes supports, JetPack 5's TensorRT 8.5 included). This is a check
written from the documentation, not TensorRT itself: ``fetalplanes selftest`` on a
GPU box is the real test. onnx is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.backends.tensorrt_runner import version_tuple
from edge.errors import EXIT_FAILURE, FetalPlanesError, require

# ONNX TensorProto data types (onnx.TensorProto.*), spelled out so the rules read as a table
FLOAT, UINT8, INT8, INT32, FLOAT16, BFLOAT16 = 1, 2, 3, 6, 10, 16
FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, UINT4, INT4 = 17, 18, 19, 20, 21, 22
QUANTIZED_TYPES = {UINT8, INT8, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, UINT4, INT4}
TYPE_NAMES = {
    FLOAT: "FLOAT", UINT8: "UINT8", INT8: "INT8", INT32: "INT32", 7: "INT64", FLOAT16: "FLOAT16", 11: "DOUBLE",
    BFLOAT16: "BFLOAT16", FLOAT8E4M3FN: "FLOAT8E4M3FN", FLOAT8E4M3FNUZ: "FLOAT8E4M3FNUZ", FLOAT8E5M2: "FLOAT8E5M2",
    FLOAT8E5M2FNUZ: "FLOAT8E5M2FNUZ", UINT4: "UINT4", INT4: "INT4",
}
#: operators onnx-tensorrt lists as unsupported (N) in every release; a TensorRT-target file must not contain them
UNSUPPORTED_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
#: the highest ONNX opset TensorRT's parser reads, where its operator table states it (8.5 and 8.6: 17; 9.2: 19)
MAX_OPSET = {8: 17, 9: 19}


def _type_name(t: int | None) -> str:
    return "unknown type" if t is None else TYPE_NAMES.get(t, f"type {t}")


def dq_input_types(tensorrt_version: str | None = None) -> set[int]:
    """ONNX types TensorRT accepts as DequantizeLinear input: INT8; + FP8 (E4M3) from 9; + INT4 from 10."""
    allowed = {INT8}
    if tensorrt_version:
        major = version_tuple(tensorrt_version)[0]
        if major >= 9:
            allowed.add(FLOAT8E4M3FN)
        if major >= 10:
            allowed.add(INT4)
    return allowed


def q_input_types(tensorrt_version: str | None = None) -> set[int]:
    """ONNX types TensorRT accepts as QuantizeLinear input: FP32, FP16; + BF16 from 9."""
    allowed = {FLOAT, FLOAT16}
    if tensorrt_version and version_tuple(tensorrt_version)[0] >= 9:
        allowed.add(BFLOAT16)
    return allowed


def max_opset(tensorrt_version: str | None = None) -> int | None:
    """The highest default-domain opset the parser reads (None: not stated for that version, not checked)."""
    if not tensorrt_version:
        return min(MAX_OPSET.values())
    return MAX_OPSET.get(version_tuple(tensorrt_version)[0])


def _load(model_or_path: Any):
    onnx = require("onnx", "quantize", "checking a Q/DQ ONNX for TensorRT")
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if not path.is_file():
            raise FetalPlanesError(f"{path}: ONNX file not found", hint="check the path")
        try:
            return onnx.load(str(path))
        except Exception as exc:
            raise FetalPlanesError(f"{path}: cannot load ONNX ({type(exc).__name__})", hint="re-create the file") from None
    return model_or_path


def _tensor_types(model) -> dict[str, int]:
    """{tensor name: ONNX elem type} from initializers, graph I/O, Constant nodes and ONNX shape inference."""
    import onnx

    types: dict[str, int] = {}
    g = model.graph
    for init in g.initializer:
        types[init.name] = init.data_type
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    types[node.output[0]] = a.t.data_type
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shape inference is help, not a requirement
        inferred = model
    for vi in list(inferred.graph.input) + list(inferred.graph.output) + list(inferred.graph.value_info):
        t = vi.type.tensor_type.elem_type
        if t and vi.name not in types:
            types[vi.name] = t
    return types


def _zero_point_nonzero(model, name: str) -> bool:
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return bool((numpy_helper.to_array(init).astype("float64") != 0).any())
    return False


def tensorrt_qdq_problems(model_or_path: Any, tensorrt_version: str | None = None) -> list[str]:
    """Everything in a Q/DQ ONNX (path or loaded model) that TensorRT's ONNX parser would reject; [] if none."""
    model = _load(model_or_path)
    g = model.graph
    types = _tensor_types(model)
    inits = {i.name for i in g.initializer}
    dq_ok, q_ok = dq_input_types(tensorrt_version), q_input_types(tensorrt_version)
    trt = f"TensorRT {tensorrt_version}" if tensorrt_version else "TensorRT 8.5+"
    problems: list[str] = []
    ceiling = max_opset(tensorrt_version)
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and ceiling is not None and op.version > ceiling:
            problems.append(f"opset {op.version}: {trt}'s parser reads opsets up to {ceiling} (export with opset <= {ceiling})")
    for k, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{k}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{name}: operator {node.domain}.{node.op_type} has no TensorRT importer")
            continue
        if node.op_type in UNSUPPORTED_OPS:
            problems.append(f"{name}: {node.op_type} is not supported by TensorRT (use the QDQ format)")
            continue
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            x = node.input[0]
            xt = types.get(x)
            if node.op_type == "DequantizeLinear" and xt not in dq_ok:
                what = "INT32 bias (ONNX Runtime's bias quantization)" if xt == INT32 else _type_name(xt)
                problems.append(
                    f"{name}: DequantizeLinear fed by {what} '{x}'; {trt} accepts only "
                    f"{', '.join(_type_name(t) for t in sorted(dq_ok))} there (\"only activation types allowed as input\")"
                )
            if node.op_type == "QuantizeLinear" and xt not in q_ok:
                problems.append(f"{name}: QuantizeLinear of {_type_name(xt)} '{x}'; {trt} quantizes only "
                                f"{', '.join(_type_name(t) for t in sorted(q_ok))}")
            if len(node.input) > 2 and node.input[2]:
                zp = node.input[2]
                zt = types.get(zp)
                if node.op_type == "QuantizeLinear" and zt is not None and zt not in dq_ok:
                    problems.append(f"{name}: quantizes to {_type_name(zt)}; {trt} needs symmetric "
                                    f"{', '.join(_type_name(t) for t in sorted(dq_ok))} (zero point 0)")
                if zp in inits and _zero_point_nonzero(model, zp):
                    problems.append(f"{name}: zero point '{zp}' is not 0; TensorRT quantizes symmetrically only")
            elif node.op_type == "QuantizeLinear" and not any(a.name == "output_dtype" for a in node.attribute):
                problems.append(f"{name}: QuantizeLinear without a zero point quantizes to UINT8, which TensorRT does not read")
        for i, inp in enumerate(node.input):
            if inp in inits and types.get(inp) in QUANTIZED_TYPES:
                allowed_here = node.op_type == "DequantizeLinear" and i == 0 or (
                    node.op_type in ("QuantizeLinear", "DequantizeLinear") and i == 2
                )
                if not allowed_here:
                    problems.append(f"{name}: {node.op_type} reads the {_type_name(types[inp])} initializer '{inp}'; "
                                    "TensorRT reaches quantized types only through DequantizeLinear")
    return problems


def check_tensorrt_qdq(model_or_path: Any, tensorrt_version: str | None = None, source: str | None = None) -> None:
    """Raise a FetalPlanesError naming what TensorRT's parser would reject; return when the file passes."""
    problems = tensorrt_qdq_problems(model_or_path, tensorrt_version)
    if problems:
        label = source or (str(model_or_path) if isinstance(model_or_path, (str, Path)) else "this ONNX")
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise FetalPlanesError(
            f"{label}: TensorRT{' ' + tensorrt_version if tensorrt_version else ''}'s ONNX parser would reject "
            f"this Q/DQ file: " + "; ".join(problems[:5]) + more,
            hint="quantize the FP32 ONNX for TensorRT: `fetalplanes quantize --target tensorrt ...` "
            "(biases left in float, Q/DQ pairs on float weights, symmetric int8)",
            exit_code=EXIT_FAILURE,
        )
