"""A scanner video-out made of still images: a slideshow of real ultrasound images, with ground truth.

Each image (a *slide*) is shown in a ``width x height`` video-out frame for a few seconds with slight
synthetic hand motion (shift and rotation of the image content, a pixel or two), a slow gain flicker
and noise, so that held frames are not identical; some are then frozen (identical frames, a FREEZE
mark in the header). Between slides the screen cross-fades (blurred) into the next image or goes blank
for a moment; between *exams* it stays blank for ``exam_gap_s`` (longer than the exam tracker's
``blank_s``), so a live loop run on it ends one exam and starts the next there.

Two kinds of slide: a scanner screen grab with its image area known (``roi``: the grab fills the
frame, letterboxed, and only its image area moves), or an image of the image area alone (placed in
the frame under a dark header band). The truth sidecar is the phantom video's
(:func:`fetaldata.phantom.video.write_truth`: ``frame,time_s,plane,brain_plane,state,x,y,w,h``; state
``steady``, ``transition`` (truth = the dominant image), ``frozen``, or ``blank`` (plane ``Other``,
no box)), so :func:`fetaldata.scoring.score_retrieval` and ``score_against_truth`` read it unchanged.

:func:`real_exams` plans exams from the real images in ``../shared/data`` (SonoNet's example screen
grabs, the 12 FETAL_PLANES_DB images, HC18 heads). The images are real; the motion, noise, timing
and transitions are synthetic: what a model does on such a video is not what it does on a scan.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edge.errors import FetalPlanesError
from edge.images import decode_image
from edge.labels import BRAIN, BRAIN_OTHER, NOT_A_BRAIN, PLANES
from fetaldata.phantom.video import open_writer, write_truth

BLANK_PLANE = "Other"  # the truth of a blank screen: no standard plane on it


@dataclass(frozen=True)
class Slide:
    """One still image and what it shows.

    ``roi``: the image area (x, y, w, h) inside a scanner screen grab; None: the file is the image area.
    ``view``: the source's own label where it has a finer one (SonoNet's examples: ``4CH``, ``Lips``, ...).
    """

    path: Path
    plane: str
    brain_plane: str = NOT_A_BRAIN
    roi: tuple[int, int, int, int] | None = None
    source: str = ""
    name: str = ""
    view: str = ""

    def __post_init__(self) -> None:
        if self.plane not in PLANES:
            raise FetalPlanesError(f"{self.path}: plane {self.plane!r} is not one of {', '.join(PLANES)}",
                                   hint="label each slide with a FETAL_PLANES_DB plane")
        if self.brain_plane not in (*BRAIN, BRAIN_OTHER):
            raise FetalPlanesError(f"{self.path}: brain plane {self.brain_plane!r} is not one of {', '.join((*BRAIN, BRAIN_OTHER))}",
                                   hint="use Not A Brain for images that are not of the brain")

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name


@dataclass
class SlideshowConfig:
    """Timing and look of the slideshow (seconds are source time)."""

    fps: int = 10
    width: int = 640
    height: int = 480
    hold_s: tuple[float, float] = (3.0, 4.5)  # live (moving) time per slide
    freeze_p: float = 0.5  # chance a slide is then frozen
    freeze_s: tuple[float, float] = (1.0, 2.0)
    transition_s: tuple[float, float] = (0.6, 1.2)  # cross-fade into the next slide
    blank_p: float = 0.2  # chance of a short blank screen instead of a cross-fade
    blank_s: tuple[float, float] = (0.5, 1.5)
    exam_gap_s: float = 12.0  # blank screen between exams (the exam tracker ends an exam after 10 s by default)
    motion_px: float = 2.5  # hand motion amplitude, frame pixels
    rotation_deg: float = 0.8
    gain_flicker: float = 0.04  # relative
    noise: float = 3.0  # gray levels (std) of the added noise
    seed: int = 0

    def validate(self) -> None:
        problems = []
        if self.fps <= 0:
            problems.append(f"fps {self.fps} <= 0")
        if self.width < 320 or self.height < 240:
            problems.append(f"{self.width}x{self.height} is smaller than 320x240")
        for name in ("hold_s", "freeze_s", "transition_s", "blank_s"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                problems.append(f"{name} {lo}-{hi} is not a range of seconds")
        if self.hold_s[0] * self.fps < 1:
            problems.append(f"hold_s {self.hold_s} at {self.fps} fps holds no frame")
        if self.exam_gap_s < 0:
            problems.append(f"exam_gap_s {self.exam_gap_s} < 0")
        if problems:
            raise FetalPlanesError(f"slideshow settings: {'; '.join(problems)}", hint="e.g. fps 10, 640x480, hold 3-4.5 s")


@dataclass
class SlideSegment:
    """Where one slide is on screen: its frames (transition into it included), held and frozen."""

    exam: int
    slide: Slide
    first: int  # first frame the slide dominates (a cross-fade into it included)
    last: int  # last frame it is on screen (held or frozen)
    held: tuple[int, int]  # (first, last) live frames
    frozen: tuple[int, int] | None  # (first, last) frozen frames
    box: tuple[int, int, int, int]  # the image area on screen


@dataclass
class Slideshow:
    """What :func:`write_slideshow` wrote."""

    path: Path
    truth: Path
    fps: int
    frames: int
    segments: list[SlideSegment] = field(default_factory=list)
    exams: list[tuple[int, int]] = field(default_factory=list)  # (first, last) frame of each exam's slides


def _to_bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:  # 16-bit: keep the top byte (the slides here are 8-bit)
        image = (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image


def _header(width: int, height: int) -> np.ndarray:
    """A dark screen with a header band (what a scanner shows around an exported image area)."""
    screen = np.full((height, width, 3), 6, np.uint8)
    band = int(height * 0.07)
    screen[:band] = (38, 34, 30)
    fs = height / 720
    cv2.putText(screen, "SLIDESHOW   ID 0000000", (int(10 * fs), int(band * 0.65)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * fs,
                (220, 220, 200), 1, cv2.LINE_AA)
    return screen


def _compose(slide: Slide, width: int, height: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The slide's still screen (BGR, ``height x width``) and its image area on it (x, y, w, h)."""
    image = _to_bgr(decode_image(slide.path))
    ih, iw = image.shape[:2]
    if slide.roi is not None:  # a screen grab: it fills the frame (aspect kept), its image area is known
        x, y, w, h = slide.roi
        if x < 0 or y < 0 or w < 8 or h < 8 or x + w > iw or y + h > ih:
            raise FetalPlanesError(f"{slide.path}: image area {slide.roi} is not inside the {iw}x{ih} image",
                                   hint="give the image area as x,y,w,h inside the screen grab")
        k = min(width / iw, height / ih)
        sw, sh = int(round(iw * k)), int(round(ih * k))
        ox, oy = (width - sw) // 2, (height - sh) // 2
        screen = np.zeros((height, width, 3), np.uint8)
        screen[oy:oy + sh, ox:ox + sw] = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        bx, by = ox + int(round(x * k)), oy + int(round(y * k))
        bw, bh = min(int(round(w * k)), width - bx), min(int(round(h * k)), height - by)
        return screen, (bx, by, bw, bh)
    screen = _header(width, height)
    top = int(height * 0.07) + int(height * 0.03)
    aw, ah = int(width * 0.78), height - top - int(height * 0.04)
    k = min(aw / iw, ah / ih)
    sw, sh = max(8, int(round(iw * k))), max(8, int(round(ih * k)))
    bx, by = (width - sw) // 2, top + (ah - sh) // 2
    screen[by:by + sh, bx:bx + sw] = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    return screen, (bx, by, sw, sh)


