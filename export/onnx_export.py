"""Checkpoint -> self-describing ONNX file, checked against PyTorch (Polygraphy-style comparison).

- exporter: PyTorch's TorchScript-based exporter (``dynamo=False``) by default. In torch 2.14 it is
  deprecated but present; it writes the requested opset (17: TensorRT 8.5 on JetPack 5 reads it) and a
  plain Conv/BN-folded graph that ONNX Runtime and OpenCV DNN both read with the same outputs. The
  ``torch.export``-based exporter (``dynamo=True``) cannot write opset < 18 (its down-conversion fails
  and keeps 18), takes ~10x longer, and OpenCV 5's DNN has given wrong outputs on a MobileNetV3 it
  exported. ``exporter="auto"`` falls back to it where the TorchScript exporter is gone.
- dynamic batch axis; input ``input`` (N,1,H,W) float32 (H x W from the checkpoint's ModelInfo), output
  ``logits`` (N,classes);
- ``onnx.checker`` full check;
- :class:`edge.modelinfo.ModelInfo` JSON under the metadata key ``fetalplanes``, with the
  checkpoint's sha256;
- outputs compared with PyTorch on real-looking inputs (preprocessed dataset images, or phantom
  images rendered on the fly): max abs difference and argmax agreement, pass/fail by tolerance.
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.modelinfo import METADATA_KEY, ModelInfo, set_onnx_model_info

EXPORTERS = ("auto", "torchscript", "dynamo")


@dataclass
class Comparison:
    """One runtime's outputs against PyTorch's."""

    runtime: str
    max_abs_diff: float | None = None
    argmax_agreement: float | None = None
    within_tolerance: bool = False
    error: str = ""


@dataclass
class ExportReport:
    """What `export_onnx` did and how close the ONNX outputs are to PyTorch's."""

    onnx_path: str
    checkpoint: str
    checkpoint_sha256: str
    exporter: str
    opset: int
    inputs: str  # where the comparison inputs came from
    samples: int
    atol: float
    rtol: float
    min_agreement: float
    onnxruntime: Comparison = field(default_factory=lambda: Comparison("onnxruntime"))
    opencv: Comparison = field(default_factory=lambda: Comparison("opencv"))
    batch1_max_abs_diff: float | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.onnxruntime.within_tolerance

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        lines = [
            f"exported {self.checkpoint} -> {self.onnx_path} ({self.exporter} exporter, opset {self.opset}, "
            f"{self.seconds:.1f} s)",
            f"compared with PyTorch on {self.samples} {self.inputs} (tolerance |d| <= {self.atol:g} + {self.rtol:g}*|ref|, "
            f"argmax agreement >= {self.min_agreement:.0%}):",
        ]
        for c in (self.onnxruntime, self.opencv):
            if c.error:
                lines.append(f"  {c.runtime:12s} not compared: {c.error}")
            else:
                lines.append(
                    f"  {c.runtime:12s} max abs diff {c.max_abs_diff:.3g}, argmax agreement {c.argmax_agreement:.1%}"
                    f" -> {'ok' if c.within_tolerance else 'ABOVE TOLERANCE'}"
                )
        if self.batch1_max_abs_diff is not None:
            lines.append(f"  dynamic batch: batch 1 vs batch {self.samples}: max abs diff {self.batch1_max_abs_diff:.3g}")
        lines.append("PASS" if self.passed else "FAIL: ONNX Runtime's outputs differ from PyTorch's beyond tolerance")
        return "\n".join(lines)


def _torchscript_export(model, dummy, path: Path, opset: int) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (dummy,), str(path), input_names=["input"], output_names=["logits"],
            opset_version=opset, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True, dynamo=False,
        )


def _dynamo_export(model, dummy, path: Path, opset: int) -> None:
    import contextlib
    import io

    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (dummy,), str(path), input_names=["input"], output_names=["logits"],
            opset_version=max(opset, 18), dynamic_shapes=({0: batch},), dynamo=True, external_data=False,
        )


