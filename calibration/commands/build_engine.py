"""`fetalplanes build-engine`: a TensorRT engine (FP32/FP16/INT8, dynamic batch) plus its sidecar."""

from __future__ import annotations

import argparse

from edge.cli import add_command

EXAMPLE = (
    "fetalplanes build-engine --onnx model.int8.onnx --precision int8 --out model.engine --max-batch 8\n"
    "  fetalplanes build-engine --onnx model.onnx --precision int8 --data FETAL_PLANES_DB --calib-cache model.calib "
    "--out model.engine   # implicit INT8, TensorRT < 11"
)


def _run(args: argparse.Namespace) -> int:
    from calibration.tensorrt_build import EngineBuildConfig, build_engine

    config = EngineBuildConfig(
        onnx=args.onnx,
        out=args.out,
        precision=args.precision,
        max_batch=args.max_batch,
        opt_batch=args.opt_batch,
        workspace_mb=args.workspace_mb,
        data_dir=args.data,
        calib_size=args.calib_size,
        calib_batch=args.calib_batch,
        calib_cache=args.calib_cache,
        seed=args.seed,
        device=args.device,
    )
    sidecar = build_engine(config)
    p = sidecar.profile
    batches = ", ".join(f"{k}: {v['min'][0]}/{v['opt'][0]}/{v['max'][0]}" for k, v in p.items())
    print(f"wrote {args.out} and {args.out}.json")
    print(f"  TensorRT {sidecar.tensorrt_version} on {sidecar.gpu_name} (compute capability {sidecar.compute_capability})")
    print(f"  precision {sidecar.precision} ({sidecar.mode}); batch min/opt/max {batches}")
    if sidecar.mode == "int8-implicit-calibrator":
        n = sidecar.build_options.get("calibration_batches", 0)
        src = f"{n} calibration batches" if n else "the calibration cache"
        print(f"  calibrated from {src}" + (f"; cache {args.calib_cache}" if args.calib_cache else ""))
    print(f"  check it against the ONNX: fetalplanes compare --reference {args.onnx} --candidate {args.out} --data DIR")
    return 0


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "build-engine",
        "build a TensorRT engine from an ONNX (needs tensorrt + pycuda and an NVIDIA GPU)",
        _run,
        EXAMPLE,
        description=(
            "Build a TensorRT engine with a dynamic batch profile and write <out>.json beside it (model metadata, "
            "ONNX sha256, TensorRT version, GPU, precision); loading refuses the engine when any of them no longer "
            "matches. INT8: from a Q/DQ ONNX (TensorRT 8.6/10/11) or, for TensorRT < 11, implicitly with an "
            "entropy calibrator over --data. Not verified on real TensorRT by the project: run "
            "`fetalplanes selftest` on your GPU box."
        ),
    )
    p.add_argument("--onnx", required=True, help="fetalplanes ONNX (FP32, or Q/DQ from `fetalplanes quantize`)")
    p.add_argument("--precision", required=True, choices=("fp32", "fp16", "int8"))
    p.add_argument("--out", required=True, help="engine file (.engine, .plan or .trt)")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch of the profile (min 1; default 8)")
    p.add_argument("--opt-batch", type=int, default=1, help="batch TensorRT tunes for (default 1: the live loop)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace limit in MiB (default 1024)")
    p.add_argument("--data", help="FETAL_PLANES_DB folder for implicit INT8 calibration (training patients only), or a labelled folder (labels.csv; its calibration half)")
    p.add_argument("--calib-size", type=int, default=500, help="calibration images (default 500)")
    p.add_argument("--calib-batch", type=int, default=8, help="calibration batch size (default 8)")
    p.add_argument("--calib-cache", help="calibration cache file: read if present, written otherwise")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration set draw")
    p.add_argument("--device", type=int, default=0, help="CUDA device index")
