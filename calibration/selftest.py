"""The TensorRT selftest: build engines on this GPU box and check them against ONNX Runtime.

The project could not run TensorRT where it was written; ``fetalplanes selftest``
(``calibration/commands/selftest.py`` parses its arguments and calls
:func:`run_selftest`) is how a user verifies the TensorRT path on their own Jetson
or GPU machine. For each engine it reports argmax agreement and the largest
probability difference against ONNX Runtime (CPU, FP32) on the same images
(:func:`calibration.compare_outputs.compare_outputs`), plus whether a single-image
run matches the batched run (the dynamic batch profile). The INT8 Q/DQ engine is
built from a file quantized by :mod:`calibration.quantize_ort`, like
``fetalplanes quantize --target tensorrt`` does.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.compare_outputs import compare_outputs
from edge.files import IMAGE_SUFFIXES
from edge.errors import EXIT_USAGE, FetalPlanesError



@dataclass
class SelftestConfig:
    onnx: str | None = None
    data: str | None = None
    samples: int = 32
    out: str | None = None
    max_batch: int = 8
    min_agreement: float = 0.95
    tol_fp16: float = 0.02
    tol_int8: float = 0.15
    device: int = 0


@dataclass
class CheckRow:
    name: str
    precision: str
    mode: str = ""
    agreement: float = float("nan")
    max_prob_diff: float = float("nan")
    batch1_diff: float = float("nan")
    tolerance: float = float("nan")
    result: str = "FAIL"  # PASS | FAIL | SKIP
    note: str = ""


@dataclass
class SelftestReport:
    tensorrt_version: str
    gpu: str
    model: str
    images: str
    stand_in: bool
    rows: list[CheckRow] = field(default_factory=list)
    path: str = ""  # where selftest.json was written

    @property
    def passed(self) -> bool:
        ran = [r for r in self.rows if r.result != "SKIP"]
        return bool(ran) and all(r.result == "PASS" for r in ran)


# --- environment ------------------------------------------------------------------------
def check_environment() -> tuple[Any, Any]:
    """Import tensorrt and pycuda or raise one error naming everything missing and what to install."""
    from edge.backends.tensorrt_runner import INSTALL_HINT, import_pycuda, import_tensorrt

    problems, trt, cuda = [], None, None
    try:
        trt = import_tensorrt()
    except FetalPlanesError as exc:
        problems.append(exc.message)
    try:
        cuda = import_pycuda()
    except FetalPlanesError as exc:
        problems.append(exc.message)
    if problems:
        raise FetalPlanesError(
            "selftest cannot run on this machine: " + "; ".join(problems) + ". Nothing was tested "
            "(the TensorRT path is only verified where TensorRT, pycuda and an NVIDIA GPU are present)",
            hint=INSTALL_HINT + "; then run `fetalplanes selftest` again",
            exit_code=EXIT_USAGE,
        )
    return trt, cuda


# --- model and images ---------------------------------------------------------------------
def make_selftest_onnx(path: Path, input_size: int = 64, seed: int = 0) -> Path:
    """A small conv classifier (random but confident weights) with fetalplanes metadata; checks runtimes, not accuracy."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise FetalPlanesError(
            "selftest needs the 'onnx' package to make its own small model",
            hint="pip install onnx, or give your model with --onnx model.onnx",
        ) from None
    from edge.labels import PLANES
    from edge.modelinfo import ModelInfo, set_onnx_model_info

    rng = np.random.default_rng(seed)
    c1, c2, k = 8, 16, len(PLANES)
    params = {
        "w1": rng.normal(0, 0.4, (c1, 1, 3, 3)),
        "b1": rng.normal(0, 0.05, c1),
        "w2": rng.normal(0, 0.15, (c2, c1, 3, 3)),
        "b2": rng.normal(0, 0.05, c2),
        "fc": rng.normal(0, 2.0, (k, c2)),
        "fcb": rng.normal(0, 0.2, k),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "fetalplanes-selftest",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, input_size, input_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k])],
        [numpy_helper.from_array(v.astype(np.float32), n) for n, v in params.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(task="planes", labels=list(PLANES), arch="selftest-net", input_size=input_size, mean=127.5, std=127.5)
    set_onnx_model_info(model, info)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def phantom_images(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` phantom B-mode images (fetaldata.phantom), cycling over the six planes and the machines' looks."""
    from edge.labels import NOT_A_BRAIN, PLANES
    from fetaldata.phantom.render import LOOKS, render_image

    rng = np.random.default_rng(seed)
    machines = list(LOOKS)
    images = []
    for i in range(n):
        plane = PLANES[i % len(PLANES)]
        brain = "Trans-thalamic" if plane == "Fetal brain" else NOT_A_BRAIN
        width = int(rng.integers(160, 320))
        images.append(render_image(plane, brain, machines[i % len(machines)], rng, width, int(width * 0.7)))
    return images


def load_images(data: str | None, samples: int) -> tuple[list[np.ndarray], str]:
    """Up to ``samples`` images from a folder (recursive), else phantom ones."""
    if not data:
        return phantom_images(samples), f"{samples} phantom images (fetaldata.phantom)"
    from edge.preprocess import read_gray

    root = Path(data)
    if not root.is_dir():
        raise FetalPlanesError(f"--data {data}: not a folder", hint="give a folder of PNG/JPEG images (e.g. FETAL_PLANES_DB/Images)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:samples]
    if not files:
        raise FetalPlanesError(f"--data {data}: no PNG/JPEG images found", hint="give a folder of images, e.g. FETAL_PLANES_DB/Images")
    return [read_gray(p) for p in files], f"{len(files)} images from {root}"


def make_qdq_onnx(src: Path, dst: Path, calibration: np.ndarray) -> Path:
    """Q/DQ INT8 copy of ``src`` for TensorRT, made by :func:`calibration.quantize_ort.quantize_for_tensorrt` (the
    quantize flow's own code and its parser-faithful check): symmetric int8 activations, per-channel int8 weights,
    no quantized biases, min-max ranges calibrated on ``calibration``; the model description is carried over.
    Raises ImportError when onnx / onnxruntime.quantization are absent (the check is then skipped)."""
    import importlib.util

    for module in ("onnx", "onnxruntime.quantization"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            raise ImportError(f"No module named '{module}'")
    from calibration.quantize_ort import quantize_for_tensorrt

    return quantize_for_tensorrt(src, dst, calibration)


# --- checks ----------------------------------------------------------------------------------
def check_engine(row: CheckRow, engine: Path, onnx: Path, batch: np.ndarray, reference: np.ndarray, cfg: SelftestConfig, info) -> CheckRow:
    """Run the engine on the batch and on its first image alone; fill in the row's figures and verdict."""
    from edge.backends.tensorrt_runner import TensorRTRunner
    from edge.preprocess import to_probabilities

    with TensorRTRunner(str(engine), device=cfg.device, onnx=str(onnx)) as runner:
        probs = to_probabilities(runner.infer(batch), info)
        single = to_probabilities(runner.infer(batch[:1]), info)
    c = compare_outputs(reference, probs, atol=row.tolerance, min_agreement=cfg.min_agreement)
    row.agreement, row.max_prob_diff = c.argmax_agreement, c.max_abs_diff
    row.batch1_diff = compare_outputs(probs[:1], single[:1]).max_abs_diff
    problems = []
    if row.agreement < cfg.min_agreement:
        problems.append(f"agreement {row.agreement:.3f} < {cfg.min_agreement}")
    if not c.within_tolerance:
        problems.append(f"max |dp| {row.max_prob_diff:.4f} > {row.tolerance}")
    if row.batch1_diff > row.tolerance:
        problems.append(f"batch-1 run differs from the batched run by {row.batch1_diff:.4f}")
    row.result = "FAIL" if problems else "PASS"
    row.note = "; ".join(problems)
    return row


def planned_rows(tensorrt_version: str, cfg: SelftestConfig) -> list[CheckRow]:
    """Which engines to build: FP16 and INT8 (calibrated where TensorRT still has calibrators, and Q/DQ)."""
    from edge.backends.tensorrt_runner import version_tuple

    major = version_tuple(tensorrt_version)[0]
    rows = []
    if major >= 11:
        rows.append(CheckRow("fp32", "fp32", tolerance=cfg.tol_fp16))
        rows.append(CheckRow("fp16", "fp16", result="SKIP", note="TensorRT 11 builds FP16 only from an FP16 ONNX (ModelOpt AutoCast)"))
    else:
        rows.append(CheckRow("fp16", "fp16", tolerance=cfg.tol_fp16))
        rows.append(CheckRow("int8-calibrated", "int8", tolerance=cfg.tol_int8))
    from edge.backends.tensorrt_versions import int8_routes

    if "qdq" in int8_routes(tensorrt_version):
        rows.append(CheckRow("int8-qdq", "int8", tolerance=cfg.tol_int8))
    else:
        rows.append(CheckRow("int8-qdq", "int8", result="SKIP",
                             note=f"TensorRT {tensorrt_version} builds INT8 through the calibrator only (JetPack 5.1); see docs/tensorrt.md"))
    return rows


def run_selftest(cfg: SelftestConfig) -> SelftestReport:
    """Build and check each engine; never raises for a single engine's failure (it becomes a FAIL row)."""
    trt, cuda = check_environment()
    from calibration.tensorrt_build import EngineBuildConfig, build_engine
    from edge.backends.onnxruntime_runner import OnnxRuntimeRunner
    from edge.backends.tensorrt_runner import gpu_identity
    from edge.modelinfo import read_onnx_metadata
    from edge.preprocess import preprocess_batch, to_probabilities

    work = Path(cfg.out or tempfile.mkdtemp(prefix="fetalplanes-selftest-"))
    work.mkdir(parents=True, exist_ok=True)
    onnx = Path(cfg.onnx) if cfg.onnx else make_selftest_onnx(work / "selftest.onnx")
    info = read_onnx_metadata(str(onnx))
    images, images_desc = load_images(cfg.data, cfg.samples)
    batch = preprocess_batch(images, info)
    with OnnxRuntimeRunner(str(onnx)) as ort_runner:
        reference = to_probabilities(ort_runner.infer(batch), info)
    gpu_name, cc = gpu_identity(cuda, cfg.device)
    report = SelftestReport(
        tensorrt_version=trt.__version__,
        gpu=f"{gpu_name} (compute capability {cc})",
        model=str(onnx),
        images=images_desc,
        stand_in=bool(getattr(trt, "__stand_in__", False)),
    )
    for row in planned_rows(trt.__version__, cfg):
        report.rows.append(row)
        if row.result == "SKIP":
            continue
        engine = work / f"selftest.{row.name}.engine"
        for stale in (work / "selftest.calib", work / "selftest.calib.source"):
            stale.unlink(missing_ok=True)  # calibrate afresh: --onnx may be another model than last time
        try:
            source = onnx
            if row.name == "int8-qdq":
                source = make_qdq_onnx(onnx, work / "selftest.qdq.onnx", batch)
            sidecar = build_engine(
                EngineBuildConfig(
                    onnx=str(source),
                    out=str(engine),
                    precision=row.precision,
                    max_batch=cfg.max_batch,
                    calib_batch=min(8, batch.shape[0]),
                    calib_cache=str(work / "selftest.calib") if row.name == "int8-calibrated" else None,
                    device=cfg.device,
                ),
                calibration_data=batch if row.name == "int8-calibrated" else None,
            )
            row.mode = sidecar.mode
            check_engine(row, engine, source, batch, reference, cfg, info)
        except FetalPlanesError as exc:
            row.result, row.note = "FAIL", exc.message
        except ImportError as exc:  # e.g. onnx missing for the Q/DQ copy
            row.result, row.note = "SKIP", f"{exc} (pip install onnx to include this check)"
        except Exception as exc:  # a runtime fault in TensorRT/pycuda: report it, go on
            row.result, row.note = "FAIL", f"{type(exc).__name__}: {exc}"
    report.path = str(work / "selftest.json")
    Path(report.path).write_text(json.dumps(_report_dict(report), indent=2) + "\n", encoding="utf-8")
    return report


def _report_dict(report: SelftestReport) -> dict:
    d = asdict(report)
    d["passed"] = report.passed
    return d


def format_report(report: SelftestReport) -> str:
    lines = [
        f"TensorRT {report.tensorrt_version} on {report.gpu}" + ("  [STAND-IN tensorrt: NOT a real check]" if report.stand_in else ""),
        f"model {report.model}; {report.images}; reference: ONNX Runtime CPU FP32",
        "",
        f"{'engine':<16} {'mode':<26} {'agree':>6} {'max|dp|':>8} {'batch1':>8} {'tol':>6}  result",
    ]
    for r in report.rows:
        fig = lambda v, f: (f % v) if v == v else "-"  # noqa: E731 - NaN shows as '-'
        lines.append(
            f"{r.name:<16} {r.mode or '-':<26} {fig(r.agreement, '%6.3f'):>6} {fig(r.max_prob_diff, '%8.4f'):>8} "
            f"{fig(r.batch1_diff, '%8.4f'):>8} {fig(r.tolerance, '%6.3f'):>6}  {r.result}" + (f"  ({r.note})" if r.note else "")
        )
    lines.append("")
    lines.append("selftest: " + ("PASS" if report.passed else "FAIL"))
    return "\n".join(lines)
