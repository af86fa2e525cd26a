"""`fetalplanes qat`: quantization-aware fine-tuning of a checkpoint, written as Q/DQ ONNX and judged by the gate."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli import add_command
from edge.cli_args import add_data, add_out, add_threads, add_torch_device, positive_int
from edge.deployability import MAX_DROP_POINTS, MIN_AGREEMENT
from edge.errors import EXIT_FAILURE, EXIT_OK


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "qat",
        "quantization-aware training: fine-tune a checkpoint with INT8 rounding, write Q/DQ ONNX, judge it against FP32",
        handle,
        "fetalplanes qat --checkpoint runs/mnv3s/best.pt --data FETAL_PLANES_DB --out models/mnv3s.qat.onnx",
        description=(
            "Exports the checkpoint to FP32 ONNX (<out stem>.fp32.onnx, the reference), calibrates it on training-patient\n"
            "images and quantizes every layer (the post-training file), then fine-tunes the PyTorch model for\n"
            "--epochs with fake quantization of exactly that file's scales and zero points (per-channel int8\n"
            "weights folded with BatchNorm; uint8 activations for --target cpu, int8 symmetric for tensorrt),\n"
            "and writes the fine-tuned model as Q/DQ ONNX with ONNX Runtime's quantizer (the file `quantize` would\n"
            "write; --target tensorrt files are checked against TensorRT's parser rules). Loss: the study's\n"
            "cross-entropy, or with --distill the KL divergence to the FP32 model's softened outputs (no labels:\n"
            "--data may then be any folder of images). Both the post-training and the QAT file are judged against\n"
            "the FP32 ONNX by the deployability rule on validation patients plus held-out training images.\n"
            "Writes <out stem>.qat.json/.md. Exit 1 when the QAT file is not deployable."
        ),
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint of `fetalplanes train` (RUN_DIR/best.pt)")
    add_data(p, use="its training patients train, its validation patients check; with --distill also any folder of "
                    "unlabelled images")
    add_out(p, "Q/DQ ONNX file to write (e.g. model.qat.onnx); the FP32 reference and the report go beside it",
            type=Path, metavar="FILE")
    p.add_argument("--target", default="cpu", choices=("cpu", "tensorrt"),
                   help="who runs the file: ONNX Runtime on a CPU (uint8 activations) or TensorRT (int8 symmetric)")
    p.add_argument("--epochs", type=positive_int, default=2, help="fine-tuning epochs (default 2; 1-3 is usual)")
    p.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate (default 1e-5: 1/100 of the study's)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size (default 32)")
    p.add_argument("--distill", action="store_true",
                   help="learn from the FP32 model's outputs (KL at --temperature) instead of labels")
    p.add_argument("--temperature", type=float, default=2.0, help="--distill: softening temperature (default 2)")
    p.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"),
                   help="calibration of the starting ranges (default minmax)")
    p.add_argument("--calib-size", type=positive_int, default=500, help="calibration images (default 500)")
    p.add_argument("--check-images", type=int, default=1000,
                   help="training images held out of QAT and added (label-free) to the agreement check (default 1000)")
    p.add_argument("--val-max-images", type=positive_int, default=None, help="use at most this many validation images")
    p.add_argument("--max-train-images", type=positive_int, default=None,
                   help="at most this many training images per epoch (quick runs)")
    p.add_argument("--no-augment", action="store_true", help="no augmentation of the training images")
    p.add_argument("--max-drop", type=float, default=MAX_DROP_POINTS,
                   help=f"allowed top-1 drop, points, never less than one image ({MAX_DROP_POINTS})")
    p.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT,
                   help=f"required argmax agreement with FP32 ({MIN_AGREEMENT})")
    p.add_argument("--seed", type=int, default=0, help="seed (sampling, order of the training images)")
    add_threads(p, help="PyTorch and ONNX Runtime threads (0: their defaults)")
    add_torch_device(p, default="cpu")


def handle(args: argparse.Namespace) -> int:
    from export.qat import QatConfig, report_paths, run_qat

    cfg = QatConfig(
        checkpoint=args.checkpoint, data=Path(args.data), out=args.out, target=args.target, epochs=args.epochs,
        lr=args.lr, batch_size=args.batch_size, distill=args.distill, temperature=args.temperature,
        method=args.method, calib_size=args.calib_size, check_images=args.check_images,
        val_max_images=args.val_max_images, max_train_images=args.max_train_images, augment=not args.no_augment,
        max_drop=args.max_drop, min_agreement=args.min_agreement, seed=args.seed, threads=args.threads,
        device=args.device,
    )
    report = run_qat(cfg)
    json_path, md_path = report_paths(args.out)
    verdict = "deployable" if report["deployable"] else "NOT deployable"
    print(f"{args.out}: {verdict} (agreement {report['qat']['agreement']:.4f} vs post-training "
          f"{report['ptq']['agreement']:.4f}); FP32 reference {report['fp32_model']}; report {md_path}")
    return EXIT_OK if report["deployable"] else EXIT_FAILURE
