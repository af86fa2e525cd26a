"""Figs. 3-5 of the study: confusion matrices (best model, brain sub-planes) and the learning curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fetaldata import FetalPlanesDB
from fetaldata.splits import split_patients
from edge.errors import require
from edge.labels import BRAIN, labels_for, short_name
from fetaldata.metrics import row_normalize
from export.experiments.config import ExperimentConfig
from export.experiments.runs import Trainer, run_subrun
from export.experiments.study import STUDY_ARCH, architecture_line, study_arch
from export.experiments.tables import (
    FIGURE_ONLY, METRIC_HEADERS, delta, header_lines, is_number, load_published, markdown_table, metric_cells, pct,
    pct_pm, study_notice, write_table,
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


def _paper_confusion(section: dict[str, Any], labels: list[str], figure: str) -> str:
    cm = section.get("confusion_percent")
    if cm == FIGURE_ONLY:
        return f"The study's matrix: in the article's {figure} only (its per-cell percentages are not transcribed)."
    if not cm:
        return "The study's matrix: not available (see benchmarks/paper/published.json)."
    names = [short_name(x) for x in labels]
    rows = [[names[i], *[f"{v:.1f}" for v in cm[i]]] for i in range(len(labels))]
    return "The study's matrix (% of the true class):\n\n" + markdown_table(["true \\ predicted", *names], rows)


def _technician_rows(section: dict[str, Any], n_cols: int) -> list[list[str]]:
    """Rows for the study's research technicians (top-1 error only), as many cells as the metric table."""
    rows = []
    for i, err in enumerate(section.get("technicians_top1_error") or [], 1):
        rows.append([f"research technician {i} (study)", "", pct(err), ""] + [""] * (n_cols - 4))
    return rows


def _confusion_report(name: str, title: str, rec: dict[str, Any], config: ExperimentConfig,
                      published: dict[str, Any], labels: list[str], extra: dict[str, Any],
                      metric_rows: list[list[str]], text: list[str]) -> dict[str, Path]:
    from export.reports import plot_confusion

    notice, fp = study_notice(config)
    cm = np.asarray(rec["metrics"]["confusion"])
    out = config.out / name
    out.mkdir(parents=True, exist_ok=True)
    png = plot_confusion(cm, labels, out / f"{name}_confusion_percent.png", normalize=True, title=title)
    png_counts = plot_confusion(cm, labels, out / f"{name}_confusion_counts.png", normalize=False, title=title)
    section = published.get(name, {})
    headers = ["model", *METRIC_HEADERS]
    arch = rec["spec"]["arch"]
    md = header_lines(title, notice, config, published, architecture_line(name, arch, config))
    md += [markdown_table(headers, metric_rows), "", *text, "Ours (% of the true class):", "",
           _confusion_table(cm, labels), "", _paper_confusion(section, labels, name.replace("fig", "Fig. ")), ""]
    if section.get("text"):
        md += [f"The article's text on it: {section['text']}.", ""]
    md += [f"![confusion]({png.name})", ""]
    paths = write_table(out, name, "\n".join(md), headers, metric_rows,
                        {"experiment": name, "arch": arch, "study_arch": STUDY_ARCH[name], "split_fingerprint": fp,
                         "notice": notice, "result": rec, **extra})
    paths.update({"confusion_percent": png, "confusion_counts": png_counts})
    return paths


def _reusable_table2_run(config: ExperimentConfig, arch: str) -> dict[str, Any] | None:
    """Table 2's finished sub-run of ``arch`` when it was made with exactly the settings fig3 would use."""
    path = config.out / "table2" / "runs" / arch / "result.json"
    if not path.is_file():
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    return rec if rec.get("spec_key") == config.spec(arch, arch).key() else None


