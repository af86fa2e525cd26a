"""Images of a split through a model file: preprocessed inputs, targets, probabilities.

Shared by ``quantize`` (validation patients) and ``compare`` (test patients by
default). Inputs are preprocessed once from a model's metadata and reused for
every model that has the same preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fetaldata import Dataset, Sample, open_dataset, task_samples
from edge.errors import FetalPlanesError
from edge.modelinfo import ModelInfo
from edge.preprocess import to_probabilities


@dataclass
class SplitInputs:
    """One split, preprocessed for one model's metadata."""

    split: str
    samples: list[Sample]
    x: np.ndarray  # (N, C, H, W) float32
    targets: np.ndarray  # (N,) int64

    @property
    def names(self) -> list[str]:
        return [s.record.image_name for s in self.samples]


def preprocessing_key(info: ModelInfo) -> tuple:
    """What must agree for two models to share preprocessed inputs."""
    return info.preprocessing_key()


def load_split(
    data_dir: str | Path | Dataset,
    info: ModelInfo,
    split: str,
    max_images: int | None = None,
    seed: int = 0,
) -> SplitInputs:
    """The ``split`` of the model's task (split recorded in its metadata, else ``seed``), preprocessed.

    ``max_images`` keeps a class-stratified subset (quick checks). An empty split
    is an error naming the dataset.
    """
    from calibration.calibset import load_preprocessed, split_config_for
    from dataclasses import replace

    db = open_dataset(data_dir)
    config = split_config_for(info, seed)
    if max_images:
        config = replace(config, max_per_split=max_images)
    samples = task_samples(db, split, config)
    if not samples:
        raise FetalPlanesError(
            f"{db.root}: the '{split}' split of task '{info.task}' has no images",
            hint="give --data the full dataset the model was trained on (the split comes from its CSV)",
        )
    x = load_preprocessed(db, samples, info)
    return SplitInputs(split, samples, x, np.array([s.label for s in samples], dtype=np.int64))


def model_batch(path: str | Path, default: int = 16) -> int:
    """The batch to feed: the ONNX input's fixed batch if it has one, else ``default``; engines: 1."""
    if Path(path).suffix.lower() != ".onnx":
        return 1
    try:
        import onnx

        dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
        return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else default
    except Exception:
        return 1


def predict_array(runner, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """Probabilities (N, classes) of an activated runner over a preprocessed array."""
    outs = [runner.infer(x[i : i + batch]) for i in range(0, len(x), batch)]
    return to_probabilities(np.concatenate(outs, axis=0), runner.info)


def predict_file(path: str | Path, x: np.ndarray, threads: int = 0, batch: int | None = None) -> np.ndarray:
    """Probabilities of a model file (ONNX or engine, via ``edge.backends.open_runner``) over ``x``."""
    from edge.backends import open_runner

    options = {"threads": threads} if Path(path).suffix.lower() == ".onnx" and threads else {}
    with open_runner(path, **options) as runner:
        return predict_array(runner, x, batch or model_batch(path))
