"""FETAL_PLANES_DB as released: reader, tasks and splits, checks, and the synthetic phantom."""

from fetaldata.fetal_planes_db import CSV_NAME, FetalPlanesDB, Record  # noqa: F401
from fetaldata.splits import Sample, SplitConfig, split_patients, task_samples  # noqa: F401
