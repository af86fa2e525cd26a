"""``fetalplanes quantize`` end to end: calibrate, quantize, check on validation patients, repair, time, recommend.

1. Calibration set from training patients (:mod:`calibration.calibset`), ranges
   calibrated once (:func:`calibration.quantize_ort.calibrate_ranges`).
2. Full INT8 model; FP32 and INT8 top-1 on the VALIDATION patients.
3. If the drop exceeds ``max_drop`` points, the agreement falls below
   ``min_agreement``, or the agreement to expect on new patients
   (:func:`calibration.sensitivity.expected_agreement`) falls short of the
   search target (``min_agreement`` with headroom: by default half the
   allowed changed predictions, see ``search_headroom``): per-layer
   sensitivity and the smallest set of layers to keep in float
   (:mod:`calibration.sensitivity`); the output keeps just those (on the CPU
   their weights are still stored as int8, or fp16 where int8 weights alone
   cost accuracy, and expanded once at load: no speed cost against FP32).
4. Batch-1 Hz of FP32 and of each INT8 file on this machine; the file to deploy
   here is the one :func:`edge.deployability.choose` picks: the fastest the
   deployability rule accepts (FP32 always), FP32 unless INT8 is clearly faster.
5. ``<out stem>.quantize.json`` and ``.md`` beside the output
   (:class:`edge.quantize_report.QuantizeReport`, :func:`edge.quantize_report.report_paths`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from calibration.quantize_ort import QuantizeConfig
from edge.deployability import MAX_DROP_POINTS, MIN_AGREEMENT, SPEED_MARGIN, choose
from edge.quantize_report import JSON_SUFFIX as REPORT_SUFFIX, QuantizeReport, report_paths

__all__ = ["QuantizeJob", "run_quantize", "report_paths", "report_markdown", "REPORT_SUFFIX", "SPEED_MARGIN"]


@dataclass
class QuantizeJob:
    """Everything ``fetalplanes quantize`` was asked to do."""

    onnx: Path
    data: Path
    out: Path
    config: QuantizeConfig = field(default_factory=QuantizeConfig)
    calib_size: int = 500
    seed: int = 0
    max_drop: float = MAX_DROP_POINTS  # top-1 points on the validation patients
    min_agreement: float = MIN_AGREEMENT
    #: the layer search aims for an expected agreement on new patients with only this fraction of the changed
    #: predictions ``min_agreement`` allows (0.5: half). The check images are few and partly from training
    #: patients (larger margins than new patients): a file that only just met 99 % on them fell below 99 % on
    #: the test split (benchmarks/results/quantize_phantom.md).
    search_headroom: float = 0.5
    search: bool = True  # look for layers to keep in float when accuracy does not hold
    sensitivity_images: int = 300  # check images used to rank layers
    agreement_images: int = 1000  # label-free training images (not calibration ones) added to the agreement check
    put_back: bool = True  # after the search, try each float layer in INT8 again (largest weights first)
    put_back_kl_slack: float | None = 1.1  # a put-back may raise the mean KL at most this factor over the bisection set
    size_target: float | None = 1.0 / 3.0  # put-back stops once INT8 <= this fraction of FP32 (None: try every layer)
    #: how layers to keep in float are ranked: "speed" (KL regained per microsecond the layer costs in float, from
    #: ONNX Runtime's profile of the FP32 and the fully INT8 file) or "sensitivity" (KL alone)
    layer_choice: str = "speed"
    val_max_images: int | None = None  # cap the validation images (quick runs)
    threads: int = 0  # 0: the cores this process may use
    speed_seconds: float = 1.0
    speed_rounds: int = 3
    keep_cache: bool = True
    allow_missing_classes: bool = False  # calibrate even when the training split lacks a class (else exit 2)


def _metrics(probs: np.ndarray, targets: np.ndarray, labels) -> dict[str, Any]:
    from fetaldata.metrics import classification_metrics

    d = classification_metrics(probs, targets, list(labels)).to_dict()
    d.pop("confusion", None)
    return d


def run_quantize(job: QuantizeJob, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole flow; returns the report (also written beside ``job.out``)."""
    from calibration.calibset import (
        check_class_coverage, class_coverage, load_preprocessed, select_calibration_samples, split_config_for,
    )
    from calibration.evaluation import load_split, predict_file
    from calibration.quantize_ort import (
        calibrate_ranges,
        count_qdq,
        load_onnx,
        prepare_for_quantization,
        quantizable_nodes,
        quantize_with_ranges,
        read_info,
        METHODS,
        AUTO,
    )
    from calibration.sensitivity import (
        LAYER_CHOICES, float_costs, judge, layer_sensitivity, search_exclusions, speed_aware_ranking,
    )
    from calibration.speed import default_threads, measure_hz
    from fetaldata import open_dataset
    from edge.errors import FetalPlanesError

    t_start = time.perf_counter()
    config = job.config
    config.validate()
    if not 0.0 < job.search_headroom <= 1.0:
        raise FetalPlanesError(f"--search-headroom {job.search_headroom} is not in (0, 1]",
                               hint="use e.g. 0.5 (aim for half the allowed changed predictions) or 1 (none)")
    if job.layer_choice not in LAYER_CHOICES:
        raise FetalPlanesError(f"--layer-choice {job.layer_choice!r} is unknown", hint=f"use one of: {', '.join(LAYER_CHOICES)}")
    search_agreement = 1.0 - job.search_headroom * (1.0 - job.min_agreement)
    if job.out.resolve() == job.onnx.resolve():
        raise FetalPlanesError(f"--out {job.out} is the input model", hint="give the INT8 file its own name")
    info = read_info(load_onnx(job.onnx))
    from edge.backends import open_runner

    with open_runner(job.onnx, threads=1):  # loads here, and takes the input its metadata says (else exit 2)
        pass
    threads = job.threads or default_threads()
    db = open_dataset(job.data)
    json_path, md_path = report_paths(job.out)
    job.out.parent.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix=".fetalplanes-quantize-", dir=job.out.parent))
    try:
        log(f"calibration set: up to {job.calib_size} training-patient images ({config.method})")
        split = split_config_for(info, job.seed)
        calib_samples = select_calibration_samples(db, info.task, job.calib_size, job.seed, split=split)
        coverage = class_coverage(calib_samples, list(info.task_labels))
        log(f"calibration set: {len(calib_samples)} images; per class: "
            + ", ".join(f"{lbl} {n}" for lbl, n in coverage.items()))
        missing_classes = check_class_coverage(calib_samples, list(info.task_labels), str(job.data), job.allow_missing_classes)
        if missing_classes:
            log(f"WARNING: no calibration image of {', '.join(missing_classes)} (--allow-missing-classes): "
                "INT8 ranges never saw these planes; check the INT8 file on images of them with `compare`")
        calib = load_preprocessed(db, calib_samples, info)
        prepared = prepare_for_quantization(job.onnx, work / "prepared.onnx")

        val = load_split(db, info, "val", max_images=job.val_max_images, seed=job.seed)
        extra = agreement_samples(db, info, calib_samples, job.agreement_images, job.seed, split)
        # check images: the labelled validation patients first, then label-free training images for agreement
        x_check = np.concatenate([val.x, load_preprocessed(db, extra, info)]) if extra else val.x
        log(f"check images: {len(val.samples)} validation (labelled) + {len(extra)} training not used for "
            "calibration (agreement only)")
        ref_all = predict_file(job.onnx, x_check, threads)
        ref = ref_all[: len(val.x)]
        task = info.map_probabilities if info.label_map else None  # a label-mapped model scores on the task's labels
        m_fp32 = _metrics(info.map_probabilities(ref), val.targets, info.task_labels)

        methods = list(METHODS) if config.method == AUTO else [config.method]
        method_trials: list[dict[str, Any]] = []
        best = None
        for method in methods:
            mconfig = replace(config, method=method)
            t0 = time.perf_counter()
            mcache = work / f"ranges-{method}.json"
            calibrate_ranges(prepared, calib, mconfig, mcache)
            secs = time.perf_counter() - t0
            mpath = work / f"all-int8-{method}.onnx"
            quantize_with_ranges(prepared, mpath, mcache, mconfig, info=info)
            h = judge(ref_all, predict_file(mpath, x_check, threads), val.targets, job.max_drop, job.min_agreement,
                      task=task)
            method_trials.append({"method": method, "calibration_seconds": secs, **h.to_dict()})
            log(f"INT8, all layers, {method}: top-1 drop {h.drop_points:.2f} points, agreement {h.agreement:.4f} "
                f"({h.flips} flips of {h.agreement_images}), KL {h.kl:.4f} (calibration {secs:.0f} s)")
            key = (not h.ok, -h.agreement, h.kl)
            if best is None or key < best[0]:
                best = (key, method, mcache, mpath, h, secs)
        _, chosen, cache, all_int8, holds_all, calib_s = best
        config = replace(config, method=chosen)
        if len(methods) > 1:
            log(f"calibration method: {chosen} (its fully INT8 model is closest to FP32)")

        excluded: list[str] = []
        sensitivity: list[dict] = []
        target_all = replace(holds_all, min_expected=search_agreement)
        search_info: dict[str, Any] = {"needed": not target_all.ok, "ran": False,
                                       "target_expected_agreement": search_agreement}
        put_back_by_node: dict[str, dict] = {}
        if not target_all.ok and job.search:
            nodes = quantizable_nodes(prepared)
            n_sens = min(len(x_check), job.sensitivity_images)
            idx = np.linspace(0, len(x_check) - 1, n_sens).round().astype(int)
            log(f"accuracy short of the search target (top-1 drop <= {job.max_drop} points, agreement >= "
                f"{job.min_agreement}, expected agreement on new patients >= {search_agreement:.4f}; here "
                f"{holds_all.expected_agreement:.4f}): ranking {len(nodes)} layers by KL on {n_sens} check images")
            ranking = layer_sensitivity(prepared, cache, config, x_check[idx], ref_all[idx], nodes, threads, log)
            sensitivity = [r.to_dict() for r in ranking]
            order_bytes = {r.node: r.weight_bytes for r in ranking}
            search_info["layer_choice"] = job.layer_choice
            if job.layer_choice == "speed":
                costs = float_costs(prepared, all_int8, nodes, x_check, threads)
                by_sens = [r.node for r in ranking]
                ranking = speed_aware_ranking(ranking, costs)
                for d in sensitivity:
                    d["float_cost_us"] = costs.get(d["node"], 0.0)
                moved = sum(1 for a, b in zip(by_sens, (r.node for r in ranking)) if a != b)
                search_info["float_costs_us"] = costs
                search_info["speed_ranking"] = [r.node for r in ranking]
                log(f"layer choice by speed: each layer's KL per microsecond it costs in float (ONNX Runtime profile "
                    f"of FP32 vs INT8, batch 1); {moved} of {len(by_sens)} ranks differ from sensitivity alone")

            if config.float_layer_weights == "auto" and config.float_weight_storage == "int8":
                config, search_info["float_weights"] = _choose_float_weights(
                    prepared, cache, config, nodes, x_check, ref_all, val.targets, job.max_drop, job.min_agreement,
                    search_agreement, threads, work, log, task)
            result = search_exclusions(
                prepared, cache, config, [r.node for r in ranking], x_check, ref_all, val.targets,
                job.max_drop, job.min_agreement, threads, log,
                weight_bytes=order_bytes,
                sensitivity={r.node: r.score for r in ranking},
                prune=job.put_back,
                kl_slack=job.put_back_kl_slack,
                # TensorRT files keep float weights behind Q/DQ pairs (TensorRT stores INT8 in the engine): no size goal
                target_bytes=None if job.size_target is None or config.target == "tensorrt"
                else int(Path(job.onnx).stat().st_size * job.size_target),
                min_expected=search_agreement,
                task=task,
            )
            search_info.update(ran=True, tried=result.tried, found=result.holds is not None,
                               smallest_k=result.smallest_k, put_back=result.put_back)
            put_back_by_node = {t["node"]: t for t in result.put_back if t.get("node")}
            if result.holds is not None:
                excluded = result.excluded
            elif config.float_weight_storage != "fp32":
                # not even every layer in float meets the target (rounded weights alone move it): keep that
                # file if it meets the asked threshold itself
                excluded = list(result.excluded)
                search_info["fallback"] = f"every layer in float, weights stored {config.float_weight_storage}"
        note = {"calibration_images": len(calib_samples), "seed": job.seed}
        staged = work / "final.onnx"  # written in several steps: moved to --out only when complete
        final = quantize_with_ranges(prepared, staged, cache, config, nodes_to_exclude=excluded, info=info, note=note)
        final_probs = predict_file(final, x_check, threads)
        final_holds = judge(ref_all, final_probs, val.targets, job.max_drop, job.min_agreement, task=task)
        if search_info.get("fallback") and not final_holds.ok:
            excluded = []
            final = quantize_with_ranges(prepared, staged, cache, config, info=info, note=note)
            final_probs = predict_file(final, x_check, threads)
            final_holds = judge(ref_all, final_probs, val.targets, job.max_drop, job.min_agreement, task=task)
        os.replace(staged, job.out)  # atomic: an interrupted quantize leaves no half-written --out
        final = job.out
        m_int8 = _metrics(info.map_probabilities(final_probs[: len(val.x)]), val.targets, info.task_labels)

        candidates = [
            {"name": "fp32", "path": str(job.onnx), "precision": "fp32", "holds": True, "val": None},
            {"name": "int8" if not excluded else "int8-mixed", "path": str(final), "precision": "int8",
             "holds": final_holds.ok, "val": final_holds.to_dict(), "layers_in_float": len(excluded),
             "evidence": final_holds.evidence.to_dict()},
        ]
        if excluded:
            all_path = job.out.with_name(job.out.stem + ".all-int8.onnx")
            _atomic_copy(all_int8, all_path)
            candidates.append({"name": "int8-all-layers", "path": str(all_path), "precision": "int8",
                               "holds": holds_all.ok, "val": holds_all.to_dict(), "layers_in_float": 0,
                               "evidence": holds_all.evidence.to_dict()})
        log(f"timing batch 1, {threads} thread(s): {', '.join(c['name'] for c in candidates)}")
        speeds = measure_hz([c["path"] for c in candidates], threads, job.speed_seconds, job.speed_rounds)
        for c, s in zip(candidates, speeds):
            c.update(hz=s.hz, latency_ms_p50=s.latency_ms_p50, size_bytes=Path(c["path"]).stat().st_size)
        fp32_c = candidates[0]
        deploy, _ = choose(candidates, lambda c: c["hz"], lambda c: c["holds"], reference=fp32_c, margin=SPEED_MARGIN)
        fastest = max((c for c in candidates if c["holds"]), key=lambda c: c["hz"])
        if deploy is fp32_c and fastest is not fp32_c:
            reason = (
                f"INT8 ({fastest['hz']:.0f} Hz) is not at least {100 * SPEED_MARGIN:.0f} % faster than FP32 "
                f"({fp32_c['hz']:.0f} Hz) on this machine (batch 1, {threads} thread(s)): within timing noise, "
                "FP32 carries no quantization risk"
            )
        else:
            reason = (
                f"fastest file whose validation accuracy holds (top-1 drop <= {job.max_drop} points, "
                f"agreement >= {job.min_agreement}) on this machine: {deploy['hz']:.0f} Hz vs FP32 "
                f"{fp32_c['hz']:.0f} Hz (batch 1, {threads} thread(s))"
            )
        if not final_holds.ok:
            reason += "; the INT8 file's accuracy does NOT hold"
        cache_kept = None
        if job.keep_cache:
            cache_kept = job.out.with_name(job.out.stem + ".calib-ranges.json")
            _atomic_copy(cache, cache_kept)
        by_name = {r["node"]: r for r in sensitivity}
        rank_of = {r["node"]: i + 1 for i, r in enumerate(sensitivity)}
        report: dict[str, Any] = {
            "kind": "fetalplanes-quantize-report",
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "fp32_model": str(job.onnx),
            "int8_model": str(final),
            "data": str(job.data),
            "task": info.task,
            "labels": list(info.labels),
            "settings": {**config.describe(), "max_drop_points": job.max_drop, "min_agreement": job.min_agreement},
            "gate": {"min_agreement": job.min_agreement, "max_drop_points": job.max_drop},
            "calibration": {
                "images": len(calib_samples),
                "split": "train",
                "seed": job.seed,
                "per_class": coverage,
                "missing_classes": missing_classes,
                "seconds": calib_s,
                "ranges_cache": str(cache_kept) if cache_kept else None,
            },
            "methods": method_trials,
            "criterion": {
                "labelled_images": len(val.samples),
                "agreement_images": len(x_check),
                "agreement_extra_training_images": len(extra),
                "resolution_points": final_holds.resolution_points,
                "max_drop_points": job.max_drop,
                "allowed_drop_points": final_holds.allowed_drop_points,
                "min_agreement": job.min_agreement,
                "search_headroom": job.search_headroom,
                "search_target_agreement": search_agreement,
                "allowed_flips": int(np.floor((1.0 - job.min_agreement) * len(x_check) + 1e-9)),
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
                {"node": n, "rank": rank_of.get(n), **({k: v for k, v in by_name[n].items() if k != "node"}
                                                       if n in by_name else {}),
                 "why": _why_kept(n, rank_of.get(n), len(sensitivity), put_back_by_node.get(n))}
                for n in excluded
            ],
            "search": search_info,
            "sensitivity": sensitivity[:30],
            "sizes": {
                "fp32_bytes": fp32_c["size_bytes"],
                "int8_bytes": candidates[1]["size_bytes"],
                "int8_over_fp32": candidates[1]["size_bytes"] / fp32_c["size_bytes"],
                "float_weight_bytes_kept": sum(by_name.get(n, {}).get("weight_bytes", 0) for n in excluded),
                "within_a_third": candidates[1]["size_bytes"] <= fp32_c["size_bytes"] / 3.0,
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
        record = QuantizeReport.from_dict(json.loads(json.dumps(report, default=float)), str(json_path))
        record.write(json_path)
        report = record.to_dict()
        _atomic_write(md_path, report_markdown(report))
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _atomic_copy(src: str | Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _choose_float_weights(prepared, cache, config, nodes, x_check, ref_all, targets, max_drop, min_agreement,
                          expected, threads, work: Path, log, task=None) -> tuple[QuantizeConfig, dict[str, Any]]:
    """``--float-layer-weights auto`` on the CPU: how layers kept in float store their weights.

    int8 for all of them when rounding the weights to int8 alone (every layer in
    float, no activation quantized) meets the search target. Otherwise the
    weights are ranked by what int8 rounding of each alone does (KL), and the
    fewest most sensitive are stored as fp16 (which alone changed no prediction
    on the phantom models): on a GPU-trained MobileNetV3-small, int8 weights
    changed 2 % of the predictions, almost all through the first two 3x3
    convolutions (144 weights each). fp16 for all when no such set is found.
    """
    from calibration.quantize_ort import compress_float_weights, node_op_types, quantize_with_ranges
    from calibration.sensitivity import _predict_plain, judge, kl_divergence, smallest_k

    path = quantize_with_ranges(prepared, work / "float-int8-weights.onnx", cache,
                                replace(config, float_layer_weights="int8"), nodes_to_exclude=nodes, metadata=False)
    h = judge(ref_all, _predict_plain(path, x_check, threads), targets, max_drop, min_agreement, expected, task)
    info: dict[str, Any] = {"int8_weights_only": h.to_dict()}
    log(f"weights rounded to int8 alone (every layer in float): agreement {h.agreement:.4f}, expected on new "
        f"patients {h.expected_agreement:.4f}, drop {h.drop_points:.2f} points: {'meets' if h.ok else 'misses'} "
        "the target")
    if h.ok:
        return replace(config, float_layer_weights="int8"), {**info, "storage": "int8", "fp16_weight_nodes": []}
    ops = node_op_types(prepared)
    weighted = [n for n in nodes if ops.get(n) in ("Conv", "ConvTranspose", "Gemm", "MatMul")]
    one = work / "one-int8-weight.onnx"
    scores = []
    for n in weighted:
        if not compress_float_weights(prepared, one, [n], "int8"):
            continue  # no float weight to round (shared or computed)
        scores.append((float(kl_divergence(ref_all, _predict_plain(one, x_check, threads)).mean()), n))
    order = [n for _, n in sorted(scores, reverse=True)]
    trials: dict[int, Any] = {}

    def holds(m: int) -> bool:
        c = replace(config, float_layer_weights="int8", fp16_weight_nodes=order[:m])
        p = quantize_with_ranges(prepared, work / "float-mixed-weights.onnx", cache, c, nodes_to_exclude=nodes,
                                 metadata=False)
        trials[m] = judge(ref_all, _predict_plain(p, x_check, threads), targets, max_drop, min_agreement, expected,
                          task)
        return trials[m].ok

    m = smallest_k(len(order), holds) if order else None
    if m is None or m == len(order):
        log("  no small set of fp16 weights repairs it: layers kept in float store every weight as fp16")
        return replace(config, float_layer_weights="fp16"), {**info, "storage": "fp16", "fp16_weight_nodes": []}
    names = ", ".join(order[: min(m, 3)]) + (f" and {m - 3} more" if m > 3 else "")
    log(f"  the {m} weight(s) most sensitive to int8 rounding stay fp16 ({names}): expected "
        f"agreement {trials[m].expected_agreement:.4f}; the other float layers store int8 weights")
    return (replace(config, float_layer_weights="int8", fp16_weight_nodes=order[:m]),
            {**info, "storage": "int8", "fp16_weight_nodes": order[:m], "with_fp16_weights": trials[m].to_dict()})


def agreement_samples(db, info, calib_samples, limit: int, seed: int, split) -> list:
    """Up to ``limit`` training-split samples that calibration did not use, class-stratified (label-free check)."""
    from dataclasses import replace as _replace

    from fetaldata import task_samples

    if limit <= 0:
        return []
    used = {s.record.image_name for s in calib_samples}
    rest = [s for s in task_samples(db, "train", _replace(split, max_per_split=None)) if s.record.image_name not in used]
    if len(rest) <= limit:
        return rest
    idx = np.linspace(0, len(rest) - 1, limit).round().astype(int)
    return [rest[i] for i in idx]


def _why_kept(node: str, rank: int | None, n_ranked: int, put_back: dict | None) -> str:
    where = f"rank {rank} of {n_ranked} by KL divergence when quantized alone" if rank else "not ranked"
    if put_back is None:
        return f"{where}; among the fewest most sensitive layers for which the accuracy holds"
    return (f"{where}; put back in INT8 on its own, the accuracy no longer held "
            f"({put_back['weight_bytes'] / 1e3:.1f} kB of float weights)")


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
    c = r["criterion"]
    lines = [
        f"# INT8 quantization: {Path(r['fp32_model']).name} -> {Path(r['int8_model']).name}",
        "",
        f"Settings: method **{s['method']}**, activations **{s['activations']}**"
        f"{' (symmetric)' if s['activation_symmetric'] else ' (asymmetric)'}, weights {s['weights']}, "
        f"target {s['target']}, format QDQ, reduce_range {s['reduce_range']}.",
        f"Calibration: {r['calibration']['images']} images from training patients (seed {r['calibration']['seed']}).",
        f"Per class: {', '.join(f'{k} {n}' for k, n in r['calibration'].get('per_class', {}).items())}"
        + (f"; **no calibration image of {', '.join(r['calibration']['missing_classes'])}** (--allow-missing-classes)"
           if r['calibration'].get('missing_classes') else "") + ".",
        "",
        f"## Accuracy on the check images",
        "",
        f"Top-1 on the {v['images']} labelled validation-patient images (one image = {c['resolution_points']:.2f} points, "
        f"so a drop is allowed up to {c['allowed_drop_points']:.2f} points: --max-drop {c['max_drop_points']}, but "
        f"never less than one image); argmax agreement with FP32 on {c['agreement_images']} images: those plus "
        f"{c['agreement_extra_training_images']} training-patient images calibration did not use (agreement needs no "
        f"labels), at least {c['min_agreement']} (at most {c['allowed_flips']} changed predictions).",
        f"The layer search also asks for an expected agreement on new patients >= "
        f"{c.get('search_target_agreement', c['min_agreement']):.4f} (--search-headroom {c.get('search_headroom', 1.0)}): "
        "each check image's loss of FP32 logit margin set against each validation image's margin, because these "
        "images are few and partly from training patients, on which the model is surer than on new patients; a "
        "file that only just meets the threshold here tends to fall below it on new patients.",
        "",
        "| model | top-1 (val) | drop (points) | argmax agreement | flips | expected on new patients | mean KL | holds |",
        "|---|---|---|---|---|---|---|---|",
        f"| FP32 | {_pct(v['fp32']['top1_accuracy'])} | | | | | | |",
    ]
    for m in r.get("methods", []):
        lines.append(f"| INT8, all layers, {m['method']} | {_pct(m['top1_int8'])} | {m['drop_points']:.2f} | "
                     f"{_pct(m['agreement'])} | {m['flips']} | {_pct(m.get('expected_agreement', 1.0))} | "
                     f"{m['kl']:.4f} | {'yes' if m['ok'] else 'no'} |")
    if r["excluded_layers"]:
        lines.append(
            f"| INT8 ({s['method']}), {len(r['excluded_layers'])} layer(s) in float | {_pct(v['int8']['top1_int8'])} | "
            f"{v['int8']['drop_points']:.2f} | {_pct(v['int8']['agreement'])} | {v['int8']['flips']} | "
            f"{_pct(v['int8'].get('expected_agreement', 1.0))} | {v['int8']['kl']:.4f} | "
            f"{'yes' if v['int8']['ok'] else 'no'} |"
        )
    lines += ["", f"Calibration method used: **{s['method']}**"
              + (" (the closest to FP32 of those tried)" if len(r.get("methods", [])) > 1 else "") + ".", ""]
    if r["excluded_layers"]:
        fw = s.get("float_layer_weights", "fp32")
        fallback = r["search"].get("float_weights", {}).get("storage") == "fp16"
        stored = {"int8": "stored as int8 per channel and expanded to float once when the session is created, so "
                          "these layers compute in float at FP32 speed from a quarter of the bytes",
                  "fp16": "stored as fp16 and expanded to float once when the session is created (FP32 speed, half "
                          "the bytes)" + (": rounding the weights to int8 alone, every layer in float, already missed "
                                          "the search target" if fallback else "")}.get(fw, "stored in float")
        f16 = [n for n in s.get("fp16_weight_nodes", []) if n in {e["node"] for e in r["excluded_layers"]}]
        if fw == "int8" and f16:
            stored += (f", except {len(f16)} stored as fp16 because int8 rounding of just their weights cost accuracy "
                       f"({', '.join(f16)})")
        lines += ["## Layers kept in float", "", f"Their activations stay in float; their weights are {stored}.", "",
                  "| node | op | weights (FP32 bytes) | KL alone | agreement alone | why |", "|---|---|---|---|---|---|"]
        for e in r["excluded_layers"]:
            lines.append(f"| {e['node']} | {e.get('op_type', '')} | {e.get('weight_bytes', 0) / 1e3:.1f} kB | "
                         f"{e.get('kl', float('nan')):.4f} | {e.get('agreement', float('nan')):.4f} | {e['why']} |")
        se = r["search"]
        backs = [b for b in se.get("put_back", []) if b.get("node")]
        stopped = any(b.get("stopped") for b in se.get("put_back", []))
        lines += ["", f"Each layer was quantized alone and ranked by the KL divergence it caused; the {se.get('smallest_k')} "
                  f"most sensitive were the fewest kept in float that met the search target; then each of those, "
                  f"largest weights first, was tried in INT8 again: {sum(1 for b in backs if b['int8_ok'])} of "
                  f"{len(backs)} went back to INT8, {len(r['excluded_layers'])} stayed in float"
                  + (" (the put-back stopped once the file was within the size target)" if stopped else "") + ".", ""]
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
        f"INT8 / FP32 size: {r['sizes']['int8_over_fp32']:.3f} "
        f"({'within' if r['sizes']['within_a_third'] else 'NOT within'} a third; "
        f"{r['sizes']['float_weight_bytes_kept'] / 1e3:.1f} kB of FP32 weights in layers kept in float"
        + (f", stored as {s.get('float_layer_weights')}" if s.get("float_layer_weights") in ("int8", "fp16") else "")
        + ").",
        "",
        f"**Deploy here: `{Path(rec['file']).name}` ({rec['name']}, {rec['hz']:.0f} Hz)**: {rec['reason']}.",
        "",
    ]
    return "\n".join(lines)
