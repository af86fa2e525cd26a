"""The checkpoint format of `fetalplanes train`: a self-describing ``torch.save`` dict.

Keys: ``format`` ("fetalplanes-checkpoint"), ``format_version``, ``model_info`` (an
:class:`edge.modelinfo.ModelInfo` as dict: task, labels, arch, input size, mean/std, dataset
fingerprint, code version, ``extra["args"]`` = every training argument), ``state_dict``, ``epoch``
(last finished, 1-based), ``optimizer``, ``best_val_loss``, ``best_epoch``, ``epochs_without_improvement``,
``history`` (per-epoch metrics) and ``rng`` (random states, for ``--resume``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from edge.errors import FetalPlanesError
from edge.modelinfo import CHECKPOINT_KEY, ModelInfo, info_from_checkpoint

FORMAT = "fetalplanes-checkpoint"
FORMAT_VERSION = 1
REPO = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """``fetalplanes <version>`` plus the git commit (``+dirty`` with local changes) where available."""
    from edge import __version__

    version = f"fetalplanes {__version__}"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        if commit:
            version += f" git {commit}" + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def save_checkpoint(path: str | Path, model, info: ModelInfo, **state: Any) -> Path:
    """Write a checkpoint atomically (temporary file + rename: an interruption never leaves half a file)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        CHECKPOINT_KEY: info.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        **state,
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(ckpt, str(tmp))
        os.replace(tmp, path)
    except BaseException:  # interrupted or disk full: the old file stays, no half-written temporary
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_torch_file(path: Path, missing: tuple[str, str], unreadable: tuple[str, str]) -> Any:
    """``torch.load`` (CPU, weights only) with the project's errors: ``missing`` / ``unreadable`` are
    (message, hint); the reason torch gave is appended to the unreadable message."""
    import torch

    if not path.is_file():
        raise FetalPlanesError(missing[0], hint=missing[1])
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise FetalPlanesError(f"{unreadable[0]} ({type(exc).__name__}: {reason})", hint=unreadable[1]) from None


def read_checkpoint(path: str | Path) -> tuple[dict, ModelInfo]:
    """The raw checkpoint dict and its ModelInfo, with clear errors for missing/foreign files."""
    path = Path(path)
    ckpt = load_torch_file(
        path,
        missing=(f"{path}: checkpoint not found",
                 "give the best.pt (or last.pt) that `fetalplanes train --out RUN_DIR` wrote into RUN_DIR"),
        unreadable=(f"{path}: not a readable PyTorch checkpoint",
                    "give a checkpoint written by `fetalplanes train` (RUN_DIR/best.pt)"),
    )
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model_info" not in ckpt or "state_dict" not in ckpt:
        raise FetalPlanesError(
            f"{path}: not a fetalplanes checkpoint (no model_info/state_dict)",
            hint="give a checkpoint written by `fetalplanes train`; plain weights files go to `train --pretrained PATH`",
        )
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise FetalPlanesError(
            f"{path}: checkpoint format {ckpt['format_version']} is newer than this fetalplanes reads ({FORMAT_VERSION})",
            hint="upgrade fetalplanes",
        )
    info = info_from_checkpoint(ckpt, source=str(path))
    return ckpt, info