def _run_exporter(model, dummy, path: Path, opset: int, exporter: str) -> str:
    if exporter not in EXPORTERS:
        raise FetalPlanesError(f"--exporter: unknown exporter '{exporter}'", hint=f"use one of: {', '.join(EXPORTERS)}")
    errors = []
    order = ["torchscript", "dynamo"] if exporter == "auto" else [exporter]
    for name in order:
        try:
            (_torchscript_export if name == "torchscript" else _dynamo_export)(model, dummy, path, opset)
            return name
        except Exception as exc:  # each exporter raises its own types
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    raise FetalPlanesError(
        f"ONNX export failed ({'; '.join(errors)})",
        hint="try the other --exporter, or another --opset", exit_code=EXIT_FAILURE,
    )


def phantom_inputs(info: ModelInfo, n: int, seed: int = 0) -> np.ndarray:
    """``n`` phantom B-mode images of the model's classes, preprocessed by :func:`edge.preprocess.prepare`."""
    from edge.labels import BRAIN, NOT_A_BRAIN, PLANES
    from fetaldata.phantom.render import render_image
    from edge.preprocess import prepare

    rng = np.random.default_rng(seed)
    batch = []
    for i in range(n):
        label = info.task_label(i % len(info.labels))
        if label in PLANES:
            plane, brain = label, ("Trans-thalamic" if label == "Fetal brain" else NOT_A_BRAIN)
        elif label in BRAIN and label != NOT_A_BRAIN:
            plane, brain = "Fetal brain", label
        else:
            plane, brain = "Fetal abdomen", NOT_A_BRAIN
        side = max(info.input_hw)
        w = int(rng.integers(max(64, side), max(65, 3 * side)))
        h = int(w * rng.uniform(0.6, 0.8))
        batch.append(prepare(render_image(plane, brain, "Aloka", rng, w, h), info))
    return np.concatenate(batch, axis=0)


def dataset_inputs(info: ModelInfo, data: str | Path, n: int, split: str = "test", seed: int = 0) -> np.ndarray:
    """Up to ``n`` images of ``split`` (stratified), preprocessed by :func:`edge.preprocess.prepare`."""
    from fetaldata import SplitConfig, open_dataset, task_samples
    from edge.preprocess import prepare, read_gray

    db = open_dataset(data)
    samples = task_samples(db, split, SplitConfig(task=info.task, seed=seed, max_per_split=n))
    samples = [s for s in samples if s.path.is_file()]
    if not samples:
        raise FetalPlanesError(
            f"--data {data}: no image of the {split} split found to compare outputs on",
            hint="give the FETAL_PLANES_DB folder with its Images/, or leave --data out to use phantom images",
        )
    return np.concatenate([prepare(read_gray(s.path, info.gray), info) for s in samples], axis=0)


def _compare(name: str, out: np.ndarray, ref: np.ndarray, atol: float, rtol: float, min_agreement: float) -> Comparison:
    from calibration.compare_outputs import compare_outputs

    c = compare_outputs(ref, out, atol=atol, rtol=rtol, min_agreement=min_agreement)
    return Comparison(name, c.max_abs_diff, c.argmax_agreement, c.ok)


def embed_model_info(onnx_path: Path, info: ModelInfo) -> None:
    """Write ``info`` as JSON under the metadata key ``fetalplanes``; full onnx.checker check; atomic save."""
    import onnx

    model = onnx.load(str(onnx_path))
    set_onnx_model_info(model, info)
    model.doc_string = f"fetalplanes {info.task} classifier ({info.arch}); metadata key '{METADATA_KEY}'"
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise FetalPlanesError(
            f"{onnx_path}: the exported model fails onnx.checker ({str(exc).splitlines()[0][:300]})",
            hint="try the other --exporter or another --opset", exit_code=EXIT_FAILURE,
        ) from None
    tmp = onnx_path.with_name(f".{onnx_path.name}.tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    os.replace(tmp, onnx_path)


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    opset: int = 17,
    data: str | Path | None = None,
    samples: int = 16,
    exporter: str = "auto",
    atol: float = 1e-3,
    rtol: float = 1e-3,
    min_agreement: float = 1.0,
    split: str = "test",
    check_opencv: bool = True,
) -> ExportReport:
    """Export a `fetalplanes train` checkpoint to ONNX and compare its outputs with PyTorch's.

    The report's ``passed`` is False when ONNX Runtime's logits differ from PyTorch's beyond
    ``|d| <= atol + rtol*|ref|`` or argmax agreement is below ``min_agreement`` (the file is still written,
    for inspection). OpenCV DNN's outputs are reported, not gated on.
    """
    from edge.files import sha256_file
    from export.models import load_checkpoint

    t0 = time.perf_counter()
    if samples < 1:
        raise FetalPlanesError(f"--samples {samples}: must be >= 1", hint="use e.g. 16")
    if Path(out).suffix.lower() != ".onnx":
        raise FetalPlanesError(f"--out {out}: the file name must end in .onnx", hint="e.g. --out model.onnx")
    model, info, ckpt = load_checkpoint(checkpoint)
    return export_model(
        model, info, out, source=str(checkpoint), source_sha256=sha256_file(checkpoint),
        source_extra={"checkpoint": Path(checkpoint).name, "epoch": ckpt.get("epoch")}, opset=opset, data=data,
        samples=samples, exporter=exporter, atol=atol, rtol=rtol, min_agreement=min_agreement, split=split,
        check_opencv=check_opencv, t0=t0,
    )


