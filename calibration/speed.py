"""Speed of models on this machine, and which variant may be deployed (the one timing implementation).

Polygraphy-style: every runtime is wrapped as a plain ``infer(batch) -> logits``
callable (:class:`Runtime`), all runtimes get the SAME inputs, a runtime is only
timed after its outputs were compared with the reference, and the runtimes are
timed in turns (:func:`time_interleaved`: interleaved rounds) so that a
neighbour's load on a shared machine hits all of them alike.

Used by ``fetalplanes quantize`` (:func:`measure_hz`), ``fetalplanes demo``'s
speed step and ``benchmarks/`` (:func:`measure_model`). A variant counts as
*deployable* only when the one rule of :mod:`edge.deployability` accepts it
(:func:`judge_deployable`); :func:`best_deployable` never returns one it rejected.
Outputs are compared by :func:`calibration.compare_outputs.compare_outputs`.

Nothing here imports torch: a PyTorch baseline is measured through a runner
factory the caller passes (``export.torch_runner.TorchRunner``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from calibration.compare_outputs import compare_outputs, gate_evidence
from edge.deployability import MAX_DROP_POINTS, MIN_AGREEMENT, Evidence, Gate, Verdict, choose, combine, judge

Infer = Callable[[np.ndarray], np.ndarray]
#: FP32 runtimes other than the reference (ORT FP32, OpenCV) must match it within this on the logits.
STRICT_ATOL = 1e-2


@dataclass
class Runtime:
    """One way to run one model: a name, and either an infer callable or why it cannot run."""

    name: str  # e.g. "ORT INT8 (uint8 act.)"
    kind: str  # pytorch | ort-fp32 | ort-int8 | opencv | tensorrt
    infer: Infer | None = None
    note: str = ""  # why it is absent / disagrees
    agreement: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] | None = None


@dataclass
class Timing:
    """Timing of one runtime on one batch size."""

    hz: float  # images per second, median over rounds
    p50_ms: float  # latency of one call (one batch)
    p90_ms: float
    p99_ms: float
    calls: int
    rounds: int
    hz_best: float = 0.0  # images per second of the best round

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class SpeedResult:
    """Batch-1 speed of one model file (what ``fetalplanes quantize`` reports)."""

    path: str
    hz: float  # images per second, batch 1 (best round)
    latency_ms_p50: float
    threads: int
    rounds: int

    def to_dict(self) -> dict:
        return asdict(self)


def default_threads() -> int:
    """Intra-op threads used when none is given: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- runtimes
def ort_runtime(path: str | Path, name: str, kind: str, threads: int) -> Runtime:
    """ONNX Runtime, CPU provider, ``threads`` intra-op threads (a note instead of a callable if it fails to load)."""
    try:
        from edge.backends import open_runner

        r = open_runner(str(path), threads=threads).activate()
    except Exception as exc:
        return Runtime(name, kind, note=f"does not load ({type(exc).__name__}: {str(exc)[:120]})")
    return Runtime(name, kind, r.infer, close=r.deactivate)


def opencv_runtime(path: str | Path, threads: int) -> Runtime:
    """OpenCV DNN (CPU) on the FP32 ONNX file."""
    try:
        import cv2

        cv2.setNumThreads(threads)
        net = cv2.dnn.readNetFromONNX(str(path))
    except Exception as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        return Runtime("OpenCV DNN", "opencv", note=f"does not load the model ({type(exc).__name__}: {first})")

    def infer(x: np.ndarray) -> np.ndarray:
        net.setInput(x)
        return np.asarray(net.forward())

    return Runtime("OpenCV DNN", "opencv", infer)


def torch_runtime(checkpoint: str | Path, threads: int, torch_runner: Callable[..., Any]) -> Runtime:
    """PyTorch eager on the CPU with ``threads`` intra-op threads.

    ``torch_runner(path, device=, threads=)`` opens the checkpoint (``export.torch_runner.TorchRunner``).
    torch's thread count is process-wide, so it is set again before every call (runtimes are interleaved).
    """
    name = f"PyTorch eager ({threads} thr.)"
    try:
        r = torch_runner(str(checkpoint), device="cpu", threads=threads).activate()
    except Exception as exc:  # torch absent, or a bad checkpoint
        return Runtime(name, "pytorch", note=f"not present ({type(exc).__name__}: {str(exc)[:120]})")
    torch = sys.modules.get("torch")  # imported by the runner

    def infer(x: np.ndarray) -> np.ndarray:
        if torch is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return r.infer(x)

    return Runtime(name, "pytorch", infer, close=r.deactivate)


