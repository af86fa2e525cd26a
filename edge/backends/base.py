"""The runner interface every backend implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from edge.errors import FetalPlanesError
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
            try:
                check_input_shape(self.model_input_shape(), self.info, self.path)
            except FetalPlanesError:
                self.deactivate()
                raise
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

    def model_input_shape(self) -> tuple | None:
        """The input shape the loaded model declares (free dimensions as None, -1 or a name); None: unknown."""
        return None

    def describe(self) -> str:
        return f"{self.name}:{self.path}"


def _fixed(dim) -> int | None:
    """A declared dimension as an int, or None where it is free (None, -1, a symbolic name)."""
    return int(dim) if isinstance(dim, (int, np.integer)) and int(dim) >= 0 else None


def check_input_shape(declared: tuple | list | None, info: ModelInfo, path: str) -> None:
    """The one check, for every runner, that a model takes the input its metadata describes.

    ``declared`` is the shape the loaded model reports for its input (batch first). Free dimensions
    match anything; a fixed one that differs from the metadata's ``input_shape`` (size, channels,
    layout) is a FetalPlanesError (exit 2) naming both shapes, raised when the model is loaded,
    before any image is read.
    """
    if declared is None:
        return
    declared = tuple(declared)
    expected = info.input_shape(1)
    shown = "(" + ", ".join("N" if i == 0 or _fixed(d) is None else str(int(d)) for i, d in enumerate(declared)) + ")"
    wanted = "(N, " + ", ".join(str(d) for d in expected[1:]) + ")"
    ok = len(declared) == len(expected) and all(
        _fixed(d) is None or _fixed(d) == e for d, e in zip(declared[1:], expected[1:]))
    if not ok:
        raise FetalPlanesError(
            f"{path}: the model's input is {shown} but its metadata says {wanted} "
            f"(input_size {info.input_size}, {info.channels} channel(s), {info.layout})",
            hint="the metadata does not belong to this network: re-export it with `fetalplanes export` "
            "(which writes the metadata from the checkpoint), or re-quantize / rebuild from that export; "
            "`fetalplanes doctor --model FILE` shows what the file carries",
        )
