"""Table 2's model size and speed: parameters, and batch-1 Hz with the edge runtime (ONNX Runtime) in FP32 and INT8.

Results are cached in the sub-run's folder (``speed.json``) so a resumed experiment does not measure twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.errors import FetalPlanesError
from export.experiments.config import ExperimentConfig


def count_parameters(model_path: Path) -> int | None:
    """Trainable-size count: the checkpoint's weights (torch), or the ONNX file's initializers."""
    import numpy as np

    if model_path.suffix.lower() == ".onnx":
        import onnx

        model = onnx.load(str(model_path))
        return int(sum(int(np.prod(t.dims)) for t in model.graph.initializer))
    from export.models import load_checkpoint

    model, _, _ = load_checkpoint(model_path)
    return int(sum(p.numel() for p in model.parameters()))


def to_onnx(model_path: Path, out_dir: Path) -> Path:
    """The model as ONNX: itself, or the checkpoint exported by the export stage."""
    if model_path.suffix.lower() == ".onnx":
        return model_path
    try:
        from export.onnx_export import export_onnx
    except ImportError as exc:
        raise FetalPlanesError(f"ONNX export is not available here ({exc})", hint="install fetalplanes[train]",
                               exit_code=1) from None
    dst = out_dir / "model.onnx"
    if not dst.is_file():
        export_onnx(model_path, dst)
    return dst


def measure(record: dict[str, Any], config: ExperimentConfig, run_dir: Path) -> dict[str, Any]:
    """{'params', 'fp32_hz', 'int8_hz', 'notes'} for a finished sub-run (cached in run_dir/speed.json)."""
    cache = run_dir / "speed.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    model = Path(record["model"])
    out: dict[str, Any] = {"params": None, "fp32_hz": None, "int8_hz": None, "notes": []}
    try:
        out["params"] = count_parameters(model)
    except (FetalPlanesError, ImportError) as exc:
        out["notes"].append(f"parameters: {exc}")
    if config.speed:
        from calibration.speed import measure_hz

        seconds, rounds = (0.2, 1) if config.quick else (2.0, 3)
        try:
            fp32 = to_onnx(model, run_dir)
            paths = [fp32]
            try:
                from calibration.quantize_ort import QuantizeConfig
                from calibration.quantize_workflow import QuantizeJob, run_quantize

                int8 = run_dir / "model.int8.onnx"
                if not int8.is_file():
                    run_quantize(QuantizeJob(
                        onnx=fp32, data=config.data, out=int8, config=QuantizeConfig(),
                        calib_size=32 if config.quick else 500, seed=config.seed, search=False,
                        val_max_images=config.default_max_per_split, max_drop=100.0, min_agreement=0.0,
                        speed_seconds=0.1 if config.quick else 1.0, speed_rounds=1,
                    ), log=lambda _m: None)
                paths.append(int8)
            except (FetalPlanesError, ImportError) as exc:
                out["notes"].append(f"INT8: {exc}")
            hz = measure_hz(paths, seconds=seconds, rounds=rounds)
            out["fp32_hz"] = hz[0].hz
            out["threads"] = hz[0].threads
            if len(hz) > 1:
                out["int8_hz"] = hz[1].hz
        except FetalPlanesError as exc:
            out["notes"].append(f"speed: {exc}")
    cache.write_text(json.dumps(out, indent=1) + "\n")
    return out
