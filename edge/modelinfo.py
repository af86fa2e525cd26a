"""The one description of a model: its labels and preprocessing, and every place it is stored.

Training writes it into the checkpoint (``ckpt["model_info"]``, :meth:`ModelInfo.to_dict`), export
writes it into the ONNX metadata (key ``fetalplanes``, :func:`set_onnx_model_info` /
:func:`write_onnx_info`), engine builds copy it into the engine's sidecar (``model_info``, the same
dict), and every consumer (evaluation, calibration, the live loop) reads it from there
(:func:`read_onnx_metadata`, :func:`info_from_onnx_model`, :func:`info_from_checkpoint`,
:meth:`ModelInfo.from_dict`). Nothing downstream repeats, guesses or re-serialises any of it.

Schema 2 adds non-square inputs, per-image normalisation, the gray conversion, the interpolation and
a map from the model's own labels onto a task's labels. A description that uses none of them is
written as schema 1, so that older installations still read ordinary models (and refuse, by the
schema number, the ones they would preprocess wrongly).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import FetalPlanesError, require
from edge.labels import TASKS, labels_for

METADATA_KEY = "fetalplanes"  # key of the JSON in an ONNX file's metadata_props
CHECKPOINT_KEY = "model_info"  # key of the dict in a training checkpoint (and in an engine sidecar)
SCHEMA_VERSION = 2

NORMALIZATIONS = ("dataset", "per_image")
GRAY_MODES = ("luma", "mean")
INTERPOLATIONS = ("area", "linear")
MIN_INPUT_SIDE = 8
REEXPORT_HINT = "re-export the model with `fetalplanes export` so that it carries valid labels and preprocessing"


def parse_input_size(value: Any, what: str = "--image-size") -> int | list[int]:
    """``224``, ``"224"``, ``"224x288"`` (rows x columns), ``(224, 288)`` -> ``224`` or ``[224, 288]``.

    A square size is always the int. A clear error (exit 2) names ``what`` for anything else.
    """
    bad = FetalPlanesError(
        f"{what} {value!r}: not an input size",
        hint="give one number for a square input (e.g. 224) or ROWSxCOLUMNS (e.g. 224x288)",
    )
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        try:
            dims = [int(p.strip()) for p in parts]
        except ValueError:
            raise bad from None
    elif isinstance(value, (int, np.integer)):
        dims = [int(value)]
    elif isinstance(value, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            raise bad
        dims = [int(v) for v in value]
    else:
        raise bad
    if len(dims) not in (1, 2):
        raise bad
    if any(d < MIN_INPUT_SIDE for d in dims):
        raise FetalPlanesError(
            f"{what} {value!r}: each side must be at least {MIN_INPUT_SIDE} px",
            hint="give e.g. 224 or 224x288",
        )
    if len(dims) == 1 or dims[0] == dims[1]:
        return dims[0]
    return dims


def size_text(size: int | list[int] | tuple[int, int]) -> str:
    """``224`` -> "224", ``[224, 288]`` -> "224x288" (rows x columns), the CLI's spelling."""
    if isinstance(size, (list, tuple)):
        return "x".join(str(int(s)) for s in size)
    return str(int(size))


