"""`fetalplanes doctor`: the command line of :mod:`edge.doctor` (arguments and handler). Imports light."""

from __future__ import annotations

import argparse
import json

from edge.cli import add_command
from edge.cli_args import add_model
from edge.errors import FetalPlanesError


def run_doctor(args: argparse.Namespace) -> int:
    """Handler of `fetalplanes doctor`."""
    from edge.doctor import DoctorOptions, diagnose, format_table, read_box_config, to_json, verdict

    from_config, config_findings = read_box_config(args.config) if args.config else ({}, [])
    if args.measure_s <= 0 or args.min_free_gb < 0:
        raise FetalPlanesError("--measure-s must be > 0 and --min-free-gb >= 0", hint="e.g. --measure-s 1 --min-free-gb 2")
    options = DoctorOptions(
        model=args.model or from_config.get("model"),
        input=args.input or from_config.get("input"),
        record_dir=args.record_dir or from_config.get("record_dir"),
        min_free_gb=args.min_free_gb,
        measure_s=args.measure_s,
        open_timeout_s=args.timeout,
    )
    findings = config_findings + diagnose(options)
    if args.json:
        print(json.dumps(to_json(findings, options), indent=2))
    else:
        print(format_table(findings))
    return verdict(findings)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "doctor",
        "check what this box can run: libraries, CPU/GPU, OpenCV video I/O, capture device, disk, model",
        run_doctor,
        "fetalplanes doctor --model model.int8.onnx --input /dev/video0 --record-dir /var/lib/fetalplanes",
        description=(
            "Check what this machine can run and why not: Python and packages, ONNX Runtime providers, CPU "
            "instruction sets for INT8, GPU / TensorRT / pycuda, OpenCV's video backends, whether --input "
            "delivers a frame, free disk in --record-dir, and with --model whether it loads, how fast, and "
            "which precision to deploy. Exit 0 when nothing blocks running --model on --input, 1 otherwise."
        ),
    )
    add_model(p)
    p.add_argument("--input", help="capture source: /dev/video0, v4l2:///dev/video0, 0, a video file, rtsp://..., or a GStreamer pipeline")
    p.add_argument("--record-dir", help="where recordings and predictions go: checks free space and write permission")
    p.add_argument("--config", help="box config (TOML/YAML, as for `run --config`): validated; model, input and the folder of the first file output are checked; flags override")
    p.add_argument("--min-free-gb", type=float, default=2.0, help="free space needed in --record-dir (default 2)")
    p.add_argument("--measure-s", type=float, default=1.0, help="seconds spent measuring the model's Hz (default 1)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for --input to deliver a frame (default 15)")
    p.add_argument("--json", action="store_true", help="print the findings and the machine description as JSON")
