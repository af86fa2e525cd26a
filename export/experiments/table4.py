"""Table 4: transfer across operator/machine groups: train on one group, test on every group, plus all sources."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fetaldata import FetalPlanesDB, task_samples
from export.experiments.config import ExperimentConfig
from export.experiments.runs import Trainer, run_subrun, split_config_for
from export.experiments.study import STUDY_ARCH, architecture_line, study_arch
from export.experiments.tables import (
    delta, header_lines, load_published, markdown_table, pct, study_notice, write_table,
)

NAME = "table4"
MIN_IMAGES = 2000  # the study's threshold on the full release (12,400 images)
RELEASE_IMAGES = 12400


def groups_with_enough_images(db: FetalPlanesDB, quick: bool) -> list[tuple[str, str]]:
    """(operator, machine) groups with >= 2,000 images (scaled to the dataset's size in quick mode), largest first."""
    counts = Counter((r.operator, r.machine) for r in db.records)
    threshold = MIN_IMAGES
    if quick or len(db.records) < RELEASE_IMAGES // 2:
        threshold = max(1, round(MIN_IMAGES * len(db.records) / RELEASE_IMAGES))
    return [g for g, n in counts.most_common() if n >= threshold]


def group_counts(db: FetalPlanesDB, groups: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, int]]:
    """Images of each (operator, machine) group in the CSV's training half (``Train`` = 1) and test half.

    These are the study's Table 4 counts. Our training of a group also sets about 10 % of its training
    patients apart for validation (as for every model), so it fits on about 90 % of ``train_images``.
    """
    out = {g: {"train_images": 0, "test_images": 0} for g in groups}
    for r in db.records:
        g = (r.operator, r.machine)
        if g in out:
            out[g]["train_images" if r.train else "test_images"] += 1
    return out


def study_groups(published: dict) -> dict[tuple[str, str] | None, dict]:
    """The study's Table 4 groups by (operator, machine); None for ALL."""
    out: dict[tuple[str, str] | None, dict] = {}
    for g in published.get(NAME, {}).get("groups", []):
        key = (g["operator"], g["machine"]) if g.get("operator") else None
        out[key] = g
    return out


def _label(g: tuple[str, str]) -> str:
    return f"{g[0]} / {g[1]}"


def _slug(g: tuple[str, str]) -> str:
    return "".join(c if c.isalnum() else "-" for c in f"{g[0]}_{g[1]}").strip("-").lower()


def run(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    published = load_published()
    paper = published.get(NAME, {}).get("top1_error", {})
    theirs = study_groups(published)
    notice, fp = study_notice(config)
    db = FetalPlanesDB.open(config.data)
    order = [k for k in theirs if k is not None]  # the study's column order where it has the group
    groups = sorted(groups_with_enough_images(db, config.quick),
                    key=lambda g: order.index(g) if g in order else len(order))
    counts = group_counts(db, groups)
    arch = config.main_arch(study_arch(NAME))
    trained_on: list[tuple[str, tuple | None]] = [(_slug(g), (g,)) for g in groups] + [("all", None)]
    # evaluate only on groups that have test images in the (possibly capped) test split
    test = task_samples(db, "test", split_config_for(config.spec("probe", arch)))
    present = {(s.record.operator, s.record.machine) for s in test}
    tested = [g for g in groups if g in present]
    evaluations = {_slug(g): (lambda s, g=g: (s.record.operator, s.record.machine) == g) for g in tested}
    evaluations["all"] = None

    def study_key(g: tuple[str, str] | None) -> str | None:
        return theirs[g]["key"] if g in theirs else None

    headers = ["trained on \\ tested on", *[_label(g) for g in tested], "all test images"]
    rows, records = [], []
    for slug, train_group in trained_on:
        spec = config.spec(f"train-{slug}", arch, train_group=train_group)
        rec = run_subrun(NAME, spec, config, trainer, evaluations=evaluations)
        name = _label(train_group[0]) if train_group else "all sources"
        row_key = study_key(train_group[0] if train_group else None)
        cells, cell_data = [], {}
        for g, ev in [*((g, _slug(g)) for g in tested), (None, "all")]:
            ours = rec["evaluations"][ev]["metrics"]["top1_error"]
            col_key = study_key(g)
            study = paper.get(row_key, {}).get(col_key) if row_key and col_key else None
            d = delta(ours, study)
            cells.append(f"{pct(ours)} ({pct(study)}{'; ' + d if d else ''})")
            cell_data[ev] = {"ours": ours, "study": study}
        rows.append([name, *cells])
        records.append({"trained_on": name, "study_group": row_key, "cells": cell_data, "result": rec})
    count_rows = []
    for g in groups:
        t = theirs.get(g, {})
        count_rows.append([_label(g), t.get("paper_name", "–"), counts[g]["train_images"],
                           t.get("train_images", "–"), counts[g]["test_images"], t.get("test_images", "–")])
    all_t = theirs.get(None, {})
    count_rows.append(["all sources", all_t.get("paper_name", "–"), sum(r.train for r in db.records),
                       all_t.get("train_images", "–"), sum(not r.train for r in db.records),
                       all_t.get("test_images", "–")])
    md = header_lines(f"Table 4: transfer between operator/machine groups ({arch}); top-1 error %, ours (study; Δ)",
                      notice, config, published, architecture_line(NAME, arch, config))
    md += [markdown_table(headers, rows), "",
           f"Groups: operator/machine pairs with at least {MIN_IMAGES} images in the release "
           "(threshold scaled to the dataset's size on smaller data): "
           + ", ".join(f"{_label(g)}" for g in groups) + ". The study's: operators 1 and 2 always on a "
           "Voluson E6, operator 3 only on an Aloka.", ""]
    if len(tested) < len(groups):
        md += ["Groups without test images in this (capped) split are left out of the columns.", ""]
    md += ["Images per group (the CSV's training half, Train = 1, and test half), ours beside the study's; "
           "each model trains on about 90 % of its training images (10 % of the patients validate):", "",
           markdown_table(["group", "study's group", "training images", "(study)", "test images", "(study)"],
                          count_rows), ""]
    return write_table(config.out / NAME, NAME, "\n".join(md), headers, rows,
                       {"experiment": NAME, "arch": arch, "study_arch": STUDY_ARCH[NAME], "groups": groups,
                        "group_counts": {_label(g): c for g, c in counts.items()}, "split_fingerprint": fp,
                        "notice": notice, "rows": records})
