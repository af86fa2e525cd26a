"""`fetalplanes selftest`: on a GPU box, build TensorRT engines and check them against ONNX Runtime.

The project could not run TensorRT where it was written; this command is how a
user verifies the TensorRT path on their own Jetson or GPU machine. For each
engine it reports argmax agreement and the largest probability difference
against ONNX Runtime (CPU, FP32) on the same images, plus whether a single-image
run matches the batched run (the dynamic batch profile); exit 0 only if every
engine built passes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.cli import add_command
from edge.errors import EXIT_FAILURE, EXIT_USAGE, FetalPlanesError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


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
    from edge.modelinfo import METADATA_KEY, ModelInfo

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
    helper.set_model_props(model, {METADATA_KEY: info.to_json()})
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
    """Q/DQ INT8 copy of ``src`` (symmetric int8 activations and per-channel weights, TensorRT's flavour) via ONNX Runtime."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, name: str):
            self.items = iter([{name: calibration[i : i + 1]} for i in range(calibration.shape[0])])

        def get_next(self):
            return next(self.items, None)

    import onnxruntime as ort

    import logging

    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT's "consider pre-processing" advice is noise for this tiny check
    try:
        _quantize(quantize_static, src, dst, Reader(name), QuantFormat, QuantType)
    finally:
        root.setLevel(level)
    _copy_metadata(src, dst)
    return dst


def _quantize(quantize_static, src, dst, reader, QuantFormat, QuantType) -> None:  # noqa: N803 - ORT's names
    quantize_static(
        str(src),
        str(dst),
        reader,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )


def _copy_metadata(src: Path, dst: Path) -> None:
    import onnx

    from edge.modelinfo import METADATA_KEY

    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    model = onnx.load(str(dst))
    if METADATA_KEY in meta and not any(p.key == METADATA_KEY for p in model.metadata_props):
        onnx.helper.set_model_props(model, {METADATA_KEY: meta[METADATA_KEY]})
        onnx.save(model, str(dst))


# --- checks ----------------------------------------------------------------------------------
def compare_probabilities(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(argmax agreement in [0,1], max absolute probability difference)."""
    agreement = float(np.mean(reference.argmax(1) == candidate.argmax(1)))
    return agreement, float(np.abs(reference - candidate).max())


def check_engine(row: CheckRow, engine: Path, onnx: Path, batch: np.ndarray, reference: np.ndarray, cfg: SelftestConfig, info) -> CheckRow:
    """Run the engine on the batch and on its first image alone; fill in the row's figures and verdict."""
    from edge.backends.tensorrt_runner import TensorRTRunner
    from edge.preprocess import to_probabilities

    with TensorRTRunner(str(engine), device=cfg.device, onnx=str(onnx)) as runner:
        probs = to_probabilities(runner.infer(batch), info)
        single = to_probabilities(runner.infer(batch[:1]), info)
    row.agreement, row.max_prob_diff = compare_probabilities(reference, probs)
    row.batch1_diff = float(np.abs(single[0] - probs[0]).max())
    problems = []
    if row.agreement < cfg.min_agreement:
        problems.append(f"agreement {row.agreement:.3f} < {cfg.min_agreement}")
    if row.max_prob_diff > row.tolerance:
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
    rows.append(CheckRow("int8-qdq", "int8", tolerance=cfg.tol_int8))
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
                from calibration.quantize_ort import quantize_for_tensorrt  # TensorRT's Q/DQ flavour (issue 16)

                source = quantize_for_tensorrt(onnx, work / "selftest.qdq.onnx", batch)
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


def _run(args: argparse.Namespace) -> int:
    cfg = SelftestConfig(
        onnx=args.onnx,
        data=args.data,
        samples=args.samples,
        out=args.out,
        max_batch=args.max_batch,
        min_agreement=args.min_agreement,
        tol_fp16=args.tol_fp16,
        tol_int8=args.tol_int8,
        device=args.device,
    )
    if cfg.samples < 2:
        raise FetalPlanesError(f"--samples {cfg.samples}: need at least 2", hint="e.g. --samples 32")
    report = run_selftest(cfg)
    print(format_report(report))
    print(f"report: {report.path}", file=sys.stderr)
    return 0 if report.passed else EXIT_FAILURE


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "selftest",
        "verify the TensorRT path on this GPU box: build FP16/INT8 engines, compare with ONNX Runtime",
        _run,
        "fetalplanes selftest                      # a small built-in model on phantom images\n"
        "  fetalplanes selftest --onnx model.onnx --data FETAL_PLANES_DB/Images --out selftest/",
        description=__doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
    )
    p.add_argument("--onnx", help="model to check (default: a small model the selftest makes)")
    p.add_argument("--data", help="folder of sample images (default: phantom images)")
    p.add_argument("--samples", type=int, default=32, help="images to compare on (default 32)")
    p.add_argument("--out", help="keep engines and selftest.json here (default: a temporary folder)")
    p.add_argument("--max-batch", type=int, default=8, help="engine profile max batch (default 8)")
    p.add_argument("--min-agreement", type=float, default=0.95, help="min argmax agreement with ONNX Runtime (default 0.95)")
    p.add_argument("--tol-fp16", type=float, default=0.02, help="max probability difference for fp16/fp32 (default 0.02)")
    p.add_argument("--tol-int8", type=float, default=0.15, help="max probability difference for int8 (default 0.15)")
    p.add_argument("--device", type=int, default=0, help="CUDA device index")
