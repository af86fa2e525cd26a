"""The quantize report: its typed record and its file-name rule, in one place.

``fetalplanes quantize --out model.int8.onnx`` writes ``model.int8.quantize.json`` (and ``.md``) beside
the INT8 file (:func:`report_paths`). What others read from it is typed here (:class:`QuantizeReport`):
which files were made (:class:`CandidateFile`: path, precision, batch-1 Hz on the machine that ran
quantize, and the counts the deployability rule judged), the rule's thresholds (:class:`Gate`) and the
file to deploy there (:class:`Recommendation`). The rest of the report (methods tried, layers kept in
float, sensitivity) stays as written, in ``details``. ``doctor`` finds a model's report with
:func:`find_report`; the benchmarks and the demo read it with :meth:`QuantizeReport.read`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.deployability import Evidence, Gate, Verdict, judge
from edge.errors import FetalPlanesError

KIND = "fetalplanes-quantize-report"
JSON_SUFFIX = ".quantize.json"
MD_SUFFIX = ".quantize.md"


def report_paths(out: str | Path) -> tuple[Path, Path]:
    """``model.int8.onnx`` -> ``model.int8.quantize.json``, ``model.int8.quantize.md`` (beside it)."""
    out = Path(out)
    base = out.with_suffix("") if out.suffix.lower() == ".onnx" else out
    return base.parent / (base.name + JSON_SUFFIX), base.parent / (base.name + MD_SUFFIX)


def find_report(model: str | Path) -> Path:
    """The quantize report that covers ``model``: the first of these that exists, else the first.

    ``model.int8.onnx`` -> ``model.int8.quantize.json`` (written for it), ``model.quantize.json``;
    ``model.onnx`` (the FP32 input) or ``model.fp32.onnx`` -> ``model.quantize.json``, then any
    ``model.*.quantize.json`` (e.g. ``model.int8.quantize.json``, which names the FP32 file too).
    """
    p = Path(model)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    base = stem
    for tail in (".int8", ".fp32", ".fp16"):
        if base.endswith(tail):
            base = base[: -len(tail)]
    candidates = [p.parent / f"{stem}{JSON_SUFFIX}", p.parent / f"{base}{JSON_SUFFIX}"]
    candidates += sorted(p.parent.glob(f"{base}.*{JSON_SUFFIX}"))
    return next((c for c in candidates if c.is_file()), candidates[0])


@dataclass
class Recommendation:
    """The file to deploy on the machine that ran quantize, and why."""

    file: str
    name: str = ""
    precision: str = ""
    hz: float | None = None
    threads: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "name": self.name, "precision": self.precision, "hz": self.hz,
                "threads": self.threads, "reason": self.reason}

    def describe(self) -> str:
        extra = [e for e in (self.precision, f"{self.hz:.0f} Hz" if self.hz is not None else "", self.reason) if e]
        return f"{self.file} ({'; '.join(extra)})" if extra else self.file


@dataclass
class CandidateFile:
    """One file quantize timed: the FP32 input or an INT8 output, with the evidence the rule judged."""

    name: str
    path: str
    precision: str
    holds: bool
    hz: float | None = None
    latency_ms_p50: float | None = None
    size_bytes: int | None = None
    evidence: Evidence | None = None  # None for the reference (FP32) itself
    extra: dict[str, Any] = field(default_factory=dict)  # the rest of the row as written (e.g. "val")

    @property
    def is_reference(self) -> bool:
        return self.precision == "fp32"

    def verdict(self, gate: Gate) -> Verdict:
        """The deployability rule on this file's stored counts (the reference always passes)."""
        if self.is_reference:
            return Verdict(True, "the FP32 reference")
        if self.evidence is not None:
            return judge(self.evidence, gate)
        return Verdict.from_bool(self.holds, "quantize")

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.extra)
        d.update(name=self.name, path=self.path, precision=self.precision, holds=self.holds, hz=self.hz,
                 latency_ms_p50=self.latency_ms_p50, size_bytes=self.size_bytes)
        if self.evidence is not None:
            d["evidence"] = self.evidence.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CandidateFile":
        known = {"name", "path", "precision", "holds", "hz", "latency_ms_p50", "size_bytes", "evidence"}
        evidence = None
        if isinstance(d.get("evidence"), dict):
            evidence = Evidence.from_dict(d["evidence"])
        elif isinstance(d.get("val"), dict):  # reports written before the evidence was stored
            evidence = _evidence_from_holds(d["val"])
        return cls(str(d.get("name", "")), str(d["path"]), str(d.get("precision", "")), bool(d.get("holds")),
                   _num(d.get("hz")), _num(d.get("latency_ms_p50")),
                   int(d["size_bytes"]) if d.get("size_bytes") is not None else None, evidence,
                   {k: v for k, v in d.items() if k not in known})


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _evidence_from_holds(v: dict[str, Any]) -> Evidence | None:
    try:
        n, labelled = int(v["agreement_images"]), int(v.get("labelled_images", 0))
        return Evidence(n, n - int(v["flips"]), labelled, int(round(float(v["top1_fp32"]) * labelled)),
                        int(round(float(v["top1_int8"]) * labelled)), "the check images")
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class QuantizeReport:
    """What ``fetalplanes quantize`` wrote about one INT8 file (see the module docstring)."""

    fp32_model: str
    int8_model: str
    accuracy_holds: bool
    recommendation: Recommendation
    gate: Gate = field(default_factory=Gate)
    candidates: list[CandidateFile] = field(default_factory=list)
    task: str = ""
    labels: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # everything else, as written

    def candidate_for(self, model: str | Path) -> CandidateFile | None:
        """The row of ``model`` (matched by path, else by file name)."""
        m = Path(model)
        for c in self.candidates:
            if Path(c.path) == m:
                return c
        return next((c for c in self.candidates if Path(c.path).name == m.name), None)

    def verdict_for(self, model: str | Path) -> Verdict | None:
        """The deployability rule's verdict on ``model`` from this report (None: the report does not cover it)."""
        c = self.candidate_for(model)
        return None if c is None else c.verdict(self.gate)

    def to_dict(self) -> dict[str, Any]:
        d = copy.deepcopy(self.details)
        d.update(kind=KIND, fp32_model=self.fp32_model, int8_model=self.int8_model, task=self.task,
                 labels=list(self.labels), accuracy_holds=self.accuracy_holds, gate=self.gate.to_dict(),
                 recommendation=self.recommendation.to_dict())
        d.setdefault("speed", {})["candidates"] = [c.to_dict() for c in self.candidates]
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "the quantize report") -> "QuantizeReport":
        """Read the record from a report's JSON; a file that is not one is a clear error."""
        hint = "re-run `fetalplanes quantize` (it writes <out stem>.quantize.json)"
        if not isinstance(d, dict) or d.get("kind") != KIND:
            raise FetalPlanesError(f"{source} is not a fetalplanes quantize report (no kind '{KIND}')", hint=hint)
        try:
            rec = d["recommendation"]
            settings = d.get("settings", {})
            gate = Gate.from_dict(d.get("gate") or {"min_agreement": settings.get("min_agreement", 0.99),
                                                    "max_drop_points": settings.get("max_drop_points", 1.0)})
            return cls(
                fp32_model=str(d["fp32_model"]), int8_model=str(d["int8_model"]),
                accuracy_holds=bool(d["accuracy_holds"]),
                recommendation=Recommendation(str(rec["file"]), str(rec.get("name", "")), str(rec.get("precision", "")),
                                              _num(rec.get("hz")), rec.get("threads"), str(rec.get("reason", ""))),
                gate=gate,
                candidates=[CandidateFile.from_dict(c) for c in d.get("speed", {}).get("candidates", [])],
                task=str(d.get("task", "")), labels=list(d.get("labels", [])),
                details={k: v for k, v in d.items() if k not in ("recommendation", "gate")},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FetalPlanesError(f"{source}: a quantize report without a valid {exc}", hint=hint) from None

    @classmethod
    def read(cls, path: str | Path) -> "QuantizeReport":
        """Read ``path`` (a ``.quantize.json``); a missing or unreadable file is a clear error."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FetalPlanesError(f"{path} cannot be read ({exc})",
                                   hint="re-run `fetalplanes quantize` (it writes <out stem>.quantize.json)") from None
        return cls.from_dict(data, str(path))

    def write(self, path: str | Path) -> Path:
        """Write the report atomically (a temporary file renamed over ``path``: never half a report)."""
        import os

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, default=float), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
