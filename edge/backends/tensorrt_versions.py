"""Which INT8 route each TensorRT version takes, and the TensorRT each JetPack ships (pure data, no imports).

Shared by ``build-engine`` (to refuse clearly) and ``doctor`` (to advise). The table is
from NVIDIA's JetPack release pages and TensorRT's migration guide; fetalplanes has run
none of these versions itself (see docs/tensorrt.md).
"""

from __future__ import annotations

import re

#: JetPack -> (L4T, TensorRT it ships). TensorRT 11 is not available for JetPack 6 (TensorRT 11.x migration guide).
JETPACK_TENSORRT: dict[str, tuple[str, str]] = {
    "5.1.x": ("R35.2 - R35.6", "8.5.2"),
    "6.0": ("R36.2 / R36.3", "8.6.2"),
    "6.1 / 6.2": ("R36.4", "10.3"),
}
#: explicit (Q/DQ) INT8 is built from this TensorRT on (JetPack 6.0's 8.6.2); older ones use the calibrator route
QDQ_MIN_VERSION = (8, 6)


def version_tuple(version: str) -> tuple[int, ...]:
    """'8.6.1.6' -> (8, 6, 1, 6); non-numeric tails are dropped."""
    parts = []
    for piece in str(version).split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.end() < len(piece):  # '0b6', '1rc1': the numeric part ends here
            break
    return tuple(parts) or (0,)


def int8_routes(tensorrt_version: str) -> tuple[str, ...]:
    """The INT8 routes fetalplanes builds on this TensorRT, preferred first: 'qdq' and/or 'calibrator'.

    < 8.6 (JetPack 5.1: 8.5.2): the entropy calibrator only; 8.6 and 10.x: Q/DQ (the quantize
    report's accuracy applies) or the calibrator; 11 and later: Q/DQ only (calibrators removed).
    """
    v = version_tuple(tensorrt_version)
    if v[0] >= 11:
        return ("qdq",)
    if v[:2] >= QDQ_MIN_VERSION:
        return ("qdq", "calibrator")
    return ("calibrator",)


def jetpack_of(tensorrt_version: str) -> str:
    """The JetPack that ships this TensorRT (major.minor match), '' when none does."""
    v = version_tuple(tensorrt_version)[:2]
    for jetpack, (_l4t, trt) in JETPACK_TENSORRT.items():
        if version_tuple(trt)[:2] == v:
            return jetpack
    return ""


def qdq_refusal_hint(tensorrt_version: str) -> str:
    """What to do when the Q/DQ route is not available on this TensorRT (worded by JetPack)."""
    jp = jetpack_of(tensorrt_version)
    where = f"JetPack {jp} ships TensorRT {tensorrt_version}" if jp else f"this is TensorRT {tensorrt_version}"
    return (
        f"{where}: build implicit INT8 from the FP32 ONNX instead (`fetalplanes build-engine --onnx MODEL.onnx "
        "--precision int8 --data DIR`), or move to JetPack 6.x (TensorRT 8.6.2 on 6.0, 10.3 on 6.1/6.2) for the "
        "Q/DQ route"
    )
