"""`fetalplanes export`: checkpoint -> ONNX with embedded metadata, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli import add_command
from edge.cli_args import add_data, add_out
from fetaldata.splits import SPLITS
from edge.errors import EXIT_FAILURE


def run(args: argparse.Namespace) -> int:
    from export.onnx_export import export_onnx

    report = export_onnx(
        args.checkpoint, args.out, opset=args.opset, data=args.data, samples=args.samples, exporter=args.exporter,
        atol=args.atol, rtol=args.rtol, min_agreement=args.min_agreement, split=args.split,
        check_opencv=not args.no_opencv,
    )
    return report_export(report, args.out)


def report_export(report, out: str | Path) -> int:
    """Print an export's summary, write ``<out>.export.json`` beside it; exit 0 when the parity check passed."""
    from export.onnx_export import write_report

    print(report.summary())
    json_path = write_report(report, Path(out).with_suffix(".export.json"))
    print(f"report: {json_path}")
    return 0 if report.passed else EXIT_FAILURE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "export",
        "export a training checkpoint to ONNX (dynamic batch, labels/preprocessing embedded), checked against PyTorch",
        run,
        "fetalplanes export --checkpoint runs/mnv3s/best.pt --out models/mnv3s.onnx --data FETAL_PLANES_DB",
        description=(
            "Export a `fetalplanes train` checkpoint to ONNX: input 'input' (N,1,S,S), output 'logits',\n"
            "dynamic batch, onnx.checker full check, and the model's labels, task, input size and\n"
            "normalisation (ModelInfo JSON, key 'fetalplanes', with the checkpoint's sha256) in the\n"
            "metadata. Then ONNX Runtime's (and OpenCV DNN's) outputs are compared with PyTorch's on\n"
            "preprocessed images (--data: the dataset's test split; else phantom images).\n"
            "Exit 1 when ONNX Runtime differs beyond the tolerance."
        ),
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint of `fetalplanes train` (RUN_DIR/best.pt)")
    add_out(p, "the ONNX file to write (model.onnx); a .export.json report goes beside", metavar="FILE")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17: TensorRT 8.5+ reads it)")
    p.add_argument("--exporter", choices=("auto", "torchscript", "dynamo"), default="auto",
                   help="PyTorch exporter (default auto: TorchScript-based, falling back to dynamo)")
    add_data(p, required=False, use="compare on its images (default: phantom images)")
    p.add_argument("--split", choices=SPLITS, default="test", help="split of --data to take images from (default test)")
    p.add_argument("--samples", type=int, default=16, help="images to compare on (default 16)")
    p.add_argument("--atol", type=float, default=1e-3, help="absolute tolerance on logits (default 1e-3)")
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance on logits (default 1e-3)")
    p.add_argument("--min-agreement", type=float, default=1.0, help="minimum argmax agreement (default 1.0)")
    p.add_argument("--no-opencv", action="store_true", help="do not check that OpenCV DNN reads the model")
