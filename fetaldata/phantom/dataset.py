"""A synthetic FETAL_PLANES_DB: same folder layout, CSV quirks and proportions as the release.

Patients, their planes and image counts, operators and machines follow the
statistics of the real CSV (``real_csv_stats.json``), scaled to N patients.
The images are rendered by :mod:`fetaldata.phantom.render`. The phantom exercises the
software; it proves nothing clinical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError
from fetaldata.phantom.stats import load_stats

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train"
NOT_A_BRAIN = "Not A Brain"
CANDIDATES = 24  # patient draws tried; the one whose class mix is closest to the real one is kept

# Exported image sizes (width, height) per machine: those of the release's sample images,
# plus a few within its range (~380-1140 px wide) for the machines without a sample.
MACHINE_SIZES: dict[str, list[tuple[int, int]]] = {
    "Voluson E6": [(959, 661), (961, 663), (959, 496), (959, 661)],
    "Aloka": [(640, 392), (745, 559), (869, 601)],
    "Voluson S10": [(1137, 787), (1031, 712), (1137, 787)],
    "Other": [(649, 382), (384, 259), (800, 600), (720, 540)],
}


@dataclass(frozen=True)
class PhantomRow:
    """One image of the phantom (one CSV row)."""

    name: str
    patient: int
    plane: str
    brain_plane: str
    operator: str
    machine: str
    train: bool


def _weighted(rng: np.random.Generator, table: dict[str, int]) -> str:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _draw_patients(rng: np.random.Generator, n: int, stats: dict) -> list[dict[str, int]]:
    """Per patient: {plane: number of images}, from the real plane-set and group-size frequencies."""
    sizes = {p: ({int(k): v for k, v in h.items()}) for p, h in stats["group_sizes"].items()}
    out = []
    for _ in range(n):
        planes = _weighted(rng, stats["plane_sets"]).split("|")
        out.append({p: int(_weighted(rng, {str(k): v for k, v in sizes[p].items()})) for p in planes})
    return out


def _mix_error(patients: list[dict[str, int]], stats: dict) -> float:
    total = sum(sum(p.values()) for p in patients)
    want = {k: v / stats["images"] for k, v in stats["planes"].items()}
    got = {k: sum(p.get(k, 0) for p in patients) / max(total, 1) for k in want}
    per_patient = total / len(patients) / (stats["images"] / stats["patients"])
    return sum((got[k] - want[k]) ** 2 / want[k] for k in want) + 0.05 * (per_patient - 1.0) ** 2


def phantom_rows(patients: int = 160, seed: int = 0) -> list[PhantomRow]:
    """The CSV rows of a phantom of ``patients`` patients (no images): deterministic for a seed."""
    if patients < 1:
        raise FetalPlanesError(f"patients={patients}: need at least one patient", hint="use e.g. 160")
    stats = load_stats()
    rng = np.random.default_rng([seed, 20200610])
    # Several candidate draws; keep the one whose class mix is nearest the release's (less variance at small N).
    draws = [_draw_patients(rng, patients, stats) for _ in range(CANDIDATES)]
    chosen = min(draws, key=lambda d: _mix_error(d, stats))
    brain_sub = stats["brain_planes"]
    eras = stats["eras_operator_machine"]
    n_train = (patients + 1) // 2  # first half of the patients (chronologically) trains, second half tests
    rows: list[PhantomRow] = []
    for i, groups in enumerate(chosen):
        pnum = i + 1
        era = eras[min(len(eras) - 1, i * len(eras) // patients)]
        operator, machine = _weighted(rng, era).split("|")
        order = list(groups)
        rng.shuffle(order)
        for plane in order:
            k = stats["plane_index"][plane]
            n = groups[plane]
            for j in range(1, n + 1):
                sub = _weighted(rng, brain_sub) if plane == "Fetal brain" else NOT_A_BRAIN
                rows.append(PhantomRow(
                    f"Patient{pnum:05d}_Plane{k}_{j}_of_{n}", pnum, plane, sub, operator, machine, pnum <= n_train
                ))
    return rows


def _image_size(rng: np.random.Generator, machine: str, size: int | None) -> tuple[int, int]:
    sizes = MACHINE_SIZES.get(machine, MACHINE_SIZES["Other"])
    w, h = sizes[int(rng.integers(len(sizes)))]
    if size is None:
        return w, h
    aspect = h / w
    width = int(size)
    return width, max(8, int(round(width * aspect)))


def write_csv(rows: list[PhantomRow], path: Path) -> None:
    """The CSV exactly as the release writes it: ';', Train values with a trailing space, LF line ends."""
    lines = [HEADER]
    for r in rows:
        lines.append(
            f"{r.name};{r.patient};{r.plane};{r.brain_plane};{r.operator};{r.machine};{'1' if r.train else '0'} "
        )
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def write_phantom_dataset(
    out: str | Path,
    patients: int = 160,
    seed: int = 0,
    size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``out/FETAL_PLANES_DB_data.csv`` and ``out/Images/<name>.png`` (a synthetic phantom); return ``out``.

    ``size``: image width in pixels (height keeps the machine's aspect); None varies sizes
    like the release (~380-1140 px wide). Same seed, same bytes.
    """
    import cv2

    from fetaldata.phantom.render import render_image

    if size is not None and size < 16:
        raise FetalPlanesError(f"size={size}: too small to draw an ultrasound image", hint="use at least 16, e.g. 128")
    out = Path(out)
    images = out / "Images"
    try:
        images.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetalPlanesError(f"{out}: cannot create the folder ({exc})", hint="choose a writable --out") from None
    rows = phantom_rows(patients, seed)
    write_csv(rows, out / "FETAL_PLANES_DB_data.csv")
    for i, r in enumerate(rows):
        # one generator per image, seeded by (seed, row): images do not depend on each other
        rng = np.random.default_rng([seed, r.patient, i])
        w, h = _image_size(rng, r.machine, size)
        img = render_image(r.plane, r.brain_plane, r.machine, rng, w, h)
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise FetalPlanesError(f"{images / r.name}.png: PNG encoding failed", hint="check OpenCV", exit_code=EXIT_FAILURE)
        (images / f"{r.name}.png").write_bytes(buf.tobytes())
        if progress is not None:
            progress(i + 1, len(rows))
    return out
