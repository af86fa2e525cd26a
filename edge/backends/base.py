"""The runner interface every backend implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from edge.modelinfo import ModelInfo
from edge.preprocess import prepare_batch, to_probabilities


class Runner(ABC):
    """One loaded model: ``activate()`` -> ``infer(x)`` ... -> ``deactivate()``.

    Use as a context manager. ``info`` carries labels and preprocessing, read
    from the model file itself. ``infer`` takes a preprocessed float32 batch
    and returns the raw output (N, classes); ``predict`` goes from images to
    probabilities.
    """

    name: str = "runner"

    def __init__(self, path: str, info: ModelInfo):
        self.path = str(path)
        self.info = info
        self.is_active = False
        self.last_inference_s = 0.0

    # --- lifecycle -----------------------------------------------------
    def activate(self) -> "Runner":
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # --- inference -----------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed float32 batch -> raw outputs (N, num_classes)."""
        if not self.is_active:
            self.activate()
        t0 = time.perf_counter()
        out = self.infer_impl(np.ascontiguousarray(batch, dtype=np.float32))
        self.last_inference_s = time.perf_counter() - t0
        return out

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """Images (gray/BGR/BGRA, any size) -> probabilities (N, num_classes)."""
        return to_probabilities(self.infer(prepare_batch(images, self.info)), self.info)

    # --- to implement ------------------------------------------------------
    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, batch: np.ndarray) -> np.ndarray: ...

    def deactivate_impl(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.name}:{self.path}"