class _Mover:
    """Slight hand motion, gain flicker and noise applied to the image area of one slide's still screen."""

    def __init__(self, still: np.ndarray, box: tuple[int, int, int, int], cfg: SlideshowConfig, rng: np.random.Generator):
        self.still, self.box, self.cfg, self.rng = still, box, cfg, rng
        x, y, w, h = box
        self.area = still[y:y + h, x:x + w].astype(np.float32)
        self.freq = rng.uniform(0.3, 0.9, 3)  # Hz of the sway in x, y and rotation
        self.phase = rng.uniform(0, 2 * math.pi, 4)
        self.drift = rng.normal(0, 0.3, 2)  # px per second, bounded below

    def frame(self, k: int) -> np.ndarray:
        """The ``k``-th live frame of this slide."""
        c, t = self.cfg, k / self.cfg.fps
        dx = c.motion_px * math.sin(2 * math.pi * self.freq[0] * t + self.phase[0]) + float(np.clip(self.drift[0] * t, -c.motion_px, c.motion_px))
        dy = c.motion_px * 0.7 * math.sin(2 * math.pi * self.freq[1] * t + self.phase[1]) + float(np.clip(self.drift[1] * t, -c.motion_px, c.motion_px))
        rot = c.rotation_deg * math.sin(2 * math.pi * self.freq[2] * t + self.phase[2])
        gain = 1.0 + c.gain_flicker * math.sin(2 * math.pi * 0.4 * t + self.phase[3])
        x, y, w, h = self.box
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rot, 1.0)
        m[:, 2] += (dx, dy)
        moved = cv2.warpAffine(self.area, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        moved = moved * gain + self.rng.normal(0, c.noise, moved.shape[:2]).astype(np.float32)[:, :, None]
        screen = self.still.copy()
        screen[y:y + h, x:x + w] = np.clip(moved, 0, 255).astype(np.uint8)
        return screen


def _freeze_mark(screen: np.ndarray) -> np.ndarray:
    out = screen.copy()
    h, w = out.shape[:2]
    cv2.putText(out, "FREEZE", (w - int(w * 0.16), int(h * 0.05)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * h / 720,
                (80, 200, 255), 1, cv2.LINE_AA)
    return out


def write_slideshow(out: str | Path, exams: Sequence[Sequence[Slide]], config: SlideshowConfig | None = None) -> Slideshow:
    """Write the slideshow video of ``exams`` (each a sequence of slides) and ``<out minus suffix>.truth.csv``."""
    cfg = config or SlideshowConfig()
    cfg.validate()
    exams = [list(e) for e in exams if len(e)]
    if not exams:
        raise FetalPlanesError("slideshow: no slides given", hint="give at least one exam with one image")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([cfg.seed, 2017])
    fps, width, height = cfg.fps, cfg.width, cfg.height
    writer, path = open_writer(out, fps, (width, height))
    black = np.zeros((height, width, 3), np.uint8)
    truth: list[tuple] = []
    result = Slideshow(path, path.with_suffix(".truth.csv"), fps, 0)

    def n_of(span: tuple[float, float]) -> int:
        return int(round(fps * rng.uniform(*span)))

    def emit(screen: np.ndarray, plane: str, brain: str, state: str, box: Sequence[int] | None) -> int:
        i = len(truth)
        writer.write(screen)
        truth.append((i, i / fps, plane, brain, state, *(box if box is not None else ("", "", "", ""))))
        return i

    try:
        prev: tuple[np.ndarray, Slide, tuple[int, int, int, int]] | None = None  # last screen shown, its slide, box
        for e, slides in enumerate(exams):
            if e > 0:  # the blank screen between exams
                for _ in range(int(round(cfg.exam_gap_s * fps))):
                    emit(black, BLANK_PLANE, NOT_A_BRAIN, "blank", None)
                prev = None
            exam_first = len(truth)
            for s, slide in enumerate(slides):
                still, box = _compose(slide, width, height)
                mover = _Mover(still, box, cfg, rng)
                first = len(truth)
                if prev is not None and s > 0 and rng.random() < cfg.blank_p:  # a short blank instead of a cross-fade
                    for _ in range(max(1, n_of(cfg.blank_s))):
                        emit(black, BLANK_PLANE, NOT_A_BRAIN, "blank", None)
                    prev = None
                    first = len(truth)
                elif prev is not None:  # blurred cross-fade from the last screen into this slide
                    pscreen, pslide, pbox = prev
                    nt = max(1, n_of(cfg.transition_s))
                    target = mover.frame(0).astype(np.float32)
                    for i in range(nt):
                        w = (i + 1) / (nt + 1)
                        sigma = 0.5 + 3.0 * math.sin(math.pi * w)
                        mix = cv2.GaussianBlur((1 - w) * pscreen.astype(np.float32) + w * target, (0, 0), sigma)
                        dom, dbox = (pslide, pbox) if w < 0.5 else (slide, box)
                        j = emit(np.clip(mix, 0, 255).astype(np.uint8), dom.plane, dom.brain_plane, "transition", dbox)
                        if w < 0.5:
                            first = j + 1
                n_hold = max(1, n_of(cfg.hold_s))
                held0 = len(truth)
                screen = still
                for k in range(n_hold):
                    screen = mover.frame(k)
                    emit(screen, slide.plane, slide.brain_plane, "steady", box)
                held = (held0, len(truth) - 1)
                frozen = None
                if rng.random() < cfg.freeze_p:
                    shown = _freeze_mark(screen)
                    f0 = len(truth)
                    for _ in range(max(1, n_of(cfg.freeze_s))):
                        emit(shown, slide.plane, slide.brain_plane, "frozen", box)
                    frozen = (f0, len(truth) - 1)
                    screen = shown
                result.segments.append(SlideSegment(e, slide, first, len(truth) - 1, held, frozen, box))
                prev = (screen, slide, box)
            result.exams.append((exam_first, len(truth) - 1))
    finally:
        writer.release()
    write_truth(result.truth, truth)
    result.frames = len(truth)
    return result


# --- the real images of ../shared/data ------------------------------------------------------------
#: SonoNet's example grabs in the order of a mid-trimester sweep (head, face, heart, abdomen, spine, femur)
SONONET_ORDER = ("BRAIN-TV", "BRAIN-CB", "PROFILE", "LIPS", "4CH", "3VV", "LVOT", "RVOT", "ABDOMINAL", "KIDNEYS",
                 "SPINE-SAGITTAL", "SPINE-CORONAL", "FEMUR")


def _rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f, delimiter=delimiter)]


