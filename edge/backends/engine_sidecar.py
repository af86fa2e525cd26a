"""The JSON sidecar beside every TensorRT engine, and the rules that refuse a stale or foreign engine.

A TensorRT engine is only valid for the TensorRT version and the GPU it was built
with, and only describes the ONNX it was built from. ``<engine>.json`` records all
of that (plus the model's :class:`~edge.modelinfo.ModelInfo`, so labels and
preprocessing travel with the engine). :func:`verify_sidecar` compares it with
the machine and files at hand and refuses with one message naming every mismatch
and the command that rebuilds the engine.

No TensorRT import here: the caller passes what it found on the machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge.errors import EXIT_USAGE, FetalPlanesError
from edge.files import sha256_file
from edge.modelinfo import ModelInfo

SIDECAR_SCHEMA = 1
SIDECAR_SUFFIX = ".json"


@dataclass
class EngineSidecar:
    """What an engine was built from, with and for."""

    model_info: dict[str, Any]
    precision: str  # fp32 | fp16 | int8
    mode: str  # e.g. "fp16-flag", "int8-explicit-qdq", "int8-implicit-calibrator", "strongly-typed"
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    onnx_path: str = ""
    onnx_sha256: str = ""
    engine_sha256: str = ""
    build_options: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # input -> {min, opt, max}
    created: str = ""
    fetalplanes_version: str = ""
    schema: int = SIDECAR_SCHEMA

    def info(self, source: str = "engine sidecar") -> ModelInfo:
        return ModelInfo.from_dict(self.model_info, source=source)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> "EngineSidecar":
        known = {f.name for f in fields(cls)}
        required = ["model_info", "precision", "mode", "tensorrt_version", "gpu_name", "compute_capability"]
        missing = [k for k in required if k not in data]
        if missing:
            raise FetalPlanesError(
                f"{source}: engine sidecar lacks {', '.join(missing)}",
                hint="rebuild the engine with `fetalplanes build-engine`, which writes a complete sidecar",
            )
        if int(data.get("schema", SIDECAR_SCHEMA)) > SIDECAR_SCHEMA:
            raise FetalPlanesError(
                f"{source}: sidecar schema {data['schema']} is newer than this fetalplanes understands",
                hint="upgrade fetalplanes on this machine",
            )
        return cls(**{k: v for k, v in data.items() if k in known})


def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    return Path(str(engine_path) + SIDECAR_SUFFIX)


def rebuild_command(engine_path: str | Path, sidecar: EngineSidecar | None = None, onnx: str | Path | None = None) -> str:
    """The `build-engine` command line that rebuilds this engine on this machine."""
    src = str(onnx or (sidecar.onnx_path if sidecar and sidecar.onnx_path else "MODEL.onnx"))
    precision = sidecar.precision if sidecar else "fp16"
    cmd = f"fetalplanes build-engine --onnx {src} --precision {precision} --out {engine_path}"
    opts = sidecar.build_options if sidecar else {}
    if opts.get("max_batch"):
        cmd += f" --max-batch {opts['max_batch']}"
    if sidecar and sidecar.mode == "int8-implicit-calibrator":
        if opts.get("data_dir"):
            cmd += f" --data {opts['data_dir']}"
        if opts.get("calib_cache"):
            cmd += f" --calib-cache {opts['calib_cache']}"
    return cmd


def write_sidecar(engine_path: str | Path, sidecar: EngineSidecar) -> Path:
    """Write ``<engine>.json``, recording the engine's own hash so the pair cannot drift apart."""
    engine_path = Path(engine_path)
    sidecar.engine_sha256 = sha256_file(engine_path)
    path = sidecar_path(engine_path)
    path.write_text(sidecar.to_json() + "\n", encoding="utf-8")
    return path


