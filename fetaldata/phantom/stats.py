"""Statistics of the real FETAL_PLANES_DB CSV that the phantom imitates.

They were computed once from the release's ``FETAL_PLANES_DB_data.csv`` with
:func:`compute_stats` and are committed as ``real_csv_stats.json`` beside this
module, so that making a phantom never needs the real data. To refresh them::

    python -m fetaldata.phantom.stats ../shared/data/fetal_planes_db/FETAL_PLANES_DB_data.csv
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

STATS_PATH = Path(__file__).with_name("real_csv_stats.json")
NAME_RE = re.compile(r"^Patient(\d+)_Plane(\d+)_(\d+)_of_(\d+)$")
ERAS = 8  # chronological bins of patients for the operator/machine mix (it drifts over the study)


def compute_stats(csv_path: str | Path) -> dict:
    """Counts, per-patient structure and operator/machine mix of a FETAL_PLANES_DB CSV."""
    with open(csv_path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    header = [h.strip() for h in rows[0]]
    col = {c: header.index(c) for c in header}
    data = [[c.strip() for c in r] for r in rows[1:] if r]

    plane_index: dict[str, int] = {}
    per_patient: dict[int, list[list[str]]] = defaultdict(list)
    for r in data:
        m = NAME_RE.match(r[col["Image_name"]])
        if m:
            plane_index[r[col["Plane"]]] = int(m.group(2))
        per_patient[int(r[col["Patient_num"]])].append(r)

    plane_sets: Counter = Counter()
    group_sizes: dict[str, Counter] = defaultdict(Counter)
    for rs in per_patient.values():
        planes = Counter(r[col["Plane"]] for r in rs)
        plane_sets["|".join(sorted(planes))] += 1
        for plane, n in planes.items():
            group_sizes[plane][n] += 1

    patients = sorted(per_patient)
    eras = []
    # eras hold equal numbers of images (the phantom's patients all have the same expected count)
    era_of: dict[int, int] = {}
    done = 0
    for p in patients:
        era_of[p] = min(ERAS - 1, int((done + len(per_patient[p]) / 2) * ERAS / len(data)))
        done += len(per_patient[p])
    for e in range(ERAS):
        chunk = [p for p in patients if era_of[p] == e]
        # images per operator|machine in this era (the phantom draws a patient's pair from it, so
        # that the per-image mix matches: in the release, images per patient depend on the operator)
        eras.append(dict(Counter(
            f"{r[col['Operator']]}|{r[col['US_Machine']]}" for p in chunk for r in per_patient[p]
        ).most_common()))

    def count(c: str) -> dict[str, int]:
        return dict(Counter(r[col[c]] for r in data).most_common())

    return {
        "source": "FETAL_PLANES_DB_data.csv (Zenodo record 3904280), computed by fetaldata.phantom.stats.compute_stats",
        "images": len(data),
        "patients": len(patients),
        "planes": count("Plane"),
        "plane_index": dict(sorted(plane_index.items(), key=lambda kv: kv[1])),
        "brain_planes": dict(Counter(r[col["Brain_plane"]] for r in data if r[col["Plane"]] == "Fetal brain").most_common()),
        "operators": count("Operator"),
        "machines": count("US_Machine"),
        "train_images": sum(1 for r in data if r[col["Train"]] == "1"),
        "plane_sets": dict(plane_sets.most_common()),
        "group_sizes": {p: {str(k): v for k, v in sorted(c.items())} for p, c in sorted(group_sizes.items())},
        "eras_operator_machine": eras,
    }


@lru_cache(maxsize=1)
def load_stats() -> dict:
    """The committed statistics of the real CSV (no access to the real data needed)."""
    return json.loads(STATS_PATH.read_text())


if __name__ == "__main__":  # pragma: no cover - maintenance tool
    STATS_PATH.write_text(json.dumps(compute_stats(sys.argv[1]), indent=1) + "\n")
    print(f"wrote {STATS_PATH}")
