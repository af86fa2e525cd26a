"""`fetalplanes data check`: what a FETAL_PLANES_DB folder holds, and what is wrong with it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fetaldata.fetal_planes_db import FetalPlanesDB
from fetaldata.splits import SPLITS, SplitConfig, fingerprint, split_patients


@dataclass
class CheckReport:
    """Counts per class, split, patient, operator and machine; missing and unreadable images."""

    root: str
    rows: int
    patients: int
    planes: dict[str, int]
    brain_planes: dict[str, int]
    operators: dict[str, int]
    machines: dict[str, int]
    splits: dict[str, dict[str, int]]
    images_per_patient: dict[str, float]
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unreadable

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ok"] = self.ok
        return d


def check_dataset(db: FetalPlanesDB, images: bool = True, decode: bool = True, config: SplitConfig = SplitConfig()) -> CheckReport:
    """Count everything and (with ``images``) look for every listed image on disk."""
    recs = db.records
    per_patient = Counter(r.patient for r in recs)
    parts = split_patients(recs, config.val_fraction, config.seed)
    splits = {}
    for s in SPLITS:
        keep = set(parts[s])
        splits[s] = {"patients": len(keep), "images": sum(1 for r in recs if r.patient in keep)}
    splits["Train=1"] = {"patients": len({r.patient for r in recs if r.train}), "images": sum(r.train for r in recs)}
    splits["Train=0"] = {
        "patients": len({r.patient for r in recs if not r.train}),
        "images": sum(not r.train for r in recs),
    }
    counts = sorted(per_patient.values())
    problems = db.find_image_problems(decode=decode) if images else {"missing": [], "unreadable": []}
    return CheckReport(
        root=str(db.root),
        rows=len(recs),
        patients=len(per_patient),
        planes=dict(Counter(r.plane for r in recs).most_common()),
        brain_planes=dict(Counter(r.brain_plane for r in recs if r.plane == "Fetal brain").most_common()),
        operators=dict(Counter(r.operator for r in recs).most_common()),
        machines=dict(Counter(r.machine for r in recs).most_common()),
        splits=splits,
        images_per_patient={
            "min": counts[0],
            "median": counts[len(counts) // 2],
            "max": counts[-1],
            "mean": round(sum(counts) / len(counts), 2),
        },
        missing=problems["missing"],
        unreadable=problems["unreadable"],
        fingerprint=fingerprint(db, config),
    )


def format_report(rep: CheckReport, max_listed: int = 20) -> str:
    """A plain-text report for the terminal."""
    out = [f"FETAL_PLANES_DB at {rep.root}", f"  {rep.rows} images, {rep.patients} patients, fingerprint {rep.fingerprint}"]

    def block(title: str, counts: dict[str, int]) -> None:
        out.append(f"{title}:")
        for k, v in counts.items():
            out.append(f"  {k:<22} {v:>6}")

    block("planes", rep.planes)
    block("brain sub-planes", rep.brain_planes)
    block("operators", rep.operators)
    block("machines", rep.machines)
    out.append("splits (val = 10% of the Train=1 patients, seeded):")
    for k, v in rep.splits.items():
        out.append(f"  {k:<22} {v['images']:>6} images {v['patients']:>5} patients")
    ipp = rep.images_per_patient
    out.append(f"images per patient: min {ipp['min']}, median {ipp['median']}, mean {ipp['mean']}, max {ipp['max']}")
    for name, items in (("missing", rep.missing), ("unreadable", rep.unreadable)):
        if items:
            out.append(f"{len(items)} {name} image(s):")
            out.extend(f"  {p}" for p in items[:max_listed])
            if len(items) > max_listed:
                out.append(f"  ... and {len(items) - max_listed} more (see --json)")
    out.append("OK" if rep.ok else "BROKEN: fix or remove the rows above (or re-download the release)")
    return "\n".join(out)
