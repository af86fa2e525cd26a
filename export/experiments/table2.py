"""Table 2: architectures -> top-1 / top-3 error, class accuracy mean ± std, parameters, speed (FP32 and INT8)."""

from __future__ import annotations

from pathlib import Path

from export.experiments.config import ExperimentConfig
from export.experiments.runs import Trainer, run_subrun
from export.experiments.speed import measure
from export.experiments.tables import (
    METRIC_HEADERS, header_lines, load_published, markdown_table, metric_cells, num, published_rows, study_notice,
    write_table,
)

NAME = "table2"


def run(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    published = load_published()
    paper = published_rows(NAME, "arch", published)
    notice, fp = study_notice(config)
    headers = ["network", *METRIC_HEADERS, "params (M)", "(paper)", "FP32 Hz (ours, ORT CPU)", "(paper, FP32, 2020 GPU)",
               "INT8 Hz (ours, ORT CPU)"]
    rows, records = [], []
    for arch in config.arch_list():
        spec = config.spec(arch, arch)
        rec = run_subrun(NAME, spec, config, trainer)
        sp = measure(rec, config, config.out / NAME / "runs" / spec.name)
        p = paper.get(arch, {})
        params_m = sp["params"] / 1e6 if sp.get("params") else None
        rows.append([arch, *metric_cells(rec["metrics"], p), num(params_m, "{:.2f}"), num(p.get("params_m"), "{:.2f}"),
                     num(sp.get("fp32_hz")), num(p.get("speed_hz")), num(sp.get("int8_hz"))])
        records.append({"arch": arch, "result": rec, "speed": sp, "paper": p or None})
    md = header_lines("Table 2: architectures on the six planes (test patients)", notice, config, published)
    md += [markdown_table(headers, rows), "",
           "Errors in % of the test images; class accuracy: mean ± std over classes of the row-normalised "
           "confusion matrix's diagonal. Speed: batch 1 with the edge runtime (ONNX Runtime, CPU) on this "
           "machine; the study measured FP32 only, on its 2020 hardware, so speeds are not comparable.", ""]
    notes = [f"- {r['arch']}: {n}" for r in records for n in r["speed"].get("notes", [])]
    if notes:
        md += ["Notes:", *notes, ""]
    return write_table(config.out / NAME, NAME, "\n".join(md), headers, rows,
                       {"experiment": NAME, "split_fingerprint": fp, "notice": notice, "rows": records})
