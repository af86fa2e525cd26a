"""The real images in ``../shared/data`` as one labelled image folder (for INT8 calibration and checks, and the
demo's real step).

:func:`write_real_folder` copies ``hc18_sample`` (120 fetal heads: Fetal brain, trans-thalamic), the 12
FETAL_PLANES_DB images (their plane and sub-plane from the release's CSV) and the 13 ``sononet_examples``
screen grabs cut to their known image area (``EXAMPLE_ROI``; their plane from ``labels.csv``) into one folder
with a ``labels.csv`` (``file,plane,brain_plane,source``), which works wherever ``--data`` takes a dataset.
Its ``train``/``val`` halves are the labelled folder's seeded hold-out (:mod:`fetaldata.labelled_folder`):
``quantize`` calibrates on ``train`` and checks on ``val``. Real images from three other cohorts, a few
hundred at most: never clinical accuracy.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import FetalPlanesError

#: the image area of the sononet_examples screen grabs (975 x 735): x,y,w,h (rows 115:734, columns 81:874)
EXAMPLE_ROI = (81, 115, 793, 619)
SOURCES = ("hc18_sample", "fetal_planes_db", "sononet_examples")


@dataclass
class RealFolder:
    """What :func:`write_real_folder` wrote: the folder and the images per source."""

    root: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return sum(self.counts.values())


def _rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f, delimiter=delimiter)]


def write_real_folder(shared_data: str | Path, dest: str | Path, sources: tuple[str, ...] = SOURCES) -> RealFolder:
    """Write the real images of ``shared_data`` (``../shared/data``) as a labelled folder at ``dest``."""
    import cv2
    import numpy as np

    shared_data, dest = Path(shared_data), Path(dest)
    missing = [s for s in sources if not (shared_data / s).is_dir()]
    if missing:
        raise FetalPlanesError(f"{shared_data}: no {', '.join(missing)} folder(s)",
                               hint="give the shared data folder (see ../shared/data/README.md)")
    dest.mkdir(parents=True, exist_ok=True)
    out: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    if "hc18_sample" in sources:
        d = shared_data / "hc18_sample"
        for r in _rows(d / "labels.csv"):
            name = f"hc18_{r['file']}"
            shutil.copyfile(d / r["file"], dest / name)
            out.append({"file": name, "plane": r["plane"], "brain_plane": r.get("brain_plane", ""), "source": "hc18_sample"})
        counts["hc18_sample"] = sum(1 for r in out if r["source"] == "hc18_sample")
    if "fetal_planes_db" in sources:
        d = shared_data / "fetal_planes_db"
        meta = {r["Image_name"]: r for r in _rows(d / "FETAL_PLANES_DB_data.csv", ";")}
        n = 0
        for img in sorted((d / "Images").glob("*.png")):
            r = meta.get(img.stem)
            if r is None:
                continue
            name = f"fpdb_{img.name}"
            shutil.copyfile(img, dest / name)
            out.append({"file": name, "plane": r["Plane"], "brain_plane": r["Brain_plane"], "source": "fetal_planes_db"})
            n += 1
        counts["fetal_planes_db"] = n
    if "sononet_examples" in sources:
        d = shared_data / "sononet_examples"
        x, y, w, h = EXAMPLE_ROI
        n = 0
        for r in _rows(d / "labels.csv"):
            image = cv2.imdecode(np.fromfile(str(d / r["file"]), np.uint8), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise FetalPlanesError(f"{d / r['file']}: not a readable image", hint="restore the file")
            name = f"sononet_{Path(r['file']).stem}.png"
            cv2.imwrite(str(dest / name), image[y:y + h, x:x + w])
            brain = "Trans-cerebellum" if "CB" in r["file"] else ("Trans-ventricular" if "TV" in r["file"] else "")
            out.append({"file": name, "plane": r["plane"], "brain_plane": brain, "source": "sononet_examples"})
            n += 1
        counts["sononet_examples"] = n
    with open(dest / "labels.csv", "w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=["file", "plane", "brain_plane", "source"])
        wr.writeheader()
        wr.writerows(out)
    return RealFolder(dest, counts)
