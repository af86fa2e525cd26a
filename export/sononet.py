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

from edge.errors import FetalPlanesError
from fetaldata.real_samples import EXAMPLE_ROI as _EXAMPLE_ROI

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
#: the image area of the example screen grabs (975 x 735 pixels: rows 115:734, columns 81:874) as
#: ``--roi x,y,w,h`` (classify, evaluate, run); the one statement is fetaldata.real_samples.EXAMPLE_ROI
EXAMPLE_ROI = ",".join(str(v) for v in _EXAMPLE_ROI)
#: per-image standardisation scale: (x - mean) / std * 255
PER_IMAGE_SCALE = 255.0
#: where the published weights come from (the vendored model's NOTICE and its description repeat it)
SONONET_SOURCE = {
    "name": "SonoNet",
    "authors": "Baumgartner et al., IEEE TMI 2017",
    "citation": "Baumgartner et al., SonoNet: Real-Time Detection and Localisation of Fetal Standard Scan Planes "
                "in Freehand Ultrasound, IEEE Transactions on Medical Imaging 36(11), 2017 (arXiv 1612.05601)",
    "repository": "github.com/baumgach/SonoNet-weights",
    "commit": "6c4df399",
    "licence": "Apache-2.0",
    "cohort": "real freehand fetal ultrasound of 20-week anomaly scans (UK), another cohort than FETAL_PLANES_DB",
}


def sononet_model_info(variant: str = "sononet16", weights_name: str = "", weights_sha256: str = ""):
    """The model description (``edge.modelinfo.ModelInfo``, schema 2) of the published SonoNet ``variant``.

    Native labels :data:`SONONET_LABELS` with :data:`SONONET_TO_PLANES` onto the planes task; input 224 x 288;
    gray = mean of the colour channels; resize "area" (INTER_AREA when shrinking: closer to PIL's antialiased
    bilinear than OpenCV's plain bilinear, hc18_sample 104/120 Fetal brain against 102/120); per-image
    standardisation x 255 (``mean``/``std`` unused).
    """
    from edge.modelinfo import ModelInfo

    from export.checkpoint import code_version

    variant = resolve_variant(variant)
    info = ModelInfo(
        task="planes", labels=list(SONONET_LABELS), arch=variant, input_size=list(SONONET_INPUT_HW), mean=0.0,
        std=1.0, channels=1, normalization="per_image", scale=PER_IMAGE_SCALE, gray="mean", interpolation="area",
        label_map=dict(SONONET_TO_PLANES), code_version=code_version(),
        extra={"source": {**SONONET_SOURCE, "name": f"SonoNet-{VARIANTS[variant]}", "weights": weights_name,
                          "weights_sha256": weights_sha256}},
    )
    info.validate(f"SonoNet-{VARIANTS[variant]} description")
    return info


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
