"""Table 4: transfer across operator/machine groups: train on one group, test on every group, plus all sources."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fetaldata import FetalPlanesDB, task_samples
from export.experiments.config import ExperimentConfig
from export.experiments.runs import Trainer, run_subrun, split_config_for
from export.experiments.tables import header_lines, load_published, markdown_table, pct, study_notice, write_table

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


def _label(g: tuple[str, str]) -> str:
    return f"{g[0]} / {g[1]}"


def _slug(g: tuple[str, str]) -> str:
    return "".join(c if c.isalnum() else "-" for c in f"{g[0]}_{g[1]}").strip("-").lower()


def run(config: ExperimentConfig, trainer: Trainer) -> dict[str, Path]:
    published = load_published()
    paper = published.get(NAME, {}).get("top1_error", {})
    notice, fp = study_notice(config)
    db = FetalPlanesDB.open(config.data)
    groups = groups_with_enough_images(db, config.quick)
    arch = config.main_arch()
    trained_on: list[tuple[str, tuple | None]] = [(_slug(g), (g,)) for g in groups] + [("all", None)]
    # evaluate only on groups that have test images in the (possibly capped) test split
    test = task_samples(db, "test", split_config_for(config.spec("probe", arch)))
    present = {(s.record.operator, s.record.machine) for s in test}
    tested = [g for g in groups if g in present]
    evaluations = {_slug(g): (lambda s, g=g: (s.record.operator, s.record.machine) == g) for g in tested}
    evaluations["all"] = None
    headers = ["trained on \\ tested on", *[_label(g) for g in tested], "all test images"]
    rows, records = [], []
    for slug, train_group in trained_on:
        spec = config.spec(f"train-{slug}", arch, train_group=train_group)
        rec = run_subrun(NAME, spec, config, trainer, evaluations=evaluations)
        name = _label(train_group[0]) if train_group else "all sources"
        cells = []
        for ev in [*(_slug(g) for g in tested), "all"]:
            ours = rec["evaluations"][ev]["metrics"]["top1_error"]
            theirs = paper.get(name, {}).get(ev) if isinstance(paper.get(name), dict) else None
            cells.append(f"{pct(ours)} ({pct(theirs)})")
        rows.append([name, *cells])
        records.append({"trained_on": name, "result": rec})
    md = header_lines(f"Table 4: transfer between operator/machine groups ({arch}); top-1 error %, ours (paper)",
                      notice, config, published)
    md += [markdown_table(headers, rows), "",
           f"Groups: operator/machine pairs with at least {MIN_IMAGES} images in the release "
           "(threshold scaled to the dataset's size on smaller data): "
           + ", ".join(f"{_label(g)}" for g in groups) + ".", ""]
    if len(tested) < len(groups):
        md += ["Groups without test images in this (capped) split are left out of the columns.", ""]
    return write_table(config.out / NAME, NAME, "\n".join(md), headers, rows,
                       {"experiment": NAME, "arch": arch, "groups": groups, "split_fingerprint": fp,
                        "notice": notice, "rows": records})
