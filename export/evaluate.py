"""Evaluate any model of the project on a split of FETAL_PLANES_DB, through one code path.

runner (a PyTorch checkpoint through ``export.torch_runner.TorchRunner``, or an
ONNX FP32/INT8 file / TensorRT engine through ``edge.backends.open_runner``) ->
the split's samples for the model's own task (``fetaldata.task_samples``) ->
images through ``edge.preprocess`` (``Runner.predict``) in batches ->
probabilities -> ``fetaldata.metrics.classification_metrics``.

torch is imported only when a checkpoint is evaluated.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edge.backends.base import Runner
from fetaldata import Dataset, Sample, SplitConfig, open_dataset, task_samples
from fetaldata.splits import SPLITS, fingerprint
from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.labels import TASKS, labels_for
from fetaldata.metrics import ClassificationMetrics, classification_metrics
from edge.modelinfo import ModelInfo

from export.torch_runner import CHECKPOINT_SUFFIXES  # noqa: E402  (light: torch is imported on activate)


@dataclass
class Prediction:
    """The model's answer on one image."""

    image: str  # Image_name as in the CSV
    patient: int
    operator: str
    machine: str
    target: int
    predicted: int
    confidence: float  # probability of the predicted class
    probabilities: list[float]

    @property
    def correct(self) -> bool:
        return self.target == self.predicted


@dataclass
class EvaluationResult:
    """Metrics and per-image predictions of one model on one split."""

    model_path: str
    data_dir: str
    split: str
    task: str
    labels: list[str]
    runner: str  # backend that ran the model, e.g. "onnxruntime:model.onnx"
    model_info: dict[str, Any]
    split_config: dict[str, Any]
    dataset_fingerprint: str  # CSV content + split configuration (fetaldata.splits.fingerprint)
    metrics: ClassificationMetrics
    predictions: list[Prediction]
    seconds: float  # wall time of loading, preprocessing and inference
    skipped_images: list[str] = field(default_factory=list)
    unmapped_labels: list[str] = field(default_factory=list)  # task labels no output of the model maps to

    @property
    def probabilities(self) -> np.ndarray:
        return np.asarray([p.probabilities for p in self.predictions], dtype=np.float64)

    def unmapped_images(self) -> dict[str, Any]:
        """Images whose true class the model has no output for (a label-mapped model, e.g. SonoNet: no Maternal
        cervix): per such class the count and what they were read as, and top-1 on the other images alone.
        They stay in the overall figures (always wrong there); this reports them apart."""
        if not self.unmapped_labels:
            return {}
        missing = {self.labels.index(x) for x in self.unmapped_labels}
        per: dict[str, Any] = {}
        for p in self.predictions:
            if p.target in missing:
                entry = per.setdefault(self.labels[p.target], {"images": 0, "read_as": {}})
                entry["images"] += 1
                read = self.labels[p.predicted]
                entry["read_as"][read] = entry["read_as"].get(read, 0) + 1
        rest = [p for p in self.predictions if p.target not in missing]
        return {"classes": per, "other_images": len(rest),
                "other_images_correct": sum(p.predicted == p.target for p in rest)}

    @property
    def targets(self) -> np.ndarray:
        return np.asarray([p.target for p in self.predictions], dtype=np.int64)

    @property
    def images_per_second(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self, with_predictions: bool = True) -> dict[str, Any]:
        """Plain JSON-ready dict (metrics, provenance, and optionally every prediction)."""
        out: dict[str, Any] = {
            "model": self.model_path,
            "data": self.data_dir,
            "split": self.split,
            "task": self.task,
            "labels": list(self.labels),
            "runner": self.runner,
            "model_info": self.model_info,
            "split_config": self.split_config,
            "dataset_fingerprint": self.dataset_fingerprint,
            "metrics": self.metrics.to_dict(),
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            "skipped_images": list(self.skipped_images),
            "unmapped_labels": list(self.unmapped_labels),
            "unmapped_images": self.unmapped_images(),
        }
        if with_predictions:
            out["predictions"] = [dataclasses.asdict(p) for p in self.predictions]
        return out


# --------------------------------------------------------------------------- runners
def is_checkpoint(path: str | Path) -> bool:
    """True for PyTorch checkpoints (.pt/.pth/.ckpt), which need torch to run."""
    return Path(path).suffix.lower() in CHECKPOINT_SUFFIXES


