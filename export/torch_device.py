"""The one place a PyTorch device name (auto, cpu, cuda, cuda:N) becomes a ``torch.device``."""

from __future__ import annotations

from edge.errors import FetalPlanesError


def pick_device(name: str | None, *, cuda_index: int | None = None, what: str = "--device"):
    """``auto`` is CUDA when PyTorch sees a GPU, else the CPU; ``cuda`` is ``cuda_index`` (default: the current
    device). A CUDA name without a GPU, or an unknown name, is a :class:`FetalPlanesError` (exit 2)."""
    import torch

    arg = (name or "auto").lower()
    if arg == "auto":
        arg = "cuda" if torch.cuda.is_available() else "cpu"
    if arg.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FetalPlanesError(f"{what} {name}: no CUDA device is available to PyTorch here",
                                   hint="use --device cpu (or auto), or a CUDA build of PyTorch on a GPU machine")
        if arg == "cuda":
            return torch.device("cuda", torch.cuda.current_device() if cuda_index is None else cuda_index)
        return torch.device(arg)
    if arg != "cpu":
        raise FetalPlanesError(f"{what}: unknown device '{name}'", hint="use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")
