"""Table 3: ablations (no pre-training, last layers only, no augmentation, class re-weighting) against the baseline."""

from __future__ import annotations

from pathlib import Path

from export.experiments.config import ExperimentConfig
from export.experiments.runs import Trainer, run_subrun
from export.experiments.study import STUDY_ARCH, architecture_line, study_arch
from export.experiments.tables import (
    METRIC_HEADERS, delta, header_lines, load_published, markdown_table, metric_cells, published_rows, study_notice,
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
    arch = config.main_arch(study_arch(NAME))
    headers = ["variant", *METRIC_HEADERS, "top-1 change vs baseline, points (ours)", "(study)"]
    rows, records, base_top1 = [], [], None
    paper_base = paper.get("baseline", {}).get("top1_error")
    for variant, (text, changes) in VARIANTS.items():
        spec = config.spec(f"{variant}", arch, **changes)
        rec = run_subrun(NAME, spec, config, trainer)
        top1 = rec["metrics"]["top1_error"]
        base_top1 = top1 if base_top1 is None else base_top1
        p = paper.get(variant)
        rows.append([text, *metric_cells(rec["metrics"], p), delta(top1, base_top1),
                     delta((p or {}).get("top1_error"), paper_base)])
        records.append({"variant": variant, "result": rec, "paper": p})
    md = header_lines(f"Table 3: ablations ({arch}, six planes, test patients)", notice, config, published,
                      architecture_line(NAME, arch, config))
    md += [markdown_table(headers, rows), ""]
    if config.default_pretrained == "none":
        md += ["Note: the baseline here has no pre-training either (--pretrained none), so the "
               "'no pre-training' row repeats it.", ""]
    return write_table(config.out / NAME, NAME, "\n".join(md), headers, rows,
                       {"experiment": NAME, "arch": arch, "study_arch": STUDY_ARCH[NAME], "split_fingerprint": fp,
                        "notice": notice, "rows": records})
