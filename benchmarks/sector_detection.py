"""Sector detection over every real scanner clip: box, IoU vs the by-eye reference, layout changes, cost.

    .venv/bin/python benchmarks/sector_detection.py [--data ../shared/data/scanner_video] [--frames 0]

Writes benchmarks/results/sector_detection.md and .json. Reference boxes are the ones in
tests/edge/live/test_sector.py (judged by eye; see docs/sector.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.live.sector import Box, SectorTracker  # noqa: E402
from tests.edge.live.test_sector import DARK_SIDED, KNOWN_HARD, REFERENCE  # noqa: E402


def run_clip(path: Path, max_frames: int) -> dict:
    import cv2

    cap = cv2.VideoCapture(str(path))
    tracker, costs, boxes, n = SectorTracker(), [], [], 0
    while max_frames <= 0 or n < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        t = time.perf_counter()
        boxes.append(tracker.update(frame))
        costs.append(time.perf_counter() - t)
        n += 1
    cap.release()
    ref = REFERENCE.get(path.name)
    final = boxes[-1]
    return {
        "clip": path.name,
        "frames": n,
        "size": f"{frame_w(path)}",
        "box": final.as_list(),
        "reference": ref,
        "iou": round(final.iou(Box(*ref)), 3) if ref else None,
        "distinct_boxes": len(set(boxes)),
        "layout_changes": tracker.layout_changes,
        "detections": tracker.detections,
        "median_us": round(float(np.median(costs)) * 1e6, 1),
        "mean_us": round(float(np.mean(costs)) * 1e6, 1),
        "p99_us": round(float(np.percentile(costs, 99)) * 1e6, 1),
        "max_us": round(float(np.max(costs)) * 1e6, 1),
        "known_hard": path.name in KNOWN_HARD,
        "dark_sided": path.name in DARK_SIDED,
    }


def frame_w(path: Path) -> str:
    import cv2

    cap = cv2.VideoCapture(str(path))
    s = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    cap.release()
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scanner_video")
    ap.add_argument("--frames", type=int, default=0, help="frames per clip (0 = all)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sector_detection.md")
    args = ap.parse_args()
    clips = sorted(p for p in args.data.glob("*") if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv"))
    if not clips:
        print(f"no clips under {args.data}", file=sys.stderr)
        return 2
    rows = [run_clip(p, args.frames) for p in clips]
    ious = [r["iou"] for r in rows if r["iou"] is not None]
    lines = [
        "# Sector detection on the real scanner clips",
        "",
        "`.venv/bin/python benchmarks/sector_detection.py` (SectorTracker defaults, every frame of every clip, CPU of the",
        "shared dev box: 2 cores shared by several jobs, so costs are indicative). IoU is the final box against a",
        "reference box judged by eye (tests/edge/live/test_sector.py). Cost = SectorTracker.update per frame",
        "(median, mean, 99th percentile, max over every frame of the clip; the first frame includes the first detection).",
        "",
        "| clip | size | frames | box x,y,w,h | reference | IoU | distinct boxes | layout changes | detections | median us | mean us | p99 us | max us |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        hard = " (below 0.8, known limit)" if r["known_hard"] else (" (dark-sided fan)" if r["dark_sided"] else "")
        lines.append(
            f"| {r['clip']}{hard} | {r['size']} | {r['frames']} | {','.join(map(str, r['box']))} | "
            f"{','.join(map(str, r['reference'] or []))} | {r['iou']} | {r['distinct_boxes']} | {r['layout_changes']} | "
            f"{r['detections']} | {r['median_us']} | {r['mean_us']} | {r['p99_us']} | {r['max_us']} |"
        )
    lines += [
        "",
        f"IoU >= 0.8 on {sum(i >= 0.8 for i in ious)} of {len(ious)} clips; median IoU {np.median(ious):.3f}; "
        f"layout changes counted in total: {sum(r['layout_changes'] for r in rows)} (every clip is one steady layout); "
        f"per-frame cost over all clips: worst clip mean {max(r['mean_us'] for r in rows)} us, "
        f"worst clip p99 {max(r['p99_us'] for r in rows)} us.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