def load_sidecar(engine_path: str | Path, check_engine_hash: bool = True) -> EngineSidecar:
    """Read and parse the sidecar of ``engine_path``; a clear error when it is missing, broken or foreign."""
    engine_path = Path(engine_path)
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise FetalPlanesError(
            f"{engine_path}: no sidecar {path.name} beside the engine (it records labels, preprocessing, "
            "TensorRT version and GPU)",
            hint=f"copy {path.name} together with the engine, or rebuild it: {rebuild_command(engine_path)}",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FetalPlanesError(
            f"{path}: engine sidecar is not valid JSON ({exc})",
            hint=f"rebuild the engine: {rebuild_command(engine_path)}",
        ) from None
    if not isinstance(data, dict):
        raise FetalPlanesError(f"{path}: engine sidecar is not a JSON object", hint=f"rebuild: {rebuild_command(engine_path)}")
    sidecar = EngineSidecar.from_dict(data, source=str(path))
    if check_engine_hash and sidecar.engine_sha256 and engine_path.is_file():
        actual = sha256_file(engine_path)
        if actual != sidecar.engine_sha256:
            raise FetalPlanesError(
                f"{engine_path}: the engine file does not match its sidecar {path.name} "
                f"(sha256 {actual[:12]}..., sidecar records {sidecar.engine_sha256[:12]}...): "
                "one of the two was replaced without the other",
                hint=f"rebuild both together: {rebuild_command(engine_path, sidecar)}",
            )
    return sidecar


def read_sidecar_info(engine_path: str | Path) -> ModelInfo:
    """The ModelInfo (labels, preprocessing) recorded beside a TensorRT engine."""
    sidecar = load_sidecar(engine_path)
    return sidecar.info(source=str(sidecar_path(engine_path)))


def sidecar_mismatches(
    sidecar: EngineSidecar,
    tensorrt_version: str | None = None,
    gpu_name: str | None = None,
    compute_capability: str | None = None,
    onnx_path: str | Path | None = None,
) -> list[str]:
    """Each way the engine does not fit this machine / these files (empty list: it fits).

    ``onnx_path``: the ONNX the caller says the engine comes from; when None, the
    ONNX recorded in the sidecar is checked if it still exists (a retrained model
    written over the same path makes the engine stale).
    """
    problems = []
    if tensorrt_version is not None and tensorrt_version != sidecar.tensorrt_version:
        problems.append(f"built with TensorRT {sidecar.tensorrt_version}, this machine has TensorRT {tensorrt_version}")
    if compute_capability is not None and str(compute_capability) != str(sidecar.compute_capability):
        problems.append(
            f"built for GPU '{sidecar.gpu_name}' (compute capability {sidecar.compute_capability}), "
            f"this GPU is '{gpu_name}' (compute capability {compute_capability})"
        )
    elif gpu_name is not None and gpu_name != sidecar.gpu_name:
        problems.append(f"built on GPU '{sidecar.gpu_name}', this GPU is '{gpu_name}'")
    if onnx_path is not None:
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            problems.append(f"the ONNX given ({onnx_path}) does not exist")
        else:
            actual = sha256_file(onnx_path)
            if actual != sidecar.onnx_sha256:
                problems.append(
                    f"the ONNX given ({onnx_path}, sha256 {actual[:12]}...) is not the one the engine was built "
                    f"from ({sidecar.onnx_path or '?'}, sha256 {sidecar.onnx_sha256[:12]}...)"
                )
    elif sidecar.onnx_path and sidecar.onnx_sha256 and Path(sidecar.onnx_path).is_file():
        actual = sha256_file(sidecar.onnx_path)
        if actual != sidecar.onnx_sha256:
            problems.append(
                f"stale engine: its source {sidecar.onnx_path} changed since the build (sha256 now {actual[:12]}..., "
                f"built from {sidecar.onnx_sha256[:12]}...), e.g. after retraining"
            )
    return problems


def verify_sidecar(
    engine_path: str | Path,
    sidecar: EngineSidecar,
    tensorrt_version: str | None = None,
    gpu_name: str | None = None,
    compute_capability: str | None = None,
    onnx_path: str | Path | None = None,
) -> None:
    """Raise one FetalPlanesError naming every mismatch and the rebuild command; return if the engine fits."""
    problems = sidecar_mismatches(sidecar, tensorrt_version, gpu_name, compute_capability, onnx_path)
    if problems:
        raise FetalPlanesError(
            f"{engine_path}: refusing this TensorRT engine: " + "; ".join(problems),
            hint="engines are tied to one TensorRT version, one GPU and one ONNX; rebuild it on this machine: "
            + rebuild_command(engine_path, sidecar, onnx_path),
            exit_code=EXIT_USAGE,
        )
