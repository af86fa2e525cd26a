"""`fetalplanes import-weights`: a published network's weights -> a self-describing ONNX file or checkpoint."""

from __future__ import annotations

import argparse

from edge.cli import add_command
from edge.cli_args import add_data, add_out


def run(args: argparse.Namespace) -> int:
    from export.sononet_import import import_weights

    report = import_weights(args.name, args.weights, args.out, data=args.data, samples=args.samples, opset=args.opset,
                            atol=args.atol, rtol=args.rtol, check_opencv=not args.no_opencv)
    if report is None:
        print(f"imported {args.weights} -> {args.out} (a fetalplanes checkpoint; `fetalplanes export --checkpoint "
              f"{args.out} --out MODEL.onnx` makes the ONNX file)")
        return 0
    from export.commands.export_onnx import report_export

    return report_export(report, args.out)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "import-weights",
        "import a published network's weights (SonoNet-16/32/64 .npz) as a self-describing ONNX model or checkpoint",
        run,
        "fetalplanes import-weights sononet16 --weights SonoNet16.npz --out sononet16.onnx",
        description=(
            "Import the published SonoNet weights (Baumgartner et al. 2017, github.com/baumgach/SonoNet-weights,\n"
            "Apache-2.0) into the project's model format. --out FILE.onnx: an ONNX model for the box, its\n"
            "description embedded (14 native labels with their map onto the six planes, 224x288 input,\n"
            "gray = channel mean, resize 'area', per-image standardisation x255), checked against PyTorch like\n"
            "`fetalplanes export` (exit 1 beyond tolerance). --out FILE.pt: a fetalplanes checkpoint that\n"
            "`fetalplanes export` turns into ONNX. A file that is not the release is refused (exit 2)."
        ),
    )
    p.add_argument("name", metavar="NAME", help="the network: sononet16, sononet32 or sononet64")
    p.add_argument("--weights", required=True, metavar="FILE", help="the release's weights file (e.g. SonoNet16.npz)")
    add_out(p, "FILE.onnx (a model for the box; a .export.json report goes beside) or FILE.pt (a checkpoint)",
            metavar="FILE")
    add_data(p, required=False, use="compare PyTorch and ONNX Runtime on its images (default: phantom images)")
    p.add_argument("--samples", type=int, default=16, help="images to compare on (default 16)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--atol", type=float, default=1e-3, help="absolute tolerance on logits (default 1e-3)")
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance on logits (default 1e-3)")
    p.add_argument("--no-opencv", action="store_true", help="do not check that OpenCV DNN reads the model")
