"""`fetalplanes classify`: archived images (PNG/JPEG, DICOM) into a CSV. Imports light."""

from __future__ import annotations

import argparse
import sys

from edge.cli import add_command
from edge.cli_args import add_model, add_out, add_roi, setup_logging
from edge.errors import EXIT_FAILURE


def register(subparsers: argparse._SubParsersAction) -> None:
    c = add_command(
        subparsers,
        "classify",
        "Classify archived images (PNG/JPEG, DICOM with pydicom) into a CSV, one row per image, sorted by exam.",
        _classify,
        "fetalplanes classify archive/ 'more/*.png' --model model.int8.onnx --out results.csv",
    )
    c.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (searched recursively) or quoted globs")
    add_model(c, help="model file (.onnx, or a TensorRT engine on a TensorRT box); default: the vendored SonoNet-16 "
                      "(edge/models/sononet16.onnx, published weights, trained on another cohort)")
    add_roi(c)
    add_out(c, "CSV to write ('-' for the terminal)", metavar="CSV")
    c.add_argument("--batch", type=int, default=16, help="images per inference batch (default 16)")


def _classify(args: argparse.Namespace) -> int:
    from edge.live.classify import classify_paths
    from edge.live.sector import Box

    setup_logging(False)
    roi = Box.parse(args.roi) if args.roi else None
    model = args.model
    if not model:
        from edge.default_model import default_model_path

        model = str(default_model_path())
    result = classify_paths(args.paths, model, args.out, batch=max(1, args.batch), roi=roi,
                            announce=args.model is None)
    where = "" if args.out == "-" else f" -> {args.out}"
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    print(f"{len(result.rows)} images, {result.exams} exams, {result.errors} unreadable{where}", file=sys.stderr)
    if counts:
        print(f"labels: {counts}", file=sys.stderr)
    if result.notes:
        print(f"note: {result.notes}", file=sys.stderr)
    return EXIT_FAILURE if result.errors and result.errors == len(result.rows) else 0
