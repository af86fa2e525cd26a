"""End-to-end speed and latency of the live loop (edge.live.loop.run_loop) on real scanner clips.

    .venv/bin/python benchmarks/bench_live.py                       # all clips in ../shared/data/scanner_video
    .venv/bin/python benchmarks/bench_live.py --quick --untrained   # short; FP32 files with random weights
    .venv/bin/python benchmarks/bench_live.py --model model.onnx --videos a.mp4,b.mp4
    .venv/bin/python benchmarks/bench_live.py --sononet sononet16.int8.onnx   # adds the SonoNet-16 rows

Every run is a CHILD process that imports only `edge` (no torch). Three parts:

1. Throughput, per clip: each clip once, unpaced (every frame, as fast as it goes): Hz, per-stage time,
   the child's peak memory (VmHWM), and the model-only Hz of the same file timed in the same child.
2. Latency, as real-time pipelines report it (NVIDIA HoloHub's flow benchmarks): on the real 640x480
   clips and on a 1920x1080 60 fps clip (the format an HDMI capture card delivers; made here by
   upscaling a real clip into a temporary MJPG file), >= 1,000 frames per run (clips loop), paced at
   30 and 60 fps and unpaced ("as fast as possible"): mean, p50, p90, p95, p99, p99.9 and max of the
   capture-to-overlay latency (capture -> label -> overlay drawn and handed to the display) and of the
   capture-to-label latency, frames dropped, and the loop's CPU share (process CPU time / wall time).
3. Per model and setting (MobileNetV3-small, MobileNetV2, ResNet-18): live / model-only Hz on the real
   640x480 clips with the output thread on and off, ORT threads 1 and 2.

The display is a null window standing in for display://: the overlay is drawn (in the output thread)
and handed to the main thread like a window's frame; no video is encoded. Results:
benchmarks/results/live.{json,md,png}; targets in the common form (see benchmarks/common.py).
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
MODES = {"unpaced": "off", "paced-30": "30", "paced-60": "60"}  # --pace of each mode
FRAME_60_MS = 1000.0 / 60.0  # one frame at 60 fps: the p99.9 capture-to-overlay budget
MEMORY_LIMIT_MB = 250.0
LATENCY_FRAMES = 1000  # frames per latency run (HoloHub reports over >= 1,000)
#: live / model-only Hz wanted per model (issue 17: MobileNetV2 90 %, MobileNetV3-small 75 %; ResNet-18 as issue 6)
LIVE_OVER_MODEL = {"mobilenet_v3_small": 0.75, "mobilenet_v2": 0.90, "resnet18": 0.90}
#: a loop faster than its model alone by more than this is not a measurement (the load changed between the two)
RATIO_VALID_MAX = 1.10
HDMI_SIZE, HDMI_FPS = (1920, 1080), 60.0
HDMI_NAME = "hdmi-1920x1080-60fps"


# ----------------------------------------------------------------------------- the child (edge only)
def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the loop on one clip in this process (after a decode-only pass when asked). Imports edge only."""
    import cv2
    import numpy as np

    from edge.live.config import RunConfig
    from edge.live.loop import run_loop
    from edge.live.outputs import Output, OutputSpec

    class NullWindow(Output):
        """Stands in for display://: gets the overlaid frame on the main thread like a window, shows it nowhere."""

        wants_frames = True
        main_thread = True

        def __init__(self):
            super().__init__(OutputSpec("display", "null"))

        def write(self, frame, record) -> None:
            pass

        def describe(self) -> str:
            return "null window (benchmark)"

    out: dict[str, Any] = {"video": spec["video"], "mode": spec["mode"]}
    if spec.get("decode_pass"):
        cap = cv2.VideoCapture(spec["video"])
        times = []
        while len(times) < (spec.get("max_frames") or 10**9):
            t0 = time.perf_counter()
            if not cap.read()[0]:
                break
            times.append(time.perf_counter() - t0)
        cap.release()
        out["decode_ms"] = {"mean_ms": float(np.mean(times) * 1000) if times else None, "frames": len(times)}
    threads = int((spec.get("tuning") or {}).get("threads", spec["threads"]))  # a tuning run may set the loop's ORT threads
    cfg = RunConfig(model=spec["model"], input=spec["video"], outputs=[spec["jsonl"]], threads=threads,
                    log_every_s=0.0, max_frames=spec.get("max_frames") or 0, pipeline=spec.get("pipeline", True),
                    output_thread=spec.get("output_thread", True), spin=spec.get("spin", False))
    cfg.source.pace = spec["pace"]
    cfg.source.loop = bool(spec.get("loop"))
    apply_tuning(spec.get("tuning") or {})
    import inspect

    # a checkout from before the trace existed (the "before" of a side-by-side run) runs without it
    trace: list | None = [] if spec.get("trace") and "trace" in inspect.signature(run_loop).parameters else None
    kw = {"trace": trace} if trace is not None else {}
    import gc

    pauses: list[tuple[int, float]] = []  # (generation, ms) of every garbage collection during the loop
    started = [0.0]

    def gc_probe(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((int(info["generation"]), (time.perf_counter() - started[0]) * 1000.0))

    gc.callbacks.append(gc_probe)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    summary = run_loop(cfg, extra_outputs=[NullWindow()], **kw)
    gc.callbacks.remove(gc_probe)
    out["gc"] = {f"gen{g}": {"count": sum(1 for x in pauses if x[0] == g),
                             "max_ms": round(max([x[1] for x in pauses if x[0] == g], default=0.0), 3)} for g in (0, 1, 2)}
    out["cpu_s"], out["wall_s"] = time.process_time() - cpu0, time.perf_counter() - wall0
    out["summary"] = summary.to_dict()
    if trace is not None:
        out["trace"] = trace_report(trace)
    out["peak_rss_mb"] = peak_rss_mb()  # before the model-only timing
    if spec.get("model_seconds"):
        out["model_only"] = model_only_hz(spec["model"], spec["threads"], spec["model_seconds"], spec.get("model_spin"))
    out["torch_imported"] = "torch" in sys.modules
    return out


def apply_tuning(tuning: dict[str, Any]) -> None:
    """Process-wide knobs a tuning run sets before the loop: ``switch_interval`` (s, sys.setswitchinterval),
    ``cv_threads`` (cv2.setNumThreads), ``gc_freeze`` (gc.freeze() now, after the imports), ``loop.NAME`` (a
    module constant of edge.live.loop). (``threads``, the loop's ONNX Runtime threads, is read by child_main.)"""
    import gc

    if tuning.get("switch_interval"):
        sys.setswitchinterval(float(tuning["switch_interval"]))
    if tuning.get("cv_threads") is not None:
        import cv2

        cv2.setNumThreads(int(tuning["cv_threads"]))
    if tuning.get("gc_freeze"):
        gc.collect()
        gc.freeze()
    for key, value in tuning.items():  # loop.NAME=value: a module constant of edge.live.loop (a default of ours)
        if key.startswith("loop."):
            import edge.live.loop as loop_module

            setattr(loop_module, key[5:], value)


#: the segments of a frame's trace: (name, from stamp, to stamp); stamps as edge.live.capture.STAMPS, "capture" first
TRACE_SEGMENTS = (("wait for prepare", "capture", "prepare_start"), ("prepare", "prepare_start", "prepare_end"),
                  ("wait for loop", "prepare_end", "taken"), ("to infer", "taken", "infer_start"),
                  ("infer", "infer_start", "infer_end"), ("temporal", "infer_end", "label"),
                  ("record+hand", "label", "handed"), ("wait for output thread", "handed", "overlay_start"),
                  ("overlay", "overlay_start", "overlay_end"), ("to window", "overlay_end", "shown"))


def trace_report(trace: list, worst: int = 8, warm: int = 120) -> dict[str, Any]:
    """Per-frame stage stamps -> each segment's p50/p99/p99.9/max (ms) and the slowest frames' segments.

    Frames whose overlay was never shown (dropped) or that were not inferred (frozen image) are left out of
    the segment statistics of the stamps they lack."""
    import numpy as np

    try:
        from edge.live.capture import STAMPS
    except ImportError:  # an older checkout (the before of a side-by-side run) has no trace
        return {}
    names = ("capture",) + tuple(STAMPS)
    rows = np.array([[t_capture, *stamps] for _, t_capture, stamps in trace], np.float64).reshape(-1, len(names))
    col = {n: i for i, n in enumerate(names)}
    out: dict[str, Any] = {"frames": int(len(rows)), "segments": {}}
    total = (rows[:, col["shown"]] - rows[:, col["capture"]]) * 1000.0
    shown = rows[:, col["shown"]] > 0
    for name, a, b in TRACE_SEGMENTS:
        ok = (rows[:, col[a]] > 0) & (rows[:, col[b]] > 0)
        v = (rows[ok, col[b]] - rows[ok, col[a]]) * 1000.0
        if v.size:
            out["segments"][name] = {k: round(float(np.percentile(v, q)), 3) for k, q in
                                     (("p50_ms", 50), ("p99_ms", 99), ("p99.9_ms", 99.9))} | {"max_ms": round(float(v.max()), 3)}
    late = shown & (np.arange(len(rows)) >= warm)
    if late.any():  # where the tail comes from: the first ``warm`` frames (start-up) or the steady state
        out["after_warmup"] = {"frames_skipped": warm, "p99_ms": round(float(np.percentile(total[late], 99)), 3),
                               "p99.9_ms": round(float(np.percentile(total[late], 99.9)), 3),
                               "max_ms": round(float(total[late].max()), 3)}
    order = np.argsort(-np.where(shown, total, -1.0))[:worst]
    slow = []
    for i in order:
        if not shown[i]:
            continue
        seg = {}
        for name, a, b in TRACE_SEGMENTS:
            if rows[i, col[a]] > 0 and rows[i, col[b]] > 0:
                seg[name] = round(float((rows[i, col[b]] - rows[i, col[a]]) * 1000.0), 2)
        slow.append({"frame": int(trace[i][0]), "total_ms": round(float(total[i]), 2), "segments": seg,
                     "worst_segment": max(seg, key=seg.get) if seg else None})
    out["slowest"] = slow
    return out


def sleep_floor(frames: int, fps: float = 60.0) -> dict[str, float]:
    """The machine's own floor: a pure-Python loop sleeping to a ``fps`` deadline; how late it wakes (ms).

    No code of ours runs; its p99.9 is what the scheduler (and the other jobs on the box) alone costs a paced
    thread, so no loop can beat it."""
    import numpy as np

    period, late = 1.0 / fps, []
    due = time.perf_counter()
    for _ in range(frames):
        due += period
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        late.append((time.perf_counter() - due) * 1000.0)
    v = np.asarray(late)
    return {"mean_ms": round(float(v.mean()), 3), **{f"p{q:g}_ms": round(float(np.percentile(v, q)), 3) for q in (50, 99, 99.9)},
            "max_ms": round(float(v.max()), 3), "samples": int(v.size)}


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

    ``spin``: ONNX Runtime's spin-waiting (None: the faster of on, ORT's default and its fastest alone on a
    quiet box, and off, which holds up better when other jobs take the cores): the model at its best.
    """
    import numpy as np

    from edge.backends import open_runner

    best: dict[str, float] = {}
    for s in ([True, False] if spin is None else [spin]):
        with open_runner(model, threads=threads, spin=s) as r:
            x = np.random.default_rng(0).normal(0, 0.5, r.info.input_shape(1)).astype(np.float32)
            for _ in range(5):
                r.infer(x)
            times, start = [], time.perf_counter()
            while time.perf_counter() - start < seconds or len(times) < 5:
                t0 = time.perf_counter()
                r.infer(x)
                times.append(time.perf_counter() - t0)
        hz = len(times) / (time.perf_counter() - start)
        if hz > best.get("hz", 0.0):
            best = {"hz": hz, "p50_ms": float(np.percentile(times, 50) * 1000), "spin": s}
    return best


def run_child(spec: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Run :func:`child_main` in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    # this checkout's `edge`, not another one installed in the venv (or ``spec["repo"]``: another checkout's, the
    # "before" of a side-by-side run)
    repo = str(spec.get("repo") or Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(x for x in (repo, os.environ.get("PYTHONPATH", "")) if x)}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"video": spec["video"], "mode": spec["mode"], "error": (p.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return json.loads(lines[-1])


def row_of(r: dict[str, Any]) -> dict[str, Any]:
    """The figures of one child result."""
    if "error" in r:
        return {"error": r["error"]}
    s = r["summary"]
    st = s.get("stages_ms", {})

    def ms(*names: str) -> float | None:
        vals = [st[n]["mean_ms"] for n in names if n in st]
        return round(sum(vals), 3) if vals else None

    model_hz = (r.get("model_only") or {}).get("hz")
    return {
        "hz": s["hz"], "frames": s["frames"], "captured": s["captured"], "dropped": s["dropped"], "skipped": s["skipped"],
        "output_dropped": s.get("output_dropped", 0), "display_skipped": s.get("display_skipped", 0),
        "decode_ms": (r.get("decode_ms") or {}).get("mean_ms"),
        "sector_preprocess_ms": ms("sector", "preprocess"), "infer_ms": ms("infer"), "temporal_ms": ms("temporal"),
        "overlay_ms": ms("overlay"), "output_ms": ms("outputs", "frame_outputs"),
        "label_latency": s.get("latency_ms", {}), "overlay_latency": s.get("overlay_latency_ms", {}),
        "cpu_cores": round(r["cpu_s"] / r["wall_s"], 3) if r.get("wall_s") else None,
        "model_only_hz": model_hz, "live_over_model": (s["hz"] / model_hz) if model_hz else None,
        "peak_rss_mb": round(r["peak_rss_mb"], 1), "torch_imported": r["torch_imported"], "end": s["end_reason"],
    }


# ----------------------------------------------------------------------------- inputs
def video_facts(path: str | Path) -> dict[str, Any]:
    import cv2

    c = cv2.VideoCapture(str(path))
    facts = {"fps": float(c.get(cv2.CAP_PROP_FPS) or 0), "frames": int(c.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
             "width": int(c.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), "height": int(c.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)}
    c.release()
    return facts


def is_real_640x480(path: str | Path) -> bool:
    f = video_facts(path)
    return f["width"] == 640 and f["height"] == 480 and "phantom" not in Path(path).name


def hdmi_clip(source: str | Path, out_dir: Path, size: tuple[int, int] = HDMI_SIZE, fps: float = HDMI_FPS) -> Path:
    """A real clip as an HDMI capture card delivers it: scaled to the height, pillarboxed to 1920x1080, MJPG at 60 fps.

    Every source frame is written once (no repeated frames, which the loop would see as a frozen image).
    """
    import cv2
    import numpy as np

    path = Path(out_dir) / f"{HDMI_NAME}-{Path(source).stem}.avi"
    cap = cv2.VideoCapture(str(source))
    w_out, h_out = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    canvas = np.zeros((h_out, w_out, 3), np.uint8)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        nw = min(w_out, round(w * h_out / h))
        scaled = cv2.resize(frame, (nw, h_out), interpolation=cv2.INTER_LINEAR)
        x = (w_out - nw) // 2
        canvas[:] = 0
        canvas[:, x:x + nw] = scaled
        writer.write(canvas)
    cap.release()
    writer.release()
    return path


# ----------------------------------------------------------------------------- the three parts
def run_throughput(model: str | Path, videos: Sequence[str | Path], threads: int, tmp: Path, max_frames: int = 0,
                   model_seconds: float = 1.0, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Each clip once, unpaced, with a decode-only pass and the model-only Hz in the same child."""
    clips = []
    for v in videos:
        spec = {"video": str(v), "mode": "unpaced", "pace": "off", "model": str(model), "threads": threads,
                "jsonl": str(tmp / "t.jsonl"), "decode_pass": True, "max_frames": max_frames, "model_seconds": model_seconds}
        r = row_of(run_child(spec))
        clips.append({"video": str(v), "name": Path(v).name, **video_facts(v), "run": r})
        log(f"  {Path(v).name:<44} " + (f"{r['hz']:7.1f} Hz  live/model-only {common.fmt(r['live_over_model'], 2)}  "
                                        f"peak {r['peak_rss_mb']:.0f} MB" if "error" not in r else f"ERROR {r['error']}"))
    return clips


