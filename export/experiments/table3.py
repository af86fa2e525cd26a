"""Table 3: ablations (no pre-training, last layers only, no augmentation, class re-weighting) against the baseline."""

from __future__ import annotations

from pathlib import Path

from export.experiments.config import ExperimentConfig
from export.experiments.runs import Trainer, run_subrun
from export.experiments.tables import (
    METRIC_HEADERS, header_lines, load_published, markdown_table, metric_cells, published_rows, study_notice,
    write_table,
)

NAME = "table3"
#: variant -> (description, RunSpec changes)
VARIANTS: dict[str, tuple[str, dict]] = {
    "baseline": ("baseline (the study's recipe)", {}),
    "no_pretraining": ("no pre-training (random initialisation)", {"pretrained": "none"}),
    "last_layers_only": ("last layers only (backbone frozen)", {"last_layers_only": True}),
    "no_augmentation": ("no augmentation", {"augment": False}),
    "class_reweighting": ("class re-weighting of the loss", {"class_weights": True}),
}


def run(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    published = load_published()
    paper = published_rows(NAME, "variant", published)
    notice, fp = study_notice(config)
    arch = config.main_arch()
    headers = ["variant", *METRIC_HEADERS, "Δ top-1 vs baseline (points)"]
    rows, records, base_top1 = [], [], None
    for variant, (text, changes) in VARIANTS.items():
        spec = config.spec(f"{variant}", arch, **changes)
        rec = run_subrun(NAME, spec, config, trainer)
        top1 = rec["metrics"]["top1_error"]
        base_top1 = top1 if base_top1 is None else base_top1
        rows.append([text, *metric_cells(rec["metrics"], paper.get(variant)), f"{100 * (top1 - base_top1):+.1f}"])
        records.append({"variant": variant, "result": rec, "paper": paper.get(variant)})
    md = header_lines(f"Table 3: ablations ({arch}, six planes, test patients)", notice, config, published)
    md += [markdown_table(headers, rows), ""]
    if config.default_pretrained == "none":
        md += ["Note: the baseline here has no pre-training either (--pretrained none), so the "
               "'no pre-training' row repeats it.", ""]
    return write_table(config.out / NAME, NAME, "\n".join(md), headers, rows,
                       {"experiment": NAME, "arch": arch, "split_fingerprint": fp, "notice": notice, "rows": records})
