"""Configuration of the study's experiments and of their sub-runs (one trained model each)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edge.errors import FetalPlanesError

#: The project's edge architectures (part of Table 2's default list, see export.experiments.study).
EDGE_ARCHS = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "resnet34", "resnet50")
#: The quick mode's single small model.
QUICK_ARCH = "mobilenet_v3_small"
QUICK_INPUT_SIZE = 32
QUICK_MAX_PER_SPLIT = 48
#: The study's recipe (see issue 3): at most 15 epochs, batch 32, ImageNet pre-training.
PAPER_EPOCHS = 15
PAPER_BATCH = 32


@dataclass
class ExperimentConfig:
    """What every experiment of the study shares: data, output folder, scale.

    ``quick``: few images per split, 32 px inputs, one epoch, mobilenet_v3_small,
    no pre-training: runs in seconds on the phantom, to exercise the code end to end.
    Unset values (None) take the study's values (or the quick ones).
    """

    data: Path
    out: Path
    quick: bool = False
    archs: list[str] | None = None
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    input_size: int | None = None  # None: the architecture's own (224 px, 299 for Inception-v3)
    pretrained: str | None = None  # "imagenet", "none" or a weights file
    max_per_split: int | None = None  # images per split (stratified), None: all
    device: str | None = None
    workers: int | None = None
    speed: bool = True  # Table 2: measure FP32 / INT8 speed with the edge runtime

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        self.out = Path(self.out)

    @property
    def default_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (1 if self.quick else PAPER_EPOCHS)

    @property
    def default_batch(self) -> int:
        return self.batch_size if self.batch_size is not None else (16 if self.quick else PAPER_BATCH)

    @property
    def default_input_size(self) -> int | None:
        return self.input_size if self.input_size is not None else (QUICK_INPUT_SIZE if self.quick else None)

    @property
    def default_pretrained(self) -> str:
        return self.pretrained if self.pretrained is not None else ("none" if self.quick else "imagenet")

    @property
    def default_max_per_split(self) -> int | None:
        return self.max_per_split if self.max_per_split is not None else (QUICK_MAX_PER_SPLIT if self.quick else None)

    def arch_list(self, default: tuple[str, ...] = EDGE_ARCHS) -> list[str]:
        if self.archs:
            return list(self.archs)
        return [QUICK_ARCH] if self.quick else list(default)

    def main_arch(self, default: str) -> str:
        """A single-model experiment's architecture: first of --archs, else ``default`` (the study's; quick: the small one)."""
        if self.archs:
            return self.archs[0]
        return QUICK_ARCH if self.quick else default

    def spec(self, name: str, arch: str, **changes: Any) -> "RunSpec":
        """A sub-run with this configuration's defaults, changed by ``changes``."""
        base = RunSpec(
            name=name,
            arch=arch,
            pretrained=self.default_pretrained,
            seed=self.seed,
            epochs=self.default_epochs,
            batch_size=self.default_batch,
            input_size=self.default_input_size,
            max_per_split=self.default_max_per_split,
        )
        return replace(base, **changes)


@dataclass(frozen=True)
class RunSpec:
    """One model to train and evaluate: everything that makes its numbers what they are."""

    name: str  # folder name under the experiment's runs/
    arch: str
    task: str = "planes"
    pretrained: str = "imagenet"
    last_layers_only: bool = False  # ablation: train only the classifier head
    augment: bool = True  # ablation: no augmentation
    class_weights: bool = False  # ablation: loss re-weighted by inverse class frequency
    max_train_patients: int | None = None  # learning curve
    train_group: tuple[tuple[str, str], ...] | None = None  # transfer: train on these (operator, machine) groups only
    seed: int = 0
    epochs: int = PAPER_EPOCHS
    batch_size: int = PAPER_BATCH
    input_size: int | None = None
    max_per_split: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train_group"] = [list(g) for g in self.train_group] if self.train_group else None
        return d

    def key(self) -> str:
        """A hash of the settings (what a finished run must match to be reused)."""
        d = self.to_dict()
        d.pop("extra", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def check_name(name: str) -> str:
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise FetalPlanesError(f"invalid run name {name!r}", hint="use letters, digits, '-', '_' and '.'", exit_code=1)
    return name
