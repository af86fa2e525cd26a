"""`fetalplanes train`: train a plane classifier with the paper's recipe (imports torch only when run)."""

from __future__ import annotations

import argparse

from edge.cli import add_command
from edge.cli_args import add_data, add_out, add_torch_device, positive_int
from edge.errors import FetalPlanesError
from edge.labels import TASKS
from edge.modelinfo import GRAY_MODES, INTERPOLATIONS, NORMALIZATIONS, parse_input_size


def run(args: argparse.Namespace) -> int:
    from export.train import config_from_args, train

    best = train(config_from_args(args))
    print(f"best checkpoint: {best}")
    return 0


def _image_size(text: str) -> int | list[int]:
    try:
        return parse_input_size(text, "--image-size")
    except FetalPlanesError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} ({exc.hint})") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "train",
        "train a plane classifier (PyTorch) with the study's recipe; writes RUN_DIR/best.pt",
        run,
        "fetalplanes train --data FETAL_PLANES_DB --task planes --arch mobilenet_v3_small --out runs/mnv3s",
        description=(
            "Train any torchvision classification model on FETAL_PLANES_DB (Burgos-Artizzu et al. 2020):\n"
            "Adam, batch 32, at most 15 epochs, early stopping after 5 epochs without a better validation\n"
            "loss, augmentation (flip, crop 0-20%, translate 0-10 px, rotate +-15 deg), inputs in [-1, 1]\n"
            "from the training images' statistics, 224 px (299 for inception_v3), ImageNet pre-training\n"
            "with the first convolution averaged to one channel.\n"
            "RUN_DIR gets best.pt, last.pt (--resume), metrics.csv/json and config.json.\n"
            "Several GPUs: torchrun --nproc_per_node N $(which fetalplanes) train ... (DDP)."
        ),
    )
    add_data(p)
    add_out(p, "run folder (created); holds the checkpoints and metrics", metavar="RUN_DIR")
    p.add_argument("--task", choices=sorted(TASKS), default="planes", help="planes (6 classes) or brain (4); default planes")
    p.add_argument("--arch", default="mobilenet_v3_small",
                   help="torchvision model name: mobilenet_v3_small (default), mobilenet_v3_large, mobilenet_v2, "
                   "resnet18/34/50, densenet169, inception_v3, resnext50_32x4d, ...; or sononet16/sononet32/sononet64 "
                   "(SonoNet, trained on fetal ultrasound: --pretrained SonoNet16.npz)")
    p.add_argument("--pretrained", default="imagenet", metavar="imagenet|none|PATH",
                   help="ImageNet weights (torch hub cache or download; default), none (from scratch), "
                   "or a local weights file (for sononet16/32/64: none or the published SonoNet16/32/64.npz)")
    p.add_argument("--freeze-backbone", action="store_true", help="train the last layers (classifier) only")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no data augmentation")
    p.add_argument("--class-weights", action="store_true", help="weight the loss by inverse class frequency")
    p.add_argument("--max-train-patients", type=positive_int, default=None,
                   help="use only the first N training patients (learning curves)")
    p.add_argument("--image-size", type=_image_size, default=None, metavar="PX|ROWSxCOLS",
                   help="input size in px: 224 (square) or ROWSxCOLUMNS, e.g. 224x288 (default 224, 299 for inception_v3)")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="dataset",
                   help="dataset (default): the training images' mean/std; per_image: each image standardised")
    p.add_argument("--gray", choices=GRAY_MODES, default="luma",
                   help="colour images to gray: luma (default, OpenCV) or mean (of the channels)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, default="area",
                   help="resizing: area (default; INTER_AREA when shrinking) or linear (always bilinear)")
    p.add_argument("--epochs", type=positive_int, default=15, help="maximum number of epochs (default 15)")
    p.add_argument("--patience", type=positive_int, default=5,
                   help="early stopping: epochs without a better validation loss (default 5)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size per process (default 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    p.add_argument("--workers", type=int, default=2, help="data-loading processes (default 2; 0: in-process)")
    p.add_argument("--max-per-split", type=int, default=None, help="at most N images per split (quick runs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the val split, initialisation and shuffling (default 0)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of training patients used for validation")
    p.add_argument("--bn-batches", type=int, default=100,
                   help="training batches for the BatchNorm statistics before each validation (default 100; 0: all)")
    add_torch_device(p)
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out from its last.pt")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="decode images on every access")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress bars even when not on a terminal")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
