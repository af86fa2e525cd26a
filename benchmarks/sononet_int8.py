"""SonoNet-16 INT8 on real ultrasound: calibrate on real images, check on real images held out from calibration.

    .venv/bin/python benchmarks/sononet_int8.py [--shared ../shared] [--threads 2]

Data: the real images of ../shared/data as one labelled folder (fetaldata.real_samples: hc18_sample 120,
the 12 FETAL_PLANES_DB images, the 13 sononet_examples cut to their known image area). `fetalplanes quantize`
calibrates on the folder's seeded `train` half and checks on its `val` half (held out from calibration),
once with uint8 activations (ONNX Runtime's CPU default) and once with int8 activations. This script then
measures on the held-out half itself: argmax agreement with FP32 (native 14 labels and the six planes) with
its 95 % Wilson interval, top-1 (planes) of FP32 and INT8, the changed predictions, and batch-1 ONNX Runtime
speed of FP32 and both INT8 files on this CPU (interleaved rounds, best round). The deployability verdict is
quantize's (edge/deployability.py, the one gate) on the held-out images.

Writes benchmarks/results/sononet_int8.md and .json; the INT8 files go to --work (default: a temporary folder).
Targets (issue 13): agreement >= 99 % on held-out real images; INT8 >= 2x FP32 Hz at batch 1.

    .venv/bin/python benchmarks/sononet_int8.py --options   # ORT options of the every-layer INT8 file, side by side

`benchmarks/run_all.py` measures issue 17's SonoNet-16 row with :func:`measure_target` (every layer INT8, no
layer search; FP32 and INT8 timed in turns in one process, medians) and :func:`target_row`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import RESULTS, machine_stamp  # noqa: E402

ACTIVATIONS = ("uint8", "int8")
#: issue 17's target: SonoNet-16 INT8 >= 2x ONNX Runtime FP32 (batch 1) with >= 99 % plane agreement on held-out real images
TARGET_X_FP32 = 2.0
MIN_AGREEMENT = 0.99
TARGET = (f"sononet16_int8: INT8 >= {TARGET_X_FP32:g}x ONNX Runtime FP32 (batch 1) with >= {MIN_AGREEMENT:.0%} plane "
          "agreement on held-out real images")


def quantize(model: Path, data: Path, out: Path, activations: str, threads: int, search: bool = True,
             extra: Sequence[str] = ()) -> tuple[int, dict, float]:
    """`fetalplanes quantize --method minmax` in this process: (exit code, its report, seconds).

    ``search`` False: every layer INT8 (``--no-search``; quantize then times FP32 and INT8 only briefly, the
    speed that counts is :func:`time_side_by_side`'s). ``extra``: more quantize options (e.g. ``--per-tensor``).
    """
    from edge.cli import main as cli

    t0 = time.perf_counter()
    speed = ["--speed-seconds", "1", "--speed-rounds", "3"] if search else ["--speed-seconds", "0.05", "--speed-rounds", "1"]
    with contextlib.redirect_stdout(io.StringIO()) as log, contextlib.redirect_stderr(io.StringIO()):
        code = cli(["quantize", "--onnx", str(model), "--data", str(data), "--out", str(out), "--activations",
                    activations, "--method", "minmax", "--threads", str(threads), *speed,
                    *([] if search else ["--no-search"]), *extra])
    report_path = out.with_name(out.stem + ".quantize.json")
    report = json.loads(report_path.read_text()) if report_path.is_file() else {"log": log.getvalue()[-2000:]}
    return code, report, time.perf_counter() - t0


def heldout_check(model: Path, int8: Path, data: Path, threads: int) -> dict:
    """Agreement and top-1 on the folder's val half (the images quantize did not calibrate on)."""
    from calibration.evaluation import load_split, predict_file
    from edge.modelinfo import read_onnx_metadata
    from fetaldata.metrics import format_proportion, wilson_interval

    info = read_onnx_metadata(model)
    val = load_split(data, info, "val")
    p32, p8 = predict_file(model, val.x, threads), predict_file(int8, val.x, threads)
    q32, q8 = info.map_probabilities(p32), info.map_probabilities(p8)
    n = len(val.targets)
    same_native = int(np.sum(p32.argmax(1) == p8.argmax(1)))
    same_plane = int(np.sum(q32.argmax(1) == q8.argmax(1)))
    c32, c8 = int(np.sum(q32.argmax(1) == val.targets)), int(np.sum(q8.argmax(1) == val.targets))
    changed = [{"file": s.record.image_name, "fp32": info.labels[int(a)], "int8": info.labels[int(b)]}
               for s, a, b in zip(val.samples, p32.argmax(1), p8.argmax(1)) if a != b]
    return {
        "images": n, "agreement_native": same_native / n, "agreement_native_ci95": list(wilson_interval(same_native, n)),
        "agreement_native_text": format_proportion(same_native, n, always_interval=True),
        "agreement_planes": same_plane / n, "agreement_planes_ci95": list(wilson_interval(same_plane, n)),
        "top1_fp32": c32 / n, "top1_int8": c8 / n, "top1_fp32_text": format_proportion(c32, n, always_interval=True),
        "top1_int8_text": format_proportion(c8, n, always_interval=True), "top1_change_points": 100.0 * (c8 - c32) / n,
        "correct_fp32": c32, "correct_int8": c8, "same_native": same_native, "same_planes": same_plane,
        "changed": changed, "max_abs_prob_diff": float(np.abs(p32 - p8).max()),
    }


def time_side_by_side(files: dict[str, Path], x: np.ndarray, threads: int, seconds: float = 2.0,
                      rounds: int = 5) -> dict[str, dict[str, Any]]:
    """ONNX Runtime Hz of each file on ``x`` in this process, timed in turns (:func:`calibration.speed.time_interleaved`:
    ``rounds`` interleaved rounds of ``seconds``; ``hz`` is the median round, ``hz_best`` the best)."""
    from calibration.speed import Runtime, time_interleaved
    from edge.backends import open_runner

    runners = {}
    try:
        for name, path in files.items():
            runners[name] = open_runner(path, threads=threads).activate()
        timings = time_interleaved([Runtime(n, "ort", r.infer) for n, r in runners.items()], x, seconds, rounds)
    finally:
        for r in runners.values():
            r.deactivate()
    return {n: {**timings[n].to_dict(), "file": Path(files[n]).name} for n in files}


def measure_target(shared: str | Path, work: str | Path, model: str | Path | None = None, threads: int = 2,
                   seconds: float = 2.0, rounds: int = 5, activations: str = "uint8",
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Issue 17's SonoNet-16 INT8 target, measured in this process: the real folder of ``shared``/data, every layer
    INT8 (``quantize --method minmax --no-search``, calibrated on the folder's ``train`` half), agreement on its held-out
    ``val`` half (:func:`heldout_check`), FP32 and INT8 timed side by side (:func:`time_side_by_side`) on one
    held-out real image at batch 1. ``work`` is emptied first (no stale file from an earlier run); the INT8 file
    stays there (``sononet16.int8.onnx``) for the live rows."""
    from calibration.evaluation import load_split
    from edge.default_model import DEFAULT_MODEL
    from edge.errors import FetalPlanesError
    from edge.modelinfo import read_onnx_metadata
    from fetaldata.real_samples import write_real_folder

    model = Path(model or DEFAULT_MODEL)
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)  # never a stale file from an earlier run
    work.mkdir(parents=True)
    real = write_real_folder(Path(shared) / "data", work / "real")
    int8 = work / "sononet16.int8.onnx"
    log(f"SonoNet-16 INT8 on real images: quantize ({activations} activations, every layer, minmax) on "
        f"{real.images} real images' train half")
    code, report, secs = quantize(model, real.root, int8, activations, threads, search=False)
    if not int8.is_file():
        raise FetalPlanesError(f"quantize wrote no {int8} (exit {code})", hint=str(report.get("log", ""))[-300:],
                               exit_code=1)
    held = heldout_check(model, int8, real.root, threads)
    x = load_split(real.root, read_onnx_metadata(model), "val").x[:1]  # one held-out real image, batch 1
    log(f"  held-out agreement (planes) {held['agreement_planes']:.4f} on {held['images']} images; timing FP32 and "
        f"INT8 side by side ({rounds} rounds of {seconds:g} s, {threads} threads)")
    speed = time_side_by_side({"fp32": model, "int8": int8}, x, threads, seconds, rounds)
    held["changed"] = held["changed"][:20]
    return {"model": model.name, "int8": str(int8), "activations": activations, "threads": threads,
            "seconds_per_round": seconds, "rounds": rounds, "data": {"sources": real.counts, "images": real.images},
            "quantize": {"exit_code": code, "seconds": round(secs, 1), "accuracy_holds": report.get("accuracy_holds"),
                         "calibration_images": report.get("calibration", {}).get("images")},
            "heldout": held, "speed": speed, "x_fp32": speed["int8"]["hz"] / speed["fp32"]["hz"]}


def target_row(m: dict[str, Any]) -> dict[str, Any]:
    """:func:`measure_target`'s result as issue 17's target row (``benchmarks.common.target_row``): pass = ratio >=
    ``TARGET_X_FP32`` and plane agreement >= ``MIN_AGREEMENT``; the note names every figure behind the verdict."""
    from benchmarks.common import target_row as row
    from fetaldata.metrics import format_proportion

    h, sp, ratio = m["heldout"], m["speed"], m["x_fp32"]
    fast, agrees = ratio >= TARGET_X_FP32, h["agreement_planes"] >= MIN_AGREEMENT
    why = [] if fast else [f"INT8 only {ratio:.2f}x FP32 (< {TARGET_X_FP32:g}x)"]
    why += [] if agrees else [f"plane agreement {100 * h['agreement_planes']:.1f} % (< {MIN_AGREEMENT:.0%})"]
    verdict = {True: "holds", False: "does NOT hold", None: "?"}[m["quantize"]["accuracy_holds"]]
    note = ((f"FAIL: {'; '.join(why)}. " if why else "")
            + f"{m['activations']} activations, every layer INT8 (quantize --method minmax --no-search, calibrated on "
            f"{m['quantize']['calibration_images']} real images; quantize's verdict: {verdict}); plane agreement "
            f"{format_proportion(h['same_planes'], h['images'], always_interval=True)} on {h['images']} held-out real "
            f"images (14 labels: {h['agreement_native_text']}); FP32 {sp['fp32']['hz']:.1f} Hz, INT8 "
            f"{sp['int8']['hz']:.1f} Hz (batch 1, {m['threads']} threads, medians of {m['rounds']} interleaved rounds "
            f"of {m['seconds_per_round']:g} s)")
    return row(TARGET, ratio, TARGET_X_FP32, bool(fast and agrees), "x", note,
               agreement_planes=round(h["agreement_planes"], 4), heldout_images=h["images"],
               hz_fp32=sp["fp32"]["hz"], hz_int8=sp["int8"]["hz"], int8_file=Path(m["int8"]).name)


#: ONNX Runtime options tried for SonoNet-16 INT8 (every layer INT8, minmax): (name, quantize options, format, graph level)
OPTION_VARIANTS = (
    ("QDQ, uint8 act., per-channel (default)", (), "QDQ", "all"),
    ("QDQ, int8 act. (symmetric)", ("--activations", "int8"), "QDQ", "all"),
    ("QDQ, uint8 act., per-tensor weights", ("--per-tensor",), "QDQ", "all"),
    ("QDQ, uint8 act., reduce_range (7-bit weights)", ("--reduce-range",), "QDQ", "all"),
    ("QOperator, uint8 act., per-channel", None, "QOperator", "all"),
    ("QDQ default file, graph optimisation EXTENDED", (), "QDQ", "extended"),
    ("QDQ default file, graph optimisation BASIC", (), "QDQ", "basic"),
)


def qoperator_file(model: Path, real_root: Path, out: Path, threads: int) -> Path:
    """The same INT8 model in ONNX Runtime's QOperator format (QLinearConv etc. instead of Q/DQ pairs): calibrated
    with minmax on the same training half as ``quantize`` (:mod:`calibration.quantize_ort`'s steps), the model
    description copied in."""
    from onnxruntime import quantization as q

    from calibration.evaluation import load_split
    from calibration.quantize_ort import QuantizeConfig, calibrate_ranges, prepare_for_quantization, write_info
    from edge.modelinfo import read_onnx_metadata

    info = read_onnx_metadata(model)
    prepared = prepare_for_quantization(model, out.with_name(out.stem + ".prepared.onnx"))
    calib = load_split(real_root, info, "train").x
    cache = calibrate_ranges(prepared, calib, QuantizeConfig(method="minmax"), out.with_name(out.stem + ".ranges"))
    q.quantize_static(str(prepared), str(out), calibration_data_reader=None, quant_format=q.QuantFormat.QOperator,
                      per_channel=True, activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                      calibrate_method=q.CalibrationMethod.MinMax, calibration_cache_path=str(cache),
                      extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    write_info(out, info)
    return out


def compare_options(shared: str | Path, work: str | Path, model: str | Path | None = None, threads: int = 2,
                    seconds: float = 2.0, rounds: int = 5, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every variant of :data:`OPTION_VARIANTS` made from the same real folder, its plane agreement with FP32 on the
    held-out half, and all of them timed side by side with FP32 in this process (medians of interleaved rounds)."""
    import onnxruntime as ort

    from calibration.evaluation import load_split
    from calibration.speed import Runtime, time_interleaved
    from edge.default_model import DEFAULT_MODEL
    from edge.modelinfo import read_onnx_metadata
    from fetaldata.real_samples import write_real_folder

    model = Path(model or DEFAULT_MODEL)
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    real = write_real_folder(Path(shared) / "data", work / "real")
    files: dict[tuple, Path] = {}
    out: dict[str, Any] = {"variants": {}, "threads": threads, "seconds_per_round": seconds, "rounds": rounds}
    for i, (name, opts, fmt, level) in enumerate(OPTION_VARIANTS):
        key = (opts, fmt)
        if key not in files:
            path = work / f"v{i}.int8.onnx"
            log(f"  making {name}")
            if fmt == "QOperator":
                qoperator_file(model, real.root, path, threads)
            else:
                act = opts[1] if opts[:1] == ("--activations",) else "uint8"
                extra = tuple(o for o in opts if o not in ("--activations", "int8"))
                quantize(model, real.root, path, act, threads, search=False, extra=extra)
            files[key] = path
            h = heldout_check(model, path, real.root, threads)
            agreement = {k: h[k] for k in ("images", "same_planes", "agreement_planes", "agreement_native",
                                           "agreement_native_text")}
        else:
            agreement = out["variants"][next(n for n, o, f, _ in OPTION_VARIANTS if (o, f) == key)]["heldout"]
        out["variants"][name] = {"file": files[key].name, "format": fmt, "graph_level": level, "heldout": agreement,
                                 "bytes": files[key].stat().st_size}
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}

    def session(path: Path, level: str):
        o = ort.SessionOptions()
        o.graph_optimization_level = levels[level]
        o.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]

    x = load_split(real.root, read_onnx_metadata(model), "val").x[:1]
    runtimes = [Runtime("FP32", "ort", session(model, "all"))]
    runtimes += [Runtime(n, "ort", session(work / v["file"], v["graph_level"])) for n, v in out["variants"].items()]
    log(f"  timing FP32 and {len(runtimes) - 1} INT8 variants side by side ({rounds} rounds of {seconds:g} s)")
    from benchmarks.common import load_average

    out["load_average_start"] = load_average()
    t = time_interleaved(runtimes, x, seconds, rounds)
    out["load_average_end"] = load_average()
    out["fp32"] = t["FP32"].to_dict()
    for n, v in out["variants"].items():
        v["speed"] = t[n].to_dict()
        v["x_fp32"] = t[n].hz / t["FP32"].hz
    return out


def options_markdown(o: dict[str, Any]) -> list[str]:
    """The ORT-options section of sononet_int8.md."""
    lines = ["", "## ONNX Runtime options for the every-layer INT8 file (side by side)", "",
             f"{o.get('when', '')}; `benchmarks/sononet_int8.py --options`: each variant quantized with minmax from the same "
             "74 real calibration images (every layer INT8), plane agreement with FP32 on the 71 held-out real images, "
             f"then FP32 and every variant timed in turns in one process ({o['rounds']} rounds of "
             f"{o['seconds_per_round']:g} s, {o['threads']} threads, batch 1; Hz = median round); load average "
             f"{o.get('load_average_start')} at the start, {o.get('load_average_end')} at the end.", "",
             "| variant | plane agreement | 14 labels | Hz | x FP32 | p50 ms | size MB |", "|---|---:|---|---:|---:|---:|---:|",
             f"| FP32 (graph optimisation ALL) | reference | reference | {o['fp32']['hz']:.1f} | 1.00 | "
             f"{o['fp32']['p50_ms']:.1f} | |"]
    for n, v in o["variants"].items():
        h = v["heldout"]
        lines.append(f"| {n} | {100 * h['agreement_planes']:.1f} % ({h['same_planes']}/{h['images']}) | "
                     f"{h['agreement_native_text']} | {v['speed']['hz']:.1f} | {v['x_fp32']:.2f} | "
                     f"{v['speed']['p50_ms']:.1f} | {v['bytes'] / 1e6:.1f} |")
    if o.get("conclusion"):
        lines += ["", o["conclusion"]]
    return lines + [""]


def main() -> int:
    from calibration.speed import measure_hz
    from edge.default_model import DEFAULT_MODEL
    from fetaldata.real_samples import write_real_folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2: the demo box's cores)")
    ap.add_argument("--work", default=None, help="keep the real folder and the INT8 files here")
    ap.add_argument("--from-json", action="store_true", help="rewrite the markdown from the last JSON, run nothing")
    ap.add_argument("--options", action="store_true",
                    help="only compare ONNX Runtime options (format, activations, per-channel, reduce_range, graph "
                         "optimisation) of the every-layer INT8 file; added to the last JSON and the markdown")
    args = ap.parse_args()
    if args.options:
        work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sononet-int8-options-"))
        try:
            opts = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), **compare_options(args.shared, work, args.model, args.threads)}
        finally:
            if not args.work:
                shutil.rmtree(work, ignore_errors=True)
        last = json.loads((RESULTS / "sononet_int8.json").read_text())
        last["options"] = opts
        (RESULTS / "sononet_int8.json").write_text(json.dumps(last, indent=1, default=str) + "\n")
        (RESULTS / "sononet_int8.md").write_text(markdown(last))
        print("\n".join(options_markdown(opts)))
        return 0
    if args.from_json:
        (RESULTS / "sononet_int8.md").write_text(markdown(json.loads((RESULTS / "sononet_int8.json").read_text())))
        return 0
    model = Path(args.model)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sononet-int8-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        real = write_real_folder(Path(args.shared) / "data", work / "real")
        out: dict = {"machine": machine_stamp(), "model": model.name, "threads": args.threads,
                     "data": {"sources": real.counts, "images": real.images}, "runs": {}}
        files: dict[str, Path] = {}
        for act in ACTIVATIONS:
            path = work / f"sononet16.int8-{act}.onnx"
            code, report, secs = quantize(model, real.root, path, act, args.threads)
            rec = report.get("recommendation", {})
            all_int8 = path.with_name(path.stem + ".all-int8.onnx")
            versions = {"int8-mixed" if report.get("excluded_layers") else "int8": path}
            if all_int8.is_file():
                versions["int8-all-layers"] = all_int8
            run = {
                "exit_code": code, "seconds": round(secs, 1), "accuracy_holds": report.get("accuracy_holds"),
                "calibration_images": report.get("calibration", {}).get("images"),
                "method": report.get("settings", {}).get("method"),
                "excluded_layers": [e.get("node", e) if isinstance(e, dict) else e for e in report.get("excluded_layers", [])],
                "search": {k: report.get("search", {}).get(k) for k in ("needed", "ran", "found", "smallest_k")},
                "quantize_speed": [{k: c.get(k) for k in ("name", "precision", "hz", "holds")}
                                   for c in report.get("speed", {}).get("candidates", [])],
                "recommendation": {"file": Path(rec.get("file", "")).name, "precision": rec.get("precision")},
                "files": {},
            }
            for name, f in versions.items():
                files[f"{name} ({act})"] = f
                run["files"][name] = {"file": f.name, "bytes": f.stat().st_size,
                                      "heldout": heldout_check(model, f, real.root, args.threads)}
            out["runs"][act] = run
            print(f"{act}: exit {code}, holds {run['accuracy_holds']}, "
                  + ", ".join(f"{n}: held-out agreement {v['heldout']['agreement_native_text']}"
                              for n, v in run["files"].items()), flush=True)
        names = ["fp32", *files]
        speeds = measure_hz([model, *files.values()], threads=args.threads, seconds=2.0, rounds=5)
        out["speed"] = {name: {**s.to_dict(), "path": Path(s.path).name} for name, s in zip(names, speeds)}
        for name in names:
            out["speed"][name]["x_fp32"] = out["speed"][name]["hz"] / out["speed"]["fp32"]["hz"]
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    for run in out["runs"].values():
        for f in run["files"].values():
            f["heldout"]["changed"] = f["heldout"]["changed"][:20]
    (RESULTS / "sononet_int8.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    (RESULTS / "sononet_int8.md").write_text(markdown(out))
    print(markdown(out))
    return 0


def markdown(out: dict) -> str:
    sp = out["speed"]
    d = out["data"]
    lines = [
        "# SonoNet-16 INT8 on real ultrasound (ONNX Runtime, this CPU)",
        "",
        f"{out['machine']['when']}; `benchmarks/sononet_int8.py`; model `{out['model']}` (published weights, "
        f"imported); `fetalplanes quantize --method minmax`; {out['threads']} ONNX Runtime threads, batch 1.",
        "",
        f"Data: {d['images']} real images as one labelled folder ("
        + ", ".join(f"{k} {v}" for k, v in d["sources"].items())
        + "; the screen grabs cut to their known image area). `quantize` calibrates on the folder's seeded `train` "
        "half and checks on its `val` half; the figures below are on that **held-out** half. Real images from other "
        "cohorts than SonoNet's training data, and few: read the intervals, not clinical accuracy.",
        "",
        "| activations | file | quantize's verdict (one gate) | held-out images | agreement, 14 labels (95 % CI) "
        "| agreement, planes | top-1 FP32 (planes) | top-1 INT8 | change (points) | Hz | x FP32 |",
        "|---|---|---|---:|---|---:|---|---|---:|---:|---:|",
    ]
    for act, r in out["runs"].items():
        for name, f in r["files"].items():
            h = f["heldout"]
            q = next((c for c in r["quantize_speed"] if c.get("precision") == name or c.get("name") == name), {})
            holds = q.get("holds", r["accuracy_holds"] if name != "int8-all-layers" else None)
            verdict = {True: "holds", False: "does NOT hold", None: "?"}[holds]
            s = sp[f"{name} ({act})"]
            lines.append(f"| {act} | {name} | {verdict} | {h['images']} | {h['agreement_native_text']} | "
                         f"{100 * h['agreement_planes']:.1f} % | {h['top1_fp32_text']} | {h['top1_int8_text']} | "
                         f"{h['top1_change_points']:+.1f} | {s['hz']:.1f} | {s['x_fp32']:.2f} |")
    lines += ["", f"FP32: {sp['fp32']['hz']:.1f} Hz (p50 {sp['fp32']['latency_ms_p50']:.1f} ms).", ""]
    for act, r in out["runs"].items():
        rec = r["recommendation"]
        k = len(r["excluded_layers"])
        lines.append(f"- {act}: quantize exit {r['exit_code']} ({r['seconds']:.0f} s); the layer search "
                     + ("did not run" if not r["search"].get("ran") else
                        f"kept {k} of the convolutions in float (its target: an expected agreement on new images "
                        "above the gate's, because the check images are few)")
                     + f"; quantize's recommendation on this machine: `{rec['file']}` ({rec['precision']}).")
    best = max(v["x_fp32"] for n, v in sp.items() if n != "fp32")
    agree = {(a, n): f["heldout"]["agreement_native"] for a, r in out["runs"].items() for n, f in r["files"].items()}
    lines += [
        "",
        "quantize's verdict judges argmax agreement on the six planes, as `compare` and `evaluate` score a model "
        "with a label map; the 14-label agreement beside it is stricter (a change between two thorax views, or "
        "between the two brain views, is no change of plane).",
        "",
        f"Targets: agreement >= 99 % (14 labels) on held-out real images: met by "
        f"{sum(a >= 0.99 for a in agree.values())} of {len(agree)} files (on so few images the interval's lower end "
        f"is far below 99 %); INT8 >= 2x FP32 Hz: **{'met' if best >= 2.0 else 'NOT met'}** (best {best:.2f}x). "
        "A file with layers kept in float computes those layers at FP32 speed plus the quantize/dequantize steps "
        "around them: the search buys agreement headroom with speed.",
        "",
        "Speed is measured on the shared development machine (2 cores, other jobs running): compare the rows, "
        "which were timed in interleaved rounds, rather than the absolute figures.",
        "",
    ]
    for act, r in out["runs"].items():
        for name, f in r["files"].items():
            if f["heldout"]["changed"]:
                lines.append(f"Changed predictions ({act}, {name}): " + "; ".join(
                    f"{c['file']}: {c['fp32']} -> {c['int8']}" for c in f["heldout"]["changed"]))
    lines.append("")
    if out.get("options"):
        lines += options_markdown(out["options"])
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