def run_fig3(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    """Fig. 3: confusion matrix of the study's best model (DenseNet-169), beside the research technicians.

    Reuses Table 2's finished sub-run of that architecture when there is one, else trains it.
    """
    arch = config.main_arch(study_arch("fig3"))
    rec = _reusable_table2_run(config, arch)
    if rec is not None:
        source = "Table 2's sub-run, reused"
    else:
        rec = run_subrun("fig3", config.spec(arch, arch), config, trainer)
        source = "trained for this figure (no finished Table 2 run of it)"
    published = load_published()
    section = published.get("fig3", {})
    m = rec["metrics"]
    rows = [[f"{arch} (ours)", *metric_cells(m, section)], *_technician_rows(section, 1 + len(METRIC_HEADERS))]
    secs = section.get("seconds_per_image", {})
    ips = rec.get("evaluations", {}).get("test", {}).get("images_per_second")
    text = []
    if secs:
        text += [f"Time per image: the study's CNN {secs.get('cnn')} s (its 2020 GPU), its technicians "
                 f"{secs.get('technicians')} s" + (f"; ours {1.0 / ips:.3f} s (this machine's evaluation, "
                                                     "decoding included)" if ips else "") + ".", ""]
    return _confusion_report("fig3", f"Fig. 3: confusion matrix on the six planes ({arch}, {source})",
                             rec, config, published, list(labels_for("planes")), {"source": source}, rows, text)


def brain_subplane_metrics(confusion: np.ndarray, n_subplanes: int = 3) -> dict[str, float | int]:
    """The study's Fig. 4 numbers from our brain-task confusion matrix: its three sub-planes' images only.

    The study tested on the 1,406 test images of the three sub-planes; our brain-task test split also holds
    the test patients' other images ('Not A Brain'). A sub-plane image predicted 'Not A Brain' counts as an error.
    """
    cm = np.asarray(confusion, dtype=float)[:n_subplanes]
    n = cm.sum()
    correct = np.trace(cm[:, :n_subplanes])
    totals = cm.sum(axis=1)
    recall = np.diag(cm[:, :n_subplanes])[totals > 0] / totals[totals > 0]
    return {
        "n": int(n),
        "top1_error": float(1.0 - correct / n) if n else float("nan"),
        "class_accuracy_mean": float(recall.mean()) if recall.size else float("nan"),
        "class_accuracy_std": float(recall.std()) if recall.size else float("nan"),
    }


def brain_counts(db: FetalPlanesDB) -> dict[str, int]:
    """Images and patients of the three brain sub-planes in the CSV's training and test halves (Fig. 4's sets)."""
    sub = [r for r in db.records if r.brain_plane in BRAIN[:3]]
    return {
        "train_images": sum(r.train for r in sub), "train_patients": len({r.patient for r in sub if r.train}),
        "test_images": sum(not r.train for r in sub), "test_patients": len({r.patient for r in sub if not r.train}),
    }


def run_fig4(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    """Fig. 4: the brain sub-plane task (training patients' brain images plus 500 of other planes)."""
    arch = config.main_arch(study_arch("fig4"))
    rec = run_subrun("fig4", config.spec(f"brain-{arch}", arch, task="brain"), config, trainer)
    published = load_published()
    section = published.get("fig4", {})
    m = rec["metrics"]
    sub = brain_subplane_metrics(np.asarray(m["confusion"]))
    n_cols = 1 + len(METRIC_HEADERS)
    rows = [
        [f"{arch}, the 3 sub-planes' test images ({sub['n']}; the study's set)",
         pct(sub["top1_error"]), pct(section.get("top1_error")), delta(sub["top1_error"], section.get("top1_error")),
         "", "", "", pct_pm(sub["class_accuracy_mean"], sub["class_accuracy_std"]),
         pct_pm(section.get("class_accuracy_mean"), section.get("class_accuracy_std")), ""],
        [f"{arch}, every test image of the task ({m['n']}, with 'Not A Brain')", pct(m["top1_error"]), "", "",
         pct(m["top3_error"], 2), "", "", pct_pm(m["class_accuracy_mean"], m["class_accuracy_std"]), "", ""],
        *_technician_rows(section, n_cols),
    ]
    counts = brain_counts(FetalPlanesDB.open(config.data))
    text = ["The study's numbers are on the three sub-planes' test images (a sub-plane image predicted "
            "'Not A Brain' is an error); the second row adds the test patients' other images, which the study "
            "did not test on.", ""]
    if "test_images" in section:
        text += [markdown_table(
            ["brain sub-plane images", "training half (ours)", "(study)", "test half (ours)", "(study)"],
            [["images", counts["train_images"], section.get("train_images", "–"), counts["test_images"],
              section.get("test_images", "–")],
             ["patients", counts["train_patients"], section.get("train_patients", "–"), counts["test_patients"],
              section.get("test_patients", "–")]]), "",
            f"Training adds {section.get('train_extra_other_images', 500)} random images of other planes as "
            "'Not A Brain' (as the study); about 10 % of the training patients validate.", ""]
    return _confusion_report("fig4", f"Fig. 4: brain sub-planes ({arch})", rec, config, published,
                             list(labels_for("brain")), {"subplanes_only": sub, "counts": counts}, rows, text)


def run_fig5(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    """Fig. 5: top-1 error against the number of training patients."""
    published = load_published()
    section = published.get("fig5", {})
    points_pub = section.get("points")
    paper_points = ({int(p["patients"]): p.get("top1_error") for p in points_pub}
                    if isinstance(points_pub, list) else {})
    notice, fp = study_notice(config)
    db = FetalPlanesDB.open(config.data)
    n_train = len(split_patients(db.records, 0.1, config.seed)["train"])
    arch = config.main_arch(study_arch("fig5"))
    headers = ["training patients", "top-1 error % (ours)", "(study)", "Δ", *METRIC_HEADERS[3:]]
    rows, points = [], []
    sizes = learning_curve_sizes(n_train, config.quick)
    for n in sizes:
        rec = run_subrun("fig5", config.spec(f"patients-{n}", arch, max_train_patients=n), config, trainer)
        m = rec["metrics"]
        study: Any = paper_points.get(n, FIGURE_ONLY if points_pub == FIGURE_ONLY else None)
        if n == sizes[0] and is_number(section.get("all_patients_top1_error")):
            study = section["all_patients_top1_error"]  # all training patients: Table 3's baseline
        cells = metric_cells(m, {})
        rows.append([n, cells[0], pct(study), delta(m["top1_error"], study), *cells[3:]])
        points.append({"patients": n, "top1_error": m["top1_error"], "study_top1_error": study, "result": rec})
    all_pub = section.get("all_patients_top1_error")
    png = _plot_curve(config.out / "fig5" / "fig5_learning_curve.png", points, paper_points, arch,
                      all_pub if is_number(all_pub) else None)
    md = header_lines(f"Fig. 5: top-1 error against training patients ({arch})", notice, config, published,
                      architecture_line("fig5", arch, config))
    md += [markdown_table(headers, rows), "",
           f"Training patients: the {n_train} training patients of this dataset (validation patients set apart), "
           f"then {STEP_PATIENTS} fewer at a time, keeping the earliest (the CSV's chronological order).", ""]
    if is_number(section.get("all_patients_top1_error")):
        md += [f"The study's point with all training patients is {pct(section['all_patients_top1_error'])} % "
               f"({section.get('all_patients_source', 'Table 3')}); its other points are in its Fig. 5 only. "
               f"Its text: {section.get('text', '')}.", ""]
    md += [f"![learning curve]({png.name})", ""]
    paths = write_table(config.out / "fig5", "fig5", "\n".join(md), headers, rows,
                        {"experiment": "fig5", "arch": arch, "study_arch": STUDY_ARCH["fig5"], "split_fingerprint": fp,
                         "notice": notice, "points": points})
    paths["plot"] = png
    return paths


def _plot_curve(path: Path, points: list[dict], paper: dict[int, float | None], arch: str,
                study_all: float | None = None) -> Path:
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
        ax.plot([n for n, _ in known], [100 * e for _, e in known], "s--", label="study")
    if study_all is not None:
        ax.axhline(100 * study_all, color="gray", ls=":", label="study, all training patients (Inception-v3)")
    ax.set_xlabel("training patients")
    ax.set_ylabel("top-1 error (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
