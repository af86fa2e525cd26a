"""`fetalplanes compare`: a candidate (INT8 ONNX, TensorRT engine) against its reference on the same images."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli import add_command
from edge.errors import EXIT_FAILURE, EXIT_OK


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "compare",
        "Compare a candidate model (INT8 ONNX, TensorRT engine) with its reference on the same images",
        handle,
        "fetalplanes compare --reference model.onnx --candidate model.int8.onnx --data FETAL_PLANES_DB",
        description=(
            "Runs the same images of one split through both models and reports top-1/top-3/class accuracy of each, "
            "the deltas overall and per class, argmax agreement, probability differences and the images whose "
            "label changed (JSON and markdown). Exit 1 when the top-1 drop exceeds --max-drop points."
        ),
    )
    p.add_argument("--reference", required=True, type=Path, help="reference model (usually the FP32 .onnx)")
    p.add_argument("--candidate", required=True, type=Path, help="candidate model (.onnx or .engine)")
    p.add_argument("--data", required=True, type=Path, help="FETAL_PLANES_DB folder (CSV + Images/), or a labelled folder (labels.csv: file,plane; split test = every image, val = the half quantize did not calibrate on)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to compare on (test)")
    p.add_argument("--max-drop", type=float, default=1.0, help="allowed top-1 drop in points (1.0)")
    p.add_argument("--min-agreement", type=float, default=None, help="also require this argmax agreement (e.g. 0.99)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for compare.json/.md (default: <candidate stem>.compare.json/.md beside it)")
    p.add_argument("--max-images", type=int, default=None, help="use at most this many images (class-stratified)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="split seed, if the model does not record its own")


def handle(args: argparse.Namespace) -> int:
    from calibration.compare import CompareJob, compare_models, report_paths

    job = CompareJob(
        reference=args.reference, candidate=args.candidate, data=args.data, split=args.split,
        max_drop=args.max_drop, min_agreement=args.min_agreement, out=args.out, threads=args.threads,
        max_images=args.max_images, seed=args.seed,
    )
    r = compare_models(job)
    ref, cand = r["reference_metrics"], r["candidate_metrics"]
    print(f"{r['split']}: {r['images']} images; top-1 reference {100 * ref['top1_accuracy']:.2f} %, "
          f"candidate {100 * cand['top1_accuracy']:.2f} % (drop {r['top1_drop_points']:.2f} points, "
          f"allowed {args.max_drop}); agreement {100 * r['agreement']:.2f} %; {r['changed']['count']} label(s) changed")
    json_path, md_path = report_paths(job)
    print(f"{'PASS' if r['passed'] else 'FAIL'}; report: {json_path} and {md_path}")
    return EXIT_OK if r["passed"] else EXIT_FAILURE
