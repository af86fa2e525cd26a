"""Classification metrics of the study (numpy only, so the edge box can evaluate too).

The paper reports top-1 and top-3 error and "class accuracy": mean +- std of the
diagonal of the row-normalised confusion matrix (per-class recall). We add
per-class precision/recall/F1, macro-F1 and expected calibration error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edge.errors import FetalPlanesError


def _check(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if probs.ndim != 2 or targets.ndim != 1 or probs.shape[0] != targets.shape[0]:
        raise FetalPlanesError(
            f"metrics need probabilities (N, C) and targets (N,), got {probs.shape} and {targets.shape}",
            hint="this is a bug in the caller",
            exit_code=1,
        )
    if probs.shape[0] == 0:
        raise FetalPlanesError("no images to evaluate", hint="check the split and the dataset folder")
    if targets.min() < 0 or targets.max() >= probs.shape[1]:
        raise FetalPlanesError(
            f"target labels out of range 0..{probs.shape[1] - 1}",
            hint="the model's labels and the dataset's task do not match",
        )
    return probs, targets


#: two-sided 95 % normal quantile
Z95 = 1.959963984540054
#: below this many images, accuracies are reported with their 95 % interval
SMALL_SAMPLE = 300


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (95 % by default); ``(0, 1)`` when ``n`` is 0.

    Unlike the normal approximation it stays inside [0, 1] and is honest at 0/n and n/n
    (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it for small n).
    """
    if n < 0 or successes < 0 or successes > n:
        raise FetalPlanesError(f"wilson_interval: {successes} successes of {n} trials", hint="a bug in the caller",
                               exit_code=1)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return float(lo), float(hi)


def format_proportion(successes: int, n: int, always_interval: bool = False) -> str:
    """``"92.3 % (95 % CI 66.7–98.6 %)"`` for 12 of 13; the interval only below :data:`SMALL_SAMPLE` images
    (unless ``always_interval``)."""
    if n == 0:
        return "n/a (0 images)"
    text = f"{100.0 * successes / n:.1f} %"
    if n < SMALL_SAMPLE or always_interval:
        lo, hi = wilson_interval(successes, n)
        text += f" (95 % CI {100.0 * lo:.1f}–{100.0 * hi:.1f} %)"
    return text


def topk_error(probs: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Fraction of images whose true class is not among the k most probable."""
    probs, targets = _check(probs, targets)
    k = min(k, probs.shape[1])
    topk = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(1.0 - np.mean(np.any(topk == targets[:, None], axis=1)))


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(targets, np.int64), np.asarray(preds, np.int64)), 1)
    return cm


def row_normalize(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows of zeros stay zero)."""
    sums = cm.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(cm, sums, out=np.zeros(cm.shape, dtype=np.float64), where=sums > 0)


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017)."""
    probs, targets = _check(probs, targets)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == targets).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


@dataclass
class ClassificationMetrics:
    """The study's metrics plus a few more, for one model on one split."""

    n: int
    labels: list[str]
    top1_error: float
    top3_error: float
    class_accuracy_mean: float  # mean of the confusion matrix's normalised diagonal (classes present)
    class_accuracy_std: float
    macro_f1: float
    ece: float
    per_class: list[dict[str, Any]] = field(default_factory=list)
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    @property
    def top1_accuracy(self) -> float:
        return 1.0 - self.top1_error

    @property
    def top1_correct(self) -> int:
        return int(np.trace(self.confusion)) if self.confusion.size else int(round(self.top1_accuracy * self.n))

    @property
    def top1_ci95(self) -> tuple[float, float]:
        """Wilson 95 % interval of the top-1 accuracy."""
        return wilson_interval(self.top1_correct, self.n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "labels": list(self.labels),
            "top1_error": self.top1_error,
            "top3_error": self.top3_error,
            "top1_accuracy": self.top1_accuracy,
            "top1_accuracy_ci95": list(self.top1_ci95),
            "class_accuracy_mean": self.class_accuracy_mean,
            "class_accuracy_std": self.class_accuracy_std,
            "macro_f1": self.macro_f1,
            "ece": self.ece,
            "per_class": self.per_class,
            "confusion": self.confusion.tolist(),
        }


def classification_metrics(
    probs: np.ndarray, targets: np.ndarray, labels: Sequence[str], ece_bins: int = 15
) -> ClassificationMetrics:
    """All metrics for probabilities (N, C) against integer targets (N,)."""
    probs, targets = _check(probs, targets)
    if probs.shape[1] != len(labels):
        raise FetalPlanesError(
            f"the model gives {probs.shape[1]} classes but {len(labels)} labels were given",
            hint="the model's labels and the dataset's task do not match",
        )
    preds = probs.argmax(axis=1)
    cm = confusion_matrix(targets, preds, len(labels))
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(np.float64)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    per_class = [
        {
            "label": labels[i],
            "support": int(support[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
        }
        for i in range(len(labels))
    ]
    return ClassificationMetrics(
        n=int(len(targets)),
        labels=list(labels),
        top1_error=float(np.mean(preds != targets)),
        top3_error=topk_error(probs, targets, 3),
        class_accuracy_mean=float(recall[present].mean()),
        class_accuracy_std=float(recall[present].std()),
        macro_f1=float(f1[present].mean()),
        ece=expected_calibration_error(probs, targets, ece_bins),
        per_class=per_class,
        confusion=cm,
    )
