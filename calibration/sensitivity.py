"""Which layers cost the accuracy of an INT8 model, and the fewest to keep in float.

As Polygraphy's ``debug precision``, but with ONNX Runtime Q/DQ models:

1. :func:`layer_sensitivity`: for each quantizable node, a model in which ONLY
   that node is quantized is run on the check images and compared with FP32:
   mean KL(p_fp32 || p_int8) and the mean loss of the FP32 winner's margin
   (top-1 minus runner-up probability), which move on every image, not only
   on the few whose argmax flips. Most sensitive (largest KL) first.
2. :func:`search_exclusions`: keep the k most sensitive nodes in float, fully
   quantize the rest, and find the smallest k whose accuracy holds (k doubled
   until it holds, then bisected); then :func:`put_back` tries each kept node
   in INT8 again, largest weights first (the file size is the target, and an
   activation-only op kept in float costs no bytes), and leaves it in INT8
   when the accuracy still holds.

What "holds" means (:func:`judge`): the one deployability rule,
:func:`edge.deployability.judge`, on the check images: the top-1 drop on the
labelled images (the validation patients) within ``max_drop`` points, where a
drop smaller than one image is not resolvable (the allowed drop is at least
one image, ``resolution_points``), and the argmax agreement with FP32 at least
``min_agreement`` over ALL check images: the validation images plus, label
free, training-patient images that calibration did not use. Agreement needs
no labels, and on 96 validation images 99 % would mean "not one flip", a
test that says little about a 900-image test split. The layer search may ask
more (``min_expected``, :func:`expected_agreement`); the verdict is the rule's.

Quantization re-uses the cached calibration ranges, so no step re-calibrates.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edge.deployability import Evidence, Gate, Verdict
from edge.deployability import judge as gate_judge
from calibration.compare_outputs import compare_outputs, gate_evidence
from calibration.evaluation import predict_file
from calibration.quantize_ort import QuantizeConfig, node_op_types, node_weight_bytes, quantize_with_ranges


@dataclass
class LayerSensitivity:
    """What quantizing one node alone does to the outputs."""

    node: str
    op_type: str
    agreement: float  # argmax agreement with FP32 (1.0 = none changed)
    mean_abs_prob_diff: float
    max_abs_prob_diff: float
    kl: float = 0.0  # mean KL(p_fp32 || p_int8), nats
    margin_loss: float = 0.0  # mean max(0, FP32 winner's margin lost), probability units
    weight_bytes: int = 0  # float bytes of the node's constant inputs (what INT8 shrinks 4x)

    @property
    def score(self) -> float:
        """Higher = more sensitive: the mean KL divergence from FP32 (moves on every image)."""
        return self.kl

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"] = self.score
        return d


@dataclass
class Holds:
    """Whether a candidate's accuracy holds against FP32 on the same images."""

    top1_fp32: float  # on the labelled images
    top1_int8: float
    agreement: float  # on all check images
    max_drop_points: float
    min_agreement: float
    labelled_images: int = 0
    agreement_images: int = 0
    kl: float = 0.0  # mean KL(p_fp32 || p_int8) over all check images
    expected_agreement: float = 1.0  # agreement to expect on new patients (:func:`expected_agreement`)
    min_expected: float | None = None  # when set, ``ok`` also needs expected_agreement >= this
    evidence: Evidence | None = None  # the counts the figures above come from

    @property
    def gate(self) -> Gate:
        return Gate(self.min_agreement, self.max_drop_points)

    @property
    def verdict(self) -> Verdict:
        """The deployability rule's verdict (:func:`edge.deployability.judge`) on these images."""
        return gate_judge(self.evidence, self.gate)

    @property
    def drop_points(self) -> float:
        return self.evidence.drop_points

    @property
    def resolution_points(self) -> float:
        """One labelled image, in points: a smaller drop cannot be measured on these images."""
        return self.gate.resolution_points(self.labelled_images)

    @property
    def allowed_drop_points(self) -> float:
        """``max_drop_points``, but never below the resolution (one image lost is within noise)."""
        return self.gate.allowed_drop_points(self.labelled_images)

    @property
    def flips(self) -> int:
        return self.evidence.flips

    @property
    def ok(self) -> bool:
        return self.verdict.deployable and (self.min_expected is None
                                            or self.expected_agreement >= self.min_expected - 1e-12)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["evidence"] = self.evidence.to_dict()
        d.update(drop_points=self.drop_points, resolution_points=self.resolution_points,
                 allowed_drop_points=self.allowed_drop_points, flips=self.flips, ok=self.ok,
                 verdict=self.verdict.to_dict())
        return d


