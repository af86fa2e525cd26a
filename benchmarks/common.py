"""Shared core of the benchmark scripts (and of `fetalplanes demo`'s speed step).

Polygraphy-style: every runtime is wrapped as a plain ``infer(batch) -> logits``
callable, all runtimes get the SAME inputs, a runtime is only timed after its
outputs were compared with the reference (PyTorch eager, else ORT FP32), and the
runtimes are timed in turns (interleaved rounds) so a neighbour's load on a
shared machine hits all of them alike. Reported Hz is the median over rounds.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_NOTE = (
    "measured on a 2-core machine SHARED with other engineers' jobs (load varies): absolute Hz are noisy; "
    "ratios are measured in one interleaved run and are the figures to read"
)

Infer = Callable[[np.ndarray], np.ndarray]


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
    hz: float  # images per second (median over rounds)
    p50_ms: float  # latency of one call (one batch)
    p90_ms: float
    p99_ms: float
    calls: int
    rounds: int

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def machine_stamp() -> dict[str, Any]:
    """edge.sysinfo.machine_stamp() plus the time."""
    from edge.sysinfo import machine_stamp as stamp

    return {"when": time.strftime("%Y-%m-%d %H:%M:%S"), **stamp()}


# ----------------------------------------------------------------------------- runtimes
def torch_runtime(checkpoint: str | Path, threads: int) -> Runtime:
    """PyTorch eager on the CPU (export.torch_runner.TorchRunner) with ``threads`` intra-op threads.

    torch's thread count is process-wide, so it is set before every call (the runtimes are interleaved).
    """
    name = f"PyTorch eager ({threads} thr.)"
    try:
        import torch

        from export.torch_runner import TorchRunner

        r = TorchRunner(str(checkpoint), device="cpu", threads=threads).activate()
    except Exception as exc:  # torch absent, or a bad checkpoint
        return Runtime(name, "pytorch", note=f"not present ({type(exc).__name__}: {str(exc)[:120]})")

    def infer(x: np.ndarray) -> np.ndarray:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return r.infer(x)

    return Runtime(name, "pytorch", infer, close=r.deactivate)


def ort_runtime(path: str | Path, name: str, kind: str, threads: int) -> Runtime:
    """ONNX Runtime, CPU provider, ``threads`` intra-op threads."""
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
        return Runtime("OpenCV DNN", "opencv", note=f"does not load the model ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")

    def infer(x: np.ndarray) -> np.ndarray:
        net.setInput(x)
        return np.asarray(net.forward())

    return Runtime("OpenCV DNN", "opencv", infer)


def tensorrt_note() -> str:
    """'not present' unless a GPU and the tensorrt module are both here (this script never builds engines)."""
    try:
        from edge.sysinfo import read_gpus

        gpus = read_gpus()
    except Exception:
        gpus = []
    try:
        import importlib.util

        has_trt = importlib.util.find_spec("tensorrt") is not None
    except Exception:
        has_trt = False
    if not gpus or not has_trt:
        missing = [w for w, absent in (("no NVIDIA GPU", not gpus), ("no tensorrt module", not has_trt)) if absent]
        return f"not present ({', '.join(missing)})"
    return "GPU and TensorRT present: build engines with `fetalplanes build-engine` and time them with `fetalplanes selftest`"


def check_agreement(rt: Runtime, x: np.ndarray, ref: np.ndarray, atol: float | None) -> bool:
    """Run ``rt`` on ``x``; store argmax agreement and max |diff| against ``ref``.

    ``atol`` None: report only (INT8 is expected to differ a little). Otherwise the
    runtime is disabled (its note says why) unless every argmax agrees and max|diff| <= atol.
    """
    try:
        out = np.concatenate([np.asarray(rt.infer(x[i : i + 1])) for i in range(len(x))], axis=0).reshape(ref.shape)
    except Exception as exc:
        rt.note = f"fails to run ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        rt.infer = None
        return False
    agree = float((out.argmax(1) == ref.argmax(1)).mean())
    diff = float(np.abs(out - ref).max())
    rt.agreement = {"argmax_agreement": round(agree, 4), "max_abs_diff": round(diff, 5), "images": int(len(x))}
    if atol is not None and (agree < 1.0 or diff > atol):
        rt.note = (f"DISAGREES with the reference (argmax agreement {agree:.2f}, max |diff| {diff:.3g} > {atol}): "
                   "not timed")
        rt.infer = None
        return False
    return True


# ----------------------------------------------------------------------------- timing
def time_interleaved(
    runtimes: Sequence[Runtime], x: np.ndarray, seconds: float = 1.0, rounds: int = 3, warmup: int = 5
) -> dict[str, Timing]:
    """Time each runtime on batch ``x`` in turns: ``rounds`` rounds of ``seconds`` each, after ``warmup`` calls.

    Hz = images/s, median over rounds; latency percentiles over all calls of all rounds.
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
                             float(np.percentile(v, 99)), int(v.size), max(1, rounds))
    return out


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
) -> dict[str, Any]:
    """Every runtime present for one model, same inputs, agreement checked, then timed per batch size.

    ``int8_variants``: {label (e.g. "uint8 act."): path}. Returns a JSON-ready dict with
    ``runtimes`` [{name, kind, note, agreement, batches: {b: Timing | None, ratios}}].
    """
    runtimes: list[Runtime] = []
    if checkpoint is not None:
        runtimes.append(torch_runtime(checkpoint, threads))
        if threads > 1:  # on a loaded machine torch's threads can stall each other: 1 thread is measured too
            runtimes.append(torch_runtime(checkpoint, 1))
    runtimes.append(ort_runtime(fp32_onnx, "ORT FP32", "ort-fp32", threads))
    for label, path in int8_variants.items():
        runtimes.append(ort_runtime(path, f"ORT INT8 ({label})", "ort-int8", threads))
    if opencv:
        runtimes.append(opencv_runtime(fp32_onnx, threads))
    try:
        ref_rt = next(r for r in runtimes if r.infer is not None)
        check = inputs[: min(len(inputs), 8)]
        ref = np.concatenate([np.asarray(ref_rt.infer(check[i : i + 1])) for i in range(len(check))], axis=0)
        for r in runtimes:
            if r is ref_rt:
                r.agreement = {"reference": True}
                continue
            if r.infer is None:
                continue
            strict = r.kind in ("ort-fp32", "opencv")
            check_agreement(r, check, ref, 1e-2 if strict else None)
        result: dict[str, Any] = {"model": name, "threads": threads, "reference": ref_rt.name, "batches": list(batches),
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
                    r.agreement.setdefault("batch_errors", {})[str(b)] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
            log(f"  {name}: batch {b}, timing {', '.join(r.name for r in ok)} ({rounds} x {seconds:g} s each)")
            timings[b] = time_interleaved(ok, x, seconds, rounds)
        for r in runtimes:
            row: dict[str, Any] = {"name": r.name, "kind": r.kind, "note": r.note, "agreement": r.agreement, "batches": {}}
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


def best_deployable(model_result: dict[str, Any], batch: int = 1) -> dict[str, Any] | None:
    """The fastest non-PyTorch runtime at ``batch`` among those that ran (OpenCV only if it agreed)."""
    rows = [r for r in model_result["runtimes"] if r["kind"] != "pytorch" and r["batches"].get(str(batch))]
    return max(rows, key=lambda r: r["batches"][str(batch)]["hz"], default=None)


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def models_markdown_table(model_result: dict[str, Any]) -> list[str]:
    """One markdown table for one model: runtime x batch, Hz, p50/p90/p99 and the two ratios."""
    lines = [
        f"**{model_result['model']}** ({model_result['threads']} threads; reference for agreement: {model_result['reference']})",
        "",
        "| runtime | batch | Hz | p50 ms | p90 ms | p99 ms | x PyTorch (best) | x ORT FP32 | agreement / note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in model_result["runtimes"]:
        agree = r.get("agreement") or {}
        a = "reference" if agree.get("reference") else (
            f"argmax {agree['argmax_agreement']:.2f}, max diff {agree['max_abs_diff']:.3g}" if "argmax_agreement" in agree else "")
        note = "; ".join(x for x in (a, r.get("note", "")) if x)
        for b in model_result["batches"]:
            t = r["batches"].get(str(b))
            if t is None:
                lines.append(f"| {r['name']} | {b} | - | - | - | - | - | - | {note or 'not timed'} |")
            else:
                lines.append(f"| {r['name']} | {b} | {t['hz']:.1f} | {t['p50_ms']:.2f} | {t['p90_ms']:.2f} | "
                             f"{t['p99_ms']:.2f} | {fmt(t['x_pytorch'], 2)} | {fmt(t['x_ort_fp32'], 2)} | {note} |")
                note = ""  # once per runtime
    return lines


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    return path
