"""The one comparison of two models' outputs on the same inputs (like Polygraphy's ``CompareFunc.simple``).

:func:`compare_outputs` takes the reference's and the candidate's outputs (N, classes): logits or
probabilities, as the caller has them, and reports

- element-wise differences: max and mean ``|candidate - reference|``, and whether every element is within
  ``atol + rtol * |reference|`` (the tolerance, when ``atol`` is given);
- argmax agreement: how many images kept the reference's top-1 class;
- top-k agreement: for each k asked, the fraction of images whose reference top-1 class is among the
  candidate's k highest;

and ``ok`` (within tolerance, when asked, and agreement >= ``min_agreement``, when asked), with the reasons
when not. Used by ``fetalplanes export`` (ONNX against PyTorch), ``compare``, ``quantize``'s layer
sensitivity, the speed checks and ``selftest``. Whether a candidate may be *deployed* is decided by
:mod:`edge.deployability` on the counts :func:`gate_evidence` makes from the same outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from edge.deployability import Evidence


@dataclass
class OutputComparison:
    """How far a candidate's outputs are from the reference's."""

    images: int
    same: int  # images whose argmax (top-1 class) the candidate kept
    max_abs_diff: float
    mean_abs_diff: float
    atol: float | None = None
    rtol: float = 0.0
    within_tolerance: bool | None = None  # None: no tolerance asked
    min_agreement: float | None = None
    topk_agreement: dict[int, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def argmax_agreement(self) -> float:
        return self.same / self.images if self.images else float("nan")

    @property
    def changed(self) -> int:
        return self.images - self.same

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(argmax_agreement=self.argmax_agreement, changed=self.changed, ok=self.ok)
        d["topk_agreement"] = {str(k): v for k, v in self.topk_agreement.items()}
        return d


def _as_2d(x: Any, like: np.ndarray | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if like is not None:
        a = a.reshape(like.shape)
    return a.reshape(len(a), -1) if a.ndim != 2 else a


def compare_outputs(reference: Any, candidate: Any, atol: float | None = None, rtol: float = 0.0,
                    min_agreement: float | None = None, top_k: Sequence[int] = ()) -> OutputComparison:
    """Compare ``candidate`` with ``reference`` (same shape, one row per image); see the module docstring."""
    ref = _as_2d(reference)
    cand = _as_2d(candidate, ref)
    if len(ref) == 0:
        raise ValueError("no outputs to compare")
    diff = np.abs(cand - ref)
    same = int(np.sum(ref.argmax(1) == cand.argmax(1)))
    r = OutputComparison(images=len(ref), same=same, max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
                         atol=atol, rtol=rtol, min_agreement=min_agreement)
    if top_k:
        win = ref.argmax(1)
        order = np.argsort(-cand, axis=1)
        for k in top_k:
            r.topk_agreement[int(k)] = float(np.mean((order[:, : int(k)] == win[:, None]).any(1)))
    if atol is not None:
        bound = atol + rtol * np.abs(ref)
        r.within_tolerance = bool(np.all(diff <= bound))
        if not r.within_tolerance:
            worst = float((diff - bound).max())
            r.problems.append(f"max |diff| {r.max_abs_diff:.4g} exceeds the tolerance {atol:g} + {rtol:g}*|ref| "
                              f"(by up to {worst:.3g})")
    if min_agreement is not None and r.argmax_agreement < min_agreement - 1e-12:
        r.problems.append(f"argmax agreement {r.argmax_agreement:.4f} < {min_agreement:g} "
                          f"({r.changed} of {r.images} changed)")
    return r


def gate_evidence(reference: Any, candidate: Any, targets: Any = None, where: str = "") -> Evidence:
    """Counts for :func:`edge.deployability.judge`: agreement over all rows, top-1 on the first ``len(targets)``."""
    ref = _as_2d(reference)
    cand = _as_2d(candidate, ref)
    ref_pred, pred = ref.argmax(1), cand.argmax(1)
    n = 0 if targets is None else len(targets)
    if n > len(ref):
        raise ValueError(f"{n} targets for {len(ref)} images")
    t = np.asarray(targets if targets is not None else [], dtype=np.int64)
    return Evidence(images=len(ref), same=int(np.sum(ref_pred == pred)), labelled=n,
                    reference_correct=int(np.sum(ref_pred[:n] == t)), candidate_correct=int(np.sum(pred[:n] == t)),
                    where=where)