def kl_divergence(ref_probs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-image KL(ref || probs) in nats (probabilities clipped at 1e-7)."""
    p = np.clip(ref_probs.astype(np.float64), 1e-7, 1.0)
    q = np.clip(probs.astype(np.float64), 1e-7, 1.0)
    return np.sum(p * (np.log(p) - np.log(q)), axis=1)


def margin_loss(ref_probs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per image: how much of the FP32 winner's margin (its prob minus the best other) was lost, >= 0."""
    win = ref_probs.argmax(1)
    rows = np.arange(len(win))

    def margin(p: np.ndarray) -> np.ndarray:
        other = p.copy()
        other[rows, win] = -np.inf
        return p[rows, win] - other.max(1)

    return np.maximum(0.0, margin(ref_probs) - margin(probs))


def logit_margin(ref_probs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per image: log-probability of the FP32 winner minus the best other class, under ``probs`` (< 0: flipped)."""
    win = ref_probs.argmax(1)
    rows = np.arange(len(win))
    lp = np.log(np.clip(probs.astype(np.float64), 1e-7, 1.0))
    other = lp.copy()
    other[rows, win] = -np.inf
    return lp[rows, win] - other.max(1)


def expected_agreement(ref_probs: np.ndarray, probs: np.ndarray, n_margins: int | None = None) -> float:
    """The argmax agreement to expect on new images, smoother than counting the few flips of the check images.

    An image flips when quantization takes more than its FP32 logit margin away.
    Every check image gives one sample of that loss (how much of the FP32
    winner's margin it lost); the first ``n_margins`` images (the labelled
    validation patients: new patients for the model, unlike the training images
    after them, on which it is surer) give the margins. The expected agreement
    is the fraction of (loss, margin) pairs in which the loss stays below the
    margin: an average over all pairs, so it moves smoothly as layers change
    precision where the count of flips jumps by whole images.
    """
    loss = logit_margin(ref_probs, ref_probs) - logit_margin(ref_probs, probs)
    n = len(ref_probs) if not n_margins else min(n_margins, len(ref_probs))
    margins = np.sort(logit_margin(ref_probs[:n], ref_probs[:n]))
    if not len(margins):
        return 1.0
    flipped = np.searchsorted(margins, loss, side="left") / len(margins)  # share of margins below each loss
    return float(1.0 - flipped.mean())


def judge(ref_probs: np.ndarray, probs: np.ndarray, targets: np.ndarray, max_drop: float, min_agreement: float,
          min_expected: float | None = None, task: Callable[[np.ndarray], np.ndarray] | None = None) -> Holds:
    """Top-1 of both on the first ``len(targets)`` rows (the labelled ones), argmax agreement and KL on all rows.

    Rows after the labelled ones are label-free check images (agreement only).
    ``min_expected``: also require :func:`expected_agreement` (margins of the
    labelled rows) at least this high. ``task``: a model with a label map scores on the task's labels,
    as compare and evaluate do: ``ModelInfo.map_probabilities`` (targets are task labels).
    """
    if task is not None:
        ref_probs, probs = task(ref_probs), task(probs)
    ev = gate_evidence(ref_probs, probs, targets, "the check images")
    n = ev.labelled
    return Holds(
        top1_fp32=ev.reference_correct / n if n else 0.0,
        top1_int8=ev.candidate_correct / n if n else 0.0,
        agreement=ev.agreement,
        max_drop_points=max_drop,
        min_agreement=min_agreement,
        labelled_images=n,
        agreement_images=len(ref_probs),
        kl=float(kl_divergence(ref_probs, probs).mean()),
        expected_agreement=expected_agreement(ref_probs, probs, n),
        min_expected=min_expected,
        evidence=ev,
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
    weights = node_weight_bytes(prepared)
    results = []
    with tempfile.TemporaryDirectory(prefix="fetalplanes-sens-") as tmp:
        for i, node in enumerate(nodes):
            path = Path(tmp) / f"only_{i}.onnx"
            quantize_with_ranges(prepared, path, cache_path, config, nodes_to_quantize=[node], metadata=False)
            probs = _predict_plain(path, x, threads)
            c = compare_outputs(ref_probs, probs)
            results.append(
                LayerSensitivity(
                    node=node,
                    op_type=ops.get(node, "?"),
                    agreement=c.argmax_agreement,
                    mean_abs_prob_diff=c.mean_abs_diff,
                    max_abs_prob_diff=c.max_abs_diff,
                    kl=float(kl_divergence(ref_probs, probs).mean()),
                    margin_loss=float(margin_loss(ref_probs, probs).mean()),
                    weight_bytes=weights.get(node, 0),
                )
            )
            if progress and (i + 1) % 10 == 0:
                progress(f"  sensitivity: {i + 1}/{len(nodes)} layers")
            path.unlink(missing_ok=True)
    return sorted(results, key=lambda r: (-r.score, -r.margin_loss, r.agreement))


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


def put_back(
    kept: Sequence[str],
    holds: Callable[[list[str]], bool],
    weight_bytes: dict[str, int] | None = None,
    sensitivity: dict[str, float] | None = None,
    enough: Callable[[list[str]], bool] | None = None,
) -> tuple[list[str], list[dict]]:
    """Greedy put-back: try each node of ``kept`` (a set kept in float for which ``holds`` is true) in INT8 again.

    Order: largest ``weight_bytes`` first (size is the target; weightless ops last),
    then least ``sensitivity`` first. A node goes back to INT8 when ``holds(rest)``
    is still true for the remaining float set. ``enough(current)``, when given, stops
    the put-back as soon as it is true (e.g. the file is already small enough): every
    further put-back is one more look at the same few check images, and a chain of
    "still just holds" drifts towards a model that fails on new images. Returns
    (still kept in float, in the input order; one record per try).
    """
    weight_bytes = weight_bytes or {}
    sensitivity = sensitivity or {}
    order = sorted(kept, key=lambda n: (-weight_bytes.get(n, 0), sensitivity.get(n, 0.0)))
    current = list(kept)
    tries: list[dict] = []
    for node in order:
        if enough is not None and enough(current):
            tries.append({"node": None, "stopped": "size target met"})
            break
        rest = [n for n in current if n != node]
        ok = bool(holds(rest))
        tries.append({"node": node, "weight_bytes": weight_bytes.get(node, 0), "int8_ok": ok})
        if ok:
            current = rest
    return current, tries


@dataclass
class SearchResult:
    excluded: list[str]
    holds: Holds | None
    tried: list[dict] = field(default_factory=list)  # {"k": k, "drop_points": .., "agreement": .., "ok": ..}
    smallest_k: int | None = None  # the bisection's answer, before put-back
    put_back: list[dict] = field(default_factory=list)  # {"node", "weight_bytes", "int8_ok"}


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
    weight_bytes: dict[str, int] | None = None,
    sensitivity: dict[str, float] | None = None,
    prune: bool = True,
    kl_slack: float | None = 1.1,
    target_bytes: int | None = None,
    min_expected: float | None = None,
    task: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SearchResult:
    """Layers to keep in float: the smallest k such that ``ranking[:k]`` holds, then :func:`put_back`.

    ``x`` / ``ref_probs`` are all check images, ``targets`` the labels of the
    first ones (see :func:`judge`). ``holds`` is None if even all of ``ranking`` fail.
    A put-back must also keep the mean KL within ``kl_slack`` times the bisection
    set's: each try is another look at the same few flips, and a greedy chain of
    "still just holds" drifts to a model that fails on new images; the KL moves on
    every image and is far less noisy (None: no KL bound). ``target_bytes``: the
    put-back stops once the INT8 file is at most this size (None: try every layer).
    """
    cache: dict[tuple[str, ...], Holds] = {}
    sizes: dict[tuple[str, ...], int] = {}
    tried: list[dict] = []

    def check(excluded: Sequence[str], label: str) -> Holds:
        key = tuple(sorted(excluded))
        if key not in cache:
            with tempfile.TemporaryDirectory(prefix="fetalplanes-search-") as tmp:
                path = Path(tmp) / "candidate.onnx"
                quantize_with_ranges(prepared, path, cache_path, config, nodes_to_exclude=list(excluded), metadata=False)
                cache[key] = judge(ref_probs, _predict_plain(path, x, threads), targets, max_drop, min_agreement,
                                   min_expected, task)
                sizes[key] = path.stat().st_size
            h = cache[key]
            tried.append({"k": len(excluded), "step": label, "drop_points": h.drop_points, "agreement": h.agreement,
                          "expected_agreement": h.expected_agreement, "kl": h.kl, "ok": h.ok})
            if progress:
                progress(f"  {label}: {len(excluded)} layer(s) in float: drop {h.drop_points:.2f} points, "
                         f"agreement {h.agreement:.4f} ({h.flips} flips of {h.agreement_images}), expected on new "
                         f"patients {h.expected_agreement:.4f}, "
                         f"{'holds' if h.ok else 'fails'}")
        return cache[key]

    k = smallest_k(len(ranking), lambda k: check(ranking[:k], "bisect").ok)
    if k is None:
        return SearchResult(list(ranking), None, tried)
    excluded = list(ranking[:k])
    backs: list[dict] = []
    if prune and len(excluded) > 0:
        kl_budget = None if kl_slack is None else kl_slack * cache[tuple(sorted(excluded))].kl + 1e-12

        def holds(rest: list[str]) -> bool:
            h = check(rest, "put back")
            return h.ok and (kl_budget is None or h.kl <= kl_budget)

        def enough(current: list[str]) -> bool:
            if target_bytes is None:
                return False
            check(current, "size")
            return sizes[tuple(sorted(current))] <= target_bytes

        excluded, backs = put_back(excluded, holds, weight_bytes, sensitivity, enough)
    return SearchResult(excluded, check(excluded, "final"), tried, k, backs)


# --------------------------------------------------------------------------- speed-aware choice (issue 17)

#: ``--layer-choice``: how the layers to keep in float are ranked
LAYER_CHOICES = ("speed", "sensitivity")


def _profiled_node(name: str) -> str:
    """The graph node a profiled kernel belongs to: ONNX Runtime's optimisers rename what they rewrite
    (``<node>_token_12`` for a fused QLinearConv, ``<output tensor>_nchwc`` for a reordered FP32 Conv): the node
    name or the name of one of its output tensors (:func:`profile_node_times` maps those to the node)."""
    import re

    name = re.sub(r"_token_\d+$", "", name)
    return re.sub(r"_nchwc$", "", name)


def profile_node_times(path: str | Path, x: np.ndarray, threads: int = 0, runs: int = 30) -> dict[str, float]:
    """Microseconds per batch-1 call that each graph node's kernels take, from ONNX Runtime's profiler
    (the session optimised as deployed; kernels of rewritten nodes credited to the node they came from; the
    median over ``runs`` calls after 3 warm-up calls)."""
    import json
    import os

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="fetalplanes-profile-") as tmp:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        if threads:
            opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        warm = 3
        for i in range(warm + runs):
            j = i % len(x)
            sess.run(None, {name: np.ascontiguousarray(x[j: j + 1], dtype=np.float32)})
        events = json.loads(Path(sess.end_profiling()).read_text())
    # the first calls allocate and tune: count only the kernels after the warm-up runs ended
    run_ends = sorted(e["ts"] + e.get("dur", 0) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    start = run_ends[warm - 1] if len(run_ends) >= warm + runs else 0
    runs = len(run_ends) - warm if start else max(1, len(run_ends))
    import onnx

    graph = onnx.load(str(path)).graph
    node_of = {o: n.name for n in graph.node for o in n.output}
    node_of.update({n.name: n.name for n in graph.node if n.name})
    durations: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e.get("ts", 0) >= start:
            name = _profiled_node(e["name"][: -len("_kernel_time")])
            durations.setdefault(node_of.get(name, name), []).append(float(e.get("dur", 0.0)))
    # the median kernel time (a shared, loaded machine pre-empts single calls), times the kernels per call
    return {node: float(np.median(d)) * len(d) / runs for node, d in durations.items()}


def float_costs(fp32: str | Path, int8: str | Path, nodes: Sequence[str], x: np.ndarray, threads: int = 0,
                runs: int = 30) -> dict[str, float]:
    """Per node: microseconds it costs to keep it in float (its FP32 kernel time minus its INT8 one; <= 0: INT8
    is no faster there), both files profiled on the same images. Nodes the profiler does not name get 0
    (unknown: ranked by their sensitivity alone, as cheap)."""
    import onnx

    t32 = profile_node_times(fp32, x, threads, runs)
    t8 = profile_node_times(int8, x, threads, runs)
    graph = onnx.load(str(fp32)).graph
    readers: dict[str, list] = {}
    for node in graph.node:
        for i in node.input:
            readers.setdefault(i, []).append(node)

    def fp32_time(name: str) -> float | None:
        if name in t32:
            return t32[name]
        # ONNX Runtime fuses Conv + activation into one kernel named after the activation's output
        node = next((m for m in graph.node if m.name == name), None)
        after = readers.get(node.output[0], []) if node is not None and node.output else []
        return t32.get(after[0].name) if len(after) == 1 else None

    costs = {}
    for n in nodes:
        a, b = fp32_time(n), t8.get(n)
        costs[n] = (a - b) if a is not None and b is not None else 0.0
    return costs


def speed_aware_ranking(sens: Sequence[LayerSensitivity], costs: dict[str, float],
                        floor_us: float | None = None) -> list[LayerSensitivity]:
    """Layers ordered by accuracy regained per time lost: KL when quantized alone / microseconds it costs in float.

    Cheap, sensitive layers first. A cost at or below ``floor_us`` (default: 5 % of the median positive cost, at
    least 0.5 us; the profile's resolution) counts as ``floor_us``: a layer INT8 does not speed up costs nothing
    to keep in float and comes first among those of its sensitivity. Ties: sensitivity order.
    """
    positive = sorted(c for c in costs.values() if c > 0)
    if floor_us is None:
        floor_us = max(0.5, 0.05 * positive[len(positive) // 2]) if positive else 1.0
    order = {r.node: i for i, r in enumerate(sens)}
    return sorted(sens, key=lambda r: (-(r.score / max(costs.get(r.node, 0.0), floor_us)), order[r.node]))
