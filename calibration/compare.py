"""``fetalplanes compare``: the same images through a reference and a candidate model, side by side.

Typical use: FP32 ONNX (reference) against its INT8 ONNX or a TensorRT engine
(candidate) on the test patients. Reports top-1/top-3/class accuracy of each,
the deltas overall and per class, argmax agreement, probability differences and
the images whose predicted label changed. The verdict is the one deployability
rule (:func:`edge.deployability.judge`) on these images: argmax agreement at
least ``min_agreement`` (0.99) and a top-1 drop of at most ``max_drop`` points
(never judged finer than one image).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.deployability import MAX_DROP_POINTS, MIN_AGREEMENT, Evidence, Gate, Verdict, judge
from edge.errors import FetalPlanesError


@dataclass
class CompareJob:
    """What ``fetalplanes compare`` was asked to do."""

    reference: Path
    candidate: Path
    data: Path
    split: str = "test"
    max_drop: float = MAX_DROP_POINTS  # top-1 points (never less than one image)
    min_agreement: float = MIN_AGREEMENT
    out: Path | None = None
    threads: int = 0
    max_images: int | None = None
    seed: int = 0
    max_changed_listed: int = 200


def report_paths(job: CompareJob) -> tuple[Path, Path]:
    """``--out DIR`` -> DIR/compare.json, DIR/compare.md; else ``<candidate stem>.compare.{json,md}`` beside it."""
    if job.out is not None:
        return Path(job.out) / "compare.json", Path(job.out) / "compare.md"
    c = Path(job.candidate)
    return c.with_name(c.stem + ".compare.json"), c.with_name(c.stem + ".compare.md")


def _check_compatible(ref_info, cand_info, job: CompareJob) -> None:
    if (ref_info.task, list(ref_info.labels), ref_info.label_map) != (cand_info.task, list(cand_info.labels), cand_info.label_map):
        raise FetalPlanesError(
            f"{job.candidate}: its task/labels ({cand_info.task}: {', '.join(cand_info.labels)}) differ from the "
            f"reference {job.reference} ({ref_info.task}: {', '.join(ref_info.labels)})",
            hint="compare a model with its own INT8 file or engine (both carry the same labels)",
        )


def judge_outputs(ref_probs: np.ndarray, cand_probs: np.ndarray, targets: np.ndarray | None, gate: Gate,
                  where: str = "") -> tuple[Evidence, Verdict]:
    """compare's verdict on two models' outputs: the counts (agreement, top-1 on ``targets``) and the one rule."""
    from calibration.compare_outputs import gate_evidence

    evidence = gate_evidence(ref_probs, cand_probs, targets, where)
    return evidence, judge(evidence, gate)


def compare_models(job: CompareJob) -> dict[str, Any]:
    """Run both models on the split; return the report (and write it as JSON and markdown)."""
    from calibration.compare_outputs import compare_outputs
    from calibration.evaluation import load_split, predict_file, preprocessing_key
    from edge.backends import read_model_info
    from fetaldata import open_dataset
    from fetaldata.metrics import classification_metrics

    t0 = time.perf_counter()
    gate = Gate(MIN_AGREEMENT if job.min_agreement is None else job.min_agreement, job.max_drop)
    ref_info = read_model_info(job.reference)
    cand_info = read_model_info(job.candidate)
    _check_compatible(ref_info, cand_info, job)
    db = open_dataset(job.data)
    data = load_split(db, ref_info, job.split, job.max_images, job.seed)
    ref_probs = predict_file(job.reference, data.x, job.threads)
    same_pre = preprocessing_key(ref_info) == preprocessing_key(cand_info)
    x_cand = data.x if same_pre else load_split(db, cand_info, job.split, job.max_images, job.seed).x
    cand_probs = predict_file(job.candidate, x_cand, job.threads)
    # scored on the task's labels (a model with a label_map: its probabilities summed per task label)
    ref_probs, cand_probs = ref_info.map_probabilities(ref_probs), cand_info.map_probabilities(cand_probs)
    labels = ref_info.task_labels
    m_ref = classification_metrics(ref_probs, data.targets, labels)
    m_cand = classification_metrics(cand_probs, data.targets, labels)

    ref_pred, cand_pred = ref_probs.argmax(1), cand_probs.argmax(1)
    outputs = compare_outputs(ref_probs, cand_probs, top_k=(1, 3))
    evidence, verdict = judge_outputs(ref_probs, cand_probs, data.targets, gate,
                                      f"{len(data.samples)} {job.split}-split images")
    changed_idx = np.flatnonzero(ref_pred != cand_pred)
    changed = [
        {
            "image": data.samples[i].record.image_name,
            "patient": data.samples[i].record.patient,
            "true": labels[data.targets[i]],
            "reference": labels[ref_pred[i]],
            "candidate": labels[cand_pred[i]],
            "reference_prob": float(ref_probs[i, ref_pred[i]]),
            "candidate_prob": float(cand_probs[i, cand_pred[i]]),
            "effect": "fixed" if cand_pred[i] == data.targets[i] else ("broke" if ref_pred[i] == data.targets[i] else "still wrong"),
        }
        for i in changed_idx[: job.max_changed_listed]
    ]
    per_class = []
    for i, label in enumerate(labels):
        r, c = m_ref.per_class[i], m_cand.per_class[i]
        per_class.append({
            "label": label,
            "support": r["support"],
            "reference_recall": r["recall"],
            "candidate_recall": c["recall"],
            "delta_recall_points": 100.0 * (c["recall"] - r["recall"]),
            "reference_f1": r["f1"],
            "candidate_f1": c["f1"],
            "delta_f1": c["f1"] - r["f1"],
        })
    drop = evidence.drop_points
    agreement = evidence.agreement
    ref_size, cand_size = Path(job.reference).stat().st_size, Path(job.candidate).stat().st_size
    report: dict[str, Any] = {
        "kind": "fetalplanes-compare-report",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "reference": str(job.reference),
        "candidate": str(job.candidate),
        "data": str(job.data),
        "split": job.split,
        "images": len(data.samples),
        "task": ref_info.task,
        "labels": labels,
        "same_preprocessing": same_pre,
        "reference_metrics": _slim(m_ref.to_dict()),
        "candidate_metrics": _slim(m_cand.to_dict()),
        "delta": {
            "top1_accuracy_points": -drop,
            "top3_accuracy_points": 100.0 * (m_ref.top3_error - m_cand.top3_error),
            "class_accuracy_mean_points": 100.0 * (m_cand.class_accuracy_mean - m_ref.class_accuracy_mean),
            "macro_f1": m_cand.macro_f1 - m_ref.macro_f1,
        },
        "top1_drop_points": drop,
        "agreement": agreement,
        "prob_abs_diff": {"max": outputs.max_abs_diff, "mean": outputs.mean_abs_diff},
        "top3_agreement": outputs.topk_agreement[3],
        "per_class": per_class,
        "changed": {"count": int(len(changed_idx)), "listed": changed},
        "sizes": {"reference_bytes": ref_size, "candidate_bytes": cand_size, "candidate_over_reference": cand_size / ref_size},
        "gate": gate.to_dict(),
        "evidence": evidence.to_dict(),
        "checks": [c.to_dict() for c in verdict.checks],
        "verdict": verdict.to_dict(),
        "passed": verdict.deployable,
        "seconds": time.perf_counter() - t0,
    }
    json_path, md_path = report_paths(job)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    md_path.write_text(report_markdown(report))
    return report


def _slim(d: dict) -> dict:
    d = dict(d)
    d.pop("per_class", None)
    return d


def report_markdown(r: dict[str, Any]) -> str:
    """The comparison as markdown."""
    ref, cand = r["reference_metrics"], r["candidate_metrics"]

    def row(name: str, key: str, error: bool = False) -> str:
        a = 1.0 - ref[key] if error else ref[key]
        b = 1.0 - cand[key] if error else cand[key]
        return f"| {name} | {100 * a:.2f} % | {100 * b:.2f} % | {100 * (b - a):+.2f} |"

    lines = [
        f"# {Path(r['candidate']).name} against {Path(r['reference']).name}",
        "",
        f"Split **{r['split']}** of `{r['data']}`: {r['images']} images, task {r['task']}.",
        "",
        "| metric | reference | candidate | delta (points) |",
        "|---|---|---|---|",
        row("top-1 accuracy", "top1_accuracy"),
        row("top-3 accuracy", "top3_error", error=True),
        row("class accuracy (mean)", "class_accuracy_mean"),
        "",
        f"Argmax agreement: **{100 * r['agreement']:.2f} %** ({r['changed']['count']} image(s) changed label). "
        f"Probability |difference|: max {r['prob_abs_diff']['max']:.4f}, mean {r['prob_abs_diff']['mean']:.5f}. "
        f"Size: candidate {r['sizes']['candidate_over_reference']:.2f} x reference.",
        "",
        "| check | value | limit | result | counts |",
        "|---|---|---|---|---|",
    ]
    for c in r["checks"]:
        limit = f"<= {c['limit']:.4g}" if "drop" in c["check"] else f">= {c['limit']:.4g}"
        lines.append(f"| {c['check']} | {c['value']:.4f} | {limit} | {'pass' if c['ok'] else 'FAIL'} | "
                     f"{c.get('detail', '')} |")
    lines += [
        "",
        f"**{'PASS' if r['passed'] else 'FAIL'}** (the deployability rule, edge/deployability.py): "
        f"{r.get('verdict', {}).get('why', '')}.",
        "",
        "## Per class (recall = class accuracy)",
        "",
        "| class | images | reference | candidate | delta (points) |",
        "|---|---|---|---|---|",
    ]
    for c in r["per_class"]:
        lines.append(f"| {c['label']} | {c['support']} | {100 * c['reference_recall']:.2f} % | "
                     f"{100 * c['candidate_recall']:.2f} % | {c['delta_recall_points']:+.2f} |")
    if r["changed"]["listed"]:
        lines += ["", "## Images whose label changed", "", "| image | true | reference | candidate | effect |",
                  "|---|---|---|---|---|"]
        for c in r["changed"]["listed"]:
            lines.append(f"| {c['image']} | {c['true']} | {c['reference']} ({c['reference_prob']:.2f}) | "
                         f"{c['candidate']} ({c['candidate_prob']:.2f}) | {c['effect']} |")
        if r["changed"]["count"] > len(r["changed"]["listed"]):
            lines.append(f"\n... and {r['changed']['count'] - len(r['changed']['listed'])} more (see the JSON).")
    return "\n".join(lines) + "\n"
