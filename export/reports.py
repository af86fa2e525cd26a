"""Reports of an evaluation: JSON, a markdown table, per-image CSV, confusion-matrix PNGs.

The confusion matrices follow the study's Fig. 3: rows are the true class, columns
the predicted class, one plot with counts and one with row-normalised percentages.
matplotlib (Agg backend) is imported inside the plotting function.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from edge.errors import FetalPlanesError, require
from edge.labels import short_name
from fetaldata.metrics import SMALL_SAMPLE, format_proportion, row_normalize

if TYPE_CHECKING:  # pragma: no cover
    from export.evaluate import EvaluationResult

PHANTOM_MARKERS = ("PHANTOM", "PHANTOM.txt", "PHANTOM.md", "phantom.json", ".phantom")

#: SHA-256 of the rows of FETAL_PLANES_DB_data.csv as released (Zenodo record 3904280, 12,400 rows),
#: over the parsed values (see :func:`records_digest`), so copies that differ only in stray spaces,
#: a BOM or line ends match.
RELEASE_RECORDS_SHA256 = "2144c78287126bf0c4caae49975ec717cfd9c22fe8405be8d963fc1c1a80f8f7"


def records_digest(records) -> str:
    """SHA-256 over the parsed CSV rows (name, patient, plane, sub-plane, operator, machine, train)."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.image_name};{r.patient};{r.plane};{r.brain_plane};{r.operator};{r.machine};{int(r.train)}\n".encode())
    return h.hexdigest()


def is_phantom_dataset(data_dir: str | Path) -> bool:
    """True when the dataset folder carries a marker file of the synthetic phantom."""
    root = Path(data_dir)
    return any((root / m).exists() for m in PHANTOM_MARKERS)


def dataset_kind(data_dir: str | Path) -> str:
    """'phantom' (marker file), 'release' (the published CSV, row for row), 'folder' (a labelled image
    folder with labels.csv) or 'other'."""
    from fetaldata.labelled_folder import is_labelled_folder

    if is_phantom_dataset(data_dir):
        return "phantom"
    if is_labelled_folder(data_dir):
        return "folder"
    try:
        from fetaldata import FetalPlanesDB

        records = FetalPlanesDB.open(data_dir).records
    except FetalPlanesError:
        return "other"
    return "release" if records_digest(records) == RELEASE_RECORDS_SHA256 else "other"


def data_notice(data_dir: str | Path, fingerprint: str, skipped: int = 0, kind: str | None = None) -> str:
    """One line saying what data the numbers come from, and whether they can be compared with the study."""
    kind = kind or dataset_kind(data_dir)
    where = f"{data_dir}, split fingerprint {fingerprint}"
    if kind == "phantom":
        return (f"**Synthetic phantom data** ({where}): these numbers exercise the code; "
                "they say nothing about clinical accuracy.")
    if kind == "folder":
        return (f"**Labelled image folder** ({where}" + (f"; {skipped} listed images missing" if skipped else "")
                + "): not FETAL_PLANES_DB and not comparable with the study; no patients, so the split 'test' is "
                "every image and 'train'/'val' are a seeded hold-out of the same images. Real images only if the "
                "folder holds real scans; a few hundred images or fewer: read the 95 % interval, not the figure.")
    if kind == "release" and not skipped:
        return f"Data: FETAL_PLANES_DB as released ({where})."
    if kind == "release":
        return (f"**Incomplete data**: the released CSV with {skipped} of the split's images missing ({where}); "
                "not comparable with the study.")
    return (f"**Not the published FETAL_PLANES_DB** ({where}; a phantom, subset or modified CSV): "
            "not comparable with the study, and nothing clinical.")


def _size(size: Any) -> str:
    """224 -> "224", [224, 288] -> "224x288" (rows x columns)."""
    return "x".join(map(str, size)) if isinstance(size, list) else str(size)


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}"


def _unmapped_lines(result: "EvaluationResult") -> list[str]:
    """Images of classes the model has no output for, reported apart (they count as errors overall)."""
    u = result.unmapped_images() if hasattr(result, "unmapped_images") else {}
    if not u or not u["classes"]:
        return []
    parts = [f"{c}: {e['images']} images, read as " + ", ".join(f"{k} {v}" for k, v in sorted(e["read_as"].items()))
             for c, e in u["classes"].items()]
    n, k = u["other_images"], u["other_images_correct"]
    return [f"The model has no class for these images (each counts as an error above): {'; '.join(parts)}. "
            f"On the other {n} images: top-1 {format_proportion(k, n) if n else 'n/a'} ({k} of {n})."]