def open_model(path: str | Path, providers: Sequence[str] | None = None) -> Runner:
    """A (not yet activated) runner for any model file of the project.

    ``.pt``/``.pth``/``.ckpt`` -> ``export.torch_runner.TorchRunner`` (imports torch);
    ``.onnx`` / ``.engine`` / ``.plan`` -> ``edge.backends.open_runner``.
    ``providers`` (ONNX Runtime execution providers) applies to ONNX files only.
    """
    path = Path(path)
    if not path.exists():
        raise FetalPlanesError(
            f"{path}: model file not found",
            hint="give --model a checkpoint (.pt) from `fetalplanes train`, an ONNX file or a TensorRT engine",
        )
    if is_checkpoint(path):
        from edge.errors import require

        require("torch", "train", "evaluating a PyTorch checkpoint")
        from export.torch_runner import TorchRunner

        return TorchRunner(str(path))
    from edge.backends import open_runner
    from edge.backends.loader import model_kind

    options: dict[str, Any] = {}
    if providers and model_kind(path) == "onnx":
        options["providers"] = list(providers)
    return open_runner(path, **options)


# --------------------------------------------------------------------------- checks
def check_model_matches_task(info: ModelInfo, source: str, task: str | None = None) -> str:
    """The task to evaluate; a clear error when the model does not fit the dataset's labels.

    ``task`` (optional) is what the user asked for; the model's own task must equal it.
    The model's labels must be the dataset's labels of that task, in the same order, unless the model
    carries a ``label_map`` onto them (its probabilities are then mapped, ``ModelInfo.map_probabilities``).
    """
    if info.task not in TASKS:
        raise FetalPlanesError(
            f"{source}: the model was made for task '{info.task}', which FETAL_PLANES_DB does not define",
            hint=f"evaluate a model of one of the tasks: {', '.join(TASKS)}",
        )
    if task is not None and task != info.task:
        labels_for(task)  # unknown --task -> its own clear error
        raise FetalPlanesError(
            f"{source}: the model was trained for task '{info.task}' but --task {task} was asked",
            hint=f"drop --task (the model's own task is used) or give a '{task}' model",
        )
    expected = list(labels_for(info.task))
    got = list(info.labels)
    if info.label_map:  # validated when read: every native label maps onto one of `expected`
        return info.task
    if got != expected:
        if sorted(got) == sorted(expected):
            what = f"its labels are the dataset's in another order ({', '.join(got)})"
        else:
            unknown = [x for x in got if x not in expected]
            absent = [x for x in expected if x not in got]
            parts = []
            if unknown:
                parts.append(f"labels not in the dataset: {', '.join(unknown)}")
            if absent:
                parts.append(f"dataset labels the model lacks: {', '.join(absent)}")
            what = "; ".join(parts) or f"its labels are {got}"
        raise FetalPlanesError(
            f"{source}: the model's labels do not match FETAL_PLANES_DB's '{info.task}' task: {what}",
            hint=f"the dataset's order is: {', '.join(expected)}; re-train or re-export the model "
            "with `fetalplanes train`/`fetalplanes export`, which write the labels in that order",
        )
    return info.task


def _check_images(db: Dataset, samples: list[Sample], skip_missing: bool) -> tuple[list[Sample], list[str]]:
    present, missing = [], []
    for s in samples:
        (present if s.path.is_file() else missing).append(s)
    if missing and not skip_missing:
        shown = ", ".join(str(s.path.name) for s in missing[:3])
        raise FetalPlanesError(
            f"{db.root}: {len(missing)} of the split's {len(samples)} images are missing from Images/ (e.g. {shown})",
            hint="download the complete release (Zenodo record 3904280) into that folder, "
            "or pass --skip-missing to evaluate on the images that are there",
        )
    return present, [str(s.path) for s in missing]


# --------------------------------------------------------------------------- evaluation
def _batches(items: list[Sample], size: int) -> Iterable[list[Sample]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False)


def predict_samples(
    runner: Runner,
    db: Dataset,
    samples: list[Sample],
    batch_size: int = 32,
    progress: bool = False,
    roi: Any = None,
) -> np.ndarray:
    """Probabilities (N, C) of an active runner on ``samples``, loaded and preprocessed in batches.

    ``roi`` (an ``edge.live.sector.Box``): the image area taken from every image (``--roi``)."""
    from edge.live.classify import crop_roi

    if batch_size < 1:
        raise FetalPlanesError(f"--batch-size {batch_size} is not positive", hint="use e.g. --batch-size 32")
    out: list[np.ndarray] = []
    bar = _progress(len(samples), progress, f"evaluate {Path(runner.path).name}")
    try:
        for batch in _batches(samples, batch_size):
            images = [crop_roi(db.load(s.record, runner.info.gray), roi, str(s.path)) if roi is not None
                      else db.load(s.record, runner.info.gray) for s in batch]  # colour files: the model's gray
            probs = np.asarray(runner.predict(images), dtype=np.float64)
            if probs.ndim != 2 or probs.shape != (len(batch), runner.info.num_classes):
                raise FetalPlanesError(
                    f"{runner.path}: the model returned shape {tuple(probs.shape)} for {len(batch)} images "
                    f"but its metadata names {runner.info.num_classes} labels",
                    hint="the file's metadata does not describe its graph: re-export the model with `fetalplanes export`",
                    exit_code=EXIT_FAILURE,
                )
            out.append(probs)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(out, axis=0)


