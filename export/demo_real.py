"""The demo's real step: the vendored SonoNet-16 on the real images in ``../shared/data`` and one real clip.

FP32 on every real image (hc18_sample, the 12 FETAL_PLANES_DB images, the sononet_examples screen grabs cut to
their known image area), accuracy per source with its 95 % Wilson interval; INT8 (``quantize``, minmax, every
layer, calibrated on the real folder's ``train`` half) against FP32 on the held-out ``val`` half; the live loop
on one real clip (adult cardiac, not obstetric: the share of frames read as Other or uncertain). Skipped, with
the reason in the report, when the shared data is absent.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = ("REAL ultrasound, but few images from other cohorts than the model's training data, read by a published "
        "model (SonoNet-16) never fitted to them - not clinical accuracy")
SOURCE_PREFIX = {"hc18_": "hc18_sample", "fpdb_": "fetal_planes_db", "sononet_": "sononet_examples"}


def shared_data_dir(configured: str = "") -> Path:
    """``configured``, else $FETALPLANES_SHARED_DATA, else ``../shared/data`` beside the checkout."""
    return Path(configured or os.environ.get("FETALPLANES_SHARED_DATA") or REPO.parent / "shared" / "data")


def _cap(folder: Path, per_source: int) -> None:
    """Keep at most ``per_source`` images of each source in a real folder's labels.csv (quick runs)."""
    import csv

    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kept, seen = [], {}
    for r in rows:
        seen[r["source"]] = seen.get(r["source"], 0) + 1
        if seen[r["source"]] <= per_source:
            kept.append(r)
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)


