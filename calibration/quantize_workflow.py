"""``fetalplanes quantize`` end to end: calibrate, quantize, check on validation patients, repair, time, recommend.

1. Calibration set from training patients (:mod:`calibration.calibset`), ranges
   calibrated once (:func:`calibration.quantize_ort.calibrate_ranges`).
2. Full INT8 model; FP32 and INT8 top-1 on the VALIDATION patients.
3. If the drop exceeds ``max_drop`` points (or agreement falls below
   ``min_agreement``): per-layer sensitivity and the smallest set of layers to
   keep in float (:mod:`calibration.sensitivity`); the output keeps just those.
4. Batch-1 Hz of FP32 and of each INT8 file on this machine; the file to deploy
   here is the fastest whose accuracy holds (FP32 always holds).
5. ``<out stem>.quantize.json`` and ``.md`` beside the output.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from calibration.quantize_ort import QuantizeConfig

REPORT_SUFFIX = ".quantize.json"
#: INT8 is recommended over FP32 only when at least this much faster (timing noise on shared machines).
SPEED_MARGIN = 0.05


@dataclass
class QuantizeJob:
    """Everything ``fetalplanes quantize`` was asked to do."""

    onnx: Path
    data: Path
    out: Path
    config: QuantizeConfig = field(default_factory=QuantizeConfig)
    calib_size: int = 500
    seed: int = 0
    max_drop: float = 1.0  # top-1 points on the validation patients
    min_agreement: float = 0.99
    search: bool = True  # look for layers to keep in float when accuracy does not hold
    sensitivity_images: int = 300  # validation images used to rank layers
    val_max_images: int | None = None  # cap the validation images (quick runs)
    threads: int = 0  # 0: the cores this process may use
    speed_seconds: float = 1.0
    speed_rounds: int = 3
    keep_cache: bool = True


def report_paths(out: str | Path) -> tuple[Path, Path]:
    """``model.int8.onnx`` -> ``model.int8.quantize.json``, ``model.int8.quantize.md``."""
    out = Path(out)
    base = out.with_suffix("") if out.suffix.lower() == ".onnx" else out
    return base.parent / (base.name + REPORT_SUFFIX), base.parent / (base.name + ".quantize.md")


def _metrics(probs: np.ndarray, targets: np.ndarray, labels) -> dict[str, Any]:
    from edge.metrics import classification_metrics

    d = classification_metrics(probs, targets, list(labels)).to_dict()
    d.pop("confusion", None)
    return d


def run_quantize(job: QuantizeJob, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole flow; returns the report (also written beside ``job.out``)."""
    from calibration.calibset import select_calibration_samples, split_config_for, load_preprocessed
    from calibration.evaluation import load_split, predict_file
    from calibration.quantize_ort import (
        calibrate_ranges,
        count_qdq,
        load_onnx,
        prepare_for_quantization,
        quantizable_nodes,
        quantize_with_ranges,
        read_info,
    )
    from calibration.sensitivity import judge, layer_sensitivity, search_exclusions
    from calibration.speed import default_threads, measure_hz
    from edge.data import FetalPlanesDB
    from edge.errors import FetalPlanesError

    t_start = time.perf_counter()
    config = job.config
    config.validate()
    if job.out.resolve() == job.onnx.resolve():
        raise FetalPlanesError(f"--out {job.out} is the input model", hint="give the INT8 file its own name")
    info = read_info(load_onnx(job.onnx))
    threads = job.threads or default_threads()
    db = FetalPlanesDB.open(job.data)
    json_path, md_path = report_paths(job.out)
    job.out.parent.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix=".fetalplanes-quantize-", dir=job.out.parent))
    try:
        log(f"calibration set: up to {job.calib_size} training-patient images ({config.method})")
        split = split_config_for(info, job.seed)
        calib_samples = select_calibration_samples(db, info.task, job.calib_size, job.seed, split=split)
        calib = load_preprocessed(db, calib_samples, info)
        prepared = prepare_for_quantization(job.onnx, work / "prepared.onnx")
        cache = work / "ranges.json"
        t0 = time.perf_counter()
        calibrate_ranges(prepared, calib, config, cache)
        calib_s = time.perf_counter() - t0

        val = load_split(db, info, "val", max_images=job.val_max_images, seed=job.seed)
        log(f"validation patients: {len(val.samples)} images")
        ref = predict_file(job.onnx, val.x, threads)
        m_fp32 = _metrics(ref, val.targets, info.labels)

        all_int8 = work / "all-int8.onnx"
        quantize_with_ranges(prepared, all_int8, cache, config, info=info)
        p_all = predict_file(all_int8, val.x, threads)
        holds_all = judge(ref, p_all, val.targets, job.max_drop, job.min_agreement)
        log(f"INT8, all layers: top-1 drop {holds_all.drop_points:.2f} points, agreement {holds_all.agreement:.4f}")

        excluded: list[str] = []
        sensitivity: list[dict] = []
        search_info: dict[str, Any] = {"needed": not holds_all.ok, "ran": False}
        final_holds = holds_all
        final_probs = p_all
        if not holds_all.ok and job.search:
            nodes = quantizable_nodes(prepared)
            n_sens = min(len(val.x), job.sensitivity_images)
            idx = np.linspace(0, len(val.x) - 1, n_sens).round().astype(int)
            log(f"accuracy does not hold: ranking {len(nodes)} layers on {n_sens} validation images")
            ranking = layer_sensitivity(prepared, cache, config, val.x[idx], ref[idx], nodes, threads, log)
            sensitivity = [r.to_dict() for r in ranking]
            result = search_exclusions(
                prepared, cache, config, [r.node for r in ranking], val.x, ref, val.targets,
                job.max_drop, job.min_agreement, threads, log,
            )
            search_info.update(ran=True, tried=result.tried, found=result.holds is not None)
            excluded = result.excluded if result.holds is not None else []
        note = {"calibration_images": len(calib_samples), "seed": job.seed}
        final = quantize_with_ranges(prepared, job.out, cache, config, nodes_to_exclude=excluded, info=info, note=note)
        if excluded:
            final_probs = predict_file(final, val.x, threads)
            final_holds = judge(ref, final_probs, val.targets, job.max_drop, job.min_agreement)
        m_int8 = _metrics(final_probs, val.targets, info.labels)

        candidates = [
            {"name": "fp32", "path": str(job.onnx), "precision": "fp32", "holds": True, "val": None},
            {"name": "int8" if not excluded else "int8-mixed", "path": str(final), "precision": "int8",
             "holds": final_holds.ok, "val": final_holds.to_dict(), "layers_in_float": len(excluded)},
        ]
        if excluded:
            all_path = job.out.with_name(job.out.stem + ".all-int8.onnx")
            shutil.copyfile(all_int8, all_path)
            candidates.append({"name": "int8-all-layers", "path": str(all_path), "precision": "int8",
                               "holds": holds_all.ok, "val": holds_all.to_dict(), "layers_in_float": 0})
        log(f"timing batch 1, {threads} thread(s): {', '.join(c['name'] for c in candidates)}")
        speeds = measure_hz([c["path"] for c in candidates], threads, job.speed_seconds, job.speed_rounds)
        for c, s in zip(candidates, speeds):
            c.update(hz=s.hz, latency_ms_p50=s.latency_ms_p50, size_bytes=Path(c["path"]).stat().st_size)
        deploy = max((c for c in candidates if c["holds"]), key=lambda c: c["hz"])
        fp32_c = candidates[0]
        reason = (
            f"fastest file whose validation accuracy holds (top-1 drop <= {job.max_drop} points, "
            f"agreement >= {job.min_agreement}) on this machine: {deploy['hz']:.0f} Hz vs FP32 {fp32_c['hz']:.0f} Hz "
            f"(batch 1, {threads} thread(s))"
        )
        if deploy is not fp32_c and deploy["hz"] < fp32_c["hz"] * (1.0 + SPEED_MARGIN):
            reason = (
                f"INT8 ({deploy['hz']:.0f} Hz) is not at least {100 * SPEED_MARGIN:.0f} % faster than FP32 "
                f"({fp32_c['hz']:.0f} Hz) on this machine (batch 1, {threads} thread(s)): within timing noise, "
                "FP32 carries no quantization risk"
            )
            deploy = fp32_c
        if not final_holds.ok:
            reason += "; the INT8 file's accuracy does NOT hold"
        cache_kept = None
        if job.keep_cache:
            cache_kept = job.out.with_name(job.out.stem + ".calib-ranges.json")
            shutil.copyfile(cache, cache_kept)
        by_name = {r["node"]: r for r in sensitivity}
        report: dict[str, Any] = {
            "kind": "fetalplanes-quantize-report",
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "fp32_model": str(job.onnx),
            "int8_model": str(final),
            "data": str(job.data),
            "task": info.task,
            "labels": list(info.labels),
            "settings": {**config.describe(), "max_drop_points": job.max_drop, "min_agreement": job.min_agreement},
            "calibration": {
                "images": len(calib_samples),
                "split": "train",
                "seed": job.seed,
                "per_class": {lbl: sum(1 for s in calib_samples if s.label == i) for i, lbl in enumerate(info.labels)},
                "seconds": calib_s,
                "ranges_cache": str(cache_kept) if cache_kept else None,
            },
            "validation": {
                "split": "val",
                "images": len(val.samples),
                "fp32": m_fp32,
                "int8_all_layers": holds_all.to_dict(),
                "int8": {**m_int8, **final_holds.to_dict()},
            },
            "qdq_nodes": count_qdq(final),
            "excluded_layers": [
                {"node": n, "rank": i + 1, **({k: v for k, v in by_name[n].items() if k != "node"} if n in by_name else {}),
                 "why": f"rank {i + 1} of {len(sensitivity)} by sensitivity (quantized alone it moved the validation "
                        f"outputs among the most); the {len(excluded)} most sensitive layers are the fewest kept in "
                        "float for which the validation accuracy holds"}
                for i, n in enumerate(excluded)
            ],
            "search": search_info,
            "sensitivity": sensitivity[:30],
            "sizes": {
                "fp32_bytes": fp32_c["size_bytes"],
                "int8_bytes": candidates[1]["size_bytes"],
                "int8_over_fp32": candidates[1]["size_bytes"] / fp32_c["size_bytes"],
            },
            "speed": {
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "cpu": _cpu_name(),
                "vnni": _has_vnni(),
                "threads": threads,
                "batch": 1,
                "candidates": candidates,
            },
            "accuracy_holds": final_holds.ok,
            "recommendation": {
                "file": deploy["path"],
                "name": deploy["name"],
                "precision": deploy["precision"],
                "hz": deploy["hz"],
                "threads": threads,
                "reason": reason,
            },
            "seconds": time.perf_counter() - t_start,
        }
        json_path.write_text(json.dumps(report, indent=2, default=float))
        md_path.write_text(report_markdown(report))
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _has_vnni() -> bool | None:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return ("avx512_vnni" in flags) or ("avx_vnni" in flags)


