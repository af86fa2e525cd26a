"""End-to-end speed of the live loop (edge.live.loop.run_loop) on real scanner clips and the phantom video.

    .venv/bin/python benchmarks/bench_live.py                       # all clips in ../shared/data/scanner_video
    .venv/bin/python benchmarks/bench_live.py --model model.onnx --videos a.mp4,b.mp4

Each clip runs in a CHILD process that imports only `edge` (no torch): unpaced (every frame, as
fast as decoding allows), paced at the clip's frame rate, and paced at 60 fps. Per run: Hz,
per-stage time (decode, sector crop + preprocess, inference, temporal + overlay, output),
capture-to-label latency p50/p99, dropped frames, and the child's peak memory (VmHWM).
Outputs are a predictions jsonl and a null frame sink standing in for a display (so the overlay is
drawn and timed, no video is encoded). Model-only Hz of the same file, same threads, is measured in
the same run for the ">= 90% of model-only Hz" target. Results: benchmarks/results/live.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "scanner_video"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
MODES = {"unpaced": "off", "paced": "realtime", "paced-60": "60"}
P99_LIMIT_MS = 1000.0 / 60.0
MEMORY_LIMIT_MB = 250.0
LIVE_OVER_MODEL = 0.90


# ----------------------------------------------------------------------------- the child (edge only)
def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one clip in this process: a decode-only pass (unpaced mode), then the loop. Imports edge only."""
    import cv2
    import numpy as np

    from edge.live.config import RunConfig
    from edge.live.loop import run_loop
    from edge.live.outputs import Output, OutputSpec

    class NullDisplay(Output):
        """Stands in for display://: wants the overlaid frame, shows it nowhere."""

        wants_frames = True

        def __init__(self):
            super().__init__(OutputSpec("display", "null"))
            self.frames = 0

        def write(self, frame, record) -> None:
            self.frames += frame is not None

        def describe(self) -> str:
            return "null display (benchmark)"

    out: dict[str, Any] = {"video": spec["video"], "mode": spec["mode"]}
    if spec.get("decode_pass"):
        cap = cv2.VideoCapture(spec["video"])
        times, n = [], 0
        while n < (spec.get("max_frames") or 10**9):
            t0 = time.perf_counter()
            ok, _ = cap.read()
            if not ok:
                break
            times.append(time.perf_counter() - t0)
            n += 1
        cap.release()
        out["decode_ms"] = {"p50_ms": float(np.percentile(times, 50) * 1000) if times else None,
                            "mean_ms": float(np.mean(times) * 1000) if times else None, "frames": n}
    cfg = RunConfig(model=spec["model"], input=spec["video"], outputs=[spec["jsonl"]], threads=spec["threads"],
                    log_every_s=0.0, max_frames=spec.get("max_frames") or 0, max_seconds=spec.get("max_seconds") or 0.0,
                    pipeline=spec.get("pipeline", True), spin=spec.get("spin", False))
    cfg.source.pace = spec["pace"]
    summary = run_loop(cfg, extra_outputs=[NullDisplay()])
    out["summary"] = summary.to_dict()
    out["peak_rss_mb"] = peak_rss_mb()  # before the model-only timing
    if spec.get("model_seconds"):
        out["model_only"] = model_only_hz(spec["model"], spec["threads"], spec["model_seconds"], spec.get("model_spin"))
    out["torch_imported"] = "torch" in sys.modules
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (Linux; ru_maxrss would carry the parent's peak across fork+exec)."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def model_only_hz(model: str, threads: int, seconds: float, spin: bool | None = None) -> dict[str, float]:
    """Batch-1 Hz of the model alone, same file and threads, in the same process seconds after the loop.

    ``spin``: ONNX Runtime's spin-waiting as in the loop (None: ORT's default, on, its fastest for a model alone).
    """
    import numpy as np

    from edge.backends import open_runner

    with open_runner(model, threads=threads, spin=spin) as r:
        x = np.random.default_rng(0).normal(0, 0.5, r.info.input_shape(1)).astype(np.float32)
        for _ in range(5):
            r.infer(x)
        times, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(times) < 5:
            t0 = time.perf_counter()
            r.infer(x)
            times.append(time.perf_counter() - t0)
    return {"hz": len(times) / (time.perf_counter() - start), "p50_ms": float(np.percentile(times, 50) * 1000)}


def run_child(spec: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Run :func:`child_main` in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"video": spec["video"], "mode": spec["mode"], "error": (p.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- the parent
def video_facts(path: str | Path) -> dict[str, Any]:
    import cv2

    c = cv2.VideoCapture(str(path))
    facts = {"fps": float(c.get(cv2.CAP_PROP_FPS) or 0), "frames": int(c.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
             "width": int(c.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), "height": int(c.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)}
    c.release()
    return facts


def row_of(r: dict[str, Any]) -> dict[str, Any]:
    """The figures of one child result, by stage group."""
    if "error" in r:
        return {"error": r["error"]}
    s = r["summary"]
    st = s.get("stages_ms", {})

    def ms(*names: str) -> float | None:
        vals = [st[n]["mean_ms"] for n in names if n in st]
        return round(sum(vals), 3) if vals else None

    return {
        "hz": s["hz"], "frames": s["frames"], "captured": s["captured"], "dropped": s["dropped"], "skipped": s["skipped"],
        "decode_ms": (r.get("decode_ms") or {}).get("mean_ms"),
        "sector_preprocess_ms": ms("sector", "preprocess"), "infer_ms": ms("infer"),
        "temporal_overlay_ms": ms("temporal", "overlay"), "output_ms": ms("outputs"),
        "latency_p50_ms": s.get("latency_ms", {}).get("p50_ms"), "latency_p99_ms": s.get("latency_ms", {}).get("p99_ms"),
        "model_only_hz": (r.get("model_only") or {}).get("hz"),
        "live_over_model": (s["hz"] / r["model_only"]["hz"]) if r.get("model_only") else None,
        "peak_rss_mb": round(r["peak_rss_mb"], 1), "torch_imported": r["torch_imported"], "end": s["end_reason"],
    }


def run_bench(model: str | Path, videos: Sequence[str | Path], threads: int = 2, modes: Sequence[str] = tuple(MODES),
              max_frames: int = 0, paced_seconds: float = 5.0, model_seconds: float = 1.0, model_rounds: int = 3,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every clip x mode in a child process; model-only Hz of the same file; target checks."""
    from calibration.speed import measure_hz

    t0 = time.perf_counter()
    log(f"model-only Hz of {Path(model).name} (batch 1, {threads} threads)")
    m = measure_hz([model], threads, model_seconds, model_rounds)[0]
    result: dict[str, Any] = {"kind": "fetalplanes-bench-live", "machine": common.machine_stamp(), "model": str(model),
                              "threads": threads, "model_only_hz": m.hz, "model_only_p50_ms": m.latency_ms_p50,
                              "note": common.SHARED_NOTE, "clips": []}
    with tempfile.TemporaryDirectory(prefix="fetalplanes-bench-live-") as tmp:
        for v in videos:
            facts = video_facts(v)
            clip = {"video": str(v), "name": Path(v).name, **facts, "runs": {}}
            for mode in modes:
                spec = {"video": str(v), "mode": mode, "pace": MODES[mode], "model": str(model), "threads": threads,
                        "jsonl": str(Path(tmp) / f"{Path(v).stem}-{mode}.jsonl"), "decode_pass": mode == "unpaced",
                        "max_frames": max_frames, "max_seconds": paced_seconds if mode != "unpaced" else 0.0,
                        "model_seconds": model_seconds if mode == "unpaced" else 0.0}
                clip["runs"][mode] = row_of(run_child(spec))
                r = clip["runs"][mode]
                log(f"  {clip['name']:<42} {mode:<9} " + (f"{r['hz']:7.1f} Hz  p99 {common.fmt(r['latency_p99_ms'], 2)} ms  "
                                                          f"peak {r['peak_rss_mb']:.0f} MB" if "error" not in r else f"ERROR {r['error']}"))
            result["clips"].append(clip)
    result["targets"] = check_targets(result)
    result["seconds"] = time.perf_counter() - t0
    return result


#: the live-loop settings of the per-model matrix: (label, ORT threads, pipeline)
MATRIX_SETTINGS = (("2 threads, pipeline", 2, True), ("1 thread, pipeline", 1, True), ("2 threads, one loop thread", 2, False))


def run_matrix(models: dict[str, str | Path], videos: Sequence[str | Path], settings=MATRIX_SETTINGS,
               max_frames: int = 400, model_seconds: float = 1.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Each model x setting x clip, unpaced, in a child; the ratio to the model-only Hz at the same threads.

    The model-only reference runs with ONNX Runtime's default spin-waiting (its fastest alone); the loop runs
    with spinning off (`fetalplanes run`'s default), so the ratio is the loop against the model at its best.
    """
    out: dict[str, Any] = {"settings": [s[0] for s in settings], "max_frames": max_frames, "models": {}}
    with tempfile.TemporaryDirectory(prefix="fetalplanes-bench-matrix-") as tmp:
        for name, model in models.items():
            rows: dict[str, Any] = {}
            for label, threads, pipeline in settings:
                per_clip = {}
                for v in videos:
                    spec = {"video": str(v), "mode": "unpaced", "pace": "off", "model": str(model), "threads": threads,
                            "pipeline": pipeline, "spin": False, "jsonl": str(Path(tmp) / "m.jsonl"),
                            "max_frames": max_frames, "model_seconds": model_seconds}
                    r = row_of(run_child(spec))
                    per_clip[Path(v).name] = r
                    if "error" not in r:
                        log(f"  {name:<20} {label:<26} {Path(v).name:<40} {r['hz']:7.1f} Hz  model-only "
                            f"{r['model_only_hz']:7.1f} Hz  ratio {r['live_over_model']:.2f}")
                ok = [r for r in per_clip.values() if r.get("live_over_model") is not None]
                rows[label] = {"clips": per_clip,
                               "worst_ratio": min(r["live_over_model"] for r in ok) if ok else None,
                               "median_ratio": _median([r["live_over_model"] for r in ok]),
                               "median_hz": _median([r["hz"] for r in ok]),
                               "median_model_only_hz": _median([r["model_only_hz"] for r in ok])}
            out["models"][name] = {"model": str(model), "settings": rows}
    return out


def _median(values: Sequence[float]) -> float | None:
    import numpy as np

    return float(np.median(values)) if len(values) else None


def matrix_markdown(matrix: dict[str, Any]) -> list[str]:
    """The per-model matrix as markdown lines."""
    f = common.fmt
    lines = ["", "## Per model and setting (real 640x480 clips, unpaced)", "",
             f"Each model's FP32 ONNX file at 224 px, each setting, each real 640x480 clip (at most "
             f"{matrix['max_frames']} frames), in a child process; the loop with ONNX Runtime's spin-waiting off "
             "(`fetalplanes run`'s default), the model-only reference in the same child right after with ORT's "
             "default (spinning: its fastest alone). Cells: worst-clip ratio live / model-only (median loop Hz / "
             "median model-only Hz).", "",
             "| model | " + " | ".join(matrix["settings"]) + " |", "|---|" + "---|" * len(matrix["settings"])]
    for name, m in matrix["models"].items():
        cells = []
        for label in matrix["settings"]:
            r = m["settings"].get(label) or {}
            cells.append(f"{f(r.get('worst_ratio'), 2)} ({f(r.get('median_hz'), 0)} / {f(r.get('median_model_only_hz'), 0)} Hz)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def matrix_targets(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model: the setting with the best worst-clip ratio, against the 90 % target."""
    checks = []
    for name, m in matrix["models"].items():
        best = max(((label, r) for label, r in m["settings"].items() if r["worst_ratio"] is not None),
                   key=lambda lr: lr[1]["worst_ratio"], default=None)
        if best is None:
            continue
        checks.append({"target": f"{name}: live loop >= {LIVE_OVER_MODEL:.0%} of model-only Hz, real 640x480 clips "
                                 f"(unpaced, worst clip, best setting: {best[0]})",
                       "value": best[1]["worst_ratio"], "limit": LIVE_OVER_MODEL,
                       "ok": best[1]["worst_ratio"] >= LIVE_OVER_MODEL, "setting": best[0]})
    return checks


def _is_640x480(c: dict[str, Any]) -> bool:
    return c["width"] == 640 and c["height"] == 480 and "phantom" not in c["name"]


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    clips = [c for c in result["clips"] if _is_640x480(c)]
    checks = []
    ratios = [c["runs"]["unpaced"]["live_over_model"] for c in clips
              if (c["runs"].get("unpaced") or {}).get("live_over_model") is not None]
    checks.append({"target": f"live loop >= {LIVE_OVER_MODEL:.0%} of model-only Hz on the real 640x480 clips (unpaced, worst clip)",
                   "value": min(ratios) if ratios else None, "limit": LIVE_OVER_MODEL,
                   "ok": (min(ratios) >= LIVE_OVER_MODEL) if ratios else None, "clips": len(ratios)})
    p99 = [c["runs"]["paced-60"]["latency_p99_ms"] for c in clips
           if (c["runs"].get("paced-60") or {}).get("latency_p99_ms") is not None]
    checks.append({"target": f"capture-to-label p99 < {P99_LIMIT_MS:.1f} ms paced at 60 fps (real 640x480 clips, worst)",
                   "value": max(p99) if p99 else None, "limit": P99_LIMIT_MS,
                   "ok": (max(p99) < P99_LIMIT_MS) if p99 else None, "clips": len(p99)})
    mem = [r["peak_rss_mb"] for c in result["clips"] for r in c["runs"].values() if "peak_rss_mb" in r]
    checks.append({"target": f"edge process peak memory <= {MEMORY_LIMIT_MB:.0f} MB with ONNX Runtime (all runs, worst)",
                   "value": max(mem) if mem else None, "limit": MEMORY_LIMIT_MB,
                   "ok": (max(mem) <= MEMORY_LIMIT_MB) if mem else None, "clips": len(mem)})
    return checks


def markdown(result: dict[str, Any]) -> str:
    mc, cpu = result["machine"], result["machine"]["cpu"]
    lines = [
        "# Live loop, end to end",
        "",
        f"Machine: {cpu['model']} ({cpu['usable_cpus']} usable CPUs, INT8 dot product: {cpu['int8_dot_product']}); "
        f"measured {mc['when']}. {result['note']}.",
        "",
        f"Model `{Path(result['model']).name}`, ONNX Runtime, {result['threads']} threads; model-only "
        f"{result['model_only_hz']:.1f} Hz (batch 1, p50 {result['model_only_p50_ms']:.2f} ms) at the start; the "
        "90% target uses each clip's own model-only Hz, timed in the same child right after its unpaced run "
        "(the load on a shared machine drifts). "
        "Each run is a child process importing only `edge` (no torch). Stage times are means per frame; decode is a "
        "separate decode-only pass of the same clip. Paced runs stop after a few seconds.",
        "",
        "| clip | size | fps | mode | Hz | decode ms | sector+pre ms | infer ms | temporal+overlay ms | output ms | "
        "latency p50 / p99 ms | dropped | peak MB | live / model-only |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    f = common.fmt
    for c in result["clips"]:
        for mode, r in c["runs"].items():
            if "error" in r:
                lines.append(f"| {c['name']} | {c['width']}x{c['height']} | {c['fps']:.0f} | {mode} | error: {r['error']} ||||||||||")
                continue
            lines.append(f"| {c['name']} | {c['width']}x{c['height']} | {c['fps']:.0f} | {mode} | {r['hz']:.1f} | "
                         f"{f(r['decode_ms'], 2)} | {f(r['sector_preprocess_ms'], 2)} | {f(r['infer_ms'], 2)} | "
                         f"{f(r['temporal_overlay_ms'], 2)} | {f(r['output_ms'], 2)} | {f(r['latency_p50_ms'], 2)} / "
                         f"{f(r['latency_p99_ms'], 2)} | {r['dropped']} | {r['peak_rss_mb']:.0f} | {f(r.get('live_over_model'), 2)} |")
    if result.get("matrix"):
        lines += matrix_markdown(result["matrix"])
    lines += ["", "## Targets (from this run)", "", "| target | measured | limit | result |", "|---|---|---|---|"]
    for t in result["targets"]:
        res = "n/a" if t["ok"] is None else ("PASS" if t["ok"] else "FAIL")
        lines.append(f"| {t['target']} | {f(t['value'], 2)} | {t['limit']:.2f} | {res} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    clips = [c for c in result["clips"] if "hz" in c["runs"].get("unpaced", {})]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    names = [c["name"][:28] for c in clips]
    keys = [("decode_ms", "decode"), ("sector_preprocess_ms", "sector+preprocess"), ("infer_ms", "inference"),
            ("temporal_overlay_ms", "temporal+overlay"), ("output_ms", "output")]
    bottom = np.zeros(len(clips))
    for k, label in keys:
        v = np.array([c["runs"]["unpaced"].get(k) or 0.0 for c in clips])
        ax.barh(names, v, left=bottom, label=label)
        bottom += v
    ax.axvline(1000.0 / result["model_only_hz"], color="k", ls="--", lw=1, label="model-only latency")
    ax.set_xlabel("ms per frame (unpaced, mean)")
    ax.set_title(f"Live loop per-stage time, {result['threads']} threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_results(result: dict[str, Any], out_dir: Path, stem: str = "live") -> dict[str, Path]:
    return common.write_results(result, out_dir, stem, markdown, plot)


def default_model(work: Path, log: Callable[[str], None] = print) -> Path:
    """MobileNetV3-small at 224 px from bench_models' cache (trained there if absent): the fastest ORT file of it."""
    import bench_models
    from calibration.speed import measure_hz

    files = bench_models.prepare_model("mobilenet_v3_small", work, log=log)
    paths = [files.fp32, *files.int8.values()]
    speeds = measure_hz(paths, 2, 0.5, 2)
    best = max(zip(paths, speeds), key=lambda ps: ps[1].hz)[0]
    log(f"live-loop model: {best.name} (fastest ORT file here: " + ", ".join(f"{p.name} {s.hz:.0f} Hz" for p, s in zip(paths, speeds)) + ")")
    return best


def phantom_video(work: Path) -> Path:
    from fetaldata.phantom.video import write_phantom_video

    path = work / "phantom_scan_640x480.mp4"
    if not path.is_file():
        write_phantom_video(path, seconds=10.0, fps=30, width=640, height=480, seed=0)
    return path


def main(argv=None) -> int:
    import bench_models

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, help="ONNX model (default: MobileNetV3-small from bench_models' cache)")
    p.add_argument("--videos", help=f"comma-separated clips (default: every clip in {SHARED_VIDEOS}, and the phantom)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--paced-seconds", type=float, default=5.0, help="paced runs stop after this long (5)")
    p.add_argument("--work", type=Path, default=bench_models.WORK)
    p.add_argument("--out", type=Path, default=common.RESULTS)
    p.add_argument("--matrix", action=argparse.BooleanOptionalAction, default=None,
                   help="also run bench_models' three models x thread/pipeline settings on the real 640x480 clips "
                        "(default: on when --model is not given)")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child_main(json.loads(args.child)), default=float))
        return 0
    model = args.model or default_model(args.work)
    if args.videos:
        videos = [Path(v) for v in args.videos.split(",") if v]
    else:
        videos = sorted(v for v in SHARED_VIDEOS.glob("*") if v.suffix.lower() in VIDEO_SUFFIXES) if SHARED_VIDEOS.is_dir() else []
        if not videos:
            print(f"note: no real clips in {SHARED_VIDEOS}; the phantom video only", file=sys.stderr)
        videos.append(phantom_video(args.work))
    result = run_bench(model, videos, args.threads, paced_seconds=args.paced_seconds)
    if args.matrix or (args.matrix is None and args.model is None):
        real = [c["video"] for c in result["clips"] if _is_640x480(c)]
        if real:
            models = {arch: bench_models.prepare_model(arch, args.work).fp32 for arch in bench_models.DEFAULT_MODELS}
            print(f"matrix: {len(models)} models x {len(MATRIX_SETTINGS)} settings x {len(real)} clips")
            result["matrix"] = run_matrix(models, real)
            result["targets"] += matrix_targets(result["matrix"])
    paths = write_results(result, args.out)
    print(paths["md"].read_text())
    print("results: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