def run_latency(models: dict[str, str | Path], clips: Sequence[str | Path], threads: int, tmp: Path,
                frames: int = LATENCY_FRAMES, modes: Sequence[str] = tuple(MODES), output_thread: bool = True,
                log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Each model x clip x mode, ``frames`` frames (clips loop): latency percentiles, drops, CPU share."""
    rows = []
    for name, model in models.items():
        for v in clips:
            facts = video_facts(v)
            for mode in modes:
                spec = {"video": str(v), "mode": mode, "pace": MODES[mode], "model": str(model), "threads": threads,
                        "jsonl": str(tmp / "l.jsonl"), "max_frames": frames, "loop": True, "output_thread": output_thread}
                r = row_of(run_child(spec))
                rows.append({"model": name, "output_thread": output_thread, "video": str(v), "name": Path(v).name,
                             "width": facts["width"], "height": facts["height"], "fps": facts["fps"], "mode": mode, **r})
                o = r.get("overlay_latency") or {}
                log(f"  {name:<18} {Path(v).name[:36]:<36} {mode:<8} " + ("" if output_thread else "no output thread ") + (
                    f"{r['frames']:5d} frames  capture-to-overlay mean {common.fmt(o.get('mean_ms'), 2)} "
                    f"p99 {common.fmt(o.get('p99_ms'), 2)} p99.9 {common.fmt(o.get('p99.9_ms'), 2)} "
                    f"max {common.fmt(o.get('max_ms'), 2)} ms  CPU {common.fmt(r['cpu_cores'], 2)} cores"
                    if "error" not in r else f"ERROR {r['error']}"))
    return rows


#: the live-loop settings of the per-model matrix: (label, ORT threads, pipeline, output thread)
MATRIX_SETTINGS = (("1 thread, output thread", 1, True, True), ("1 thread, no output thread", 1, True, False),
                   ("2 threads, output thread", 2, True, True))


def run_matrix(models: dict[str, str | Path], videos: Sequence[str | Path], settings=MATRIX_SETTINGS,
               max_frames: int = 400, model_seconds: float = 1.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Each model x setting x clip, unpaced, in a child; the ratio to the model-only Hz at the same threads.

    The model-only reference is the faster of ONNX Runtime's spin-waiting on and off; the loop runs with
    spinning off (`fetalplanes run`'s default), so the ratio is the loop against the model at its best.
    """
    out: dict[str, Any] = {"settings": [s[0] for s in settings], "max_frames": max_frames, "models": {}}
    with tempfile.TemporaryDirectory(prefix="fetalplanes-bench-matrix-") as tmp:
        for name, model in models.items():
            rows: dict[str, Any] = {}
            for label, threads, pipeline, output_thread in settings:
                per_clip = {}
                for v in videos:
                    spec = {"video": str(v), "mode": "unpaced", "pace": "off", "model": str(model), "threads": threads,
                            "pipeline": pipeline, "output_thread": output_thread, "spin": False, "loop": True,
                            "jsonl": str(Path(tmp) / "m.jsonl"), "max_frames": max_frames, "model_seconds": model_seconds}
                    r = row_of(run_child(spec))
                    per_clip[Path(v).name] = r
                    if "error" not in r:
                        log(f"  {name:<20} {label:<28} {Path(v).name:<40} {r['hz']:7.1f} Hz  model-only "
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


def run_bench(model: str | Path, videos: Sequence[str | Path], threads: int = 2, latency_frames: int = LATENCY_FRAMES,
              latency_clips: Sequence[str | Path] | None = None, sononet: str | Path | None = None,
              throughput: bool = True, max_frames: int = 0, model_seconds: float = 1.0, model_rounds: int = 3,
              modes: Sequence[str] = tuple(MODES), compare_output_thread: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Throughput on every clip, latency on the real 640x480 clips and a 1920x1080 60 fps one; target checks.

    ``latency_clips``: the clips of the latency runs (default: the real 640x480 ones among ``videos``); the
    1920x1080 clip is made from the first of them. ``sononet``: a SonoNet-16 (INT8) ONNX file also run
    through the latency part (its target rows say "not run" without one). ``compare_output_thread``: the
    first model's paced-60 runs again with the output thread off (rows with ``output_thread`` False).
    """
    from calibration.speed import measure_hz

    t0 = time.perf_counter()
    log(f"model-only Hz of {Path(model).name} (batch 1, {threads} threads)")
    m = measure_hz([model], threads, model_seconds, model_rounds)[0]
    result: dict[str, Any] = {"kind": "fetalplanes-bench-live", "machine": common.machine_stamp(), "model": str(model),
                              "threads": threads, "model_only_hz": m.hz, "model_only_p50_ms": m.latency_ms_p50,
                              "note": common.SHARED_NOTE, "load_average": {"start": common.load_average()},
                              "latency_frames": latency_frames, "sononet": str(sononet) if sononet else None,
                              "clips": [], "latency": []}
    with tempfile.TemporaryDirectory(prefix="fetalplanes-bench-live-") as tmp:
        tmp_path = Path(tmp)
        if throughput:
            log("throughput: every clip once, unpaced")
            result["clips"] = run_throughput(model, videos, threads, tmp_path, max_frames, model_seconds, log)
        clips = list(latency_clips) if latency_clips is not None else [v for v in videos if is_real_640x480(v)]
        if clips and latency_frames:
            log(f"making the {HDMI_SIZE[0]}x{HDMI_SIZE[1]} {HDMI_FPS:.0f} fps clip from {Path(clips[0]).name}")
            clips.append(hdmi_clip(clips[0], tmp_path))
            models = {"mobilenet_v3_small" if "mobilenet_v3_small" in str(model) else Path(model).stem: model}
            if sononet:
                models["sononet16_int8"] = sononet
            log(f"latency: {len(models)} model(s) x {len(clips)} clips x {len(modes)} modes, {latency_frames} frames each")
            result["latency"] = run_latency(models, clips, threads, tmp_path, latency_frames, modes, log=log)
            if compare_output_thread and "paced-60" in modes:  # the same at 60 fps without the output thread
                log("latency without the output thread (paced-60), for comparison")
                first = dict(list(models.items())[:1])
                result["latency"] += run_latency(first, clips, threads, tmp_path, latency_frames, ("paced-60",),
                                                 output_thread=False, log=log)
    result["load_average"]["end"] = common.load_average()
    result["targets"] = check_targets(result)
    result["seconds"] = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------- targets
def _worst(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], float | None]) -> tuple[float | None, dict | None]:
    vals = [(key(r), r) for r in rows if "error" not in r and key(r) is not None]
    return max(vals, key=lambda vr: vr[0]) if vals else (None, None)


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Latency at 60 fps (real clips, 1920x1080; MobileNetV3-small and SonoNet-16 INT8), peak memory, ratios per model."""
    rows = []
    lat = result.get("latency") or []
    frames = result.get("latency_frames") or 0
    short = f"; only {frames} frames per run (a quick run; the target asks >= {LATENCY_FRAMES})" if frames < LATENCY_FRAMES else ""
    models = sorted({r["model"] for r in lat}) or [Path(result["model"]).stem]
    if "sononet16_int8" not in models:
        models.append("sononet16_int8")
    for model in models:
        for where, pick in (("the real 640x480 clips", lambda r: r["width"] == 640 and r["height"] == 480),
                            (f"{HDMI_SIZE[0]}x{HDMI_SIZE[1]} input", lambda r: r["name"].startswith(HDMI_NAME))):
            target = f"{model}: live p99.9 capture-to-overlay <= {FRAME_60_MS:.1f} ms paced at 60 fps, {where}"
            sel = [r for r in lat if r["model"] == model and r["mode"] == "paced-60" and r.get("output_thread", True) and pick(r)]
            value, worst = _worst(sel, lambda r: (r.get("overlay_latency") or {}).get("p99.9_ms"))
            if value is None:
                why = ("not run: no SonoNet model (pass --sononet FILE.onnx)" if model == "sononet16_int8" and not result.get("sononet")
                       else "not run")
                rows.append(common.target_row(target, None, FRAME_60_MS, None, "ms", why))
            else:
                note = (f"worst: {worst['name']} ({worst['frames']} frames, max {worst['overlay_latency']['max_ms']:.1f} ms, "
                        f"{worst['dropped']} input / {worst['output_dropped']} output frames dropped){short}")
                rows.append(common.target_row(target, value, FRAME_60_MS, value <= FRAME_60_MS, "ms", note))
    mem = [r["peak_rss_mb"] for r in [c["run"] for c in result.get("clips", [])] + lat if "peak_rss_mb" in r]
    rows.append(common.target_row(f"edge process peak memory <= {MEMORY_LIMIT_MB:.0f} MB (ONNX Runtime, all live runs, worst)",
                                  max(mem) if mem else None, MEMORY_LIMIT_MB, (max(mem) <= MEMORY_LIMIT_MB) if mem else None,
                                  "MB", f"{len(mem)} runs" if mem else "not run"))
    return rows


def matrix_targets(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model: the setting with the best worst-clip ratio, against the model's live / model-only target."""
    checks = []
    for name, m in matrix["models"].items():
        need = LIVE_OVER_MODEL.get(name, 0.90)
        best = max(((label, r) for label, r in m["settings"].items() if r["worst_ratio"] is not None),
                   key=lambda lr: lr[1]["worst_ratio"], default=None)
        target = f"{name}: live >= {need:.0%} of model-only Hz, real 640x480 clips (unpaced, worst clip)"
        if best is None:
            checks.append(common.target_row(target, None, need, None, "ratio", "not run"))
            continue
        others = "; ".join(f"{label} {common.fmt(r['worst_ratio'], 2)}" for label, r in m["settings"].items())
        value = best[1]["worst_ratio"]
        note = f"best setting: {best[0]} (all: {others})"
        ratios = [r["live_over_model"] for r in best[1]["clips"].values() if r.get("live_over_model") is not None]
        if max(ratios) > RATIO_VALID_MAX:  # the loop cannot outrun its own model: the load moved under the timings
            checks.append(common.target_row(target, value, need, None, "ratio", f"NOT VALID: a clip's loop ran "
                                            f"{max(ratios):.2f}x its model alone (the machine's load changed between "
                                            f"the two timings; rerun on a quiet machine); {note}", setting=best[0]))
            continue
        checks.append(common.target_row(target, value, need, value >= need, "ratio", note, setting=best[0]))
    return checks


# ----------------------------------------------------------------------------- results
def throughput_markdown(result: dict[str, Any]) -> list[str]:
    f = common.fmt
    lines = ["", "## Throughput per clip (unpaced, every frame once)", "",
             "| clip | size | fps | Hz | decode ms | sector+pre ms | infer ms | temporal ms | overlay ms | output ms | "
             "peak MB | live / model-only |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["clips"]:
        r = c["run"]
        if "error" in r:
            lines.append(f"| {c['name']} | {c['width']}x{c['height']} | {c['fps']:.0f} | error: {r['error']} |||||||||")
            continue
        lines.append(f"| {c['name']} | {c['width']}x{c['height']} | {c['fps']:.0f} | {r['hz']:.1f} | {f(r['decode_ms'], 2)} | "
                     f"{f(r['sector_preprocess_ms'], 2)} | {f(r['infer_ms'], 2)} | {f(r['temporal_ms'], 2)} | "
                     f"{f(r['overlay_ms'], 2)} | {f(r['output_ms'], 2)} | {r['peak_rss_mb']:.0f} | {f(r.get('live_over_model'), 2)} |")
    return lines


def latency_markdown(result: dict[str, Any]) -> list[str]:
    f = common.fmt
    lines = ["", f"## Latency (capture-to-overlay, ms; {result['latency_frames']} frames per run)", "",
             "Capture-to-overlay: from the moment the capture thread got the frame to the moment its overlaid frame "
             "was handed to the (null) window on the main thread. Unpaced: every frame of a looping file, as fast as "
             "it goes (a frame counts as captured when the loop can take it). CPU: process CPU time / wall time, in "
             f"cores ({result['machine']['cpu']['usable_cpus']} usable here). Dropped: in = frames the loop never took "
             "(a newer one came first), out = labelled frames the output thread dropped (behind), window = overlaid "
             "frames the window never showed (a newer one was ready); latency is over the frames shown.", "",
             "| model | clip | size | mode | frames | mean | p50 | p90 | p95 | p99 | p99.9 | max | label p99.9 | "
             "dropped in / out / window | CPU cores |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["latency"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['name']} | {r['width']}x{r['height']} | {r['mode']} | error: {r['error']} ||||||||||")
            continue
        o, lab = r["overlay_latency"] or {}, r["label_latency"] or {}
        mode = r["mode"] + ("" if r.get("output_thread", True) else ", no output thread")
        lines.append(f"| {r['model']} | {r['name']} | {r['width']}x{r['height']} | {mode} | {r['frames']} | "
                     + " | ".join(f(o.get(k), 2) for k in ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99.9_ms", "max_ms"))
                     + f" | {f(lab.get('p99.9_ms'), 2)} | {r['dropped']} / {r['output_dropped']} / {r['display_skipped']} | "
                       f"{f(r['cpu_cores'], 2)} |")
    return lines


def matrix_markdown(matrix: dict[str, Any]) -> list[str]:
    """The per-model matrix as markdown lines."""
    f = common.fmt
    lines = ["", "## Per model and setting (real 640x480 clips, unpaced)", "",
             f"Each model's FP32 ONNX file at 224 px, each setting, each real 640x480 clip (at most "
             f"{matrix['max_frames']} frames, looping), in a child process, pipeline on; the loop with ONNX Runtime's "
             "spin-waiting off (`fetalplanes run`'s default), the model-only reference in the same child right after "
             "(the faster of ORT's spin-waiting on and off: the model at its best). Cells: worst-clip ratio live / "
             f"model-only (median loop Hz / median model-only Hz). A ratio above {RATIO_VALID_MAX:.2f} is no measurement: "
             "the load changed between the two timings.", "",
             "| model | " + " | ".join(matrix["settings"]) + " |", "|---|" + "---|" * len(matrix["settings"])]
    for name, m in matrix["models"].items():
        cells = []
        for label in matrix["settings"]:
            r = m["settings"].get(label) or {}
            cells.append(f"{f(r.get('worst_ratio'), 2)} ({f(r.get('median_hz'), 0)} / {f(r.get('median_model_only_hz'), 0)} Hz)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    mc, cpu = result["machine"], result["machine"]["cpu"]
    la = result.get("load_average") or {}
    lines = [
        "# Live loop, end to end",
        "",
        f"Machine: {cpu['model']} ({cpu['usable_cpus']} usable CPUs, INT8 dot product: {cpu['int8_dot_product']}); "
        f"measured {mc['when']}; load average {common.fmt(la.get('start'), 2)} at the start, "
        f"{common.fmt(la.get('end'), 2)} at the end. {result['note']}.",
        "",
        f"Model `{result['model']}`" + (f" ({result['models_note']})" if result.get("models_note") else "")
        + f", ONNX Runtime, {result['threads']} threads; model-only {result['model_only_hz']:.1f} Hz (batch 1, p50 "
        f"{result['model_only_p50_ms']:.2f} ms) at the start. Each run is a child process importing only `edge` (no "
        "torch), pipeline and output thread on (the defaults). Stage times are means per frame; decode is a separate "
        "decode-only pass; live / model-only uses the model-only Hz timed in the same child right after the loop.",
    ]
    if result.get("clips"):
        lines += throughput_markdown(result)
    if result.get("latency"):
        lines += latency_markdown(result)
    if result.get("matrix"):
        lines += matrix_markdown(result["matrix"])
    lines += ["", "## Targets (from this run)", "", "| target | measured | limit | result | note |", "|---|---|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {common.fmt(t['measured'], 2)} | {t['limit']:.2f} | {common.verdict(t['pass'])} | {t.get('note', '')} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    """Capture-to-overlay percentiles per latency run (or per-clip Hz when no latency part ran)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in result.get("latency", []) if "error" not in r and r.get("overlay_latency")]
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.32 * max(1, len(rows))))
    if rows:
        names = [f"{r['model'][:14]} {r['name'][:26]} {r['mode']}" + ("" if r.get("output_thread", True) else " no OT")
                 for r in rows]
        y = np.arange(len(rows))
        for key, marker in (("p50_ms", "o"), ("p99_ms", "s"), ("p99.9_ms", "^"), ("max_ms", "x")):
            ax.scatter([r["overlay_latency"].get(key, np.nan) for r in rows], y, marker=marker, label=key[:-3])
        ax.axvline(FRAME_60_MS, color="k", ls="--", lw=1, label="one frame at 60 fps")
        ax.set_yticks(y, names, fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("capture-to-overlay latency, ms")
        ax.legend(fontsize=8)
    else:
        clips = [c for c in result.get("clips", []) if "hz" in c["run"]]
        ax.barh([c["name"][:28] for c in clips], [c["run"]["hz"] for c in clips])
        ax.set_xlabel("Hz, unpaced")
    ax.set_title(f"Live loop, {result['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_results(result: dict[str, Any], out_dir: Path, stem: str = "live") -> dict[str, Path]:
    return common.write_results(result, out_dir, stem, markdown, plot)


# ----------------------------------------------------------------------------- side by side (tuning)
def parse_variant(text: str) -> dict[str, Any]:
    """``NAME=REPO[:key=value,...]`` -> a variant: its name, the checkout whose ``edge`` it runs (``.`` = this
    one), and the tuning knobs of :func:`apply_tuning` (``switch_interval``, ``cv_threads``, ``gc_freeze``,
    ``loop.NAME`` for a module constant of edge.live.loop)."""
    name, _, rest = text.partition("=")
    repo, _, knobs = rest.partition(":")
    tuning: dict[str, Any] = {}
    for kv in filter(None, knobs.split(",")):
        k, _, v = kv.partition("=")
        tuning[k] = json.loads(v) if v not in ("", None) else True
    repo_path = Path(__file__).resolve().parents[1] if repo in ("", ".") else Path(repo).resolve()
    if not name or not (repo_path / "edge").is_dir():
        raise SystemExit(f"bench_live: --compare {text!r}: expected NAME=REPO[:key=value,...] with REPO a checkout holding edge/")
    return {"name": name, "repo": str(repo_path), "tuning": tuning}


def run_compare(variants: Sequence[dict[str, Any]], model: str | Path, clips: Sequence[str | Path], tmp: Path,
                frames: int = LATENCY_FRAMES, rounds: int = 2, threads: int = 2, ratio_models: dict[str, str | Path] | None = None,
                ratio_frames: int = 400, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Variants side by side, interleaved (round -> clip -> variant), on one machine in one run.

    Latency: paced at 60 fps, ``frames`` frames per run, each clip (loops), with the per-frame trace (where the
    slowest frames lost their time); a pure-Python sleep loop paced at 60 fps for as many frames runs in the same
    rotation (the machine's floor). Ratio (``ratio_models``): unpaced, 1 ORT thread, output thread on, the
    live / model-only Hz of each model on each real clip (the per-model target's best setting)."""
    out: dict[str, Any] = {"variants": list(variants), "frames": frames, "rounds": rounds, "threads": threads,
                           "load_average": {"start": common.load_average()}, "latency": [], "floor": [], "ratio": []}
    for rnd in range(rounds):
        for v in clips:
            facts = video_facts(v)
            fl = run_child({"floor": True, "frames": frames, "fps": 60.0, "video": "floor", "mode": "floor"})
            out["floor"].append({"round": rnd, "load": common.load_average(), **(fl.get("floor") or {"error": fl.get("error")})})
            for var in variants:
                spec = {"video": str(v), "mode": "paced-60", "pace": "60", "model": str(model), "threads": threads,
                        "jsonl": str(tmp / "c.jsonl"), "max_frames": frames, "loop": True, "trace": True,
                        "repo": var["repo"], "tuning": var["tuning"]}
                r = run_child(spec)
                row = row_of(r)
                row.update({"variant": var["name"], "round": rnd, "name": Path(v).name, "width": facts["width"],
                            "height": facts["height"], "load": common.load_average(), "trace": r.get("trace"),
                            "gc": r.get("gc")})
                out["latency"].append(row)
                o = row.get("overlay_latency") or {}
                log(f"  round {rnd} {var['name']:<14} {Path(v).name[:40]:<40} p50 {common.fmt(o.get('p50_ms'), 2)} "
                    f"p99 {common.fmt(o.get('p99_ms'), 2)} p99.9 {common.fmt(o.get('p99.9_ms'), 2)} max {common.fmt(o.get('max_ms'), 2)} "
                    f"ms  (floor p99.9 {common.fmt(out['floor'][-1].get('p99.9_ms'), 2)}, load {common.fmt(row['load'], 2)})"
                    if "error" not in row else f"  ERROR {row['error']}")
        for arch, m in (ratio_models or {}).items():
            for v in clips:
                if not is_real_640x480(v):
                    continue
                for var in variants:
                    spec = {"video": str(v), "mode": "unpaced", "pace": "off", "model": str(m), "threads": 1,
                            "output_thread": True, "spin": False, "loop": True, "jsonl": str(tmp / "r.jsonl"),
                            "max_frames": ratio_frames, "model_seconds": 1.0, "repo": var["repo"], "tuning": var["tuning"]}
                    row = row_of(run_child(spec))
                    row.update({"variant": var["name"], "round": rnd, "model": arch, "name": Path(v).name})
                    out["ratio"].append(row)
                    log(f"  round {rnd} {var['name']:<14} {arch:<20} {Path(v).name[:40]:<40} " + (
                        f"{row['hz']:7.1f} Hz / model-only {row['model_only_hz']:7.1f} Hz = {row['live_over_model']:.2f}; "
                        f"sector+pre {common.fmt(row['sector_preprocess_ms'], 2)} temporal {common.fmt(row['temporal_ms'], 2)} "
                        f"overlay {common.fmt(row['overlay_ms'], 2)} ms" if "error" not in row else f"ERROR {row['error']}"))
    out["load_average"]["end"] = common.load_average()
    return out


def compare_markdown(res: dict[str, Any]) -> str:
    """The side-by-side run as markdown tables (medians over rounds; worst round in brackets)."""
    import numpy as np

    f = common.fmt
    names = [v["name"] for v in res["variants"]]
    la = res["load_average"]
    lines = [f"Side by side, interleaved (round -> clip -> variant), {res['rounds']} rounds, {res['frames']} frames per "
             f"latency run, ORT {res['threads']} threads; load average {f(la.get('start'), 2)} at the start, "
             f"{f(la.get('end'), 2)} at the end. Variants: " + "; ".join(
                 f"`{v['name']}` = {Path(v['repo']).name} {json.dumps(v['tuning']) if v['tuning'] else ''}".strip() for v in res["variants"]), "",
             "### Capture-to-overlay latency, paced at 60 fps (ms; median of the rounds, worst round in brackets)", "",
             "| clip | variant | p50 | p99 | p99.9 | max | p99.9 after the first 2 s | slowest frames lost most in |",
             "|---|---|---|---|---|---|---|---|"]
    clips = list(dict.fromkeys(r["name"] for r in res["latency"]))
    for c in clips:
        for n in names:
            rows = [r for r in res["latency"] if r["name"] == c and r["variant"] == n and "error" not in r]
            if not rows:
                lines.append(f"| {c} | {n} | no run ||||||")
                continue

            def cell(key: str) -> str:
                v = [r["overlay_latency"].get(key) for r in rows if r.get("overlay_latency")]
                return f"{np.median(v):.2f} ({max(v):.2f})" if v else "-"
            late = [r["trace"]["after_warmup"]["p99.9_ms"] for r in rows if (r.get("trace") or {}).get("after_warmup")]
            where: dict[str, int] = {}
            for r in rows:
                for s in (r.get("trace") or {}).get("slowest", [])[:3]:
                    if s.get("worst_segment"):
                        where[s["worst_segment"]] = where.get(s["worst_segment"], 0) + 1
            lines.append(f"| {c} | {n} | {cell('p50_ms')} | {cell('p99_ms')} | {cell('p99.9_ms')} | {cell('max_ms')} | "
                         + (f"{np.median(late):.2f} ({max(late):.2f})" if late else "-") + " | "
                         + ", ".join(f"{k} x{v}" for k, v in sorted(where.items(), key=lambda kv: -kv[1])) + " |")
    gcs = [r["gc"] for r in res["latency"] if r.get("gc")]
    if gcs:
        lines += ["", "Garbage collections during the latency runs (all variants, " + f"{len(gcs)} runs): " + ", ".join(
            f"generation {g}: {sum(x[f'gen{g}']['count'] for x in gcs)} in all, longest {max(x[f'gen{g}']['max_ms'] for x in gcs):.2f} ms"
            for g in (0, 1, 2)) + "."]
    fl = [r for r in res["floor"] if "error" not in r]
    if fl:
        lines += ["", f"Machine floor (a pure-Python loop sleeping to a 60 fps deadline, {res['frames']} periods per run, "
                  f"{len(fl)} runs in the same rotation): lateness p50 {np.median([r['p50_ms'] for r in fl]):.3f} ms, "
                  f"p99 {np.median([r['p99_ms'] for r in fl]):.3f} ms, p99.9 median {np.median([r['p99.9_ms'] for r in fl]):.3f} ms "
                  f"(worst {max(r['p99.9_ms'] for r in fl):.3f}), max {max(r['max_ms'] for r in fl):.3f} ms."]
    if res.get("ratio"):
        lines += ["", "### Live / model-only Hz, unpaced, 1 ORT thread, output thread on (median of the rounds; worst clip)", "",
                  "CPU ms per frame: the loop's process CPU time (all its threads, start-up included) per labelled frame, "
                  "less sensitive to the other jobs than Hz. Stage times are means per frame (the stages overlap in the "
                  "pipeline; a stage's time includes its waits for the GIL).", "",
                  "| model | variant | worst-clip ratio | median Hz / model-only Hz | CPU ms per frame | sector+pre ms | infer ms | "
                  "temporal ms | overlay ms |", "|---|---|---|---|---|---|---|---|---|"]
        for arch in dict.fromkeys(r["model"] for r in res["ratio"]):
            for n in names:
                rows = [r for r in res["ratio"] if r["model"] == arch and r["variant"] == n and r.get("live_over_model")]
                if not rows:
                    continue
                per_clip: dict[str, list[float]] = {}
                for r in rows:
                    per_clip.setdefault(r["name"], []).append(r["live_over_model"])
                worst = min(float(np.median(v)) for v in per_clip.values())
                med = lambda k: float(np.median([r[k] for r in rows if r.get(k) is not None]))  # noqa: E731
                cpu_ms = float(np.median([r["cpu_cores"] * 1000.0 / r["hz"] for r in rows if r.get("cpu_cores") and r.get("hz")]))
                lines.append(f"| {arch} | {n} | {worst:.2f} | {med('hz'):.0f} / {med('model_only_hz'):.0f} | {cpu_ms:.2f} | "
                             f"{med('sector_preprocess_ms'):.2f} | {med('infer_ms'):.2f} | {med('temporal_ms'):.2f} | "
                             f"{med('overlay_ms'):.2f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- models and clips
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
    p.add_argument("--latency-frames", type=int, default=None, help=f"frames per latency run ({LATENCY_FRAMES}; 300 with --quick)")
    p.add_argument("--sononet", type=Path, help="a SonoNet-16 (INT8) ONNX file: also run through the latency part")
    p.add_argument("--quick", action="store_true", help="300 frames per latency run, 150 per matrix run, throughput on the "
                                                          "latency clips only")
    p.add_argument("--untrained", action="store_true",
                   help="time FP32 files with random weights (bench_models.untrained_fp32) instead of training the models "
                        "first: speed only (an FP32 network's time does not depend on its weights)")
    p.add_argument("--work", type=Path, default=bench_models.WORK)
    p.add_argument("--out", type=Path, default=common.RESULTS)
    p.add_argument("--matrix", action=argparse.BooleanOptionalAction, default=None,
                   help="also run bench_models' three models x settings on the real 640x480 clips (default: on when "
                        "--model is not given)")
    p.add_argument("--compare", action="append", metavar="NAME=REPO[:k=v,...]",
                   help="side by side instead of the full benchmark: variants (a checkout's edge and tuning knobs, e.g. "
                        "before=../base after=. after-si5=.:switch_interval=0.005), interleaved, paced at 60 fps with "
                        "the per-frame trace and the machine's floor; writes live_compare.{json,md} (not live.*)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of a --compare run (default 2)")
    p.add_argument("--ratio", action=argparse.BooleanOptionalAction, default=True,
                   help="with --compare: also the live / model-only ratios (MobileNetV3-small, MobileNetV2; unpaced)")
    p.add_argument("--hdmi", action=argparse.BooleanOptionalAction, default=True,
                   help="with --compare: also the 1920x1080 60 fps clip")
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        res = {"floor": sleep_floor(spec["frames"], spec.get("fps", 60.0))} if spec.get("floor") else child_main(spec)
        print(json.dumps(res, default=float))
        return 0
    if args.sononet is not None and not args.sononet.is_file():
        print(f"bench_live: --sononet {args.sononet}: no such file", file=sys.stderr)
        return 2
    frames = args.latency_frames if args.latency_frames is not None else (300 if args.quick else LATENCY_FRAMES)
    if args.compare:
        return compare_main(args, frames)
    if args.model:
        model = args.model
    elif args.untrained:
        model = bench_models.untrained_fp32("mobilenet_v3_small", args.work)
    else:
        model = default_model(args.work)
    if args.videos:
        videos = [Path(v) for v in args.videos.split(",") if v]
    else:
        videos = sorted(v for v in SHARED_VIDEOS.glob("*") if v.suffix.lower() in VIDEO_SUFFIXES) if SHARED_VIDEOS.is_dir() else []
        if not videos:
            print(f"note: no real clips in {SHARED_VIDEOS}; the phantom video only", file=sys.stderr)
        videos.append(phantom_video(args.work))
    real = [v for v in videos if is_real_640x480(v)]
    result = run_bench(model, real if args.quick else videos, args.threads, frames, real, args.sononet)
    if args.untrained and not args.model:
        result["models_note"] = "untrained FP32 weights: speed only"
    if args.matrix or (args.matrix is None and args.model is None):
        if real:
            models = {arch: (bench_models.untrained_fp32(arch, args.work) if args.untrained
                             else bench_models.prepare_model(arch, args.work).fp32) for arch in bench_models.DEFAULT_MODELS}
            print(f"matrix: {len(models)} models x {len(MATRIX_SETTINGS)} settings x {len(real)} clips")
            result["matrix"] = run_matrix(models, real, max_frames=150 if args.quick else 400)
            result["targets"] += matrix_targets(result["matrix"])
            result["load_average"]["end"] = common.load_average()
    paths = write_results(result, args.out)
    print(paths["md"].read_text())
    print("results: " + ", ".join(str(p) for p in paths.values()))
    return 0


def compare_main(args: argparse.Namespace, frames: int) -> int:
    """``--compare``: the variants side by side on the real 640x480 clips (and a 1920x1080 one)."""
    import bench_models

    variants = [parse_variant(t) for t in args.compare]
    model = args.model or bench_models.untrained_fp32("mobilenet_v3_small", args.work)
    if args.videos:
        clips = [Path(v) for v in args.videos.split(",") if v]
    else:
        clips = sorted(v for v in SHARED_VIDEOS.glob("*") if v.suffix.lower() in VIDEO_SUFFIXES and is_real_640x480(v))
    ratio_models = ({arch: bench_models.untrained_fp32(arch, args.work) for arch in ("mobilenet_v3_small", "mobilenet_v2")}
                    if args.ratio else None)
    with tempfile.TemporaryDirectory(prefix="fetalplanes-bench-compare-") as tmp:
        run_clips = list(clips) + ([hdmi_clip(clips[0], Path(tmp))] if args.hdmi and clips else [])
        res = run_compare(variants, model, run_clips, Path(tmp), frames, args.rounds, args.threads, ratio_models)
    res.update({"kind": "fetalplanes-bench-live-compare", "machine": common.machine_stamp(), "model": str(model)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common.write_json(out / "live_compare.json", res)
    md = compare_markdown(res)
    (out / "live_compare.md").write_text(common.portable_paths(md), encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
