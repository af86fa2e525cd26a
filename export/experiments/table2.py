"""Table 2: architectures -> top-1 / top-3 error, class accuracy mean ± std, parameters, speed (FP32 and INT8).

Each row names the study's network it stands for (exactly, or the closest torchvision has) and puts the
study's numbers and the difference beside ours; the study's whole Table 2 follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export.experiments.config import ExperimentConfig
from export.experiments.runs import Trainer, run_subrun
from export.experiments.speed import measure
from export.experiments.study import STUDY_NETS, study_net_for, table2_default_archs
from export.experiments.tables import (
    METRIC_HEADERS, header_lines, load_published, markdown_table, metric_cells, num, pct, pct_pm, published_rows,
    study_notice, write_table,
)

NAME = "table2"


def _study_cell(arch: str) -> str:
    net = study_net_for(arch)
    if net is None:
        return "not in the study"
    return f"{net.paper_name} (closest)" if net.match == "closest" else net.paper_name


def _architecture_lines(archs: list[str], config: ExperimentConfig) -> list[str]:
    ran = ", ".join(archs)
    if config.archs:
        why = "chosen with --archs"
    elif config.quick:
        why = "quick mode: one small model to exercise the code; the study's networks are in the second table"
    else:
        why = "every network of the study that torchvision has (or has a closest for), then the edge models"
    lines = [f"Architectures: the study's are listed in its Table 2 below; this run: {ran} ({why}). The "
             "'study's network' column says which of the study's networks each row stands for."]
    notes = [f"- {a}: {study_net_for(a).note}" for a in archs if study_net_for(a) and study_net_for(a).note]
    return lines + ([""] + notes if notes else [])


def _published_table(published: dict[str, Any], ours: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The study's Table 2, every row, with the torchvision model that stands for it and our top-1 where it ran."""
    headers = ["study's network", "here", "params (M)", "layers", "Hz (FP32, 2020)", "top-1 error %", "top-3 error %",
               "class accuracy %", "top-1 error % (ours)", "Δ"]
    rows = []
    for name, p in published_rows(NAME, "paper_name", published).items():
        net = STUDY_NETS.get(name)
        here = "–" if net is None or net.arch is None else net.arch
        here += " (closest)" if net is not None and net.match == "closest" else ""
        mine = ours.get(net.arch) if net and net.arch else None
        mine_top1 = mine["top1_error"] if mine else None
        rows.append([name, here, num(p.get("params_m"), "{:g}"), num(p.get("layers"), "{:g}"),
                     num(p.get("speed_hz"), "{:g}"), pct(p.get("top1_error")), pct(p.get("top3_error"), 2),
                     pct_pm(p.get("class_accuracy_mean"), p.get("class_accuracy_std")),
                     pct(mine_top1) if mine else "not run",
                     (f"{100 * (mine_top1 - p['top1_error']):+.1f}" if mine and p.get("top1_error") is not None
                      else "")])
    return headers, rows


def run(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    published = load_published()
    paper = published_rows(NAME, "paper_name", published)
    notice, fp = study_notice(config)
    archs = config.arch_list(tuple(table2_default_archs()))
    headers = ["network (ran)", "study's network", *METRIC_HEADERS, "params (M, ours)", "(study)",
               "FP32 Hz (ours, ORT CPU)", "(study, FP32, 2020 GPU)", "INT8 Hz (ours, ORT CPU)"]
    rows, records, ours = [], [], {}
    for arch in archs:
        spec = config.spec(arch, arch)
        rec = run_subrun(NAME, spec, config, trainer)
        sp = measure(rec, config, config.out / NAME / "runs" / spec.name)
        net = study_net_for(arch)
        p = paper.get(net.paper_name, {}) if net else {}
        params_m = sp["params"] / 1e6 if sp.get("params") else None
        rows.append([arch, _study_cell(arch), *metric_cells(rec["metrics"], p), num(params_m, "{:.2f}"),
                     num(p.get("params_m"), "{:g}"), num(sp.get("fp32_hz")), num(p.get("speed_hz"), "{:g}"),
                     num(sp.get("int8_hz"))])
        ours[arch] = rec["metrics"]
        records.append({"arch": arch, "study_network": net.paper_name if net else None,
                        "study_match": net.match if net else None, "result": rec, "speed": sp, "paper": p or None})
    md = header_lines("Table 2: architectures on the six planes (test patients)", notice, config, published,
                      "\n".join(_architecture_lines(archs, config)))
    md += [markdown_table(headers, rows, "ll" + "r" * (len(headers) - 2)), "",
           "Errors in % of the test images; class accuracy: mean ± std over classes of the row-normalised "
           "confusion matrix's diagonal. Parameters: ours with a 6-class head and a 1-channel first convolution "
           "(the study's are rounded to millions). Speed: batch 1 with the edge runtime (ONNX Runtime, CPU) on "
           "this machine; the study measured FP32 only, on its 2020 hardware, so speeds are not comparable.", ""]
    notes = [f"- {r['arch']}: {n}" for r in records for n in r["speed"].get("notes", [])]
    if notes:
        md += ["Notes:", *notes, ""]
    pub_headers, pub_rows = _published_table(published, ours)
    if pub_rows:
        md += ["## The study's Table 2 (every row)", "",
               f"Input {published.get(NAME, {}).get('input_size', {}).get('default', 224)} px "
               "(299 px for Inception-v3). 'here': the torchvision model that stands for it (– : torchvision has "
               "nothing close: " + "; ".join(sorted({n.note for n in STUDY_NETS.values() if n.match == "none"})) + ").",
               "", markdown_table(pub_headers, pub_rows, "ll" + "r" * (len(pub_headers) - 2)), "",
               "Closest stand-ins:", *[f"- {n.paper_name} -> {n.arch}: {n.note}" for n in STUDY_NETS.values()
                                       if n.match == "closest"], ""]
    return write_table(config.out / NAME, NAME, "\n".join(md), headers, rows,
                       {"experiment": NAME, "split_fingerprint": fp, "notice": notice, "archs": archs,
                        "rows": records})
