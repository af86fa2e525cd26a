"""Arguments that several `fetalplanes` commands share: one declaration, one type and one help text each.

Groups (each ``add_*`` takes a parser or an argument group and returns the argparse action):

- model: ``--model`` (a model file the box can run; evaluate also takes a checkpoint)
- data: ``--data`` (a FETAL_PLANES_DB folder; its existence is checked when the command opens it), ``--roi``
  (the image area x,y,w,h: run, classify, evaluate)
- runtime: ``--threads``, ``--providers`` (ONNX Runtime), ``--device`` (PyTorch: auto|cpu|cuda|cuda:N),
  ``--gpu`` (the CUDA device index TensorRT builds on)
- output: ``--out`` (what a command writes), ``--quiet``, and the logging set-up of the box commands

Imports light (argparse only): every command module imports it at load time.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Any, Callable, Union

ArgTarget = Union[argparse.ArgumentParser, "argparse._ArgumentGroup"]

MODEL_HELP = "model file: .onnx, or a TensorRT engine (.engine/.plan) on a TensorRT box"
CHECKPOINT_HELP = "training checkpoint (.pt), "
DATA_HELP = ("FETAL_PLANES_DB folder (FETAL_PLANES_DB_data.csv and Images/), or a labelled image folder (labels.csv: "
             "file,plane[,brain_plane]; split test = every image, train/val = a seeded half each, see docs/evaluate.md)")
THREADS_HELP = "ONNX Runtime threads (0: ONNX Runtime's default, all usable cores)"
PROVIDERS_HELP = "ONNX Runtime execution providers in priority order, comma-separated: cpu, cuda, tensorrt"
TORCH_DEVICE_HELP = "PyTorch device: auto (CUDA if PyTorch sees one, else cpu), cpu, cuda or cuda:N"
GPU_HELP = "CUDA device index of the GPU to build and run on (default 0; --device N is its deprecated old name)"

_TORCH_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$", re.IGNORECASE)


# --------------------------------------------------------------------------- types


def folder_name(text: str) -> str:
    """A folder argument: any non-empty name (whether it exists is checked where it is opened)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty folder name; give the folder's path")
    return text


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; give 0 or more")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return value


def torch_device(text: str) -> str:
    """A PyTorch device name: auto, cpu, cuda or cuda:N (case-insensitive)."""
    if not _TORCH_DEVICE.match(text.strip()):
        raise argparse.ArgumentTypeError(f"unknown device '{text}'; use auto, cpu, cuda or cuda:N")
    return text.strip()


# --------------------------------------------------------------------------- model, data


def add_model(target: ArgTarget, *, required: bool = False, checkpoint: bool = False, help: str | None = None) -> argparse.Action:
    """``--model``: the model to run (``checkpoint=True``: a training checkpoint too)."""
    text = help or ((CHECKPOINT_HELP if checkpoint else "") + MODEL_HELP)
    return target.add_argument("--model", required=required, metavar="FILE", help=text)


def add_data(target: ArgTarget, *, required: bool = True, use: str = "") -> argparse.Action:
    """``--data``: a FETAL_PLANES_DB or labelled image folder; ``use`` says what the command takes from it."""
    text = DATA_HELP + (f"; {use}" if use else "")
    return target.add_argument("--data", required=required, type=folder_name, metavar="DIR", help=text)


ROI_HELP = ("the image area x,y,w,h in pixels of the input (e.g. a screen grab's ultrasound image without the "
            "scanner's text and menus)")


def add_roi(target: ArgTarget, *, default_text: str = "the whole image") -> argparse.Action:
    """``--roi X,Y,W,H``: the image area (parsed by ``edge.live.sector.Box.parse`` where it is used)."""
    return target.add_argument("--roi", metavar="X,Y,W,H", help=f"{ROI_HELP}; default: {default_text}")


# --------------------------------------------------------------------------- runtime


def add_threads(target: ArgTarget, *, default: int | None = 0, help: str | None = None) -> argparse.Action:
    """``--threads``: ONNX Runtime intra-op threads (0: its default)."""
    return target.add_argument("--threads", type=non_negative_int, default=default, metavar="N", help=help or THREADS_HELP)


def add_providers(target: ArgTarget, *, default: str | None = None) -> argparse.Action:
    """``--providers``: ONNX Runtime execution providers, comma-separated (the value stays a string)."""
    return target.add_argument("--providers", default=default, metavar="LIST", help=PROVIDERS_HELP)


def add_torch_device(target: ArgTarget, *, default: str | None = "auto") -> argparse.Action:
    """``--device``: where PyTorch trains or evaluates (auto, cpu, cuda, cuda:N)."""
    return target.add_argument("--device", type=torch_device, default=default, metavar="auto|cpu|cuda[:N]", help=TORCH_DEVICE_HELP)


class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the new one's ``dest`` and warns once on stderr."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"{parser.prog}: warning: {option_string} is deprecated here and will be removed; use {self.new} "
            f"(--device means a PyTorch device in train/experiment)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_gpu(target: ArgTarget) -> argparse.Action:
    """``--gpu N``: the CUDA device index for TensorRT, plus ``--device N`` as a deprecated alias that warns."""
    action = target.add_argument("--gpu", type=non_negative_int, default=0, metavar="N", help=GPU_HELP)
    target.add_argument("--device", dest="gpu", type=non_negative_int, action=_DeprecatedAlias, new="--gpu",
                        help=argparse.SUPPRESS)
    return action


# --------------------------------------------------------------------------- output


def add_out(target: ArgTarget, writes: str, *, required: bool = True, default: Any = None,
            type: Callable[[str], Any] = str, metavar: str = "PATH") -> argparse.Action:
    """``--out``: where the command writes; ``writes`` says what (a file, a folder, a report)."""
    return target.add_argument("--out", required=required, default=default, type=type, metavar=metavar, help=writes)


def add_quiet(target: ArgTarget, help: str, *, short: bool = False) -> argparse.Action:
    """``--quiet`` (``-q`` with ``short``): less on the terminal; ``help`` says what is left out."""
    flags = ("--quiet", "-q") if short else ("--quiet",)
    return target.add_argument(*flags, action="store_true", help=help)


def setup_logging(quiet: bool) -> None:
    """Log the ``fetalplanes`` loggers to stderr (warnings only with ``quiet``)."""
    root = logging.getLogger("fetalplanes")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("fetalplanes: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else logging.INFO)


__all__ = [
    "add_data", "add_gpu", "add_model", "add_out", "add_providers", "add_quiet", "add_threads",
    "add_torch_device", "folder_name", "non_negative_int", "positive_int", "setup_logging", "torch_device",
]
