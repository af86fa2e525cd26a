"""SonoNet (Baumgartner et al., IEEE TMI 36(11), 2017; arXiv 1612.05601) as a training-stage architecture.

Written from the paper and the facts about the published weights (``../shared/models/sononet/README.md``):

- features: 13 convolutions 3x3, padding 1, no bias, each followed by BatchNorm (eps 1e-4, Lasagne's) and
  ReLU; channels ``w,w | 2w,2w | 4w,4w,4w | 8w,8w,8w | 8w,8w,8w`` with 2x2 max pooling after each of the
  first four groups (``w`` = 16, 32, 64 for SonoNet-16/32/64);
- adaptation head: 1x1 conv ``8w -> 4w`` + BN + ReLU, then the classifier: 1x1 conv ``4w -> classes`` + BN;
- global average pooling over space -> logits (softmax by the consumer). Input: 1 channel, any size that
  survives four 2x2 poolings (fully convolutional: the published model reads 224 x 288).

The published SonoNet has 14 outputs (:data:`SONONET_LABELS`); fine-tuning for a task replaces the
classifier (last 1x1 conv + its BN) by a fresh one (:meth:`SonoNet.replace_classifier`).

torch is imported inside the functions; :func:`new_sononet` creates a model, and
``export.models.build_model`` one with weights (``export.sononet_weights`` reads the release).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import FetalPlanesError

#: architecture name -> base width w
VARIANTS = {"sononet16": 16, "sononet32": 32, "sononet64": 64}
#: BatchNorm epsilon of the Lasagne release (its inv_std = 1 / sqrt(var + eps))
BN_EPS = 1e-4
#: the published model's outputs, in output order (13 standard planes + background)
SONONET_LABELS = [
    "3VV", "4CH", "Abdominal", "Background", "Brain (Cb.)", "Brain (Tv.)", "Femur", "Kidneys", "Lips", "LVOT",
    "Profile", "RVOT", "Spine (cor.)", "Spine (sag.)",
]
#: SonoNet's labels -> FETAL_PLANES_DB planes (``edge.labels.PLANES``); no maternal cervix, no trans-thalamic
SONONET_TO_PLANES = {
    "3VV": "Fetal thorax", "4CH": "Fetal thorax", "LVOT": "Fetal thorax", "RVOT": "Fetal thorax",
    "Abdominal": "Fetal abdomen", "Brain (Cb.)": "Fetal brain", "Brain (Tv.)": "Fetal brain", "Femur": "Fetal femur",
    "Background": "Other", "Kidneys": "Other", "Lips": "Other", "Profile": "Other", "Spine (cor.)": "Other",
    "Spine (sag.)": "Other",
}
#: SonoNet's brain labels -> FETAL_PLANES_DB brain sub-planes (the ``brain`` task); everything else Not A Brain
SONONET_TO_BRAIN = {"Brain (Cb.)": "Trans-cerebellum", "Brain (Tv.)": "Trans-ventricular"}
#: SonoNet's training input: rows x columns
SONONET_INPUT_HW = (224, 288)
#: the image area of the example screen grabs (975 x 735 pixels): rows 115:734, columns 81:874
EXAMPLE_CROP = (slice(115, 734), slice(81, 874))
#: per-image standardisation scale: (x - mean) / std * 255
PER_IMAGE_SCALE = 255.0
#: ModelInfo fields the contract (edge.modelinfo schema 2) will carry for an imported SonoNet
#: (for the lead's integration: normalization/gray/interpolation/label_map arrive with the contract).
#: interpolation "area" (INTER_AREA when shrinking, else bilinear) is closer to the antialiased bilinear
#: resize of PIL than OpenCV's plain bilinear: hc18_sample 104/120 Fetal brain against 102/120
#: (benchmarks/results/sononet_real.md); both read 13/13 sononet_examples.
SONONET_MODEL_INFO = {
    "labels": SONONET_LABELS, "label_map": SONONET_TO_PLANES, "task": "planes", "input_size": list(SONONET_INPUT_HW),
    "normalization": "per_image", "scale": PER_IMAGE_SCALE, "gray": "mean", "interpolation": "area",
    "mean": 0.0, "std": 1.0, "channels": 1,
}


def is_sononet(arch: str) -> bool:
    """True for the SonoNet architecture names (``sononet16``, ``sononet32``, ``sononet64``)."""
    return arch in VARIANTS


def resolve_variant(name: str) -> str:
    """``sononet16`` / ``SonoNet-16`` / ``SonoNet16`` -> ``sononet16``; an unknown name lists the known ones."""
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key in VARIANTS:
        return key
    raise FetalPlanesError(
        f"unknown SonoNet variant '{name}'",
        hint=f"known variants: {', '.join(VARIANTS)} (the published weights files are SonoNet16.npz, "
        "SonoNet32.npz, SonoNet64.npz)",
    )


def feature_channels(width: int) -> list[list[int]]:
    """Output channels of the 13 convolutions, grouped by pooling stage."""
    w = width
    return [[w, w], [2 * w, 2 * w], [4 * w] * 3, [8 * w] * 3, [8 * w] * 3]


@functools.lru_cache(maxsize=None)
def _module_class():
    import torch
    import torch.nn as nn

    class SonoNet(nn.Module):
        """SonoNet-``width``: see the module docstring. ``forward`` returns logits (N, classes)."""

        #: modules that form the classifier head (read by ``export.models.head_names``)
        head_module_names = ("classifier",)

        def __init__(self, width: int = 16, num_classes: int = len(SONONET_LABELS), in_channels: int = 1):
            super().__init__()
            self.width = width
            layers: list[nn.Module] = []
            c_in = in_channels
            groups = feature_channels(width)
            for g, group in enumerate(groups):
                for c_out in group:
                    layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, eps=BN_EPS),
                               nn.ReLU(inplace=True)]
                    c_in = c_out
                if g < len(groups) - 1:
                    layers.append(nn.MaxPool2d(2))
            self.features = nn.Sequential(*layers)
            hidden = groups[-1][-1] // 2
            self.adaptation = nn.Sequential(
                nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden, eps=BN_EPS), nn.ReLU(inplace=True),
            )
            self.classifier = self._new_classifier(hidden, num_classes)

        @staticmethod
        def _new_classifier(hidden: int, num_classes: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(hidden, num_classes, 1, bias=False), nn.BatchNorm2d(num_classes, eps=BN_EPS))

        @property
        def num_classes(self) -> int:
            return self.classifier[0].out_channels

        def replace_classifier(self, num_classes: int) -> None:
            """A fresh classifier (1x1 conv + BN) for ``num_classes`` outputs (fine-tuning for a task)."""
            self.classifier = self._new_classifier(self.classifier[0].in_channels, num_classes)

        def conv_bn_pairs(self) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
            """(conv, bn) in layer order: 13 feature layers, the adaptation layer, the classifier (the release's order)."""
            mods = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
            return [(mods[i], mods[i + 1]) for i in range(0, len(mods), 2)]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.classifier(self.adaptation(self.features(x)))
            return x.mean(dim=(2, 3))

    return SonoNet


def new_sononet(arch: str, num_classes: int = len(SONONET_LABELS)):
    """A randomly initialised SonoNet of ``arch`` (sononet16/32/64) for ``num_classes`` outputs.

    With weights: ``export.models.build_model(arch, num_classes, pretrained)``.
    """
    return _module_class()(VARIANTS[resolve_variant(arch)], num_classes)


# --------------------------------------------------------------------------- preprocessing
# TODO(contract): replace by edge.preprocess.prepare(image, info) with the ModelInfo of
# SONONET_MODEL_INFO (gray "mean", interpolation "linear", normalization "per_image", scale 255) once
# the contract (edge/modelinfo.py schema 2) is merged. Kept here for the reference check only.
def sononet_input(image: np.ndarray, hw: tuple[int, int] = SONONET_INPUT_HW, crop: Any = None,
                  interpolation: str = "area") -> np.ndarray:
    """SonoNet's own preprocessing of one image -> float32 (1, 1, H, W).

    gray = mean of the colour channels (alpha dropped); optional ``crop`` = (row slice, column slice) of
    the image area; resize to ``hw`` (rows, columns); per-image standardisation ``(x - mean) / std * 255``.
    ``interpolation``: ``"area"`` (INTER_AREA when shrinking, else bilinear: close to PIL's antialiased
    bilinear resize) or ``"linear"`` (OpenCV's plain bilinear, no antialiasing). On hc18_sample "area"
    reads 104/120 as Fetal brain, "linear" 102/120; both read 13/13 sononet_examples.
    """
    import cv2

    img = np.asarray(image)
    if img.ndim == 3:
        img = img[:, :, :3].astype(np.float32).mean(axis=2)
    else:
        img = img.astype(np.float32)
    if crop is not None:
        img = img[crop]
    h, w = hw
    if interpolation not in ("area", "linear"):
        raise FetalPlanesError(f"interpolation {interpolation!r} is not 'area' or 'linear'", hint="a bug", exit_code=1)
    shrink = img.shape[0] >= h and img.shape[1] >= w
    mode = cv2.INTER_AREA if interpolation == "area" and shrink else cv2.INTER_LINEAR
    img = cv2.resize(img, (w, h), interpolation=mode)
    img = (img - img.mean()) / max(float(img.std()), 1e-6) * PER_IMAGE_SCALE
    return np.ascontiguousarray(img[None, None], dtype=np.float32)


def read_image_any(path: str | Path) -> np.ndarray:
    """An image file as stored (gray, BGR or BGRA, 8 bit), for :func:`sononet_input`."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise FetalPlanesError(f"{path}: not a readable image", hint="check the file")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    return image


def map_probabilities(probs: np.ndarray, labels: list[str], mapping: dict[str, str], targets: list[str]) -> np.ndarray:
    """(N, native) probabilities -> (N, len(targets)): the sum of the native probabilities mapped to each target.

    TODO(contract): ``ModelInfo.map_probabilities`` does this once the contract lands.
    """
    probs = np.asarray(probs, dtype=np.float64)
    out = np.zeros((probs.shape[0], len(targets)), dtype=np.float64)
    for i, label in enumerate(labels):
        out[:, targets.index(mapping[label])] += probs[:, i]
    return out
