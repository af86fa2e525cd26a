"""Figs. 3-5 of the study: confusion matrices (best model, brain sub-planes) and the learning curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fetaldata import FetalPlanesDB
from fetaldata.splits import split_patients
from edge.errors import require
from edge.labels import labels_for, short_name
from fetaldata.metrics import row_normalize
from export.experiments.config import ExperimentConfig
from export.experiments.runs import Trainer, run_subrun
from export.experiments.tables import (
    METRIC_HEADERS, NOT_REPORTED, header_lines, load_published, markdown_table, metric_cells, pct, study_notice,
    write_table,
)

STEP_PATIENTS = 100  # the study removed 100 training patients at a time
EXTRA_SETS = 8  # ... for 8 extra training sets


def learning_curve_sizes(n_train: int, quick: bool) -> list[int]:
    """Training-patient counts: all, then 100 fewer at a time (8 extra sets); quick: 3 points over what there is."""
    if quick or n_train <= STEP_PATIENTS * 2:
        step = max(1, n_train // 3)
        return sorted({max(1, n_train - k * step) for k in range(3)}, reverse=True)
    return [n_train - k * STEP_PATIENTS for k in range(EXTRA_SETS + 1) if n_train - k * STEP_PATIENTS > 0]


def _confusion_table(cm: np.ndarray, labels: list[str]) -> str:
    pct_cm = 100.0 * row_normalize(cm)
    names = [short_name(x) for x in labels]
    rows = [[names[i], *[f"{pct_cm[i, j]:.1f}" for j in range(len(labels))], int(cm[i].sum())] for i in range(len(labels))]
    return markdown_table(["true \\ predicted", *names, "images"], rows)


def _paper_confusion(section: dict[str, Any], labels: list[str]) -> str:
    cm = section.get("confusion_percent")
    if not cm:
        return f"Published matrix: {NOT_REPORTED} (see benchmarks/paper/published.json)."
    names = [short_name(x) for x in labels]
    rows = [[names[i], *[f"{v:.1f}" for v in cm[i]]] for i in range(len(labels))]
    return "Published matrix (% of the true class):\n\n" + markdown_table(["true \\ predicted", *names], rows)


def _confusion_report(name: str, title: str, rec: dict[str, Any], config: ExperimentConfig,
                      published: dict[str, Any], labels: list[str], extra: dict[str, Any]) -> dict[str, Path]:
    from export.reports import plot_confusion

    notice, fp = study_notice(config)
    cm = np.asarray(rec["metrics"]["confusion"])
    out = config.out / name
    out.mkdir(parents=True, exist_ok=True)
    png = plot_confusion(cm, labels, out / f"{name}_confusion_percent.png", normalize=True, title=title)
    png_counts = plot_confusion(cm, labels, out / f"{name}_confusion_counts.png", normalize=False, title=title)
    section = published.get(name, {})
    headers = ["model", *METRIC_HEADERS]
    rows = [[rec["spec"]["arch"], *metric_cells(rec["metrics"], section)]]
    md = header_lines(title, notice, config, published)
    md += [markdown_table(headers, rows), "", "Ours (% of the true class):", "", _confusion_table(cm, labels), "",
           _paper_confusion(section, labels), "", f"![confusion]({png.name})", ""]
    paths = write_table(out, name, "\n".join(md), headers, rows,
                        {"experiment": name, "split_fingerprint": fp, "notice": notice, "result": rec, **extra})
    paths.update({"confusion_percent": png, "confusion_counts": png_counts})
    return paths


def run_fig3(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    """Fig. 3: confusion matrix of the best model (lowest top-1 error among finished Table 2 runs, else trains one)."""
    finished = []
    for p in sorted((config.out / "table2" / "runs").glob("*/result.json")):
        rec = json.loads(p.read_text())
        if rec.get("spec", {}).get("task") == "planes":
            finished.append(rec)
    if finished:
        rec = min(finished, key=lambda r: r["metrics"]["top1_error"])
        source = "best of the finished Table 2 runs"
    else:
        arch = config.main_arch()
        rec = run_subrun("fig3", config.spec(arch, arch), config, trainer)
        source = "trained for this figure (no finished Table 2 run)"
    return _confusion_report("fig3", f"Fig. 3: confusion matrix of the best model ({rec['spec']['arch']}, {source})",
                             rec, config, load_published(), list(labels_for("planes")), {"source": source})


def run_fig4(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    """Fig. 4: the brain sub-plane task (training patients' brain images plus 500 of other planes)."""
    arch = config.main_arch()
    rec = run_subrun("fig4", config.spec(f"brain-{arch}", arch, task="brain"), config, trainer)
    return _confusion_report("fig4", f"Fig. 4: brain sub-planes ({arch})", rec, config, load_published(),
                             list(labels_for("brain")), {})


def run_fig5(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    """Fig. 5: top-1 error against the number of training patients."""
    published = load_published()
    paper_points = {int(p["patients"]): p.get("top1_error") for p in published.get("fig5", {}).get("points", [])}
    notice, fp = study_notice(config)
    db = FetalPlanesDB.open(config.data)
    n_train = len(split_patients(db.records, 0.1, config.seed)["train"])
    arch = config.main_arch()
    headers = ["training patients", "top-1 error % (ours)", "(paper)", *METRIC_HEADERS[2:]]
    rows, points = [], []
    for n in learning_curve_sizes(n_train, config.quick):
        rec = run_subrun("fig5", config.spec(f"patients-{n}", arch, max_train_patients=n), config, trainer)
        m = rec["metrics"]
        cells = metric_cells(m, {})
        rows.append([n, cells[0], pct(paper_points.get(n)), *cells[2:]])
        points.append({"patients": n, "top1_error": m["top1_error"], "result": rec})
    png = _plot_curve(config.out / "fig5" / "fig5_learning_curve.png", points, paper_points, arch)
    md = header_lines(f"Fig. 5: top-1 error against training patients ({arch})", notice, config, published)
    md += [markdown_table(headers, rows), "",
           f"Training patients: the {n_train} training patients of this dataset (validation patients set apart), "
           f"then {STEP_PATIENTS} fewer at a time, keeping the earliest (the CSV's chronological order).", "",
           f"![learning curve]({png.name})", ""]
    paths = write_table(config.out / "fig5", "fig5", "\n".join(md), headers, rows,
                        {"experiment": "fig5", "arch": arch, "split_fingerprint": fp, "notice": notice, "points": points})
    paths["plot"] = png
    return paths


def _plot_curve(path: Path, points: list[dict], paper: dict[int, float | None], arch: str) -> Path:
    require("matplotlib", "train", "plotting the learning curve")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    xs = [p["patients"] for p in points]
    ax.plot(xs, [100 * p["top1_error"] for p in points], "o-", label=f"ours ({arch})")
    known = sorted((n, e) for n, e in paper.items() if e is not None)
    if known:
        ax.plot([n for n, _ in known], [100 * e for _, e in known], "s--", label="paper")
    ax.set_xlabel("training patients")
    ax.set_ylabel("top-1 error (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
