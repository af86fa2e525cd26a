"""Is a candidate model deployable? The one rule (quantize, compare, the benchmarks, the demo and doctor use it).

A candidate (an INT8 ONNX file, a TensorRT engine) is judged against its reference (the FP32 model it was
made from), both run on the same images. The rule is pure logic on counts (:class:`Evidence`); whoever
runs the models counts (``calibration.compare_outputs.gate_evidence``) and calls :func:`judge`.

**The statistics** (counted in whole images, so "exactly at the threshold" is exact):

- *argmax agreement*: of ``images`` images, ``same`` got the reference's top-1 class. At most
  :meth:`Gate.allowed_flips` = ``floor((1 - min_agreement) * images)`` may change: the counted agreement
  must be >= ``min_agreement`` (default 0.99).
- *top-1 drop* on the ``labelled`` images (those with a true class): the reference's correct count minus
  the candidate's, in points, at most ``max_drop_points`` (default 1.0), but never judged finer than one
  image (:meth:`Gate.allowed_drop_points`): on 96 images one image is 1.04 points, and a drop smaller than
  one image cannot be measured there. A negative ``max_drop_points`` asks for a gain and gets no such
  allowance.

**The tolerance**: the point estimate, with the one-image resolution on the drop only. The Wilson 95 %
interval of the agreement is reported beside it (:meth:`Evidence.agreement_interval`: how far the figure
can be trusted), but does not gate: asking its lower bound to reach 0.99 needs at least 381 images without
a single flip and would reject nearly every INT8 file; its upper bound would pass 98.7 % on a few hundred
images, the file issue 12 saw deployed. A tiny set therefore allows no flip at all (0 of fewer than 100
images at 0.99), which errs on the side of not deploying.

**Which images**: every check runs both models on the same preprocessed images of patients whose labels
are known (``fetalplanes quantize``: the validation patients, plus training-patient images calibration did
not use, label-free, for the agreement; ``fetalplanes compare`` and the benchmarks: the test patients).
A candidate is deployable when every check made of it passed and at least one was made
(:func:`combine`); the reference itself always is. Among deployable files, :func:`choose` picks the one to
deploy: the fastest, but the reference unless a candidate is at least ``SPEED_MARGIN`` faster.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence, TypeVar

#: default argmax agreement a candidate needs with its reference (fraction of images).
MIN_AGREEMENT = 0.99
#: default allowed top-1 drop, points (never less than one labelled image).
MAX_DROP_POINTS = 1.0
#: a candidate replaces the reference only when at least this much faster (timing noise on shared machines).
SPEED_MARGIN = 0.05
#: z of the reported (not gating) Wilson interval: 95 %.
WILSON_Z = 1.959964

_EPS = 1e-9
T = TypeVar("T")


@dataclass(frozen=True)
class Gate:
    """The thresholds: ``min_agreement`` (argmax agreement with the reference) and ``max_drop_points`` (top-1)."""

    min_agreement: float = MIN_AGREEMENT
    max_drop_points: float = MAX_DROP_POINTS

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_agreement <= 1.0:
            from edge.errors import FetalPlanesError

            raise FetalPlanesError(f"--min-agreement {self.min_agreement} is not in [0, 1]",
                                   hint="give a fraction, e.g. 0.99 (99 % of the predictions unchanged)")

    def allowed_flips(self, images: int) -> int:
        """Changed predictions allowed among ``images``: floor((1 - min_agreement) * images)."""
        return int(math.floor((1.0 - self.min_agreement) * images + _EPS)) if images > 0 else 0

    def resolution_points(self, labelled: int) -> float:
        """One labelled image, in points (0 without labels)."""
        return 100.0 / labelled if labelled > 0 else 0.0

    def allowed_drop_points(self, labelled: int) -> float:
        """``max_drop_points``, but never below one labelled image (unless a gain is asked for: negative)."""
        if self.max_drop_points < 0:
            return self.max_drop_points
        return max(self.max_drop_points, self.resolution_points(labelled))

    def describe(self) -> str:
        return (f"argmax agreement >= {self.min_agreement:g} and top-1 drop <= {self.max_drop_points:g} points "
                "(never less than one labelled image)")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Gate":
        d = d or {}
        return cls(float(d.get("min_agreement", MIN_AGREEMENT)), float(d.get("max_drop_points", MAX_DROP_POINTS)))


@dataclass(frozen=True)
class Evidence:
    """Counts from running a candidate and its reference on the same images.

    ``images``/``same``: all images / those whose top-1 class the candidate kept. The first ``labelled`` of
    them carry a true class: ``reference_correct`` / ``candidate_correct`` of those were right.
    ``where`` names the images (e.g. "test patients").
    """

    images: int
    same: int
    labelled: int = 0
    reference_correct: int = 0
    candidate_correct: int = 0
    where: str = ""

    def __post_init__(self) -> None:
        if not (0 <= self.same <= self.images and 0 <= self.labelled <= self.images
                and 0 <= self.reference_correct <= self.labelled and 0 <= self.candidate_correct <= self.labelled):
            raise ValueError(f"inconsistent counts: {self}")

    @property
    def flips(self) -> int:
        return self.images - self.same

    @property
    def agreement(self) -> float:
        return self.same / self.images if self.images else float("nan")

    @property
    def drop_points(self) -> float:
        """Top-1 of the reference minus the candidate's on the labelled images, points (0 without labels)."""
        if not self.labelled:
            return 0.0
        return 100.0 * (self.reference_correct - self.candidate_correct) / self.labelled

    def agreement_interval(self, z: float = WILSON_Z) -> tuple[float, float]:
        """Wilson score interval of the agreement (reported beside the verdict; it does not gate)."""
        return wilson_interval(self.same, self.images, z)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.agreement_interval()
        return {**asdict(self), "flips": self.flips, "agreement": self.agreement, "drop_points": self.drop_points,
                "agreement_wilson95": [lo, hi]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Evidence":
        return cls(int(d["images"]), int(d["same"]), int(d.get("labelled", 0)), int(d.get("reference_correct", 0)),
                   int(d.get("candidate_correct", 0)), str(d.get("where", "")))


@dataclass(frozen=True)
class Check:
    """One condition of the rule, with its measured value and its limit."""

    check: str
    value: float
    limit: float
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """Deployable or not, and why (one sentence a user can read), with the checks behind it."""

    deployable: bool
    why: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"deployable": self.deployable, "why": self.why, "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_bool(cls, ok: bool, source: str) -> "Verdict":
        """A verdict known only as passed/failed (e.g. an older quantize report's ``accuracy_holds``)."""
        return cls(bool(ok), f"{source}: accuracy {'holds' if ok else 'does not hold'}")


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def judge(evidence: Evidence, gate: Gate = Gate()) -> Verdict:
    """The verdict of ``gate`` on ``evidence``: agreement (counted) and, with labels, the top-1 drop."""
    where = f" on {evidence.where}" if evidence.where else ""
    if evidence.images <= 0:
        return Verdict(False, f"no images to compare on{where}")
    checks = []
    allowed = gate.allowed_flips(evidence.images)
    lo, hi = evidence.agreement_interval()
    checks.append(Check(
        "argmax agreement", evidence.agreement, gate.min_agreement, evidence.flips <= allowed,
        f"{evidence.flips} of {evidence.images} images changed label (at most {allowed} allowed); "
        f"95 % interval {lo:.4f}-{hi:.4f}"))
    if evidence.labelled:
        limit = gate.allowed_drop_points(evidence.labelled)
        checks.append(Check(
            "top-1 drop (points)", evidence.drop_points, limit, evidence.drop_points <= limit + _EPS,
            f"{evidence.reference_correct} -> {evidence.candidate_correct} of {evidence.labelled} labelled images "
            f"correct (one image = {gate.resolution_points(evidence.labelled):.2f} points)"))
    failed = [c for c in checks if not c.ok]
    parts = []
    for c in failed or checks:
        if c.check == "argmax agreement":
            op = "<" if not c.ok else ">="
            parts.append(f"argmax agreement {c.value:.4f} {op} {c.limit:g} ({c.detail.split(';')[0]})")
        else:
            op = ">" if not c.ok else "<="
            parts.append(f"top-1 drop {c.value:.2f} {op} {c.limit:.2f} points")
    return Verdict(not failed, "; ".join(parts) + where, tuple(checks))


def combine(verdicts: Iterable[tuple[str, Verdict | None]]) -> Verdict:
    """Deployable when every check made passed and at least one was made: [(source, verdict or None)]."""
    made = [(s, v) for s, v in verdicts if v is not None]
    if not made:
        return Verdict(False, "accuracy against the reference not checked")
    failed = [(s, v) for s, v in made if not v.deployable]
    shown = failed or made
    why = "; ".join(f"{s}: {v.why}" if s else v.why for s, v in shown)
    return Verdict(not failed, why, tuple(c for _, v in made for c in v.checks))


def choose(candidates: Sequence[T], hz: Callable[[T], float | None], deployable: Callable[[T], bool],
           reference: T | None = None, margin: float = SPEED_MARGIN) -> tuple[T | None, str]:
    """The file to deploy: the fastest deployable candidate; the ``reference`` unless that one is at least
    ``margin`` faster than it (within timing noise, the reference carries no quantization risk).

    Returns (choice or None when nothing is deployable and timed, why).
    """
    timed = [c for c in candidates if deployable(c) and hz(c) is not None]
    if not timed:
        return None, "no deployable file was timed"
    best = max(timed, key=lambda c: hz(c))
    if reference is None or best is reference or not (reference in timed):
        return best, "the fastest deployable file"
    if hz(best) < hz(reference) * (1.0 + margin):
        return reference, (f"the fastest deployable file ({hz(best):.0f} Hz) is not at least {100 * margin:.0f} % "
                           f"faster than the reference ({hz(reference):.0f} Hz): within timing noise")
    return best, "the fastest deployable file"
