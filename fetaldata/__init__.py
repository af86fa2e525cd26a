"""Datasets: FETAL_PLANES_DB as released, labelled image folders, tasks and splits, checks, the phantom."""

from fetaldata.fetal_planes_db import CSV_NAME, FetalPlanesDB, Record  # noqa: F401
from fetaldata.splits import Sample, SplitConfig, split_patients, task_samples  # noqa: F401
from fetaldata.labelled_folder import LABELS_CSV, LabelledFolder  # noqa: F401
from fetaldata.datasets import Dataset, open_dataset  # noqa: F401
