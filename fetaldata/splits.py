"""Tasks and splits of the study's protocol.

- ``test``: the CSV's ``Train`` = 0 patients (second half, chronologically).
- ``val``: 10 % of the ``Train`` = 1 patients, chosen per patient with a seed.
- ``train``: the other ``Train`` = 1 patients.
No patient is ever in two splits. The ``brain`` task keeps brain images of the
three sub-planes (sub-plane ``Other`` left out) and, in the training split,
adds 500 random images of other planes as ``Not A Brain`` (as in the paper);
its val/test splits add every non-brain image of their patients, unless
``brain_extra_eval`` limits them.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from fetaldata.fetal_planes_db import FetalPlanesDB, Record
from edge.errors import FetalPlanesError
from edge.labels import BRAIN, BRAIN_OTHER, NOT_A_BRAIN, PLANES, labels_for

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """How to cut the dataset; part of every run's fingerprint."""

    task: str = "planes"
    seed: int = 0
    val_fraction: float = 0.1
    brain_extra: int = 500  # non-brain images added to the brain task's training split
    brain_extra_eval: int | None = None  # same for val/test (None: all of their patients' images)
    max_train_patients: int | None = None  # learning curve: keep the first N training patients
    max_per_split: int | None = None  # quick runs: at most this many images per split (stratified)

    def validate(self) -> None:
        labels_for(self.task)
        if not 0.0 <= self.val_fraction < 1.0:
            raise FetalPlanesError(f"val_fraction {self.val_fraction} not in [0, 1)", hint="use e.g. 0.1")


@dataclass(frozen=True)
class Sample:
    """One image of a task's split, with its label index."""

    path: Path
    label: int
    record: Record


def split_patients(records: list[Record], val_fraction: float = 0.1, seed: int = 0) -> dict[str, list[int]]:
    """Patients per split: train/val from ``Train`` = 1 (val: seeded, patient-level), test from ``Train`` = 0."""
    train_p = sorted({r.patient for r in records if r.train})
    test_p = sorted({r.patient for r in records if not r.train})
    rng = random.Random(f"fetalplanes-val-{seed}")
    shuffled = train_p[:]
    rng.shuffle(shuffled)
    n_val = int(round(val_fraction * len(train_p)))
    if val_fraction > 0 and len(train_p) >= 2:
        n_val = max(1, min(n_val, len(train_p) - 1))
    val_p = sorted(shuffled[:n_val])
    val_set = set(val_p)
    return {"train": [p for p in train_p if p not in val_set], "val": val_p, "test": test_p}


def _label(record: Record, task: str) -> int | None:
    if task == "planes":
        return PLANES.index(record.plane)
    if record.brain_plane == BRAIN_OTHER:
        return None
    return BRAIN.index(record.brain_plane)


def _stratified_cap(samples: list[Sample], cap: int, seed: int) -> list[Sample]:
    """At most ``cap`` samples, classes kept in proportion (round-robin over shuffled classes)."""
    if len(samples) <= cap:
        return samples
    rng = random.Random(f"fetalplanes-cap-{seed}")
    by_class: dict[int, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    for v in by_class.values():
        rng.shuffle(v)
    out: list[Sample] = []
    while len(out) < cap:
        for label in sorted(by_class):
            if by_class[label] and len(out) < cap:
                out.append(by_class[label].pop())
    return sorted(out, key=lambda s: s.record.row)


def task_samples(db: FetalPlanesDB, split: str, config: SplitConfig = SplitConfig()) -> list[Sample]:
    """The samples of ``split`` for ``config.task``, in CSV order (deterministic).

    ``db`` is a FETAL_PLANES_DB folder (patient splits above) or a labelled folder
    (``fetaldata.labelled_folder``: ``test`` = every image, ``train``/``val`` = a seeded hold-out).
    """
    config.validate()
    if split not in SPLITS:
        raise FetalPlanesError(f"unknown split '{split}'", hint=f"use one of: {', '.join(SPLITS)}")
    if hasattr(db, "split_records"):  # a labelled folder (fetaldata.labelled_folder): its own split rule
        rows = db.split_records(split, config)
    else:
        patients = split_patients(db.records, config.val_fraction, config.seed)
        keep = patients[split]
        if split == "train" and config.max_train_patients is not None:
            keep = keep[: config.max_train_patients]  # chronological order, as the paper's learning curve
        keep_set = set(keep)
        rows = [r for r in db.records if r.patient in keep_set]
    samples: list[Sample] = []
    if config.task == "planes":
        samples = [Sample(db.image_path(r), _label(r, "planes"), r) for r in rows]
    else:
        brain = [r for r in rows if r.brain_plane not in (NOT_A_BRAIN, BRAIN_OTHER)]
        others = [r for r in rows if r.brain_plane == NOT_A_BRAIN]
        n_extra = config.brain_extra if split == "train" else config.brain_extra_eval
        if n_extra is not None and n_extra < len(others):
            rng = random.Random(f"fetalplanes-brain-extra-{config.seed}-{split}")
            others = sorted(rng.sample(others, n_extra), key=lambda r: r.row)
        chosen = sorted(brain + others, key=lambda r: r.row)
        samples = [Sample(db.image_path(r), _label(r, "brain"), r) for r in chosen]
    if config.max_per_split is not None:
        samples = _stratified_cap(samples, config.max_per_split, config.seed)
    return samples


def fingerprint(db: FetalPlanesDB, config: SplitConfig) -> str:
    """A short hash of the CSV's content and the split configuration (stable across machines)."""
    h = hashlib.sha256()
    h.update(db.csv_sha256().encode())
    h.update(json.dumps(asdict(config), sort_keys=True).encode())
    return h.hexdigest()[:16]
