"""The one description of a model's labels and preprocessing.

Training writes it into the checkpoint, export writes it into the ONNX
metadata (key ``fetalplanes``), engine builds copy it into the engine's
sidecar, and every consumer (evaluation, calibration, the live loop) reads it
from there. Nothing downstream repeats or guesses any of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edge.errors import FetalPlanesError

METADATA_KEY = "fetalplanes"
SCHEMA_VERSION = 1


@dataclass
class ModelInfo:
    """Labels, input geometry and normalisation of one classifier.

    Preprocessing (see :mod:`edge.preprocess`): image -> 8-bit gray ->
    resize to ``input_size`` x ``input_size`` (``resize`` = "stretch": the whole
    image, aspect not kept, INTER_AREA) -> float32 ``(pixel - mean) / std`` ->
    ``layout`` with ``channels`` channels. ``mean``/``std`` are in 0-255 pixel
    units, computed from the training images so that inputs lie in [-1, 1].
    """

    task: str
    labels: list[str]
    arch: str
    input_size: int
    mean: float
    std: float
    channels: int = 1
    layout: str = "NCHW"
    resize: str = "stretch"
    input_name: str = "input"
    output_name: str = "logits"
    outputs: str = "logits"  # "logits" (softmax applied by consumers) or "probabilities"
    dataset_fingerprint: str = ""
    checkpoint_sha256: str = ""
    code_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model") -> "ModelInfo":
        known = {f.name for f in fields(cls)}
        required = ["task", "labels", "arch", "input_size", "mean", "std"]
        missing = [k for k in required if k not in data]
        if missing:
            raise FetalPlanesError(
                f"{source}: its fetalplanes metadata lacks {', '.join(missing)}",
                hint="re-export the model with `fetalplanes export` so that it carries its labels and preprocessing",
            )
        if int(data.get("schema", SCHEMA_VERSION)) > SCHEMA_VERSION:
            raise FetalPlanesError(
                f"{source}: metadata schema {data['schema']} is newer than this fetalplanes understands ({SCHEMA_VERSION})",
                hint="upgrade fetalplanes on this machine",
            )
        info = cls(**{k: v for k, v in data.items() if k in known})
        info.labels = list(info.labels)
        info.validate(source)
        return info

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> "ModelInfo":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FetalPlanesError(
                f"{source}: its fetalplanes metadata is not valid JSON ({exc})",
                hint="re-export the model with `fetalplanes export`",
            ) from None
        return cls.from_dict(data, source)

    def validate(self, source: str = "model") -> None:
        problems = []
        if not self.labels:
            problems.append("no labels")
        if self.input_size < 8:
            problems.append(f"input_size {self.input_size} < 8")
        if self.std <= 0:
            problems.append(f"std {self.std} <= 0")
        if self.layout not in ("NCHW", "NHWC"):
            problems.append(f"layout {self.layout!r} is not NCHW or NHWC")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels} is not 1 or 3")
        if self.resize not in ("stretch",):
            problems.append(f"resize {self.resize!r} is unknown")
        if problems:
            raise FetalPlanesError(
                f"{source}: invalid fetalplanes metadata: {'; '.join(problems)}",
                hint="re-export the model with `fetalplanes export`",
            )

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        s, c = self.input_size, self.channels
        return (batch, c, s, s) if self.layout == "NCHW" else (batch, s, s, c)


def read_onnx_metadata(path: str) -> ModelInfo:
    """Read the ModelInfo stored in an ONNX file without loading the graph weights twice.

    Uses ONNX Runtime's model metadata (always installed on the edge box).
    """
    import onnxruntime as ort  # the edge's inference backend

    try:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types
        raise FetalPlanesError(
            f"{path}: ONNX Runtime cannot load this file ({str(exc).splitlines()[0][:300]})",
            hint="check that the file is a complete ONNX model (re-run `fetalplanes export`)",
        ) from None
    meta = sess.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise FetalPlanesError(
            f"{path}: this ONNX file carries no '{METADATA_KEY}' metadata (labels, preprocessing)",
            hint="export it with `fetalplanes export`, which embeds them",
        )
    return ModelInfo.from_json(meta[METADATA_KEY], source=str(path))