def _pct(x: float) -> str:
    return f"{100.0 * x:.2f} %"


def report_markdown(r: dict[str, Any]) -> str:
    """The quantize report as markdown."""
    v = r["validation"]
    s = r["settings"]
    lines = [
        f"# INT8 quantization: {Path(r['fp32_model']).name} -> {Path(r['int8_model']).name}",
        "",
        f"Settings: method **{s['method']}**, activations **{s['activations']}**"
        f"{' (symmetric)' if s['activation_symmetric'] else ' (asymmetric)'}, weights {s['weights']}, "
        f"target {s['target']}, format QDQ, reduce_range {s['reduce_range']}.",
        f"Calibration: {r['calibration']['images']} images from training patients (seed {r['calibration']['seed']}).",
        "",
        f"## Accuracy on the validation patients ({v['images']} images)",
        "",
        "| model | top-1 | drop (points) | argmax agreement | holds |",
        "|---|---|---|---|---|",
        f"| FP32 | {_pct(v['fp32']['top1_accuracy'])} | | | |",
        f"| INT8, all layers | {_pct(v['int8_all_layers']['top1_int8'])} | {v['int8_all_layers']['drop_points']:.2f} "
        f"| {_pct(v['int8_all_layers']['agreement'])} | {'yes' if v['int8_all_layers']['ok'] else 'no'} |",
    ]
    if r["excluded_layers"]:
        lines.append(
            f"| INT8, {len(r['excluded_layers'])} layer(s) in float | {_pct(v['int8']['top1_int8'])} | "
            f"{v['int8']['drop_points']:.2f} | {_pct(v['int8']['agreement'])} | {'yes' if v['int8']['ok'] else 'no'} |"
        )
    lines += ["", f"Allowed: drop <= {s['max_drop_points']} points, agreement >= {s['min_agreement']}.", ""]
    if r["excluded_layers"]:
        lines += ["## Layers kept in float", "", "| node | op | agreement alone | mean abs prob diff alone |", "|---|---|---|---|"]
        for e in r["excluded_layers"]:
            lines.append(f"| {e['node']} | {e.get('op_type', '')} | {e.get('agreement', float('nan')):.4f} | "
                         f"{e.get('mean_abs_prob_diff', float('nan')):.4f} |")
        n_ex = len(r["excluded_layers"])
        lines += ["", f"Each layer was quantized alone and ranked by how far it moved the validation outputs; the "
                  f"{n_ex} most sensitive are the fewest kept in float for which the accuracy holds "
                  f"(tried: {', '.join(str(t['k']) for t in r['search'].get('tried', []))} layers).", ""]
    elif r["search"].get("ran") and not r["search"].get("found"):
        lines += ["No set of layers kept in float made the accuracy hold.", ""]
    sp = r["speed"]
    lines += [
        f"## Speed on this machine ({sp['cpu']}, VNNI: {sp['vnni']}, batch 1, {sp['threads']} thread(s))",
        "",
        "| file | precision | size | Hz | p50 latency | accuracy holds |",
        "|---|---|---|---|---|---|",
    ]
    for c in sp["candidates"]:
        lines.append(f"| {Path(c['path']).name} | {c['name']} | {c['size_bytes'] / 1e6:.2f} MB | {c['hz']:.0f} | "
                     f"{c['latency_ms_p50']:.2f} ms | {'yes' if c['holds'] else 'no'} |")
    rec = r["recommendation"]
    lines += [
        "",
        f"INT8 / FP32 size: {r['sizes']['int8_over_fp32']:.2f}.",
        "",
        f"**Deploy here: `{Path(rec['file']).name}` ({rec['name']}, {rec['hz']:.0f} Hz)**: {rec['reason']}.",
        "",
    ]
    return "\n".join(lines)
