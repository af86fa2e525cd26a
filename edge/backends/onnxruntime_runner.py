"""ONNX Runtime backend (CPU; CUDA / TensorRT execution providers where installed)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from edge.backends.base import Runner
from edge.errors import FetalPlanesError
from edge.modelinfo import ModelInfo, read_onnx_metadata

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with ONNX Runtime.

    ``providers``: names or aliases (cpu, cuda, tensorrt) in priority order;
    default: CPU only (predictable on every box). ``threads``: intra-op
    threads (0 = ORT's default, all cores). ``spin``: whether ORT's worker
    threads spin-wait for work after each run (None = ORT's default, on): off
    frees the cores for other threads (the live loop's capture and prepare
    threads) at the cost of a few microseconds of wake-up per run.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str,
        info: ModelInfo | None = None,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        spin: bool | None = None,
    ):
        super().__init__(path, info or read_onnx_metadata(path))
        self.requested_providers = [PROVIDER_ALIASES.get(p.lower(), p) for p in (providers or ["cpu"])]
        self.threads = threads
        self.spin = spin
        self.session = None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        missing = [p for p in self.requested_providers if p not in available]
        if missing:
            raise FetalPlanesError(
                f"ONNX Runtime here lacks the execution provider(s) {', '.join(missing)} (available: {', '.join(available)})",
                hint="use --providers cpu, or install onnxruntime-gpu with CUDA/TensorRT",
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        if self.spin is not None:
            flag = "1" if self.spin else "0"
            opts.add_session_config_entry("session.intra_op.allow_spinning", flag)
            opts.add_session_config_entry("session.inter_op.allow_spinning", flag)
        opts.log_severity_level = 3
        if not os.path.isfile(self.path):
            raise FetalPlanesError(f"{self.path}: model file not found", hint="check the --model path")
        try:
            self.session = ort.InferenceSession(self.path, opts, providers=self.requested_providers)
        except Exception as exc:
            raise FetalPlanesError(
                f"{self.path}: ONNX Runtime cannot load this model ({str(exc).splitlines()[0][:300]})",
                hint="re-export or re-quantize the model",
                exit_code=1,
            ) from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def deactivate_impl(self) -> None:
        self.session = None

    def model_input_shape(self) -> tuple | None:
        return tuple(self.session.get_inputs()[0].shape) if self.session is not None else None

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers() if self.session is not None else self.requested_providers
