"""`fetalplanes demo`: the whole chain on the embedded phantom, ending in report.html / report.md."""

from __future__ import annotations

import argparse
import sys

from edge.cli import add_command
from edge.cli_args import add_out, add_threads
from edge.errors import EXIT_FAILURE


def run(args: argparse.Namespace) -> int:
    from export.demo import DemoConfig, run_demo

    steps = tuple(s.strip() for s in (args.steps or "").split(",") if s.strip())
    base = DemoConfig.quick if args.quick else DemoConfig
    overrides = {k: v for k, v in (("epochs", args.epochs), ("threads", args.threads)) if v is not None}
    config = base(out=args.out, force=args.force, steps=steps, **overrides)

    def log(message: str) -> None:
        print(message, flush=True)

    result = run_demo(config, log)
    failed = []
    cmp_ = result["results"].get("compare")
    if cmp_ is not None and not cmp_.get("passed", True):
        failed.append("INT8 vs FP32 compare checks failed (see the report)")
    for f in failed:
        print(f"note: {f}", file=sys.stderr)
    return 0 if not failed else EXIT_FAILURE


def register(subparsers: argparse._SubParsersAction) -> None:
    from export.demo import STEPS

    p = add_command(
        subparsers,
        "demo",
        "the whole chain on the synthetic phantom: data, video, train, evaluate, export, INT8, compare, live, speed, report",
        run,
        "fetalplanes demo --out demo_run",
        description=(
            "Run every stage on the embedded phantom (synthetic; proves nothing clinical) on the CPU in about\n"
            "10 minutes on 2 cores: phantom dataset and scanner video -> train a small MobileNetV3 -> evaluate\n"
            "-> export ONNX -> quantize INT8 -> compare INT8 with FP32 -> live loop on the video (annotated\n"
            "video + predictions) -> model-only Hz -> OUT/report.html and OUT/report.md.\n"
            "Re-running reuses finished steps whose inputs did not change (OUT/.steps/); --force redoes all.\n"
            f"Steps: {', '.join(STEPS)}. The report lists the command that redoes each step with your own data."
        ),
    )
    add_out(p, "folder for everything the demo makes (default demo_run)", required=False, default="demo_run", metavar="DIR")
    p.add_argument("--force", action="store_true", help="redo every step, even those already done")
    p.add_argument("--steps", default=None, metavar="A,B",
                   help=f"redo only these steps (and run what they need that is not done yet); of: {','.join(STEPS)}")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 10)")
    add_threads(p, default=None, help="ONNX Runtime threads for inference and timing (default 2)")
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tests: tiny scale, seconds
