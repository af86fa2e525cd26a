"""`fetalplanes experiment NAME`: one command per table and figure of the study.

Imports light: the experiments (and torch, through the trainer) are imported when the command runs.
"""

from __future__ import annotations

import argparse

from edge.cli import add_command
from edge.cli_args import add_data, add_out, add_torch_device

NAMES = ("table2", "table3", "table4", "fig5", "fig4", "fig3", "all")


def run(args: argparse.Namespace) -> int:
    from export.experiments import ExperimentConfig, run_experiment

    config = ExperimentConfig(
        data=args.data, out=args.out, quick=args.quick, archs=args.archs, seed=args.seed, epochs=args.epochs,
        batch_size=args.batch_size, input_size=args.input_size, pretrained=args.pretrained,
        max_per_split=args.max_per_split, device=args.device, workers=args.workers, speed=not args.no_speed,
    )
    paths = run_experiment(args.name, config)
    print(f"experiment {args.name}: written")
    for kind, path in paths.items():
        print(f"  {kind:28s} {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "experiment",
        "reproduce a table or figure of the study (train, evaluate, table with the published numbers beside)",
        run,
        "fetalplanes experiment table2 --data FETAL_PLANES_DB --out study/   (add --quick for a tiny trial run)",
        description=(
            "Reproduce the study's experiments (Burgos-Artizzu et al., Sci Rep 2020):\n"
            "  table2  architectures (top-1/top-3 error, class accuracy, params, FP32/INT8 speed)\n"
            "  table3  ablations (no pre-training, last layers only, no augmentation, class re-weighting)\n"
            "  table4  transfer across operator/machine groups (>= 2000 images) and all sources\n"
            "  fig5    learning curve (100 training patients fewer at a time)\n"
            "  fig4    brain sub-planes with confusion matrix\n"
            "  fig3    confusion matrix of the study's best model (densenet169)\n"
            "  all     all of them\n"
            "Finished sub-runs in --out are reused (re-run the same command to resume)."
        ),
    )
    p.add_argument("name", choices=NAMES, help="which table or figure")
    add_data(p)
    add_out(p, "study folder (one sub-folder per experiment; reused to resume)", metavar="DIR")
    p.add_argument("--quick", action="store_true",
                   help="tiny scale: 48 images per split, 32 px, 1 epoch, mobilenet_v3_small, no pre-training")
    p.add_argument("--archs", nargs="+", default=None,
                   help="architectures (table2: all of them; others: the first). Default: the study's "
                   "(table2: its networks torchvision has, then the edge models; inception_v3 for table3, table4, "
                   "fig5; densenet169 for fig3, fig4)")
    p.add_argument("--seed", type=int, default=0, help="seed of splits and training (recorded in every run)")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (default: the study's 15; quick: 1)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 32; quick 16)")
    p.add_argument("--input-size", type=int, default=None, help="input pixels (default: 224, 299 for inception_v3; quick 32)")
    p.add_argument("--pretrained", default=None, help="imagenet (default), none, or a weights file")
    p.add_argument("--max-per-split", type=int, default=None, help="cap images per split (stratified)")
    add_torch_device(p, default=None)
    p.add_argument("--workers", type=int, default=None, help="data-loading workers")
    p.add_argument("--no-speed", action="store_true", help="table2: skip the FP32/INT8 speed measurement")