def tensorrt_note() -> str:
    """'not present' unless a GPU and the tensorrt module are both here (engines are timed by `fetalplanes selftest`)."""
    import importlib.util

    try:
        from edge.sysinfo import read_gpus

        gpus = read_gpus()
    except Exception:
        gpus = []
    try:
        has_trt = importlib.util.find_spec("tensorrt") is not None
    except Exception:
        has_trt = False
    if not gpus or not has_trt:
        missing = [w for w, absent in (("no NVIDIA GPU", not gpus), ("no tensorrt module", not has_trt)) if absent]
        return f"not present ({', '.join(missing)})"
    return "GPU and TensorRT present: build engines with `fetalplanes build-engine` and time them with `fetalplanes selftest`"


def run_each(rt: Runtime, x: np.ndarray) -> np.ndarray:
    """``rt`` on every image of ``x`` at batch 1, outputs stacked."""
    return np.concatenate([np.asarray(rt.infer(x[i : i + 1])).reshape(1, -1) for i in range(len(x))], axis=0)


def check_agreement(rt: Runtime, x: np.ndarray, ref: np.ndarray, atol: float | None) -> bool:
    """Run ``rt`` on ``x``; store argmax agreement and max |diff| against ``ref``.

    ``atol`` None: report only (INT8 is expected to differ a little). Otherwise the
    runtime is disabled (its note says why) unless every argmax agrees and max|diff| <= atol.
    """
    try:
        out = run_each(rt, x).reshape(ref.shape)
    except Exception as exc:
        rt.note = f"fails to run ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
        rt.infer = None
        return False
    c = compare_outputs(ref, out, atol=atol, min_agreement=None if atol is None else 1.0)
    agree, diff = c.argmax_agreement, c.max_abs_diff
    rt.agreement.update(argmax_agreement=round(agree, 4), max_abs_diff=round(diff, 5), images=int(len(x)))
    if not c.ok:
        rt.note = (f"DISAGREES with the reference (argmax agreement {agree:.2f}, max |diff| {diff:.3g} > {atol}): "
                   "not timed")
        rt.infer = None
        return False
    return True


# ----------------------------------------------------------------------------- deployability
def judge_deployable(kind: str, agreement: dict[str, Any], quantize_holds: bool | Verdict | None = None,
                     min_agreement: float = MIN_AGREEMENT, max_drop: float = MAX_DROP_POINTS) -> tuple[bool, str]:
    """May this runtime be deployed? (verdict, why), by the one rule of :mod:`edge.deployability`.

    PyTorch eager is the baseline, never a deployment option. FP32 runtimes (ORT FP32, OpenCV) are deployable
    when they matched the reference (they are only timed if they did). An INT8 variant is deployable when
    every check made of it passed and at least one was made (:func:`edge.deployability.combine`):
    ``quantize_holds`` (``fetalplanes quantize``'s verdict on the validation patients, a Verdict or a bool)
    and the held-out check, :func:`edge.deployability.judge` on ``agreement["heldout"]`` (an Evidence dict;
    older results: ``heldout_agreement`` and ``heldout_images``).
    """
    if kind == "pytorch":
        return False, "baseline"
    if kind in ("ort-fp32", "opencv"):
        return True, "FP32, matches the reference"
    gate = Gate(min_agreement, max_drop)
    quantize = Verdict.from_bool(quantize_holds, "quantize") if isinstance(quantize_holds, bool) else quantize_holds
    if quantize is not None and not quantize.why.startswith("quantize"):
        quantize = Verdict(quantize.deployable, f"quantize: {quantize.why}", quantize.checks)
    held = heldout_evidence(agreement)
    heldout = None if held is None else judge(held, gate)
    v = combine([("", quantize), ("held-out", heldout)])
    return v.deployable, v.why


def heldout_evidence(agreement: dict[str, Any]) -> Evidence | None:
    """The held-out Evidence stored in a runtime's ``agreement`` dict (None when not checked)."""
    if isinstance(agreement.get("heldout"), dict):
        return Evidence.from_dict(agreement["heldout"])
    if agreement.get("heldout_agreement") is None:
        return None
    n = int(agreement.get("heldout_images") or 0)
    if n <= 0:
        return None
    return Evidence(n, int(round(float(agreement["heldout_agreement"]) * n)), where=f"{n} held-out images")


def best_deployable(model_result: dict[str, Any], batch: int = 1) -> dict[str, Any] | None:
    """The fastest runtime at ``batch`` among those timed AND deployable (never one the gate rejected).

    :func:`edge.deployability.choose` without a reference: the benchmark asks how fast a deployable runtime
    goes, not which file to ship (``fetalplanes quantize`` and the demo add the speed margin over FP32).
    """
    def hz(r: dict[str, Any]) -> float | None:
        t = r["batches"].get(str(batch))
        return None if not t else t["hz"]

    best, _ = choose(model_result["runtimes"], hz, lambda r: bool(r.get("deployable")))
    return best