def sononet_slides(folder: str | Path) -> list[Slide]:
    """SonoNet's 13 example screen grabs (``labels.csv``: file, sononet_label, plane), image area known."""
    from fetaldata.real_samples import EXAMPLE_ROI

    folder = Path(folder)
    by_stem = {Path(r["file"]).stem: r for r in _rows(folder / "labels.csv")}
    order = [s for s in SONONET_ORDER if s in by_stem] + sorted(set(by_stem) - set(SONONET_ORDER))
    slides = []
    for stem in order:
        r = by_stem[stem]
        brain = "Trans-cerebellum" if "CB" in stem else ("Trans-ventricular" if "TV" in stem else NOT_A_BRAIN)
        slides.append(Slide(folder / r["file"], r["plane"], brain, EXAMPLE_ROI, "sononet_examples", r["file"], r["sononet_label"]))
    return slides


def fetal_planes_db_slides(folder: str | Path) -> list[Slide]:
    """The FETAL_PLANES_DB images in ``folder/Images`` with their plane and sub-plane from the release's CSV."""
    folder = Path(folder)
    meta = {r["Image_name"]: r for r in _rows(folder / "FETAL_PLANES_DB_data.csv", ";")}
    slides = []
    for img in sorted((folder / "Images").glob("*.png")):
        r = meta.get(img.stem)
        if r is not None:
            slides.append(Slide(img, r["Plane"], r["Brain_plane"], None, "fetal_planes_db", img.name))
    return slides


