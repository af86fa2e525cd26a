"""A labelled image folder: images plus a ``labels.csv``, usable wherever ``--data`` takes FETAL_PLANES_DB.

Layout: ``DIR/labels.csv`` with a header and the columns ``file`` and ``plane`` (``brain_plane``
optional; any other column is ignored, e.g. HC18's ``pixel_size_mm`` or SonoNet's ``sononet_label``),
comma-separated (``;`` and tab are accepted too). ``file`` is the image's path relative to ``DIR``
(with its extension; subfolders allowed). ``plane`` is one of FETAL_PLANES_DB's six planes
(``edge.labels.PLANES``, case-insensitive); ``brain_plane`` one of the brain sub-planes, ``Other`` or
``Not A Brain``. Without a ``brain_plane``, brain images count as sub-plane ``Other`` (left out of the
``brain`` task) and the others as ``Not A Brain``.

A folder has no patients and no study split, so:

* every image is its own "patient" (the CSV line number), ``operator``/``machine`` are empty and
  ``train`` is False (there is no study split);
* split ``test`` is **every image** (``evaluate`` and ``compare`` report on the whole folder by default);
* splits ``train`` and ``val`` are a deterministic hold-out of the same images: per plane, the images
  ordered by a seeded hash of their file name, the first half (rounded up) is ``train``, the rest ``val``.
  ``quantize`` calibrates on ``train`` and checks on ``val``, so its check images are held out from
  calibration; ``compare --split val`` compares on images calibration did not see. ``test`` overlaps
  both: never present an evaluation on ``test`` of a model trained or calibrated on the same folder as
  held out.

Bad rows are a :class:`edge.errors.FetalPlanesError` (exit 2) naming the CSV, the line and the fix: a
missing column, an empty or duplicate ``file``, an unknown plane or sub-plane, a contradiction, and an
image file that is not there (``skip_missing=True`` leaves such rows out and lists them in ``skipped``).
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from edge.errors import FetalPlanesError
from edge.labels import BRAIN, BRAIN_OTHER, NOT_A_BRAIN, PLANES
from fetaldata.fetal_planes_db import Record

LABELS_CSV = "labels.csv"
REQUIRED = ("file", "plane")
#: share of each plane's images in the ``train`` (calibration) part of the hold-out; the rest is ``val``
HOLDOUT_TRAIN_FRACTION = 0.5
_PLANES = {p.lower(): p for p in PLANES}
_BRAIN_VALUES = {b.lower(): b for b in (*BRAIN, BRAIN_OTHER)}


def is_labelled_folder(path: str | Path) -> bool:
    """True for a folder holding a ``labels.csv`` (or the path of such a ``labels.csv``)."""
    p = Path(path)
    return (p.is_dir() and (p / LABELS_CSV).is_file()) or (p.is_file() and p.name == LABELS_CSV)


def _fail(csv_path: Path, line: int | None, what: str, hint: str) -> FetalPlanesError:
    return FetalPlanesError(f"{csv_path}" + (f", line {line}" if line else "") + f": {what}", hint=hint)


def read_labels(csv_path: str | Path, check_files: bool = True, skip_missing: bool = False) -> tuple[list[Record], list[str]]:
    """Parse and validate ``labels.csv`` -> (records, paths of skipped rows' missing images)."""
    csv_path = Path(csv_path)
    root = csv_path.parent
    text = csv_path.read_text(encoding="utf-8-sig", errors="replace")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise _fail(csv_path, 1, "the file is empty", "write a header line 'file,plane' and one row per image")
    header_line = lines[0]
    delimiter = max((",", ";", "\t"), key=header_line.count)
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise _fail(csv_path, 1, f"missing column(s) {', '.join(missing)} (found: {', '.join(header)})",
                    "labels.csv needs a header with the columns file,plane (brain_plane optional)")
    i_file, i_plane = header.index("file"), header.index("plane")
    i_brain = header.index("brain_plane") if "brain_plane" in header else None
    records: list[Record] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        need = max(i_file, i_plane, i_brain or 0) + 1
        if len(row) < need:
            raise _fail(csv_path, line, f"{len(row)} field(s), the header needs at least {need}",
                        f"fill in every column of the header ({delimiter!r}-separated)")
        name = row[i_file].strip()
        if not name:
            raise _fail(csv_path, line, "empty file name", "give the image's path relative to the folder")
        if name in seen:
            raise _fail(csv_path, line, f"duplicate file '{name}' (first on line {seen[name]})",
                        "each image must appear once: remove the duplicate row")
        seen[name] = line
        plane_raw = row[i_plane].strip()
        plane = _PLANES.get(plane_raw.lower())
        if plane is None:
            raise _fail(csv_path, line, f"file '{name}': unknown plane '{plane_raw}'",
                        f"plane must be one of: {', '.join(PLANES)}")
        brain_raw = row[i_brain].strip() if i_brain is not None else ""
        if brain_raw:
            brain = _BRAIN_VALUES.get(brain_raw.lower())
            if brain is None:
                raise _fail(csv_path, line, f"file '{name}': unknown brain_plane '{brain_raw}'",
                            f"brain_plane must be one of: {', '.join((*BRAIN, BRAIN_OTHER))} (or empty)")
            if (plane == "Fetal brain") == (brain == NOT_A_BRAIN):
                raise _fail(csv_path, line, f"file '{name}': plane '{plane}' contradicts brain_plane '{brain}'",
                            f"brain images need a sub-plane (or Other); other planes need '{NOT_A_BRAIN}' or empty")
        else:
            brain = BRAIN_OTHER if plane == "Fetal brain" else NOT_A_BRAIN
        if check_files and not (root / name).is_file():
            if skip_missing:
                skipped.append(str(root / name))
                continue
            raise _fail(csv_path, line, f"image file '{name}' not found ({root / name})",
                        "put the image into the folder, fix its name, remove the row, or pass --skip-missing")
        records.append(Record(name, line, plane, brain, "", "", False, line))
    if not records:
        raise _fail(csv_path, None, "no image rows" + (f" ({len(skipped)} listed images missing)" if skipped else ""),
                    "add one row per image: file,plane")
    return records, skipped


def holdout(records: list[Record], seed: int = 0, train_fraction: float = HOLDOUT_TRAIN_FRACTION) -> set[str]:
    """File names of the ``train`` part of the deterministic hold-out (per plane, seeded hash order)."""
    by_plane: dict[str, list[Record]] = {}
    for r in records:
        by_plane.setdefault(r.plane, []).append(r)
    chosen: set[str] = set()
    for plane in sorted(by_plane):
        ordered = sorted(by_plane[plane],
                         key=lambda r: hashlib.sha256(f"fetalplanes-holdout-{seed}:{r.image_name}".encode()).hexdigest())
        chosen.update(r.image_name for r in ordered[: math.ceil(train_fraction * len(ordered))])
    return chosen


@dataclass
class LabelledFolder:
    """A folder of images with ``labels.csv``: the interface of :class:`fetaldata.FetalPlanesDB` that
    evaluation, comparison and calibration use (records, image paths, loading, splits, a fingerprint)."""

    root: Path
    records: list[Record]
    skipped: list[str] = field(default_factory=list)
    kind: str = "folder"

    @classmethod
    def open(cls, root: str | Path, skip_missing: bool = False) -> "LabelledFolder":
        """Read ``root/labels.csv`` (``root`` may also be the CSV itself); see the module docstring."""
        root = Path(root)
        if root.is_file() and root.name == LABELS_CSV:
            root = root.parent
        csv_path = root / LABELS_CSV
        if not csv_path.is_file():
            raise FetalPlanesError(f"{root}: no {LABELS_CSV} in this folder",
                                   hint="a labelled folder needs labels.csv with the columns file,plane[,brain_plane]")
        records, skipped = read_labels(csv_path, skip_missing=skip_missing)
        return cls(root, records, skipped)

    @property
    def csv_path(self) -> Path:
        return self.root / LABELS_CSV

    def image_path(self, record: Record) -> Path:
        return self.root / record.image_name

    def load(self, record: Record, gray: str = "luma") -> np.ndarray:
        """The record's image as 8-bit gray (H, W) (``gray``: a model's ``ModelInfo.gray``)."""
        from edge.preprocess import read_gray

        return read_gray(self.image_path(record), gray)

    def patients(self) -> list[int]:
        return sorted({r.patient for r in self.records})

    def csv_sha256(self) -> str:
        return hashlib.sha256(self.csv_path.read_bytes()).hexdigest()

    def split_records(self, split: str, config) -> list[Record]:
        """``test``: every image; ``train``/``val``: the two parts of the seeded hold-out (see the module)."""
        if split == "test":
            return list(self.records)
        train = holdout(self.records, config.seed)
        return [r for r in self.records if (r.image_name in train) == (split == "train")]

    def find_image_problems(self, records: Iterable[Record] | None = None, decode: bool = True) -> dict[str, list[str]]:
        """Images listed but missing, or present but unreadable: {'missing': [...], 'unreadable': [...]}."""
        from fetaldata.fetal_planes_db import find_image_problems

        return find_image_problems(self, records, decode)
