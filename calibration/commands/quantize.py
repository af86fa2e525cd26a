"""`fetalplanes quantize`: INT8 (ONNX Runtime, QDQ) calibrated on training images, checked on validation patients."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli import add_command
from edge.deployability import MAX_DROP_POINTS, MIN_AGREEMENT
from edge.cli_args import add_data, add_out, add_threads
from edge.errors import EXIT_FAILURE, EXIT_OK


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "quantize",
        "INT8-quantize an ONNX model (ONNX Runtime QDQ), check it on validation patients, say what to deploy here",
        handle,
        "fetalplanes quantize --onnx model.onnx --data FETAL_PLANES_DB --out model.int8.onnx",
        description=(
            "Calibrates on training-patient images (with each method under --method auto), quantizes (QDQ, per-channel int8 weights), measures top-1 of "
            "FP32 and INT8 on the validation patients, keeps in float the fewest layers needed for the accuracy "
            "to hold, times FP32 and INT8 on this machine and names the file to deploy here. Writes "
            "<out stem>.quantize.json and .md beside the output. Exit 1 when the INT8 accuracy does not hold."
        ),
    )
    p.add_argument("--onnx", required=True, type=Path, help="FP32 ONNX model with fetalplanes metadata")
    add_data(p, use="the one the model was trained on (calibration: training patients; check: validation)")
    add_out(p, "INT8 ONNX file to write (e.g. model.int8.onnx)", type=Path, metavar="FILE")
    p.add_argument("--method", default="auto", choices=("auto", "minmax", "entropy", "percentile"),
                   help="activation range calibration (default auto: calibrate with each and keep the one whose fully "
                        "INT8 model is closest to FP32; entropy uses 512 histogram bins)")
    p.add_argument("--activations", default=None, choices=("uint8", "int8"),
                   help="activation type (default: uint8 asymmetric for --target cpu, int8 symmetric for tensorrt)")
    p.add_argument("--target", default="cpu", choices=("cpu", "tensorrt"),
                   help="who runs the INT8 file: ONNX Runtime on a CPU, or TensorRT (build-engine)")
    p.add_argument("--calib-size", type=int, default=500, help="calibration images from training patients (500)")
    p.add_argument("--seed", type=int, default=0, help="calibration sampling seed (and split seed if the model "
                   "does not record its own)")
    p.add_argument("--max-drop", type=float, default=MAX_DROP_POINTS,
                   help=f"allowed top-1 drop on validation, points, never less than one image ({MAX_DROP_POINTS})")
    p.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT,
                   help=f"required argmax agreement with FP32 ({MIN_AGREEMENT})")
    p.add_argument("--percentile", type=float, default=99.999, help="--method percentile: the percentile (99.999)")
    p.add_argument("--num-bins", type=int, default=None, help="histogram bins (entropy 512, percentile 2048)")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weights instead of per-channel")
    p.add_argument("--reduce-range", action="store_true", help="7-bit weights (older x86 CPUs without VNNI)")
    p.add_argument("--no-search", action="store_true", help="do not look for layers to keep in float")
    p.add_argument("--search-headroom", type=float, default=0.5,
                   help="the layer search aims for this fraction of the changed predictions --min-agreement allows "
                        "(0.5: half; 1: just the threshold); the verdict is judged at --min-agreement")
    p.add_argument("--float-layer-weights", default="auto", choices=("auto", "int8", "fp16", "fp32"),
                   help="storage of the weights of layers kept in float, expanded once when the model loads (no speed "
                        "cost): auto (cpu: int8, or fp32 when int8 weights alone cost accuracy; tensorrt: fp32)")
    p.add_argument("--agreement-images", type=int, default=1000,
                   help="training-patient images not used for calibration, added (label-free) to the agreement "
                        "check (1000; 0: validation images only)")
    p.add_argument("--no-put-back", action="store_true",
                   help="keep the bisection's layer set; do not try each float layer in INT8 again")
    p.add_argument("--put-back-kl-slack", type=float, default=1.1,
                   help="a layer goes back to INT8 only if the mean KL from FP32 stays within this factor of the "
                        "bisection set's (1.1; guards against a chain of barely-holding put-backs)")
    p.add_argument("--size-target", type=float, default=1 / 3,
                   help="the put-back stops once the INT8 file is at most this fraction of the FP32 file "
                        "(default 1/3; 0: try every float layer; not used with --target tensorrt, whose files keep "
                        "float weights behind Q/DQ pairs)")
    p.add_argument("--layer-choice", default="speed", choices=("speed", "sensitivity"),
                   help="which layers to keep in float when some must be: speed (default: the most KL regained per "
                        "microsecond the layer costs in float, profiled with ONNX Runtime on this machine; cheap, "
                        "sensitive layers first) or sensitivity (KL alone)")
    p.add_argument("--allow-missing-classes", action="store_true",
                   help="quantize even when the calibration set (training patients) has no image of some class; "
                        "by default that is refused (exit 2), since INT8 ranges would never see those planes")
    p.add_argument("--val-max-images", type=int, default=None, help="use at most this many validation images")
    add_threads(p, help="ONNX Runtime threads for the timing (0: all usable cores)")
    p.add_argument("--speed-seconds", type=float, default=1.0, help="timing: seconds per file and round (1.0)")
    p.add_argument("--speed-rounds", type=int, default=3, help="timing: rounds, each file keeps its best (3)")


def handle(args: argparse.Namespace) -> int:
    from calibration.quantize_ort import QuantizeConfig
    from calibration.quantize_workflow import QuantizeJob, report_paths, run_quantize

    config = QuantizeConfig(
        method=args.method,
        target=args.target,
        activations=args.activations,
        per_channel=not args.per_tensor,
        reduce_range=args.reduce_range,
        num_bins=args.num_bins,
        percentile=args.percentile,
        float_layer_weights=args.float_layer_weights,
    )
    job = QuantizeJob(
        onnx=args.onnx,
        data=args.data,
        out=args.out,
        config=config,
        calib_size=args.calib_size,
        seed=args.seed,
        max_drop=args.max_drop,
        min_agreement=args.min_agreement,
        search=not args.no_search,
        search_headroom=args.search_headroom,
        agreement_images=args.agreement_images,
        put_back=not args.no_put_back,
        put_back_kl_slack=args.put_back_kl_slack,
        size_target=args.size_target or None,
        layer_choice=args.layer_choice,
        val_max_images=args.val_max_images,
        allow_missing_classes=args.allow_missing_classes,
        threads=args.threads,
        speed_seconds=args.speed_seconds,
        speed_rounds=args.speed_rounds,
    )
    report = run_quantize(job)
    json_path, md_path = report_paths(args.out)
    rec = report["recommendation"]
    v = report["validation"]["int8"]
    print(f"wrote {args.out} ({report['sizes']['int8_over_fp32']:.2f} x FP32 size, "
          f"{len(report['excluded_layers'])} layer(s) kept in float)")
    print(f"validation top-1: FP32 {100 * v['top1_fp32']:.2f} %, INT8 {100 * v['top1_int8']:.2f} % "
          f"(drop {v['drop_points']:.2f} points, resolution {v['resolution_points']:.2f}); agreement "
          f"{100 * v['agreement']:.2f} % on {v['agreement_images']} images; method {report['settings']['method']}")
    print(f"deploy here: {rec['file']} ({rec['precision']}, {rec['hz']:.0f} Hz, batch 1, {rec['threads']} threads)")
    print(f"report: {json_path} and {md_path}")
    return EXIT_OK if report["accuracy_holds"] else EXIT_FAILURE
