"""One entry point for ``--data``: a FETAL_PLANES_DB folder or a labelled image folder.

Both kinds offer what evaluation, comparison and calibration use: ``root``, ``records`` (of
:class:`fetaldata.Record`), ``image_path(record)``, ``load(record)`` (8-bit gray), ``csv_sha256()``,
``find_image_problems()``, ``skipped``, and splits through :func:`fetaldata.task_samples`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from edge.errors import FetalPlanesError
from fetaldata.fetal_planes_db import CSV_NAME, FetalPlanesDB
from fetaldata.labelled_folder import LABELS_CSV, LabelledFolder, is_labelled_folder

Dataset = Union[FetalPlanesDB, LabelledFolder]


def dataset_kind_of(db: Dataset) -> str:
    """``"folder"`` for a labelled folder, ``"fetal_planes_db"`` otherwise."""
    return "folder" if isinstance(db, LabelledFolder) else "fetal_planes_db"


def open_dataset(path: str | Path | Dataset, skip_missing: bool = False) -> Dataset:
    """The dataset at ``path``: a FETAL_PLANES_DB folder (``FETAL_PLANES_DB_data.csv`` + ``Images/``, or that
    CSV) or a labelled folder (``labels.csv``, or that CSV). An already open dataset is returned as is.

    ``skip_missing``: a labelled folder leaves out rows whose image is absent (listed in ``skipped``)
    instead of failing on them; a FETAL_PLANES_DB folder is opened as always (its consumers find the
    missing images of a split themselves, e.g. ``evaluate --skip-missing``).
    """
    if isinstance(path, (FetalPlanesDB, LabelledFolder)):
        return path
    p = Path(path)
    if not p.exists():
        raise FetalPlanesError(
            f"{p}: dataset folder not found",
            hint=f"give a FETAL_PLANES_DB folder ({CSV_NAME} + Images/) or a folder of images with a {LABELS_CSV} "
            "(file,plane[,brain_plane]); a phantom: `fetalplanes data phantom --out DIR`",
        )
    if (p.is_dir() and (p / CSV_NAME).is_file()) or (p.is_file() and p.name == CSV_NAME):
        return FetalPlanesDB.open(p)
    if is_labelled_folder(p):
        return LabelledFolder.open(p, skip_missing=skip_missing)
    raise FetalPlanesError(
        f"{p}: neither a FETAL_PLANES_DB folder (no {CSV_NAME}) nor a labelled folder (no {LABELS_CSV})",
        hint=f"give the FETAL_PLANES_DB release folder, or put a {LABELS_CSV} with the columns file,plane[,brain_plane] "
        "beside the images",
    )