def metrics_markdown(result: "EvaluationResult", notice: str | None = None) -> str:
    """A markdown report: what data, the study's metrics, then per-class precision/recall/F1."""
    m = result.metrics
    lines = [
        f"# Evaluation of `{Path(result.model_path).name}` on the {result.split} split ({result.task})",
        "",
        notice or data_notice(result.data_dir, result.dataset_fingerprint, len(result.skipped_images)),
        "",
        f"Model: {result.model_path} (arch {result.model_info.get('arch', '?')}, "
        f"{_size(result.model_info.get('input_size', '?'))} px), run by {result.runner}.",
        f"{m.n} images" + (f" ({len(result.skipped_images)} missing images skipped)" if result.skipped_images else "")
        + f", {result.images_per_second:.1f} images/s.",
        *([f"The model's own labels are mapped onto the task's; no output maps to "
           f"{', '.join(result.unmapped_labels)} (always predicted with probability 0)."]
          if getattr(result, "unmapped_labels", None) else []),
        *_unmapped_lines(result),
        "",
    ]
    if m.n < SMALL_SAMPLE:
        lines += [
            f"Top-1 accuracy: **{format_proportion(m.top1_correct, m.n)}**, {m.top1_correct} of {m.n} images "
            "(Wilson score interval: with so few images the true accuracy may lie anywhere in it).",
            "",
        ]
    lines += [
        "| images | top-1 error (%) | top-3 error (%) | class accuracy (%) mean ± std | macro-F1 | ECE |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {m.n} | {_pct(m.top1_error)} | {_pct(m.top3_error)} | "
        f"{_pct(m.class_accuracy_mean)} ± {_pct(m.class_accuracy_std)} | {m.macro_f1:.3f} | {m.ece:.3f} |",
        "",
        "| class | images | precision (%) | recall = class accuracy (%) | F1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in m.per_class:
        lines.append(
            f"| {row['label']} | {row['support']} | {_pct(row['precision'])} | {_pct(row['recall'])} | {row['f1']:.3f} |"
        )
    lines += [
        "",
        "Top-k error: share of images whose true class is not among the k most probable. "
        "Class accuracy: diagonal of the row-normalised confusion matrix (classes with images), as in the study. "
        "ECE: expected calibration error, 15 equal-width confidence bins.",
        "",
    ]
    return "\n".join(lines)


def plot_confusion(
    confusion: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    normalize: bool = False,
    title: str = "",
) -> Path:
    """Write a confusion-matrix PNG (rows: true class, columns: predicted), counts or row percentages."""
    require("matplotlib", "train", "plotting confusion matrices")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: no display needed
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise FetalPlanesError(
            f"confusion matrix of shape {cm.shape} does not fit {len(labels)} labels", hint="this is a bug in the caller",
            exit_code=1,
        )
    values = 100.0 * row_normalize(cm) if normalize else cm.astype(np.float64)
    names = [short_name(x) for x in labels]
    n = len(labels)
    size = max(3.5, 0.9 * n + 1.8)
    fig = Figure(figsize=(size + 0.8, size), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    vmax = 100.0 if normalize else max(1.0, float(values.max()))
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of true class" if normalize else "images")
    ax.set_xticks(range(n), labels=names, rotation=35, ha="right")
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            text = f"{v:.1f}" if normalize else f"{int(round(v))}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if v > 0.6 * vmax else "black")
    ax.set_title(title or ("confusion (% of true class)" if normalize else "confusion (images)"), fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_predictions_csv(result: "EvaluationResult", path: str | Path) -> Path:
    """One row per image: name, patient, operator, machine, true and predicted label, confidence, probabilities."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "patient", "operator", "machine", "true", "predicted", "correct", "confidence"]
                   + [f"p_{short_name(x)}" for x in result.labels])
        for p in result.predictions:
            w.writerow([p.image, p.patient, p.operator, p.machine, result.labels[p.target], result.labels[p.predicted],
                        int(p.correct), f"{p.confidence:.6f}"] + [f"{x:.6f}" for x in p.probabilities])
    return path


def write_reports(result: "EvaluationResult", out_dir: str | Path) -> dict[str, Path]:
    """Write every report of ``result`` into ``out_dir``; returns {kind: path}.

    Kinds: ``json`` (metrics, provenance, predictions), ``markdown``, ``predictions`` (CSV),
    ``confusion_counts`` and ``confusion_percent`` (PNGs).
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetalPlanesError(f"{out}: cannot create the report folder ({exc})", hint="choose another --out") from None
    data: dict[str, Any] = result.to_dict()
    kind = dataset_kind(result.data_dir)
    data["data_kind"] = kind
    data["data_notice"] = data_notice(result.data_dir, result.dataset_fingerprint, len(result.skipped_images), kind)
    paths = {
        "json": out / "metrics.json",
        "markdown": out / "metrics.md",
        "predictions": out / "predictions.csv",
        "confusion_counts": out / "confusion_counts.png",
        "confusion_percent": out / "confusion_percent.png",
    }
    paths["json"].write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(metrics_markdown(result, data["data_notice"]), encoding="utf-8")
    write_predictions_csv(result, paths["predictions"])
    name = Path(result.model_path).name
    plot_confusion(result.metrics.confusion, result.labels, paths["confusion_counts"], normalize=False,
                   title=f"{name}, {result.split} (images)")
    plot_confusion(result.metrics.confusion, result.labels, paths["confusion_percent"], normalize=True,
                   title=f"{name}, {result.split} (% of true class)")
    return paths
