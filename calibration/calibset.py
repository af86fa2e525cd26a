"""Calibration sets: preprocessed images from TRAINING patients only, stratified, deterministic.

INT8 quantization sets each activation's range from the images fed here, so they
must look like what the model sees in use (the model's own preprocessing, read from
its metadata) and must never come from the validation or test patients the
quantized model is later judged on.

Selection: the training split of the model's task (``fetaldata.task_samples``);
classes take turns (so rare classes are not crowded out), and within a class the
(machine, operator) groups take turns, each group shuffled with the seed.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from fetaldata import Dataset, Sample, SplitConfig, open_dataset, task_samples
from edge.errors import FetalPlanesError
from edge.modelinfo import ModelInfo

#: fewer calibration images than this (or than the size asked for, if smaller) is an error.
MIN_CALIBRATION_IMAGES = 32


def split_config_for(info: ModelInfo, seed: int = 0) -> SplitConfig:
    """The split the model was trained with, as far as its metadata records it.

    ``fetalplanes train`` records its arguments under ``info.extra["args"]``
    (seed, val_fraction, brain_extra, max_train_patients); ``info.extra["split"]``
    is read too. Whatever is not recorded: the defaults, with ``seed``. The
    validation patients of that split are the ones calibration must avoid.
    """
    recorded: dict = {}
    for key in ("args", "split"):
        if isinstance(info.extra.get(key), dict):
            recorded.update(info.extra[key])
    keep = {k: recorded[k] for k in ("seed", "val_fraction", "brain_extra", "max_train_patients") if k in recorded}
    keep.setdefault("seed", seed)
    return SplitConfig(task=info.task, **keep)


def _open_db(data_dir: str | Path | Dataset) -> Dataset:
    return open_dataset(data_dir)


def select_calibration_samples(
    data_dir: str | Path | Dataset,
    task: str = "planes",
    size: int = 500,
    seed: int = 0,
    split: SplitConfig | None = None,
    min_size: int | None = None,
) -> list[Sample]:
    """Up to ``size`` training-split samples, stratified over classes, machines and operators.

    Deterministic for (dataset, task, size, seed, split). Raises a FetalPlanesError
    when the training split is empty or yields fewer than
    ``min(size, MIN_CALIBRATION_IMAGES)`` images (or ``min_size`` when given).
    """
    if size < 1:
        raise FetalPlanesError(f"--calib-size {size}: a calibration set needs at least one image", hint="use e.g. 500")
    db = _open_db(data_dir)
    config = split or SplitConfig(task=task, seed=seed)
    if config.task != task:
        raise FetalPlanesError(f"split task '{config.task}' differs from the model's task '{task}'", hint="a bug")
    pool = task_samples(db, "train", config)
    need = min(size, MIN_CALIBRATION_IMAGES) if min_size is None else min_size
    if not pool:
        raise FetalPlanesError(
            f"{db.root}: the training split of task '{task}' is empty, so there is nothing to calibrate on "
            "(calibration never uses validation or test patients)",
            hint="point --data to the dataset the model was trained on (rows with Train = 1)",
        )
    if len(pool) < need:
        raise FetalPlanesError(
            f"{db.root}: only {len(pool)} training-split image(s) for task '{task}', "
            f"too few for a calibration set (need at least {need})"
            + (" (a labelled folder calibrates on half of its images, the seeded hold-out's train part)"
               if getattr(db, "kind", "") == "folder" else ""),
            hint="use the full dataset the model was trained on (or a larger labelled folder), or lower --calib-size",
        )
    rng = random.Random(f"fetalplanes-calib-{seed}")
    by_class: dict[int, dict[tuple[str, str], list[Sample]]] = {}
    for s in pool:
        by_class.setdefault(s.label, {}).setdefault((s.record.machine, s.record.operator), []).append(s)
    queues: dict[int, list[list[Sample]]] = {}
    for label in sorted(by_class):
        groups = [by_class[label][key] for key in sorted(by_class[label])]
        for g in groups:
            rng.shuffle(g)
        rng.shuffle(groups)
        queues[label] = groups
    pointer = {label: 0 for label in queues}
    chosen: list[Sample] = []
    target = min(size, len(pool))
    while len(chosen) < target:
        for label in sorted(queues):
            groups = queues[label]
            if not groups or len(chosen) >= target:
                continue
            i = pointer[label] % len(groups)
            chosen.append(groups[i].pop())
            if not groups[i]:
                groups.pop(i)
            else:
                pointer[label] = i + 1
    return sorted(chosen, key=lambda s: s.record.row)


def class_coverage(samples: list[Sample], labels: list[str]) -> dict[str, int]:
    """Images per class (every label, in the model's order; 0 where the set has none)."""
    counts = {lbl: 0 for lbl in labels}
    for s in samples:
        if 0 <= s.label < len(labels):
            counts[labels[s.label]] += 1
    return counts


def check_class_coverage(samples: list[Sample], labels: list[str], source: str, allow_missing: bool = False) -> list[str]:
    """The classes the calibration set lacks; a FetalPlanesError (exit 2) unless ``allow_missing``.

    A class without a calibration image means INT8 ranges never saw that plane (and the accuracy check
    has no labelled example of it from training patients): the INT8 model may fail on it unnoticed.
    """
    counts = class_coverage(samples, labels)
    missing = [lbl for lbl, n in counts.items() if n == 0]
    if missing and not allow_missing:
        per_class = ", ".join(f"{lbl} {n}" for lbl, n in counts.items())
        raise FetalPlanesError(
            f"{source}: the calibration set has no training image of {len(missing)} class(es): "
            f"{', '.join(missing)} (per class: {per_class})",
            hint="calibrate on the dataset the model was trained on (all classes among the Train = 1 patients), "
            "or pass --allow-missing-classes to quantize anyway (the report records the missing classes)",
        )
    return missing


def load_preprocessed(db: Dataset, samples: list[Sample], info: ModelInfo) -> np.ndarray:
    """The samples' images through the model's own preprocessing -> (N, C, H, W) float32."""
    from edge.preprocess import prepare

    if not samples:
        raise FetalPlanesError("no images to preprocess", hint="check the split and the dataset folder")
    return np.concatenate([prepare(db.load(s.record, info.gray), info) for s in samples], axis=0).astype(np.float32)


def build_calibration_set(data_dir: str | Path, info: ModelInfo, size: int = 500, seed: int = 0) -> np.ndarray:
    """Preprocessed calibration images (N, C, H, W float32) from training patients only.

    ``info`` is the model's own metadata (``edge.backends.read_model_info(model)``):
    its task chooses the labels and split, its input size and mean/std the
    preprocessing. See :func:`select_calibration_samples` for the selection.
    """
    db = _open_db(data_dir)
    samples = select_calibration_samples(db, info.task, size, seed, split=split_config_for(info, seed))
    return load_preprocessed(db, samples, info)
