"""FETAL_PLANES_DB as released: reader, tasks and splits, checks, and the synthetic phantom."""

from edge.data.fetal_planes_db import CSV_NAME, FetalPlanesDB, Record  # noqa: F401
from edge.data.splits import Sample, SplitConfig, split_patients, task_samples  # noqa: F401
