"""`fetalplanes evaluate`: the study's metrics for a checkpoint, ONNX file or TensorRT engine.

Imports light: torch (checkpoints) and matplotlib (plots) are imported when used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli import add_command
from edge.cli_args import add_data, add_model, add_out, add_providers, add_quiet, add_roi
from fetaldata.splits import SPLITS
from edge.labels import TASKS


def default_out_dir(model: str | Path, split: str) -> Path:
    """Where reports go without --out: beside the model, ``<model stem>-eval-<split>/``."""
    model = Path(model)
    return model.parent / f"{model.stem}-eval-{split}"


def run(args: argparse.Namespace) -> int:
    from fetaldata import SplitConfig
    from export.evaluate import evaluate_model
    from export.reports import metrics_markdown, write_reports

    config = SplitConfig(seed=args.seed, val_fraction=args.val_fraction, max_per_split=args.max_images)
    result = evaluate_model(
        args.model,
        args.data,
        split=args.split,
        task=args.task,
        batch_size=args.batch_size,
        split_config=config,
        providers=args.providers.split(",") if args.providers else None,
        skip_missing=args.skip_missing,
        progress=not args.quiet,
        roi=args.roi,
    )
    out = Path(args.out) if args.out else default_out_dir(args.model, args.split)
    paths = write_reports(result, out)
    print(metrics_markdown(result))
    print("reports:")
    for kind, path in paths.items():
        print(f"  {kind:18s} {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "evaluate",
        "the study's metrics (top-1/top-3 error, class accuracy) for a checkpoint, ONNX model or TensorRT engine",
        run,
        "fetalplanes evaluate --model runs/mnv2/best.pt --data FETAL_PLANES_DB --split test --out runs/mnv2/eval",
        description=(
            "Evaluate a model on a split of FETAL_PLANES_DB (its own task: planes or brain).\n"
            "Reports top-1 and top-3 error, class accuracy mean +- std (as the study), per-class\n"
            "precision/recall/F1, macro-F1 and expected calibration error; writes metrics.json,\n"
            "metrics.md, predictions.csv and confusion matrices (counts and row percentages)."
        ),
    )
    add_model(p, required=True, checkpoint=True)
    add_data(p)
    p.add_argument("--split", choices=SPLITS, default="test", help="which patients (default: test, the CSV's Train=0)")
    p.add_argument("--task", choices=sorted(TASKS), default=None,
                   help="must equal the model's task if given (default: the model's own)")
    add_out(p, "report folder (default: <model stem>-eval-<split>/ beside the model)", required=False, metavar="DIR")
    add_roi(p)
    p.add_argument("--batch-size", type=int, default=32, help="images per inference batch (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val patient split (as in training; default 0)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of training patients in val (default 0.1)")
    p.add_argument("--max-images", type=int, default=None, help="evaluate at most this many images (stratified)")
    add_providers(p)
    p.add_argument("--skip-missing", action="store_true", help="evaluate the images present, skipping missing files")
    add_quiet(p, "no progress bar")
