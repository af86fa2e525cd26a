"""The model the box runs when none is given: SonoNet-16 built from its published weights (vendored).

``edge/models/sononet16.onnx`` is what ``fetalplanes import-weights sononet16 --weights SonoNet16.npz
--out sononet16.onnx`` makes from the release of Baumgartner et al. (IEEE TMI 2017,
github.com/baumgach/SonoNet-weights, Apache-2.0; ``edge/models/LICENSE`` and ``NOTICE``). It was
trained on another cohort (UK 20-week anomaly scans) than FETAL_PLANES_DB: a real ultrasound model that
labels scans out of the box, not one validated on the user's scanner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.errors import FetalPlanesError

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS_DIR / "sononet16.onnx"


def default_model_path() -> Path:
    """The vendored model file; a clear error (exit 2) when this installation does not carry it."""
    if not DEFAULT_MODEL.is_file():
        raise FetalPlanesError(
            f"no model given, and this installation carries no default model ({DEFAULT_MODEL} is missing)",
            hint="pass --model FILE.onnx, or make the default with `fetalplanes import-weights sononet16 "
                 f"--weights SonoNet16.npz --out {DEFAULT_MODEL}`",
        )
    return DEFAULT_MODEL


def describe_model(info: Any, path: str | Path) -> str:
    """One line saying which model runs: its name, source, licence and the cohort it was trained on
    (from the description's ``extra["source"]`` where it has one)."""
    src = (info.extra or {}).get("source") or {}
    if not src:
        return f"model: {path} ({info.arch}, {info.task}: {', '.join(info.task_labels)})"
    parts = [f"model: {src.get('name', info.arch)} ({Path(path).name})"]
    if src.get("authors"):
        parts.append(str(src["authors"]))
    if src.get("repository"):
        parts.append(f"weights from {src['repository']}" + (f" (commit {src['commit']})" if src.get("commit") else ""))
    if src.get("licence"):
        parts.append(f"licence {src['licence']}")
    text = "; ".join(parts)
    if src.get("cohort"):
        text += f". Trained on {src['cohort']}: not validated on this scanner"
    if info.label_map:
        text += (f". Its {info.num_classes} labels are shown with the plane they map to"
                 + (f"; it has no class for {', '.join(info.missing_task_labels)}" if info.missing_task_labels else ""))
    return text + "."