def export_model(
    model: Any,
    info: ModelInfo,
    out: str | Path,
    *,
    source: str,
    source_sha256: str,
    source_extra: dict[str, Any] | None = None,
    opset: int = 17,
    data: str | Path | None = None,
    samples: int = 16,
    exporter: str = "auto",
    atol: float = 1e-3,
    rtol: float = 1e-3,
    min_agreement: float = 1.0,
    split: str = "test",
    check_opencv: bool = True,
    t0: float | None = None,
) -> ExportReport:
    """A PyTorch model in eval mode with its description -> ONNX at ``out``, compared with PyTorch.

    What :func:`export_onnx` does after loading the checkpoint; ``fetalplanes import-weights`` calls it
    with a model built from published weights (``source``/``source_sha256`` name the file it came from;
    the sha is stored as the description's ``checkpoint_sha256``).
    """
    import onnxruntime as ort
    import torch

    t0 = time.perf_counter() if t0 is None else t0
    if samples < 1:
        raise FetalPlanesError(f"--samples {samples}: must be >= 1", hint="use e.g. 16")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise FetalPlanesError(f"--out {out}: the file name must end in .onnx", hint="e.g. --out model.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    sha = source_sha256

    dummy = torch.zeros(info.input_shape(2), dtype=torch.float32)
    tmp = out.with_name(f".{out.name}.export{os.getpid()}")
    try:
        used = _run_exporter(model, dummy, tmp, opset, exporter)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    import onnx

    real_opset = next((o.version for o in onnx.load(str(out), load_external_data=False).opset_import if o.domain in ("", "ai.onnx")), opset)
    meta = copy.deepcopy(info)
    meta.checkpoint_sha256 = sha
    meta.input_name, meta.output_name, meta.outputs = "input", "logits", "logits"
    meta.extra = {**meta.extra, "export": {"exporter": used, "opset": real_opset, "torch": torch.__version__,
                                           **(source_extra or {})}}
    embed_model_info(out, meta)

    if data is not None:
        x = dataset_inputs(info, data, samples, split)
        source_text = f"preprocessed {split}-split images of {data}"
    else:
        x = phantom_inputs(info, samples)
        source_text = "preprocessed phantom images"
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).float().numpy()

    report = ExportReport(str(out), str(source), sha, used, int(real_opset), source_text, int(x.shape[0]), atol, rtol,
                          min_agreement)
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
        got = sess.run(["logits"], {"input": x})[0]
        report.onnxruntime = _compare("onnxruntime", got, ref, atol, rtol, min_agreement)
        one = sess.run(["logits"], {"input": x[:1]})[0]
        from calibration.compare_outputs import compare_outputs

        report.batch1_max_abs_diff = compare_outputs(got[:1], one).max_abs_diff
    except Exception as exc:
        report.onnxruntime = Comparison("onnxruntime", error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    if check_opencv:
        try:
            import cv2

            net = cv2.dnn.readNetFromONNX(str(out))
            net.setInput(x)
            report.opencv = _compare("opencv", net.forward(), ref, atol, rtol, min_agreement)
        except Exception as exc:
            report.opencv = Comparison("opencv", error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    else:
        report.opencv = Comparison("opencv", error="skipped (--no-opencv)")
    report.seconds = time.perf_counter() - t0
    return report


def write_report(report: ExportReport, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return path