def evaluate_model(
    model_path: str | Path,
    data_dir: str | Path,
    split: str = "test",
    *,
    task: str | None = None,
    batch_size: int = 32,
    split_config: SplitConfig | None = None,
    samples: list[Sample] | None = None,
    sample_filter: Callable[[Sample], bool] | None = None,
    runner: Runner | None = None,
    providers: Sequence[str] | None = None,
    skip_missing: bool = False,
    progress: bool = False,
    roi: Any = None,
) -> EvaluationResult:
    """Evaluate the model at ``model_path`` (checkpoint, ONNX or engine) on ``split`` of ``data_dir``.

    The task is the model's own (``task``, if given, must equal it). ``split_config``
    sets seed/val_fraction/caps of the split (its task is replaced by the model's).
    ``samples`` (explicit list) or ``sample_filter`` (e.g. one operator group) narrow
    what is evaluated; ``runner`` reuses an already open runner for the same model; ``roi`` (an
    ``edge.live.sector.Box`` or "x,y,w,h") is the image area taken from every image (e.g. screen grabs).
    """
    if isinstance(roi, str):
        from edge.live.sector import Box

        roi = Box.parse(roi)
    if split not in SPLITS:
        raise FetalPlanesError(f"unknown split '{split}'", hint=f"use one of: {', '.join(SPLITS)}")
    db = open_dataset(data_dir, skip_missing=skip_missing)
    own_runner = runner is None
    runner = runner if runner is not None else open_model(model_path, providers=providers)
    source = str(model_path)
    model_task = check_model_matches_task(runner.info, source, task)
    config = dataclasses.replace(split_config or SplitConfig(), task=model_task)
    if samples is None:
        samples = task_samples(db, split, config)
    if sample_filter is not None:
        samples = [s for s in samples if sample_filter(s)]
    if not samples:
        raise FetalPlanesError(
            f"{db.root}: the '{split}' split of task '{model_task}' has no images",
            hint="check the dataset (its Train column and planes) or choose another --split",
        )
    samples, skipped = _check_images(db, samples, skip_missing)
    skipped = list(db.skipped) + skipped  # a labelled folder's rows left out at opening
    if not samples:
        raise FetalPlanesError(
            f"{db.root}: none of the '{split}' split's images are in Images/",
            hint="download the complete release (Zenodo record 3904280) into that folder",
        )
    t0 = time.perf_counter()
    try:
        runner.activate()
        probs = predict_samples(runner, db, samples, batch_size=batch_size, progress=progress, roi=roi)
    finally:
        if own_runner:
            runner.deactivate()
    seconds = time.perf_counter() - t0
    info = runner.info
    probs = info.map_probabilities(probs)  # over the task's labels (unchanged without a label map)
    labels = info.task_labels
    targets = np.asarray([s.label for s in samples], dtype=np.int64)
    metrics = classification_metrics(probs, targets, labels)
    preds = probs.argmax(axis=1)
    predictions = [
        Prediction(
            image=s.record.image_name,
            patient=s.record.patient,
            operator=s.record.operator,
            machine=s.record.machine,
            target=int(s.label),
            predicted=int(preds[i]),
            confidence=float(probs[i, preds[i]]),
            probabilities=[float(x) for x in probs[i]],
        )
        for i, s in enumerate(samples)
    ]
    return EvaluationResult(
        model_path=str(model_path),
        data_dir=str(db.root),
        split=split,
        task=model_task,
        labels=list(labels),
        runner=runner.describe(),
        model_info=info.to_dict(),
        split_config=dataclasses.asdict(config),
        dataset_fingerprint=fingerprint(db, config),
        metrics=metrics,
        predictions=predictions,
        seconds=seconds,
        skipped_images=skipped,
        unmapped_labels=info.missing_task_labels,
    )
