"""Which architecture the study used for each experiment, and which torchvision model stands for it.

The study's networks are named as in its Table 2 (``benchmarks/paper/published.json``). torchvision
has most of them; for the ones it lacks the closest torchvision model is named and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StudyNet:
    """One network of the study's Table 2 and the torchvision model that runs for it here."""

    paper_name: str
    arch: str | None  # torchvision name; None: nothing close enough in torchvision
    match: str  # "exact", "closest" or "none"
    note: str = ""

    def describe(self) -> str:
        """'DenseNet-169', or 'MobileNet v1 (closest here: mobilenet_v2)'."""
        if self.match == "closest":
            return f"{self.paper_name} (closest here: {self.arch})"
        return self.paper_name


_NO_SE = "torchvision has no squeeze-and-excitation networks"
#: The study's Table 2 rows (by the article's name) -> torchvision.
STUDY_NETS: dict[str, StudyNet] = {n.paper_name: n for n in (
    StudyNet("VGG-M", None, "none", "torchvision has no VGG-M"),
    StudyNet("VGG-16", "vgg16", "exact"),
    StudyNet("MobileNet v1", "mobilenet_v2", "closest",
             "the study's MobileNet is v1 (Howard et al. 2017), which torchvision lacks; MobileNetV2 is the "
             "closest: the same depthwise-separable design, and 2.2 M parameters with a 6-class head where the "
             "study gives 2 M"),
    StudyNet("Inception-v3", "inception_v3", "exact"),
    StudyNet("ResNet-18", "resnet18", "exact"),
    StudyNet("ResNet-34", "resnet34", "exact"),
    StudyNet("ResNet-50", "resnet50", "exact"),
    StudyNet("ResNet-101", "resnet101", "exact"),
    StudyNet("ResNet-152", "resnet152", "exact"),
    StudyNet("ResNeXt-50", "resnext50_32x4d", "exact"),
    StudyNet("ResNeXt-101", "resnext101_32x8d", "closest",
             "the study's ResNeXt-101 has 42 M parameters (the 32x4d variant), which torchvision lacks; its "
             "resnext101_32x8d is the closest but has 87 M"),
    StudyNet("SENet", None, "none", _NO_SE),
    StudyNet("SE-ResNet-50", None, "none", _NO_SE),
    StudyNet("SE-ResNet-101", None, "none", _NO_SE),
    StudyNet("SE-ResNet-152", None, "none", _NO_SE),
    StudyNet("SE-ResNeXt-50", None, "none", _NO_SE),
    StudyNet("SE-ResNeXt-101", None, "none", _NO_SE),
    StudyNet("DenseNet-121", "densenet121", "exact"),
    StudyNet("DenseNet-169", "densenet169", "exact"),
    StudyNet("Baseline 1 (PCA + boosting)", None, "none", "not a neural network"),
    StudyNet("Baseline 2 (HOG + boosting)", None, "none", "not a neural network"),
)}

#: The study's architecture of each single-model experiment (Methods; Table 3's caption says Inception-v3).
STUDY_ARCH: dict[str, str] = {
    "table3": "Inception-v3",
    "table4": "Inception-v3",
    "fig5": "Inception-v3",
    "fig3": "DenseNet-169",
    "fig4": "DenseNet-169",
}

#: The project's edge models that the study did not train (Table 2 runs them too, as rows of their own).
EDGE_EXTRAS = ("mobilenet_v3_small", "mobilenet_v3_large")


def study_arch(experiment: str) -> str:
    """The torchvision name of the architecture the study used for ``experiment`` (table3 ... fig3)."""
    return STUDY_NETS[STUDY_ARCH[experiment]].arch  # type: ignore[return-value]


def study_net_for(arch: str) -> StudyNet | None:
    """The study's network that ``arch`` (a torchvision name) stands for, exactly or as the closest; None if none."""
    for net in STUDY_NETS.values():
        if net.arch == arch:
            return net
    return None


def table2_default_archs() -> list[str]:
    """Table 2 at full scale: every study network torchvision has (or has a closest for), then the edge extras."""
    archs = [n.arch for n in STUDY_NETS.values() if n.arch]
    return archs + [a for a in EDGE_EXTRAS if a not in archs]


def architecture_line(experiment: str, ran: str, config: Any) -> str:
    """'Architecture: the study used X; this run: Y' (and why they differ) for a single-model experiment."""
    paper = STUDY_ARCH[experiment]
    if ran == study_arch(experiment):
        return f"Architecture: the study used {paper}; this run: {ran} (the same)."
    why = "chosen with --archs" if config.archs else "quick mode runs a small model to exercise the code"
    return f"Architecture: the study used {paper}; this run: **{ran}** ({why}): not like for like."