@dataclass
class ModelInfo:
    """Labels, input geometry and normalisation of one classifier.

    Preprocessing (:func:`edge.preprocess.prepare`): image -> 8-bit gray (``gray``: "luma" = OpenCV's
    BGR2GRAY, "mean" = mean of the colour channels) -> resize the whole image (``resize`` = "stretch",
    aspect not kept) to ``input_size`` (an int: square; ``[height, width]``: rows x columns) with
    ``interpolation`` ("area": INTER_AREA when shrinking, else bilinear; "linear": always bilinear)
    -> float32 by ``normalization``: "dataset" = ``(pixel - mean) / std`` (``mean``/``std`` in 0-255
    pixel units, from the training images), "per_image" = ``(g - g.mean()) / max(g.std(), 1e-6) * scale``
    -> ``layout`` with ``channels`` channels.

    ``labels``: the model's own outputs, in output order. ``label_map`` maps each of them onto a label
    of ``task``'s taxonomy (:func:`edge.labels.labels_for`); empty: the labels already are the task's.
    """

    task: str
    labels: list[str]
    arch: str
    input_size: int | list[int]
    mean: float
    std: float
    channels: int = 1
    layout: str = "NCHW"
    resize: str = "stretch"
    input_name: str = "input"
    output_name: str = "logits"
    outputs: str = "logits"  # "logits" (softmax applied by consumers) or "probabilities"
    normalization: str = "dataset"  # "dataset" | "per_image"
    scale: float = 1.0  # per_image only: the standardised image is multiplied by it (SonoNet: 255)
    gray: str = "luma"  # "luma" | "mean"
    interpolation: str = "area"  # "area" | "linear"
    label_map: dict[str, str] = field(default_factory=dict)  # native label -> task label
    dataset_fingerprint: str = ""
    checkpoint_sha256: str = ""
    code_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = field(default=SCHEMA_VERSION, compare=False)  # as read; written as required_schema()

    def __post_init__(self) -> None:
        size = self.input_size
        if isinstance(size, tuple):
            size = list(size)
        if isinstance(size, list) and len(size) == 2 and size[0] == size[1]:
            size = size[0]
        self.input_size = size
        if isinstance(self.labels, tuple):
            self.labels = list(self.labels)

    # --- geometry ---------------------------------------------------------------------------
    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the model's input in pixels."""
        if isinstance(self.input_size, list):
            return int(self.input_size[0]), int(self.input_size[1])
        return int(self.input_size), int(self.input_size)

    @property
    def height(self) -> int:
        return self.input_hw[0]

    @property
    def width(self) -> int:
        return self.input_hw[1]

    @property
    def size_text(self) -> str:
        """"224" or "224x288" (rows x columns)."""
        return size_text(self.input_size)

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        h, w = self.input_hw
        c = self.channels
        return (batch, c, h, w) if self.layout == "NCHW" else (batch, h, w, c)

    def preprocessing_key(self) -> tuple:
        """Everything that decides the input tensor: two models with equal keys share preprocessed inputs."""
        per_image = self.normalization == "per_image"
        return (
            self.input_hw, self.channels, self.layout, self.resize, self.gray, self.interpolation, self.normalization,
            float(self.scale) if per_image else (float(self.mean), float(self.std)),
        )

    # --- labels -----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def task_labels(self) -> list[str]:
        """The labels of ``task`` (with a label map), else the model's own labels (they are the task's)."""
        if self.label_map:
            return list(labels_for(self.task))
        return list(self.labels)

    @property
    def missing_task_labels(self) -> list[str]:
        """Task labels no native label maps to (their mapped probability is always 0)."""
        if not self.label_map:
            return []
        mapped = set(self.label_map.values())
        return [t for t in self.task_labels if t not in mapped]

    def task_label(self, native_index: int) -> str:
        """The task label of native output ``native_index``."""
        label = self.labels[native_index]
        return self.label_map.get(label, label) if self.label_map else label

    def display_label(self, native_index: int, sep: str = " · ") -> str:
        """"4CH · Fetal thorax" with a label map, else just the label. ``sep=" - "`` where the text is drawn
        by OpenCV's putText (its Hershey fonts have no "·")."""
        label = self.labels[native_index]
        if not self.label_map:
            return label
        return f"{label}{sep}{self.label_map[label]}"

    def task_decision(self, probs: np.ndarray) -> tuple[int, str, float]:
        """What one prediction counts as, in every consumer (evaluate, classify, the live loop's records): the
        most probable task label, the native probabilities summed per task label. Returns its index in
        ``task_labels``, the label and that summed probability. (The top native label can belong to another
        task label: 0.35 Brain (Tv.) with 0.45 spread over three views of Other counts as Other.)"""
        q = self.map_probabilities(np.asarray(probs, dtype=np.float32).reshape(-1))
        best = int(np.argmax(q))
        return best, self.task_labels[best], float(q[best])

    def mapping_matrix(self) -> np.ndarray:
        """(num_classes, len(task_labels)) 0/1 matrix: native output i counts for task label j."""
        task = self.task_labels
        index = {t: j for j, t in enumerate(task)}
        m = np.zeros((self.num_classes, len(task)), dtype=np.float32)
        for i, label in enumerate(self.labels):
            m[i, index[self.label_map.get(label, label) if self.label_map else label]] = 1.0
        return m

    def map_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities over the native labels (..., num_classes) -> over the task labels (..., T).

        Each task label gets the sum of the probabilities of the native labels mapped to it; without a
        label map the input is returned unchanged.
        """
        probs = np.asarray(probs)
        if not np.issubdtype(probs.dtype, np.floating):
            probs = probs.astype(np.float32)
        if probs.shape[-1] != self.num_classes:
            raise FetalPlanesError(
                f"probabilities have {probs.shape[-1]} columns, the model has {self.num_classes} labels",
                hint="pass the model's own output probabilities (one column per label in info.labels)",
            )
        if not self.label_map:
            return probs
        return probs @ self.mapping_matrix().astype(probs.dtype)

    # --- the dict form (checkpoint, sidecar) and JSON (ONNX metadata) -------------------------
    def required_schema(self) -> int:
        """1 when nothing of schema 2 is used (older readers then still read it), else 2."""
        plain = (
            not isinstance(self.input_size, list)
            and self.normalization == "dataset"
            and self.gray == "luma"
            and self.interpolation == "area"
            and not self.label_map
        )
        return 1 if plain else 2

    def to_dict(self) -> dict[str, Any]:
        """The dict stored in checkpoints (``ckpt["model_info"]``) and engine sidecars."""
        data = asdict(self)
        data["schema"] = self.required_schema()
        return data

    def to_json(self) -> str:
        """The JSON stored in ONNX metadata under :data:`METADATA_KEY`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model") -> "ModelInfo":
        """Parse and validate; every problem is a FetalPlanesError (exit 2) naming ``source``."""
        if not isinstance(data, dict):
            raise FetalPlanesError(f"{source}: its fetalplanes metadata is not a JSON object", hint=REEXPORT_HINT)
        known = {f.name for f in fields(cls)}
        required = ["task", "labels", "arch", "input_size", "mean", "std"]
        missing = [k for k in required if k not in data]
        if missing:
            raise FetalPlanesError(
                f"{source}: its fetalplanes metadata lacks {', '.join(missing)}",
                hint="re-export the model with `fetalplanes export` so that it carries its labels and preprocessing",
            )
        try:
            schema = int(data.get("schema", 1))
        except (TypeError, ValueError):
            raise FetalPlanesError(f"{source}: metadata schema {data.get('schema')!r} is not a number", hint=REEXPORT_HINT) from None
        if schema > SCHEMA_VERSION:
            raise FetalPlanesError(
                f"{source}: metadata schema {schema} is newer than this fetalplanes understands ({SCHEMA_VERSION})",
                hint="upgrade fetalplanes on this machine",
            )
        values = {k: v for k, v in data.items() if k in known}
        values["schema"] = schema
        info = cls(**values)
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

    def problems(self) -> list[str]:
        """Every way this description is invalid (empty: valid)."""
        p: list[str] = []

        def number(name: str) -> float | None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
                p.append(f"{name} {v!r} is not a finite number")
                return None
            return float(v)

        if not isinstance(self.task, str) or not self.task:
            p.append(f"task {self.task!r} is not a name")
        if not isinstance(self.labels, list) or not all(isinstance(x, str) and x for x in self.labels):
            p.append(f"labels {self.labels!r} is not a list of names")
        elif not self.labels:
            p.append("no labels")
        elif len(set(self.labels)) != len(self.labels):
            p.append("labels repeat a name")
        try:
            parse_input_size(self.input_size, "input_size")
        except FetalPlanesError as exc:
            p.append(exc.message)
        number("mean")
        std = number("std")
        if std is not None and std <= 0:
            p.append(f"std {self.std} <= 0")
        if self.layout not in ("NCHW", "NHWC"):
            p.append(f"layout {self.layout!r} is not NCHW or NHWC")
        if self.channels not in (1, 3):
            p.append(f"channels {self.channels} is not 1 or 3")
        if self.resize not in ("stretch",):
            p.append(f"resize {self.resize!r} is unknown")
        if self.outputs not in ("logits", "probabilities"):
            p.append(f"outputs {self.outputs!r} is not logits or probabilities")
        if self.normalization not in NORMALIZATIONS:
            p.append(f"normalization {self.normalization!r} is not one of {', '.join(NORMALIZATIONS)}")
        scale = number("scale")
        if scale is not None and scale <= 0:
            p.append(f"scale {self.scale} <= 0")
        if self.gray not in GRAY_MODES:
            p.append(f"gray {self.gray!r} is not one of {', '.join(GRAY_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            p.append(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        p.extend(self._label_map_problems())
        return p

    def _label_map_problems(self) -> list[str]:
        m = self.label_map
        if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
            return [f"label_map {m!r} is not a mapping of names to names"]
        if not m or not isinstance(self.labels, list):
            return []
        if self.task not in TASKS:
            return [f"label_map given for task {self.task!r}, which is not one of {', '.join(TASKS)}"]
        p = []
        unmapped = [x for x in self.labels if x not in m]
        if unmapped:
            p.append(f"label_map does not map the label(s) {', '.join(map(repr, unmapped))}")
        foreign = [k for k in m if k not in self.labels]
        if foreign:
            p.append(f"label_map maps {', '.join(map(repr, foreign))}, which are not among the labels")
        unknown = sorted({v for v in m.values() if v not in TASKS[self.task]})
        if unknown:
            p.append(f"label_map maps onto {', '.join(map(repr, unknown))}, not labels of task {self.task!r} "
                     f"({', '.join(TASKS[self.task])})")
        return p

    def validate(self, source: str = "model") -> None:
        """Raise one FetalPlanesError (exit 2) naming every problem, or return."""
        problems = self.problems()
        if problems:
            raise FetalPlanesError(f"{source}: invalid fetalplanes metadata: {'; '.join(problems)}", hint=REEXPORT_HINT)


# --- where the description is stored ---------------------------------------------------------
def info_from_checkpoint(ckpt: dict[str, Any], source: str = "checkpoint") -> ModelInfo:
    """The ModelInfo of a training checkpoint dict (``ckpt["model_info"]``)."""
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt:
        raise FetalPlanesError(
            f"{source}: the checkpoint carries no {CHECKPOINT_KEY} (labels, preprocessing)",
            hint="give a checkpoint written by `fetalplanes train`",
        )
    return ModelInfo.from_dict(ckpt[CHECKPOINT_KEY], source=source)


def info_from_onnx_model(model: Any, source: str = "ONNX model") -> ModelInfo:
    """The ModelInfo in a loaded ``onnx.ModelProto``'s metadata."""
    meta = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in meta:
        raise FetalPlanesError(
            f"{source}: this ONNX model carries no '{METADATA_KEY}' metadata (labels, preprocessing)",
            hint="export it with `fetalplanes export`, which embeds them",
        )
    return ModelInfo.from_json(meta[METADATA_KEY], source=source)


def set_onnx_model_info(model: Any, info: ModelInfo) -> None:
    """Set (replace) the description in a loaded ``onnx.ModelProto``'s metadata; other keys are kept."""
    info.validate("model description to write")
    text = info.to_json()
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = text
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text


def write_onnx_info(path: str | Path, info: ModelInfo) -> None:
    """Set (replace) the description stored in an ONNX file, in place (needs the ``onnx`` package)."""
    onnx = require("onnx", "dev", "writing a model's description into its ONNX file")
    model = onnx.load(str(path))
    set_onnx_model_info(model, info)
    onnx.save(model, str(path))


def copy_onnx_info(src: str | Path, dst: str | Path) -> ModelInfo:
    """Copy the description of ONNX file ``src`` into ONNX file ``dst`` (e.g. after a graph rewrite)."""
    onnx = require("onnx", "dev", "copying a model's description between ONNX files")
    info = info_from_onnx_model(onnx.load(str(src), load_external_data=False), source=str(src))
    write_onnx_info(dst, info)
    return info


def read_onnx_metadata(path: str | Path) -> ModelInfo:
    """Read the ModelInfo stored in an ONNX file (ONNX Runtime's metadata reader, as on the box)."""
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
