"""Reader for a FETAL_PLANES_DB folder, exactly as released on Zenodo (record 3904280).

Layout: ``DIR/FETAL_PLANES_DB_data.csv`` (``;``-separated, columns
``Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train``) and
``DIR/Images/<Image_name>.png``. Quirks accepted: trailing spaces in ``Train``
values and in the header, ``Not A Brain`` on non-brain rows, ``Other`` for brain
images outside the three sub-planes, a UTF-8 BOM, CRLF line ends.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from edge.errors import FetalPlanesError
from edge.files import sha256_file, strip_image_suffix
from edge.labels import BRAIN, BRAIN_OTHER, NOT_A_BRAIN, PLANES

CSV_NAME = "FETAL_PLANES_DB_data.csv"
IMAGES_DIR = "Images"
COLUMNS = ("Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train")
BRAIN_PLANE_VALUES = set(BRAIN) | {BRAIN_OTHER}


@dataclass(frozen=True)
class Record:
    """One row of the CSV (values stripped of the release's stray spaces)."""

    image_name: str
    patient: int
    plane: str
    brain_plane: str
    operator: str
    machine: str
    train: bool
    row: int  # 1-based line number in the CSV, for messages


def _fail(csv_path: Path, row: int | None, what: str, hint: str) -> FetalPlanesError:
    where = f"{csv_path}" + (f", line {row}" if row else "")
    return FetalPlanesError(f"{where}: {what}", hint=hint)


def read_csv(csv_path: str | Path) -> list[Record]:
    """Parse and validate the metadata CSV; one clear error per problem found first."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FetalPlanesError(
            f"{csv_path}: metadata CSV not found",
            hint=f"point --data to the FETAL_PLANES_DB folder that holds {CSV_NAME} and Images/ "
            "(or make a phantom with `fetalplanes data phantom --out DIR`)",
        )
    raw = csv_path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text": UTF-16 with a byte-order mark
        text = raw.decode("utf-16", errors="replace")
    elif raw.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")) or b"\0" in raw[:4096]:
        kind = "an Excel workbook (.xlsx/.xls)" if raw[:2] in (b"PK", b"\xd0\xcf") else "binary data"
        raise _fail(csv_path, None, f"not a text CSV: the file holds {kind}",
                    "save it as 'CSV (semicolon-separated)' / text, or use the CSV from the dataset release")
    else:
        text = raw.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise _fail(csv_path, 1, "the file is empty", "use the CSV from the dataset release")
    header_line = lines[0]
    if ";" not in header_line:
        sep = "," if "," in header_line else ("\t" if "\t" in header_line else None)
        raise _fail(
            csv_path,
            1,
            "the header is not ';'-separated" + (f" (it looks {sep!r}-separated)" if sep else ""),
            "the release uses ';' as separator: re-save the file with ';' or use the original CSV",
        )
    reader = csv.reader(lines, delimiter=";")
    header = [h.strip() for h in next(reader)]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise _fail(
            csv_path,
            1,
            f"missing column(s) {', '.join(missing)} (found: {', '.join(header)})",
            f"the CSV needs the columns {';'.join(COLUMNS)}",
        )
    idx = {c: header.index(c) for c in COLUMNS}
    records: list[Record] = []
    seen: dict[str, int] = {}
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise _fail(
                csv_path, lineno, f"{len(row)} fields where the header has {len(header)}",
                "every row needs all seven ';'-separated fields",
            )
        v = {c: row[i].strip() for c, i in idx.items()}
        name = v["Image_name"]
        name = strip_image_suffix(name)
        if not name:
            raise _fail(csv_path, lineno, "empty Image_name", "fill in the image's file name (without .png)")
        if name in seen:
            raise _fail(
                csv_path, lineno, f"duplicate Image_name '{name}' (first on line {seen[name]})",
                "each image must appear once: remove the duplicate row",
            )
        seen[name] = lineno
        try:
            patient = int(v["Patient_num"])
        except ValueError:
            raise _fail(
                csv_path, lineno, f"Patient_num '{v['Patient_num']}' is not an integer", "use the patient's number"
            ) from None
        if v["Plane"] not in PLANES:
            raise _fail(
                csv_path, lineno, f"unknown Plane '{v['Plane']}'", f"Plane must be one of: {', '.join(PLANES)}"
            )
        brain = v["Brain_plane"]
        if brain not in BRAIN_PLANE_VALUES:
            raise _fail(
                csv_path, lineno, f"unknown Brain_plane '{brain}'",
                f"Brain_plane must be one of: {', '.join(sorted(BRAIN_PLANE_VALUES))}",
            )
        if (v["Plane"] == "Fetal brain") == (brain == NOT_A_BRAIN):
            raise _fail(
                csv_path, lineno, f"Plane '{v['Plane']}' contradicts Brain_plane '{brain}'",
                f"brain images need a sub-plane; other planes need '{NOT_A_BRAIN}'",
            )
        if v["Train"] not in ("0", "1"):
            raise _fail(csv_path, lineno, f"Train '{row[idx['Train']]}' is not 0 or 1", "Train is 1 (train) or 0 (test)")
        records.append(
            Record(name, patient, v["Plane"], brain, v["Operator"], v["US_Machine"], v["Train"] == "1", lineno)
        )
    if not records:
        raise _fail(csv_path, None, "no data rows", "use the CSV from the dataset release")
    by_patient: dict[int, bool] = {}
    for r in records:
        if by_patient.setdefault(r.patient, r.train) != r.train:
            raise _fail(
                csv_path, r.row, f"patient {r.patient} is in both the train and the test split",
                "a patient's rows must all have the same Train value",
            )
    return records


@dataclass
class FetalPlanesDB:
    """A FETAL_PLANES_DB folder: its records and where their images are."""

    root: Path
    records: list[Record]
    skipped: list[str] = field(default_factory=list)  # image paths left out by skip_missing

    @classmethod
    def open(cls, root: str | Path, skip_missing: bool = False) -> "FetalPlanesDB":
        """Read the folder's CSV. ``skip_missing``: leave out (and count in ``skipped``) rows whose image
        file is absent, instead of failing when that image is read."""
        root = Path(root)
        if not root.exists():
            raise FetalPlanesError(
                f"{root}: dataset folder not found",
                hint="give the FETAL_PLANES_DB folder (with FETAL_PLANES_DB_data.csv and Images/), "
                "or make one with `fetalplanes data phantom --out DIR`",
            )
        if root.is_file() and root.name.endswith(".csv"):
            root = root.parent
        db = cls(root, read_csv(root / CSV_NAME))
        if skip_missing:
            present = {p.name for p in (root / IMAGES_DIR).glob("*.png")} if (root / IMAGES_DIR).is_dir() else set()
            kept = [r for r in db.records if f"{r.image_name}.png" in present]
            db.skipped = [str(db.image_path(r)) for r in db.records if f"{r.image_name}.png" not in present]
            db.records = kept
        return db

    def image_path(self, record: Record) -> Path:
        return self.root / IMAGES_DIR / f"{record.image_name}.png"

    def load(self, record: Record, gray: str = "luma") -> np.ndarray:
        """The record's image as 8-bit gray (H, W) (``gray``: a model's ``ModelInfo.gray``)."""
        from edge.preprocess import read_gray

        return read_gray(self.image_path(record), gray)

    def patients(self) -> list[int]:
        return sorted({r.patient for r in self.records})

    def csv_sha256(self) -> str:
        return sha256_file(self.root / CSV_NAME)

    def find_image_problems(self, records: Iterable[Record] | None = None, decode: bool = True) -> dict[str, list[str]]:
        """Images listed but missing, or present but unreadable: {'missing': [...], 'unreadable': [...]}."""
        return find_image_problems(self, records, decode)


def find_image_problems(dataset, records: Iterable[Record] | None = None, decode: bool = True) -> dict[str, list[str]]:
    """A dataset's images listed but missing, or present but unreadable (the one image decoder, ``edge.images``):
    {'missing': [...], 'unreadable': [...]}. Any dataset with ``records`` and ``image_path(record)``."""
    from edge.images import decode_image

    problems: dict[str, list[str]] = {"missing": [], "unreadable": []}
    for r in records if records is not None else dataset.records:
        p = dataset.image_path(r)
        if not p.is_file():
            problems["missing"].append(str(p))
        elif decode:
            try:
                decode_image(p)
            except FetalPlanesError:
                problems["unreadable"].append(str(p))
    return problems
