"""`fetalplanes selftest`: on a GPU box, build TensorRT engines and check them against ONNX Runtime.

The project could not run TensorRT where it was written; this command is how a
user verifies the TensorRT path on their own Jetson or GPU machine. For each
engine it reports argmax agreement and the largest probability difference
against ONNX Runtime (CPU, FP32) on the same images, plus whether a single-image
run matches the batched run (the dynamic batch profile); exit 0 only if every
engine built passes.
"""

from __future__ import annotations

import argparse
import sys

from edge.cli import add_command
from edge.cli_args import add_gpu
from edge.errors import EXIT_FAILURE, FetalPlanesError


def _run(args: argparse.Namespace) -> int:
    from calibration.selftest import SelftestConfig, format_report, run_selftest

    cfg = SelftestConfig(
        onnx=args.onnx,
        data=args.data,
        samples=args.samples,
        out=args.out,
        max_batch=args.max_batch,
        min_agreement=args.min_agreement,
        tol_fp16=args.tol_fp16,
        tol_int8=args.tol_int8,
        device=args.gpu,
    )
    if cfg.samples < 2:
        raise FetalPlanesError(f"--samples {cfg.samples}: need at least 2", hint="e.g. --samples 32")
    report = run_selftest(cfg)
    print(format_report(report))
    print(f"report: {report.path}", file=sys.stderr)
    return 0 if report.passed else EXIT_FAILURE


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "selftest",
        "verify the TensorRT path on this GPU box: build FP16/INT8 engines, compare with ONNX Runtime",
        _run,
        "fetalplanes selftest                      # a small built-in model on phantom images\n"
        "  fetalplanes selftest --onnx model.onnx --data FETAL_PLANES_DB/Images --out selftest/",
        description=__doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
    )
    p.add_argument("--onnx", help="model to check (default: a small model the selftest makes)")
    p.add_argument("--data", help="folder of sample images (default: phantom images)")
    p.add_argument("--samples", type=int, default=32, help="images to compare on (default 32)")
    p.add_argument("--out", help="keep engines and selftest.json here (default: a temporary folder)")
    p.add_argument("--max-batch", type=int, default=8, help="engine profile max batch (default 8)")
    p.add_argument("--min-agreement", type=float, default=0.95, help="min argmax agreement with ONNX Runtime (default 0.95)")
    p.add_argument("--tol-fp16", type=float, default=0.02, help="max probability difference for fp16/fp32 (default 0.02)")
    p.add_argument("--tol-int8", type=float, default=0.15, help="max probability difference for int8 (default 0.15)")
    add_gpu(p)
