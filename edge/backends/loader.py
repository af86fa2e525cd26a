"""Choose a backend by the model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.backends.base import Runner
from edge.errors import FetalPlanesError
from edge.modelinfo import ModelInfo, read_onnx_metadata

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def model_kind(path: str | Path) -> str:
    """'onnx' or 'tensorrt', from the file name; a clear error otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    raise FetalPlanesError(
        f"{path}: unknown model file type '{suffix}'",
        hint="give an .onnx file (ONNX Runtime) or a .engine/.plan file (TensorRT); "
        "checkpoints (.pt) are read by `fetalplanes evaluate`, not by the edge runtime",
    )


def read_model_info(path: str | Path) -> ModelInfo:
    """The labels and preprocessing a model file carries."""
    path = Path(path)
    if not path.exists():
        raise FetalPlanesError(f"{path}: model file not found", hint="check the --model path")
    kind = model_kind(path)
    if kind == "onnx":
        return read_onnx_metadata(str(path))
    from edge.backends.engine_sidecar import read_sidecar_info

    return read_sidecar_info(path)


def open_runner(path: str | Path, **options: Any) -> Runner:
    """A (not yet activated) runner for ``path``; options go to the backend."""
    kind = model_kind(path)
    if not Path(path).exists():
        raise FetalPlanesError(f"{path}: model file not found", hint="check the --model path")
    if kind == "onnx":
        from edge.backends.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(str(path), **options)
    from edge.backends.tensorrt_runner import TensorRTRunner

    options.pop("providers", None)
    return TensorRTRunner(str(path), **options)