def _by_source(predictions: list, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    from fetaldata.metrics import format_proportion, wilson_interval

    out: dict[str, dict[str, Any]] = {}
    for p in predictions:
        src = next((s for pre, s in SOURCE_PREFIX.items() if p.image.startswith(pre)), "other")
        e = out.setdefault(src, {"images": 0, "correct": 0})
        e["images"] += 1
        e["correct"] += int(p.predicted == p.target)
    for e in out.values():
        e["accuracy"] = e["correct"] / e["images"]
        e["ci95"] = list(wilson_interval(e["correct"], e["images"]))
        e["text"] = format_proportion(e["correct"], e["images"], always_interval=True)
    return out


def read_real_folder(model: str | Path, folder: str | Path, split: str = "test",
                     interpolation: str | None = None) -> tuple[Any, np.ndarray]:
    """The one way the demo's real step and ``benchmarks/sononet_real.py`` read a real folder
    (:func:`fetaldata.real_samples.write_real_folder`): ``evaluate_model`` on its ``split``, the plane of an image
    being the most probable plane (a label-mapped model's probabilities summed per plane, as ``evaluate``,
    ``compare`` and ``quantize`` score it). ``interpolation``: another resize mode than the model description's.

    Returns (the ``EvaluationResult``, the native probabilities (N, the model's own labels) of the same images)."""
    import dataclasses

    from export.evaluate import evaluate_model, open_model

    runner = open_model(model)
    if interpolation:
        runner.info = dataclasses.replace(runner.info, interpolation=interpolation)
    native: list[np.ndarray] = []
    predict = runner.predict

    def recording(images):  # the model's own probabilities, before evaluate maps them onto the planes
        probs = predict(images)
        native.append(np.asarray(probs, dtype=np.float64))
        return probs

    runner.predict = recording
    try:
        result = evaluate_model(model, folder, split, runner=runner)
    finally:
        runner.deactivate()
    return result, np.concatenate(native) if native else np.zeros((0, runner.info.num_classes))


def real_step(demo: Any) -> tuple[dict[str, Any], list[Path]]:
    """Run the real step for ``demo`` (an ``export.demo.Demo``): (result, files)."""
    from edge.default_model import DEFAULT_MODEL
    from export.evaluate import evaluate_model
    from fetaldata.real_samples import SOURCES, write_real_folder

    c = demo.c
    data = shared_data_dir(c.real_data)
    if not c.real:
        return {"skipped": "turned off for this run (quick demo)"}, []
    missing = [s for s in (*SOURCES, "scanner_video") if not (data / s).is_dir()]
    if missing or not DEFAULT_MODEL.is_file():
        why = f"no {', '.join(missing)} in {data}" if missing else f"no default model {DEFAULT_MODEL}"
        demo.log(f"    real step skipped: {why}")
        return {"skipped": why}, []
    t0 = time.perf_counter()
    root = demo.out / "real"
    if root.exists():
        shutil.rmtree(root)
    folder = write_real_folder(data, root / "data").root
    if c.real_max_per_source:
        _cap(folder, c.real_max_per_source)
    times: dict[str, float] = {}
    fp32, _ = read_real_folder(DEFAULT_MODEL, folder, "test")
    times["fp32_all_images"] = time.perf_counter() - t0
    per_source = _by_source(fp32.predictions)
    for src, e in per_source.items():
        demo.log(f"    {src}: {e['correct']}/{e['images']} = {e['text']} (real, FP32)")

    # INT8: calibrate on the real folder's train half, check on its held-out val half
    from calibration.quantize_ort import QuantizeConfig
    from calibration.quantize_workflow import QuantizeJob, run_quantize

    t1 = time.perf_counter()
    int8 = root / "sononet16.int8.onnx"
    q = run_quantize(QuantizeJob(onnx=DEFAULT_MODEL, data=folder, out=int8, config=QuantizeConfig(method="minmax"),
                                 search=False, calib_size=500, seed=c.seed, threads=c.threads,
                                 speed_seconds=max(0.05, c.bench_seconds / 2), speed_rounds=c.bench_rounds),
                     lambda m: None)
    times["quantize"] = time.perf_counter() - t1
    from fetaldata.metrics import format_proportion, wilson_interval

    v32 = evaluate_model(DEFAULT_MODEL, folder, "val")
    v8 = evaluate_model(int8, folder, "val")
    n = len(v32.predictions)
    same = sum(a.predicted == b.predicted for a, b in zip(v32.predictions, v8.predictions))
    k32 = sum(p.predicted == p.target for p in v32.predictions)
    k8 = sum(p.predicted == p.target for p in v8.predictions)
    speed = {Path(cand["path"]).name: cand["hz"] for cand in q["speed"]["candidates"]}
    int8_result = {
        "file": int8.name, "accuracy_holds": q["accuracy_holds"], "calibration_images": q["calibration"]["images"],
        "heldout_images": n, "agreement": same / n if n else None, "agreement_ci95": list(wilson_interval(same, n)),
        "agreement_text": format_proportion(same, n, always_interval=True),
        "top1_fp32_text": format_proportion(k32, n, always_interval=True),
        "top1_int8_text": format_proportion(k8, n, always_interval=True),
        "top1_change_points": 100.0 * (k8 - k32) / n if n else 0.0,
        "hz_fp32": speed.get(DEFAULT_MODEL.name), "hz_int8": speed.get(int8.name),
    }
    demo.log(f"    INT8 vs FP32 on {n} held-out real images: agreement {int8_result['agreement_text']}; "
             f"{int8_result['hz_int8'] or 0:.0f} Hz vs {int8_result['hz_fp32'] or 0:.0f} Hz")

    # one real clip through the live loop (not obstetric)
    from edge.live.config import RunConfig
    from edge.live.loop import run_loop

    t2 = time.perf_counter()
    jsonl = root / "clip.jsonl"
    cfg = RunConfig(model=str(DEFAULT_MODEL), input=str(data / "scanner_video" / REAL_CLIP_NAME), outputs=[str(jsonl)],
                    threads=c.threads, log_every_s=0.0, max_frames=c.real_clip_frames)
    summary = run_loop(cfg)
    import json

    records = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.is_file() else []
    nf = len(records)
    other_or_unsure = sum(r.get("plane") == "Other" or r["state"] == "uncertain" for r in records)
    fetal = {}
    for r in records:
        if r.get("plane", "Other") != "Other" and r["state"] != "uncertain":
            key = f"{r['label']} ({r['plane']})"
            fetal[key] = fetal.get(key, 0) + 1
    clip = {"clip": REAL_CLIP_NAME, "frames": nf, "hz": summary.hz, "other_or_uncertain": other_or_unsure / nf if nf else None,
            "fetal_labels": dict(sorted(fetal.items(), key=lambda kv: -kv[1]))}
    times["clip"] = time.perf_counter() - t2
    demo.log(f"    real clip {REAL_CLIP_NAME} (adult heart, not obstetric): {nf} frames, "
             f"{100 * (clip['other_or_uncertain'] or 0):.0f} % Other or uncertain, {summary.hz:.0f} Hz")
    result = {"model": DEFAULT_MODEL.name, "data": str(data), "images": len(fp32.predictions), "per_source": per_source,
              "fp32_all": {"top1_text": format_proportion(sum(p.predicted == p.target for p in fp32.predictions),
                                                          len(fp32.predictions), always_interval=True)},
              "unmapped": fp32.unmapped_images(), "int8": int8_result, "clip": clip,
              "seconds": {k: round(v, 1) for k, v in times.items()}}
    return result, [folder / "labels.csv", int8, jsonl]


REAL_CLIP_NAME = "nbs_autocrop_media_echo-with-borders.mp4"


def real_section(demo: Any) -> tuple[str, list[Any]] | None:
    """The report's section for the real step (None when it did not run)."""
    r = demo.results.get("real")
    if not r:
        return None
    title = "REAL ultrasound: SonoNet-16 (published weights) on real images"
    if r.get("skipped"):
        return title, [f"Skipped: {r['skipped']}."]
    names = {"hc18_sample": "HC18 fetal heads (all trans-thalamic: should read Fetal brain)",
             "fetal_planes_db": "FETAL_PLANES_DB images (2 per plane, incl. Maternal cervix, which SonoNet lacks)",
             "sononet_examples": "SonoNet's 13 example screen grabs, known image area"}
    rows = [[names.get(s, s), str(e["images"]), f"{e['correct']}", e["text"]] for s, e in r["per_source"].items()]
    i8 = r["int8"]
    blocks: list[Any] = [
        f"**{REAL}.** Model `{r['model']}`: SonoNet-16 (Baumgartner et al. 2017), published weights imported with "
        "`fetalplanes import-weights`, trained on UK 20-week anomaly scans; its 14 labels are mapped onto the six planes.",
        ("table", ["real images (FP32)", "images", "correct plane", "accuracy (95 % CI)"], rows),
        "Plane = the most probable plane (SonoNet's probabilities summed per plane), as `evaluate` scores it.",
    ]
    u = r.get("unmapped") or {}
    if u.get("classes"):
        blocks.append("No SonoNet class exists for: " + "; ".join(
            f"{k} ({e['images']} images, read as {', '.join(f'{a} {b}' for a, b in e['read_as'].items())})"
            for k, e in u["classes"].items()) + " - these count as errors above.")
    blocks += [
        f"INT8 (`quantize --method minmax`, every layer, calibrated on {i8['calibration_images']} real images) against "
        f"FP32 on the {i8['heldout_images']} real images held out from calibration ({REAL}):",
        ("table", ["FP32 vs INT8 (real, held out)", "value"], [
            ["argmax agreement (95 % CI)", i8["agreement_text"]],
            ["top-1 FP32 / INT8", f"{i8['top1_fp32_text']} / {i8['top1_int8_text']}"],
            ["top-1 change (points)", f"{i8['top1_change_points']:+.1f}"],
            ["quantize's verdict (the one gate)", "holds" if i8["accuracy_holds"] else "does NOT hold"],
            ["Hz batch 1 FP32 / INT8 (this machine)", f"{i8['hz_fp32'] or 0:.1f} / {i8['hz_int8'] or 0:.1f}"],
        ]),
    ]
    cl = r["clip"]
    fetal = ", ".join(f"{k} {v}" for k, v in cl["fetal_labels"].items()) or "none"
    blocks.append(
        f"Real clip `{cl['clip']}` (adult echocardiography, NOT obstetric) through the live loop: {cl['frames']} frames "
        f"at {cl['hz']:.1f} Hz, {100 * (cl['other_or_uncertain'] or 0):.0f} % read as Other or uncertain; fetal labels "
        f"shown: {fetal}. Adult cardiac views can honestly look like fetal heart views; every fetal label here is "
        "a false positive.")
    blocks.append("Time of this step: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["seconds"].items()) + ".")
    return title, blocks
