"""Retrospective archives: folders of images -> one CSV row per image, sorted by exam.

This is what the study's technicians did by hand for the ~55 images of each
exam. The exam is read from the file name (``Patient00001_Plane1_1_of_15.png``
-> ``Patient00001``; also ``study``, ``exam``, ``subject``, ``case``), else
from the folder the image is in; DICOM files carry it in their header
(PatientID / StudyInstanceUID).
"""

from __future__ import annotations

import csv
import glob
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.files import DICOM_SUFFIXES, IMAGE_SUFFIXES
from edge.live.outputs import check_file_writable
from edge.live.sources import natural_key

log = logging.getLogger("fetalplanes.classify")

EXAM_PATTERN = re.compile(r"(?i)(patient|subject|study|exam|case)[ _-]?(\d+)")
TOP_K = 3


@dataclass
class ClassifyResult:
    """Rows written and what happened."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    exams: int = 0
    errors: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    notes: str = ""  # what the model could not take as it is (InputNotes.summary)


def find_images(paths: Sequence[str], recursive: bool = True) -> list[Path]:
    """Files, folders (recursively) and globs -> image and DICOM files (no duplicates)."""
    found: list[Path] = []
    wanted = IMAGE_SUFFIXES + DICOM_SUFFIXES
    for item in paths:
        matches = [Path(p) for p in glob.glob(item, recursive=True)] if any(c in item for c in "*?[") else [Path(item)]
        if not matches:
            raise FetalPlanesError(f"{item}: no such file, folder or matching glob", hint="check the path")
        for path in matches:
            if path.is_dir():
                it = path.rglob("*") if recursive else path.iterdir()
                found.extend(p for p in it if p.is_file() and p.suffix.lower() in wanted)
            elif path.is_file():
                if path.suffix.lower() not in wanted:
                    raise FetalPlanesError(
                        f"{path}: not an image this command reads",
                        hint=f"give PNG/JPEG ({', '.join(IMAGE_SUFFIXES)}) or DICOM (.dcm) files, or folders of them",
                    )
                found.append(path)
            else:
                raise FetalPlanesError(f"{path}: no such file or folder", hint="check the path")
    unique = {p.resolve(): p for p in found}
    return sorted(unique.values(), key=lambda p: natural_key(str(p)))


def exam_from_name(path: Path) -> str:
    """The exam (patient/study) an image belongs to, from its name or else its folder."""
    m = EXAM_PATTERN.search(path.stem)
    if m:
        return m.group(0).replace(" ", "").replace("-", "").replace("_", "")
    for parent in path.parents:  # a folder named like an exam
        m = EXAM_PATTERN.search(parent.name)
        if m:
            return parent.name
    return path.parent.name or "."


def read_dicom(path: Path) -> tuple[np.ndarray, str]:
    """A DICOM image (the middle frame of a cine loop) as uint8 gray/BGR, and its exam id."""
    from edge.dicom import read_dicom as read_frame

    image, exam = read_frame(path)
    return image, exam or exam_from_name(path)


def _read(path: Path) -> tuple[np.ndarray, str]:
    from edge.images import decode_image

    if path.suffix.lower() in DICOM_SUFFIXES:
        return read_dicom(path)
    return decode_image(path), exam_from_name(path)


class InputNotes:
    """Says once per kind what the model cannot take as it is (images smaller than its input, so upscaled;
    channel counts it cannot read), instead of once per image; counts how often each happened."""

    def __init__(self, info: Any, source: str = "model"):
        self.info, self.source = info, source
        self.counts: dict[str, int] = {}

    def check(self, image: np.ndarray, where: str) -> None:
        """Log the first image of each kind of problem (the image itself is still tried)."""
        h, w = self.info.input_hw
        if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
            self._note("channels", f"{where}: {image.shape[2]} channels; the model reads gray, BGR or BGRA images "
                                   f"(such images are reported as errors)")
        elif image.shape[0] < h or image.shape[1] < w:
            self._note("small", f"{where}: {image.shape[1]}x{image.shape[0]} px is smaller than the model's input "
                                f"({w}x{h}): such images are upscaled, which the model never saw in training")

    def _note(self, kind: str, text: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] == 1:
            log.warning("%s (said once; the summary counts them)", text)

    def summary(self) -> str:
        names = {"channels": "with a channel count the model cannot read", "small": "smaller than the model's input"}
        return ", ".join(f"{n} images {names[k]}" for k, n in self.counts.items())


def crop_roi(image: np.ndarray, roi: Any, where: str) -> np.ndarray:
    """``image`` inside ``roi`` (an :class:`edge.live.sector.Box`, x,y,w,h); an error naming ``where`` when the
    box lies outside the image."""
    if roi is None:
        return image
    if roi.x >= image.shape[1] or roi.y >= image.shape[0]:
        raise FetalPlanesError(f"{where}: --roi {roi.x},{roi.y},{roi.w},{roi.h} lies outside the "
                               f"{image.shape[1]}x{image.shape[0]} image", hint="give the image area in this image's pixels")
    return roi.crop(image)


def classify_files(files: Sequence[Path], runner: Any, batch: int = 16, roi: Any = None) -> ClassifyResult:
    """Classify images with an activated runner -> rows sorted by exam, then file name.

    ``roi`` (an :class:`edge.live.sector.Box`): the image area to classify in every image (e.g. a
    scanner's screen grab without its text and menus). ``label`` is the most probable task label and
    ``confidence`` its probability (a model with a label map: the native probabilities summed per plane, as
    ``evaluate`` scores it); ``native_label`` is the model's own most probable label, ``top1..top3`` its
    own labels.
    """
    from edge.preprocess import prepare, to_probabilities

    if any(p.suffix.lower() in DICOM_SUFFIXES for p in files):
        from edge.dicom import check_readable

        check_readable(files)  # pydicom and a decoder for every file's compression: fail early, before hours of work
    info = runner.info
    labels = list(info.labels)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], np.ndarray]] = []
    result = ClassifyResult()
    notes = InputNotes(info)

    def run(items: list[tuple[dict[str, Any], np.ndarray]]) -> None:
        nonlocal batch
        x = np.concatenate([t for _, t in items], axis=0)
        try:
            probs = to_probabilities(runner.infer(x), info)
        except Exception:
            if len(items) == 1:
                raise
            batch = 1  # a model exported with a fixed batch of 1
            for item in items:
                run([item])
            return
        for (row, _), p in zip(items, probs):
            order = np.argsort(-p)[:TOP_K]
            _, row["label"], conf = info.task_decision(p)  # as evaluate scores it: the most probable task label
            row["native_label"] = labels[order[0]]
            row["confidence"] = round(conf, 4)
            for k, i in enumerate(order, 1):
                row[f"top{k}"] = labels[i]
                row[f"top{k}_p"] = round(float(p[i]), 4)

    for path in files:
        row: dict[str, Any] = {"exam": "", "file": str(path), "label": "", "confidence": "", "width": "", "height": "", "error": ""}
        try:
            image, row["exam"] = _read(path)
            row["height"], row["width"] = image.shape[:2]
            image = crop_roi(image, roi, str(path))
            notes.check(image, str(path))
            pending.append((row, prepare(image, info)))
        except FetalPlanesError as exc:
            row["exam"] = exam_from_name(path)
            row["error"] = exc.message
            result.errors += 1
        rows.append(row)
        if len(pending) >= batch:
            run(pending)
            pending = []
    if pending:
        run(pending)
    rows.sort(key=lambda r: (natural_key(r["exam"]), natural_key(r["file"])))
    result.rows = rows
    result.exams = len({r["exam"] for r in rows})
    for r in rows:
        if r["label"]:
            result.counts[r["label"]] = result.counts.get(r["label"], 0) + 1
    result.notes = notes.summary()
    return result


def _columns() -> list[str]:
    columns = ["exam", "file", "label", "native_label", "confidence"]
    for k in range(1, TOP_K + 1):
        columns += [f"top{k}", f"top{k}_p"]
    return columns + ["width", "height", "error"]


def write_csv(rows: Iterable[dict[str, Any]], out: str | Path) -> None:
    """Write rows (columns: exam, file, label, native_label, confidence, top1..top3 with _p, width, height, error).

    A file is written beside ``out`` and renamed over it when complete, so a full disk never leaves a
    half CSV; a failure is a FetalPlanesError (exit 1) naming the file.
    """
    if str(out) == "-":
        _write_rows(sys.stdout, rows)
        return
    path = Path(out)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            _write_rows(f, rows)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise FetalPlanesError(
            f"--out {out}: cannot write the results ({exc.strerror or exc}); nothing was written",
            hint="free space or choose another --out, and run again",
            exit_code=EXIT_FAILURE,
        ) from None


def _write_rows(f: Any, rows: Iterable[dict[str, Any]]) -> None:
    w = csv.DictWriter(f, fieldnames=_columns(), extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow(row)


def classify_paths(paths: Sequence[str], model: str, out: str, batch: int = 16, providers: Sequence[str] = ("cpu",),
                   roi: Any = None, announce: bool = False) -> ClassifyResult:
    """The whole `fetalplanes classify`: find images, classify (inside ``roi``, a Box, when given), write the CSV."""
    from edge.backends import open_runner
    from edge.backends.loader import model_kind

    if str(out) != "-":
        check_file_writable(out, f"--out {out}")
    files = find_images(paths)
    if not files:
        raise FetalPlanesError(
            f"no PNG/JPEG/DICOM images under {', '.join(paths)}",
            hint=f"give folders or globs of images ({', '.join(IMAGE_SUFFIXES + DICOM_SUFFIXES)})",
        )
    options = {"providers": list(providers)} if model_kind(model) == "onnx" else {}
    with open_runner(model, **options) as runner:
        if announce:  # the default model: say which it is
            from edge.default_model import describe_model

            print(describe_model(runner.info, model), file=sys.stderr)
        result = classify_files(files, runner, batch=batch, roi=roi)
    write_csv(result.rows, out)
    return result
