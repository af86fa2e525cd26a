"""Which layers cost the accuracy of an INT8 model, and the fewest to keep in float.

As Polygraphy's ``debug precision``, but with ONNX Runtime Q/DQ models:

1. :func:`layer_sensitivity`: for each quantizable node, a model in which ONLY
   that node is quantized is run on validation images and compared with FP32
   (argmax agreement, mean |p_int8 - p_fp32|). A node that alone moves the
   probabilities a lot is sensitive.
2. :func:`search_exclusions`: keep the k most sensitive nodes in float, fully
   quantize the rest, and find the smallest k whose top-1 drop and argmax
   agreement hold (k doubled until it holds, then bisected).

Quantization re-uses the cached calibration ranges, so no step re-calibrates.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from calibration.evaluation import predict_file
from calibration.quantize_ort import QuantizeConfig, node_op_types, quantize_with_ranges


@dataclass
class LayerSensitivity:
    """What quantizing one node alone does to the outputs."""

    node: str
    op_type: str
    agreement: float  # argmax agreement with FP32 (1.0 = none changed)
    mean_abs_prob_diff: float
    max_abs_prob_diff: float

    @property
    def score(self) -> float:
        """Higher = more sensitive: flipped predictions first, then probability movement."""
        return (1.0 - self.agreement) + self.mean_abs_prob_diff

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"] = self.score
        return d


@dataclass
class Holds:
    """Whether a candidate's accuracy holds against FP32 on the same images."""

    top1_fp32: float
    top1_int8: float
    agreement: float
    max_drop_points: float
    min_agreement: float

    @property
    def drop_points(self) -> float:
        return 100.0 * (self.top1_fp32 - self.top1_int8)

    @property
    def ok(self) -> bool:
        return self.drop_points <= self.max_drop_points + 1e-9 and self.agreement >= self.min_agreement - 1e-12

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(drop_points=self.drop_points, ok=self.ok)
        return d


def judge(ref_probs: np.ndarray, probs: np.ndarray, targets: np.ndarray, max_drop: float, min_agreement: float) -> Holds:
    """Top-1 of both, argmax agreement, against the allowed drop (points) and agreement."""
    ref_pred, pred = ref_probs.argmax(1), probs.argmax(1)
    return Holds(
        top1_fp32=float(np.mean(ref_pred == targets)),
        top1_int8=float(np.mean(pred == targets)),
        agreement=float(np.mean(ref_pred == pred)),
        max_drop_points=max_drop,
        min_agreement=min_agreement,
    )


def layer_sensitivity(
    prepared: str | Path,
    cache_path: str | Path,
    config: QuantizeConfig,
    x: np.ndarray,
    ref_probs: np.ndarray,
    nodes: Sequence[str],
    threads: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[LayerSensitivity]:
    """Quantize each node alone and measure how far the outputs move; most sensitive first."""
    ops = node_op_types(prepared)
    results = []
    with tempfile.TemporaryDirectory(prefix="fetalplanes-sens-") as tmp:
        for i, node in enumerate(nodes):
            path = Path(tmp) / f"only_{i}.onnx"
            quantize_with_ranges(prepared, path, cache_path, config, nodes_to_quantize=[node], metadata=False)
            probs = _predict_plain(path, x, threads)
            diff = np.abs(probs - ref_probs)
            results.append(
                LayerSensitivity(
                    node=node,
                    op_type=ops.get(node, "?"),
                    agreement=float(np.mean(probs.argmax(1) == ref_probs.argmax(1))),
                    mean_abs_prob_diff=float(diff.mean()),
                    max_abs_prob_diff=float(diff.max()),
                )
            )
            if progress and (i + 1) % 10 == 0:
                progress(f"  sensitivity: {i + 1}/{len(nodes)} layers")
            path.unlink(missing_ok=True)
    return sorted(results, key=lambda r: -r.score)


def _predict_plain(path: Path, x: np.ndarray, threads: int) -> np.ndarray:
    """Probabilities of a metadata-less temporary ONNX (softmax of its outputs)."""
    import onnxruntime as ort

    from edge.preprocess import softmax

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    fixed = sess.get_inputs()[0].shape[0]
    batch = fixed if isinstance(fixed, int) and fixed > 0 else 32
    out = np.concatenate([sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])
    return softmax(out.astype(np.float32))


def smallest_k(n: int, ok: Callable[[int], bool]) -> int | None:
    """The smallest k in 1..n with ``ok(k)``, for ``ok`` false at 0 and monotone; None if ``ok(n)`` fails.

    Doubles k until it holds, then bisects: about 2 log2(k) calls of ``ok``.
    """
    if n <= 0:
        return None
    lo, hi = 0, 1
    while hi < n and not ok(hi):
        lo, hi = hi, min(n, hi * 2)
    if not ok(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


@dataclass
class SearchResult:
    excluded: list[str]
    holds: Holds | None
    tried: list[dict] = field(default_factory=list)  # {"k": k, "drop_points": .., "agreement": .., "ok": ..}


def search_exclusions(
    prepared: str | Path,
    cache_path: str | Path,
    config: QuantizeConfig,
    ranking: Sequence[str],
    x: np.ndarray,
    ref_probs: np.ndarray,
    targets: np.ndarray,
    max_drop: float,
    min_agreement: float,
    threads: int = 0,
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """The smallest k such that keeping ``ranking[:k]`` in float holds; ``holds`` None if even all fail."""
    cache: dict[int, Holds] = {}
    tried: list[dict] = []

    def check(k: int) -> Holds:
        if k not in cache:
            with tempfile.TemporaryDirectory(prefix="fetalplanes-search-") as tmp:
                path = Path(tmp) / "candidate.onnx"
                quantize_with_ranges(prepared, path, cache_path, config, nodes_to_exclude=ranking[:k], metadata=False)
                cache[k] = judge(ref_probs, _predict_plain(path, x, threads), targets, max_drop, min_agreement)
            h = cache[k]
            tried.append({"k": k, "drop_points": h.drop_points, "agreement": h.agreement, "ok": h.ok})
            if progress:
                progress(f"  {k} layer(s) in float: drop {h.drop_points:.2f} points, agreement {h.agreement:.4f}")
        return cache[k]

    k = smallest_k(len(ranking), lambda k: check(k).ok)
    if k is None:
        return SearchResult(list(ranking), None, tried)
    return SearchResult(list(ranking[:k]), cache[k], tried)
