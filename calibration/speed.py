"""Throughput of model files on this machine: batch 1, a stated number of threads.

Files are measured in turns over several rounds and each keeps its best round,
so that a neighbour's load on a shared machine does not favour one file.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class SpeedResult:
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


def _one_round(runner, x: np.ndarray, seconds: float, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        runner.infer(x)
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        runner.infer(x)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start >= seconds and len(times) >= 5:
            break
    elapsed = time.perf_counter() - start
    return len(times) / elapsed, float(np.median(times) * 1000.0)


def measure_hz(
    paths: Sequence[str | Path], threads: int | None = None, seconds: float = 1.0, rounds: int = 3, warmup: int = 5
) -> list[SpeedResult]:
    """Batch-1 images/s of each ONNX file with ONNX Runtime on the CPU, best of ``rounds`` rounds."""
    from edge.backends import open_runner

    threads = threads or default_threads()
    runners = [open_runner(p, threads=threads).activate() for p in paths]
    try:
        rng = np.random.default_rng(0)
        inputs = [rng.normal(0, 0.5, r.info.input_shape(1)).astype(np.float32) for r in runners]
        best: list[tuple[float, float]] = [(0.0, float("inf"))] * len(runners)
        for _ in range(max(1, rounds)):
            for i, (r, x) in enumerate(zip(runners, inputs)):
                hz, p50 = _one_round(r, x, seconds, warmup)
                if hz > best[i][0]:
                    best[i] = (hz, min(p50, best[i][1]))
                else:
                    best[i] = (best[i][0], min(p50, best[i][1]))
    finally:
        for r in runners:
            r.deactivate()
    return [SpeedResult(str(p), hz, p50, threads, max(1, rounds)) for p, (hz, p50) in zip(paths, best)]
