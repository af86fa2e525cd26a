"""Score ``fetalplanes classify`` output against a labelled dataset (a labelled folder or FETAL_PLANES_DB).

``classify`` (``edge``, on the box) writes one CSV row per image (``exam,file,label,confidence,...``);
this module matches each row's ``file`` to the dataset's images (by resolved path) and scores its
``label`` against the image's plane (task ``planes``) or brain sub-plane (task ``brain``, when the labels
are the brain task's). A model with native labels (e.g. SonoNet's 14) is scored through ``label_map``
(native label -> task label). Accuracies come with their Wilson 95 % interval.

``python -m fetaldata.classify_scoring results.csv --data DIR [--json OUT]``
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

from edge.errors import FetalPlanesError
from edge.labels import BRAIN, BRAIN_OTHER, PLANES
from fetaldata.metrics import format_proportion, wilson_interval


def read_classify_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``classify`` CSV (needs the columns ``file`` and ``label``)."""
    path = Path(path)
    if not path.is_file():
        raise FetalPlanesError(f"{path}: classify results not found",
                               hint="run `fetalplanes classify FOLDER --model MODEL --out results.csv` first")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise FetalPlanesError(f"{path}: expected a classify CSV with the columns file,label,...",
                               hint="give the CSV that `fetalplanes classify --out` wrote")
    return rows


def score_classify_rows(rows: list[dict[str, str]], data: Any, label_map: dict[str, str] | None = None,
                        base: Path | None = None) -> dict[str, Any]:
    """Score classify rows against ``data`` (a path or an open dataset, see :func:`fetaldata.open_dataset`).

    Rows whose file is not in the dataset are counted as ``unmatched``; rows with an ``error`` (unreadable
    image) as ``errors``; the dataset's images without a row as ``not_classified``. Relative ``file``
    paths are resolved against ``base`` (default: the working directory).
    """
    from fetaldata.datasets import open_dataset

    db = open_dataset(data)
    label_map = dict(label_map or {})
    by_path = {db.image_path(r).resolve(): r for r in db.records}
    mapped = [label_map.get(r["label"], r["label"]) for r in rows if r.get("label")]
    task = "brain" if mapped and all(m in BRAIN for m in mapped) and not all(m in PLANES for m in mapped) else "planes"
    unknown = sorted({m for m in mapped if m not in (BRAIN if task == "brain" else PLANES)})
    if unknown:
        raise FetalPlanesError(
            f"labels {', '.join(unknown[:5])} are not planes of FETAL_PLANES_DB",
            hint="score a model with native labels through its label map (native label -> plane)",
        )
    scored, unmatched, errors, seen = [], 0, 0, set()
    for row in rows:
        p = Path(row["file"])
        p = (p if p.is_absolute() else (base or Path.cwd()) / p).resolve()
        record = by_path.get(p)
        if record is None:
            unmatched += 1
            continue
        seen.add(p)
        if row.get("error") or not row.get("label"):
            errors += 1
            continue
        truth = record.plane if task == "planes" else record.brain_plane
        if task == "brain" and truth == BRAIN_OTHER:
            continue  # brain image of no known sub-plane: not scored on the brain task
        scored.append((truth, label_map.get(row["label"], row["label"]), record.image_name))
    n = len(scored)
    correct = sum(t == p for t, p, _ in scored)
    lo, hi = wilson_interval(correct, n)
    per_class: dict[str, dict[str, Any]] = {}
    for label, count in sorted(Counter(t for t, _, _ in scored).items()):
        k = sum(1 for t, p, _ in scored if t == label and p == label)
        c_lo, c_hi = wilson_interval(k, count)
        per_class[label] = {"images": count, "correct": k, "recall": k / count, "ci95": [c_lo, c_hi]}
    return {
        "data": str(db.root),
        "task": task,
        "images": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "accuracy_ci95": [lo, hi],
        "accuracy_text": format_proportion(correct, n, always_interval=True),
        "per_class": per_class,
        "predicted": dict(Counter(p for _, p, _ in scored).most_common()),
        "wrong": [{"image": name, "true": t, "predicted": p} for t, p, name in scored if t != p],
        "unmatched_rows": unmatched,
        "errors": errors,
        "not_classified": sum(1 for path in by_path if path not in seen),
    }


def score_classify_csv(csv_path: str | Path, data: Any, label_map: dict[str, str] | None = None) -> dict[str, Any]:
    """:func:`score_classify_rows` of a classify CSV (relative paths resolved against the working directory)."""
    return score_classify_rows(read_classify_csv(csv_path), data, label_map)
