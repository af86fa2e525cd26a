"""Score the loop's smoothed labels against a ground-truth sidecar (phantom videos).

The sidecar ``<name>.truth.csv`` has ``frame,time_s,plane,brain_plane,state,x,y,w,h``
(written by :mod:`fetaldata.phantom.video`). The loop's ``jsonl://`` output has one
record per processed frame with the source ``frame`` index. Frames are matched
by index; frames the loop did not process (dropped) are counted, not scored.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

from edge.errors import FetalPlanesError
from edge.labels import BRAIN, PLANES


def read_predictions(jsonl_path: str | Path) -> dict[int, dict[str, Any]]:
    """Per-frame records of a jsonl output (the last record wins if a frame repeats, e.g. --loop)."""
    path = Path(jsonl_path)
    if not path.is_file():
        raise FetalPlanesError(f"{path}: predictions file not found", hint="run `fetalplanes run ... --output jsonl://FILE` first")
    records: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise FetalPlanesError(f"{path}:{number}: not a JSON line", hint="the file was cut or edited; re-run the loop") from None
            if "frame" in rec and "label" in rec:
                records[int(rec["frame"])] = rec
    return records


def read_truth(truth_csv: str | Path) -> list[dict[str, str]]:
    """Rows of a ``.truth.csv`` sidecar."""
    path = Path(truth_csv)
    if not path.is_file():
        raise FetalPlanesError(f"{path}: ground-truth sidecar not found", hint="it is written beside the phantom video as <name>.truth.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    needed = {"frame", "plane", "state"}
    if not rows or not needed <= set(rows[0]):
        raise FetalPlanesError(f"{path}: expected columns frame,time_s,plane,brain_plane,state,x,y,w,h", hint="regenerate the phantom video")
    return rows


def _changes(seq: list[str]) -> int:
    return sum(1 for a, b in zip(seq, seq[1:]) if a != b)


def _iou(a: list[float], b: list[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def score_against_truth(jsonl_path: str | Path, truth_csv: str | Path) -> dict[str, Any]:
    """Accuracy and flicker of the smoothed labels against the sidecar.

    Returns: ``frames_truth``, ``frames_scored`` (matched by index), ``accuracy``
    (label == truth, "uncertain" frames count as wrong), ``accuracy_confident``
    (over frames not uncertain) and ``coverage`` (share not uncertain),
    ``accuracy_by_state`` (per truth state), ``label_changes`` of prediction and
    truth, ``flicker`` (prediction changes beyond the truth's, >= 0),
    ``confusion`` (truth -> predicted -> count), ``sector_iou_mean`` when the
    sidecar has a box, and ``freeze`` (frozen frames predicted vs true).

    Steady frames (truth state not ``transition``: the plane is held on screen, live or frozen)
    are also scored on their own, since during a transition the truth is only the dominant of two
    cross-faded planes: ``frames_by_state``, ``accuracy_steady`` (as ``accuracy``),
    ``accuracy_steady_top1`` (the smoothed probabilities' leading class, "uncertain" or not),
    ``uncertain_steady`` (share shown uncertain), ``accuracy_by_class_steady``, ``flicker_steady``
    (label changes inside a steady segment, where the truth does not change, after the label first
    matched) and ``lag_frames`` (per steady segment, frames until the shown label first matches:
    upper median and max; ``segments_never_right`` counts segments where it never does).
    """
    preds = read_predictions(jsonl_path)
    truth = read_truth(truth_csv)
    labels_seen = {r["label"] for r in preds.values()}
    column = "brain_plane" if labels_seen and labels_seen <= set(BRAIN) and not labels_seen <= set(PLANES) else "plane"
    matched = [(row, preds[int(row["frame"])]) for row in truth if int(row["frame"]) in preds]
    n = len(matched)
    correct = sum(1 for row, p in matched if p["label"] == row[column] and p.get("state") != "uncertain")
    confident = [(row, p) for row, p in matched if p.get("state") != "uncertain"]
    by_state: dict[str, list[int]] = {}
    confusion: dict[str, Counter] = {}
    ious = []
    frozen_true = frozen_pred = frozen_both = 0
    for row, p in matched:
        ok = int(p["label"] == row[column] and p.get("state") != "uncertain")
        by_state.setdefault(row.get("state", ""), []).append(ok)
        confusion.setdefault(row[column], Counter())[p["label"] if p.get("state") != "uncertain" else "uncertain"] += 1
        if all(row.get(k, "") not in ("", None) for k in "xywh") and "box" in p:
            ious.append(_iou([float(row[k]) for k in "xywh"], [float(v) for v in p["box"]]))
        t_frozen = row.get("state", "").lower().startswith("froz")
        p_frozen = p.get("state") == "frozen"
        frozen_true += t_frozen
        frozen_pred += p_frozen
        frozen_both += t_frozen and p_frozen
    pred_seq = [p["label"] for _, p in matched]
    truth_seq = [row[column] for row, _ in matched]
    result: dict[str, Any] = {
        "task_column": column,
        "frames_truth": len(truth),
        "frames_scored": n,
        "frames_missing": len(truth) - n,
        "accuracy": round(correct / n, 4) if n else None,
        "accuracy_confident": round(sum(p["label"] == r[column] for r, p in confident) / len(confident), 4) if confident else None,
        "coverage": round(len(confident) / n, 4) if n else None,
        "accuracy_by_state": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_state.items())},
        "label_changes": _changes(pred_seq),
        "label_changes_truth": _changes(truth_seq),
        "flicker": max(0, _changes(pred_seq) - _changes(truth_seq)),
        "confusion": {k: dict(v) for k, v in sorted(confusion.items())},
        "freeze": {"frames_true": frozen_true, "frames_predicted": frozen_pred, "frames_both": frozen_both},
    }
    if ious:
        result["sector_iou_mean"] = round(sum(ious) / len(ious), 4)
    result.update(_steady_scores(matched, column))
    return result


def _is_steady(row: dict[str, str]) -> bool:
    return row.get("state", "") != "transition"


def _steady_scores(matched: list[tuple[dict[str, str], dict[str, Any]]], column: str) -> dict[str, Any]:
    """Scores over steady frames (truth not in a transition); see :func:`score_against_truth`."""
    shown_ok = [p["label"] == row[column] and p.get("state") != "uncertain" for row, p in matched]
    steady = [i for i, (row, _) in enumerate(matched) if _is_steady(row)]
    by_class: dict[str, list[bool]] = {}
    top1 = []
    for i in steady:
        row, p = matched[i]
        by_class.setdefault(row[column], []).append(shown_ok[i])
        probs = p.get("probs") or {}
        top1.append(bool(probs) and max(probs, key=probs.get) == row[column])
    # steady segments: runs of steady frames with consecutive source indices and one truth label
    segments: list[list[int]] = []
    for i in steady:
        row = matched[i][0]
        if segments:
            j = segments[-1][-1]
            prow = matched[j][0]
            if j == i - 1 and int(prow["frame"]) == int(row["frame"]) - 1 and prow[column] == row[column]:
                segments[-1].append(i)
                continue
        segments.append([i])
    flicker, lags, never = 0, [], 0
    for seg in segments:
        first = next((k for k, i in enumerate(seg) if shown_ok[i]), None)
        if first is None:
            never += 1
        else:
            lags.append(first)
        # once right, any change is flicker (the switch to the right label at the start is lag, not flicker)
        flicker += _changes([matched[i][1]["label"] for i in seg[first or 0:]])
    n = len(steady)
    return {
        "frames_by_state": dict(sorted(Counter(row.get("state", "") for row, _ in matched).items())),
        "accuracy_steady": round(sum(shown_ok[i] for i in steady) / n, 4) if n else None,
        "accuracy_steady_top1": round(sum(top1) / n, 4) if n else None,
        "uncertain_steady": round(sum(matched[i][1].get("state") == "uncertain" for i in steady) / n, 4) if n else None,
        "accuracy_by_class_steady": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_class.items())},
        "steady_segments": len(segments),
        "flicker_steady": flicker,
        "lag_frames": {"median": sorted(lags)[len(lags) // 2] if lags else None, "max": max(lags) if lags else None},
        "segments_never_right": never,
    }


def read_exam(exam: str | Path | dict[str, Any]) -> dict[str, Any]:
    """An exam report's ``exam.json`` (a path, or the dict itself)."""
    if isinstance(exam, dict):
        return exam
    path = Path(exam)
    if path.is_dir():
        path = path / "exam.json"
    if not path.is_file():
        raise FetalPlanesError(f"{path}: exam report not found", hint="run `fetalplanes run ... --exam-report DIR` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise FetalPlanesError(f"{path}: not JSON", hint="the file was cut or edited; re-run the loop") from None
    if not isinstance(data, dict) or "planes" not in data:
        raise FetalPlanesError(f"{path}: no 'planes' in this file", hint="give the exam.json of an exam report")
    return data


def exam_in_task_planes(exam: str | Path | dict[str, Any], label_map: dict[str, str], planes: list[str]) -> dict[str, Any]:
    """An exam report over a model's own labels (e.g. SonoNet's 14 views) as one over the task's ``planes``.

    ``label_map``: the model description's map (native label -> task plane). A plane is seen (stored)
    when a native label mapped to it is; its best frame is the most confident of those labels' best
    frames (``best["label"]`` names it). A plane no label maps to (SonoNet: Maternal cervix) is never
    seen. Frame span and id are kept, so :func:`score_retrieval` scores the result as it is.
    """
    data = read_exam(exam)
    out = {k: v for k, v in data.items() if k not in ("planes", "seen", "missing")}
    mapped: dict[str, Any] = {}
    for plane in planes:
        natives = [lab for lab, task in label_map.items() if task == plane and lab in data["planes"]]
        entries = [(lab, data["planes"][lab]) for lab in natives]
        bests = [dict(e["best"], label=lab) for lab, e in entries if e.get("best")]
        mapped[plane] = {
            "seen": any(e.get("seen") for _, e in entries),
            "stored": any(e.get("stored") for _, e in entries),
            "labels": natives,
            "best": max(bests, key=lambda b: b.get("confidence", 0.0)) if bests else None,
        }
    out["planes"] = mapped
    out["seen"] = [p for p, v in mapped.items() if v["seen"]]
    out["missing"] = [p for p, v in mapped.items() if not v["seen"]]
    return out


def score_retrieval(exam: str | Path | dict[str, Any], truth_csv: str | Path,
                    frames: tuple[int, int] | None = None) -> dict[str, Any]:
    """Best-frame retrieval of an exam report against the sidecar of the video it came from.

    A plane of the exam's checklist is *present* when the truth shows it held on screen (state
    ``steady`` or ``frozen``, not only inside a transition). It is *retrieved* when the exam's best
    frame for it lies in such a segment of that plane. ``retrieval_accuracy`` = retrieved / present
    (SonoNet's retrieval accuracy, offline in the paper, here live). Also: ``missed`` (present, no
    best frame), ``wrong`` (a best frame outside the plane's segments: ``{plane: truth at that
    frame}``) and ``not_present_but_seen`` (a plane the truth never shows that the exam lists as seen).
    ``frames`` (first, last): only this span of the truth counts (one exam of a video holding several).
    """
    data = read_exam(exam)
    truth = read_truth(truth_csv)
    if frames is not None:
        truth = [r for r in truth if frames[0] <= int(r["frame"]) <= frames[1]]
    planes = list(data["planes"])
    column = "brain_plane" if planes and set(planes) <= set(BRAIN) else "plane"
    by_frame = {int(r["frame"]): r for r in truth}
    present = sorted({r[column] for r in truth if _is_steady(r) and r[column] in planes})
    retrieved, missed, wrong = [], [], {}
    for plane in present:
        best = (data["planes"][plane] or {}).get("best")
        if not best:
            missed.append(plane)
            continue
        row = by_frame.get(int(best["frame"]))
        if row is not None and row[column] == plane and _is_steady(row):
            retrieved.append(plane)
        else:
            wrong[plane] = "not in the truth" if row is None else f"{row[column]} ({row.get('state', '')})"
    seen = [p for p, v in data["planes"].items() if v.get("seen")]
    return {
        "task_column": column,
        "planes_present": present,
        "planes_retrieved": retrieved,
        "retrieval_accuracy": round(len(retrieved) / len(present), 4) if present else None,
        "missed": missed,
        "wrong": wrong,
        "not_present_but_seen": sorted(set(seen) - set(present)),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m fetaldata.scoring predictions.jsonl video.truth.csv`` -> the scores as JSON."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m fetaldata.scoring", description=score_against_truth.__doc__.splitlines()[0])
    parser.add_argument("jsonl")
    parser.add_argument("truth_csv")
    parser.add_argument("--exam", metavar="EXAM_DIR", help="also score an exam report's best frames (its folder or exam.json)")
    args = parser.parse_args(argv)
    try:
        scores = score_against_truth(args.jsonl, args.truth_csv)
        if args.exam:
            scores["retrieval"] = score_retrieval(args.exam, args.truth_csv)
        print(json.dumps(scores, indent=1))
    except FetalPlanesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