def hc18_slides(folder: str | Path, count: int) -> list[Slide]:
    """The first ``count`` HC18 heads (``labels.csv``: every one Fetal brain, trans-thalamic)."""
    folder = Path(folder)
    rows = _rows(folder / "labels.csv")[:count]
    return [Slide(folder / r["file"], r["plane"], r.get("brain_plane") or BRAIN_OTHER, None, "hc18_sample", r["file"]) for r in rows]


def folder_slides(folder: str | Path) -> list[Slide]:
    """The images of a labelled folder (``labels.csv``: file, plane[, brain_plane]; see
    :mod:`fetaldata.labelled_folder`), in the CSV's order, each the image area itself."""
    from fetaldata.labelled_folder import LABELS_CSV, read_labels

    folder = Path(folder)
    records, _ = read_labels(folder / LABELS_CSV if folder.is_dir() else folder)
    root = folder if folder.is_dir() else folder.parent
    return [Slide(root / r.image_name, r.plane, r.brain_plane, None, root.name, r.image_name) for r in records]


def real_exams(shared_data: str | Path, hc18: int = 8, seed: int = 0) -> list[list[Slide]]:
    """Exams made of the real images in ``shared_data`` (``../shared/data``).

    1. SonoNet's 13 example screen grabs, in a sweep order (brain, face, heart, abdomen, spine, femur);
    2. and 3. the 12 FETAL_PLANES_DB images split in two (one image of each of the six planes in each,
       cervix included), each with ``hc18 // 4`` HC18 heads, shuffled (seeded);
    4. the remaining HC18 heads (``hc18 - 2 * (hc18 // 4)``).

    Every image is used once.
    """
    shared = Path(shared_data)
    missing = [d for d in ("sononet_examples", "fetal_planes_db", "hc18_sample") if not (shared / d).is_dir()]
    if missing:
        raise FetalPlanesError(f"{shared}: no {', '.join(missing)} folder(s)", hint="give the shared data folder (see ../shared/data/README.md)")
    rng = np.random.default_rng([seed, 14])
    fpdb = fetal_planes_db_slides(shared / "fetal_planes_db")
    heads = hc18_slides(shared / "hc18_sample", hc18)
    halves: list[list[Slide]] = [[], []]
    seen: dict[str, int] = {}
    for s in fpdb:  # the two images of each plane go to different exams
        halves[seen.get(s.plane, 0) % 2].append(s)
        seen[s.plane] = seen.get(s.plane, 0) + 1
    per = hc18 // 4
    exams = [sononet_slides(shared / "sononet_examples")]
    for k, half in enumerate(halves):
        slides = half + heads[k * per:(k + 1) * per]
        exams.append([slides[i] for i in rng.permutation(len(slides))])
    if heads[2 * per:]:
        exams.append(heads[2 * per:])
    return exams
