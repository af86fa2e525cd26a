"""A runner for fetalplanes PyTorch checkpoints, with the interface of :class:`edge.backends.base.Runner`.

So that ``evaluate`` (and comparisons) run checkpoints and model files (ONNX, TensorRT) through one
code path: the same ``edge.preprocess`` in front, the same ``infer``/``predict`` calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import Runner

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class TorchRunner(Runner):
    """Runs ``RUN_DIR/best.pt`` (or any checkpoint of `fetalplanes train`) with PyTorch.

    ``device``: "cpu" (default), "cuda", "cuda:N" or "auto". The ModelInfo comes from the checkpoint.
    """

    name = "torch"

    def __init__(self, path: str, device: str = "cpu", threads: int = 0):
        from export.models import load_checkpoint

        model, info, ckpt = load_checkpoint(path)
        super().__init__(str(path), info)
        self.model = model
        self.checkpoint: dict[str, Any] = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer")}
        self.device_name = device
        self.threads = threads
        self.device = None

    def activate_impl(self) -> None:
        import torch

        from export.torch_device import pick_device

        self.device = pick_device(self.device_name, what=f"{self.path}: --device")
        if self.threads:
            torch.set_num_threads(self.threads)
        self.model.to(self.device).eval()

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()

    def deactivate_impl(self) -> None:
        self.model.to("cpu")

    def describe(self) -> str:
        return f"{self.name}:{self.path} (epoch {self.checkpoint.get('epoch')})"