# ----------------------------------------------------------------------------- timing
def time_interleaved(
    runtimes: Sequence[Runtime], x: np.ndarray, seconds: float = 1.0, rounds: int = 3, warmup: int = 5
) -> dict[str, Timing]:
    """Time each runtime on batch ``x`` in turns: ``rounds`` rounds of ``seconds`` each, after ``warmup`` calls.

    Hz = images/s, median over rounds (and the best round); latency percentiles over all calls of all rounds.
    """
    live = [r for r in runtimes if r.infer is not None]
    for r in live:
        for _ in range(warmup):
            r.infer(x)
    hz: dict[str, list[float]] = {r.name: [] for r in live}
    lat: dict[str, list[float]] = {r.name: [] for r in live}
    for _ in range(max(1, rounds)):
        for r in live:
            start = time.perf_counter()
            n = 0
            while True:
                t0 = time.perf_counter()
                r.infer(x)
                t1 = time.perf_counter()
                lat[r.name].append((t1 - t0) * 1000.0)
                n += 1
                if t1 - start >= seconds and n >= 3:
                    break
            hz[r.name].append(n * len(x) / (time.perf_counter() - start))
    out = {}
    for r in live:
        v = np.asarray(lat[r.name])
        out[r.name] = Timing(float(np.median(hz[r.name])), float(np.percentile(v, 50)), float(np.percentile(v, 90)),
                             float(np.percentile(v, 99)), int(v.size), max(1, rounds), float(max(hz[r.name])))
    return out


def measure_hz(
    paths: Sequence[str | Path], threads: int | None = None, seconds: float = 1.0, rounds: int = 3, warmup: int = 5
) -> list[SpeedResult]:
    """Batch-1 images/s of each ONNX file with ONNX Runtime on the CPU, best of ``rounds`` interleaved rounds.

    Files with the same input shape are timed in turns (:func:`time_interleaved`) on the same random input.
    """
    from edge.backends import open_runner

    threads = threads or default_threads()
    rng = np.random.default_rng(0)
    runtimes: list[Runtime] = []
    try:
        for i, p in enumerate(paths):
            r = open_runner(p, threads=threads).activate()  # a load error propagates (a clear FetalPlanesError)
            runtimes.append(Runtime(f"{i}:{p}", "ort", r.infer, close=r.deactivate))
        shapes = [read_shape(p) for p in paths]
        timings: dict[str, Timing] = {}
        for shape in dict.fromkeys(shapes):
            x = rng.normal(0, 0.5, shape).astype(np.float32)
            group = [rt for rt, s in zip(runtimes, shapes) if s == shape]
            timings.update(time_interleaved(group, x, seconds, rounds, warmup))
    finally:
        for rt in runtimes:
            if rt.close is not None:
                rt.close()
    return [SpeedResult(str(p), timings[rt.name].hz_best, timings[rt.name].p50_ms, threads, max(1, rounds))
            for rt, p in zip(runtimes, paths)]


def read_shape(path: str | Path) -> tuple[int, ...]:
    """Batch-1 input shape recorded in a model file's metadata."""
    from edge.backends import read_model_info

    return tuple(read_model_info(path).input_shape(1))


def measure_model(
    name: str,
    checkpoint: str | Path | None,
    fp32_onnx: str | Path,
    int8_variants: dict[str, str | Path],
    inputs: np.ndarray,
    batches: Sequence[int] = (1, 8),
    threads: int = 2,
    seconds: float = 1.0,
    rounds: int = 3,
    opencv: bool = True,
    log: Callable[[str], None] = print,
    *,
    torch_runner: Callable[..., Any] | None = None,
    heldout: np.ndarray | None = None,
    quantize_holds: dict[str, bool | Verdict] | None = None,
    min_agreement: float = MIN_AGREEMENT,
    heldout_targets: np.ndarray | None = None,
    max_drop: float = MAX_DROP_POINTS,
) -> dict[str, Any]:
    """Every runtime present for one model, same inputs, agreement checked, deployability judged, then timed.

    ``int8_variants``: {label (e.g. "uint8 act."): path}. ``torch_runner``: opens ``checkpoint`` for the
    PyTorch baseline (at ``threads`` and at 1 thread). ``heldout``: preprocessed images no calibration or
    quantize check used (e.g. the test patients), ``heldout_targets`` their classes (optional: the top-1 drop
    is then judged too); each INT8 variant's outputs against ORT FP32 on them are judged by
    :mod:`edge.deployability` and combined with ``quantize_holds`` ({label: quantize's verdict}).
    Returns a JSON-ready dict with ``runtimes`` [{name, kind, note, agreement, deployable, deployable_why,
    batches: {b: Timing + ratios | None}}].
    """
    quantize_holds = quantize_holds or {}
    runtimes: list[Runtime] = []
    labels: dict[str, str] = {}
    if checkpoint is not None and torch_runner is not None:
        runtimes.append(torch_runtime(checkpoint, threads, torch_runner))
        if threads > 1:  # on a loaded machine torch's threads can stall each other: 1 thread is measured too
            runtimes.append(torch_runtime(checkpoint, 1, torch_runner))
    runtimes.append(ort_runtime(fp32_onnx, "ORT FP32", "ort-fp32", threads))
    for label, path in int8_variants.items():
        rt = ort_runtime(path, f"ORT INT8 ({label})", "ort-int8", threads)
        labels[rt.name] = label
        runtimes.append(rt)
    if opencv:
        runtimes.append(opencv_runtime(fp32_onnx, threads))
    try:
        ref_rt = next((r for r in runtimes if r.infer is not None), None)
        if ref_rt is None:
            raise RuntimeError(f"{name}: no runtime loads the model ({'; '.join(r.note for r in runtimes)})")
        check = inputs[: min(len(inputs), 8)]
        ref = run_each(ref_rt, check)
        for r in runtimes:
            if r is ref_rt:
                r.agreement = {"reference": True}
            elif r.infer is not None:
                check_agreement(r, check, ref, STRICT_ATOL if r.kind in ("ort-fp32", "opencv") else None)
        fp32_rt = next((r for r in runtimes if r.kind == "ort-fp32" and r.infer is not None), None)
        if heldout is not None and len(heldout) and fp32_rt is not None:
            log(f"  {name}: argmax agreement with ORT FP32 on {len(heldout)} held-out images")
            ref_held = run_each(fp32_rt, heldout)
            for r in runtimes:
                if r.kind == "ort-int8" and r.infer is not None:
                    ev = gate_evidence(ref_held, run_each(r, heldout), heldout_targets, f"{len(heldout)} held-out images")
                    r.agreement.update(heldout_agreement=round(ev.agreement, 4), heldout_images=int(len(heldout)),
                                       heldout=ev.to_dict())
        result: dict[str, Any] = {"model": name, "threads": threads, "reference": ref_rt.name, "batches": list(batches),
                                  "min_agreement": min_agreement, "heldout_images": 0 if heldout is None else len(heldout),
                                  "runtimes": []}
        timings: dict[int, dict[str, Timing]] = {}
        for b in batches:
            x = np.ascontiguousarray(np.resize(inputs, (b, *inputs.shape[1:])).astype(np.float32))
            ok = []
            for r in runtimes:
                if r.infer is None:
                    continue
                try:
                    r.infer(x)
                    ok.append(r)
                except Exception as exc:
                    first = str(exc).splitlines()[0][:100] if str(exc) else ""
                    r.agreement.setdefault("batch_errors", {})[str(b)] = f"{type(exc).__name__}: {first}"
            log(f"  {name}: batch {b}, timing {', '.join(r.name for r in ok)} ({rounds} x {seconds:g} s each)")
            timings[b] = time_interleaved(ok, x, seconds, rounds)
        for r in runtimes:
            holds = quantize_holds.get(labels.get(r.name, ""))
            deployable, why = judge_deployable(r.kind, r.agreement, holds, min_agreement, max_drop)
            if r.infer is None:
                deployable, why = False, r.note or "not timed"
            row: dict[str, Any] = {"name": r.name, "kind": r.kind, "note": r.note, "agreement": r.agreement,
                                   "quantize_holds": holds.deployable if isinstance(holds, Verdict) else holds, "deployable": deployable, "deployable_why": why,
                                   "batches": {}}
            for b in batches:
                t = timings[b].get(r.name)
                torch_ts = [timings[b][q.name] for q in runtimes if q.kind == "pytorch" and q.name in timings[b]]
                torch_t = max(torch_ts, key=lambda q: q.hz, default=None)  # the faster PyTorch setting
                fp32_t = timings[b].get("ORT FP32")
                row["batches"][str(b)] = None if t is None else {
                    **t.to_dict(),
                    "x_pytorch": round(t.hz / torch_t.hz, 3) if torch_t else None,
                    "x_ort_fp32": round(t.hz / fp32_t.hz, 3) if fp32_t else None,
                }
            result["runtimes"].append(row)
        return result
    finally:
        for r in runtimes:
            if r.close is not None:
                try:
                    r.close()
                except Exception:
                    pass
