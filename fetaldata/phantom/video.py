"""A synthetic scanner video-out: the whole screen, sweeping between planes, with ground truth.

What a capture card on a scanner's video output delivers: dark UI chrome (a header
band with patient name/ID, menus and parameters on the sides, a depth scale, the
TGC curve, a gray bar) around the image sector. The sonographer sweeps between
planes (probe sliding, blur and cross-fade), the hand jitters, and stored planes
are frozen (identical frames for 1-2 s, a FREEZE mark on screen). Half way, the
depth is changed once: the sector moves and resizes. A per-frame truth CSV beside
the video says what is on screen:
``frame,time_s,plane,brain_plane,state,x,y,w,h`` (state: steady, transition or
frozen; x,y,w,h: the sector's bounding box in the frame).

Synthetic: it exercises the live loop, it proves nothing clinical.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError
from fetaldata.phantom.anatomy import draw_anatomy
from fetaldata.phantom.canvas import Canvas
from fetaldata.phantom.dataset import MACHINE_SIZES
from fetaldata.phantom.render import (
    LOOKS, BModeSettings, MachineLook, ScanGeometry, Sector, complex_field, envelope, form_bmode, make_sector, speckle,
)

TRUTH_COLUMNS = ("frame", "time_s", "plane", "brain_plane", "state", "x", "y", "w", "h")
# A typical second-trimester sweep order (cervix last, with the transvaginal probe).
SWEEP = (
    ("Fetal brain", "Trans-ventricular"), ("Fetal brain", "Trans-thalamic"), ("Fetal brain", "Trans-cerebellum"),
    ("Fetal thorax", "Not A Brain"), ("Fetal abdomen", "Not A Brain"), ("Other", "Not A Brain"),
    ("Fetal femur", "Not A Brain"), ("Other", "Not A Brain"), ("Maternal cervix", "Not A Brain"),
)
CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}
# Width (px) of the image the phantom scanner forms before showing it magnified on screen: that of a
# `fetalplanes data phantom --size 128` image (the demo's dataset), so that speckle grain, anatomy and
# sector geometry, measured as fractions of the sector, are those a model trained on that dataset saw.
SCAN_WIDTH = 128


@dataclass(frozen=True)
class Layout:
    """Where the image area sits on screen and how the scanner forms it (changes when the depth is changed).

    ``x, y, w, h``: the image area on screen (the part a scanner exports as an image, aspect of
    the machine's exported images); ``scan_w, scan_h``: the size at which the image is formed
    (then magnified to ``w x h``); ``convex`` / ``transvaginal``: the probes' sectors in scan pixels.
    """

    x: int
    y: int
    w: int
    h: int
    depth_cm: float
    scan_w: int
    scan_h: int
    convex: Sector
    transvaginal: Sector

    def sector(self, transvaginal: bool) -> Sector:
        return self.transvaginal if transvaginal else self.convex


@dataclass
class Scene:
    """One plane on screen: its tissue maps at scan size, scan geometry, settings and where it lands on screen."""

    plane: str
    brain_plane: str
    layout: Layout
    geom: ScanGeometry
    reflect: np.ndarray
    absorb: np.ndarray
    settings: BModeSettings
    field_a: tuple[np.ndarray, np.ndarray]
    field_b: tuple[np.ndarray, np.ndarray]
    noise: np.ndarray
    mask: np.ndarray  # the sector on screen, (layout.h, layout.w) bool
    box: tuple[int, int, int, int]  # the sector's bounding box on screen (frame pixels)
    top_db: float | None = None  # the dB level shown white, fixed on the scene's first frame


def _layout(width: int, height: int, depth_cm: float, zoom: float, aspect: float, scan_width: int,
            rng: np.random.Generator, look: MachineLook) -> Layout:
    """The image area (``aspect`` = height / width, as the machine's exported images) centred between the menus."""
    area_w = int(min(width * 0.66, height * 0.86 / aspect) * zoom)
    area_h = int(area_w * aspect)
    x = (width - area_w) // 2 + int(width * 0.02)
    y = int(height * 0.1)
    area_h = min(area_h, height - y - 4)
    scan_w = int(scan_width)
    scan_h = max(16, int(round(scan_w * area_h / area_w)))
    convex = make_sector(rng, scan_w, scan_h, look, False)
    tv = make_sector(rng, scan_w, scan_h, look, True)
    return Layout(x, y, area_w, area_h, depth_cm, scan_w, scan_h, convex, tv)


def _magnify(layout: Layout, scan_img: np.ndarray) -> np.ndarray:
    """The scan image shown in the image area (bilinear magnification, like a scanner's display zoom)."""
    return cv2.resize(scan_img, (layout.w, layout.h), interpolation=cv2.INTER_LINEAR)


def _screen_mask(layout: Layout, geom: ScanGeometry) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Where the sector lands on screen (mask in the image area) and its bounding box in frame pixels."""
    inside = geom.to_image(np.ones((geom.nr, geom.nb), np.float32))
    mask = _magnify(layout, inside) > 0.5
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()) + layout.x, int(ys.min()) + layout.y, int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    return mask, box


def _scene(rng: np.random.Generator, plane: str, brain_plane: str, layout: Layout, machine: str) -> Scene:
    """Draw one plane as :func:`fetaldata.phantom.render.render_image` does, at the layout's scan size and sector."""
    look = LOOKS[machine]
    transvaginal = plane == "Maternal cervix"
    sector = layout.sector(transvaginal)
    canvas = Canvas(layout.scan_w, layout.scan_h, sector)
    draw_anatomy(canvas, rng, plane, brain_plane, transvaginal)
    geom = ScanGeometry(sector, layout.scan_w, layout.scan_h)
    settings = BModeSettings.draw(rng, look)
    mask, box = _screen_mask(layout, geom)
    scene = Scene(plane, brain_plane, layout, geom, canvas.reflect, canvas.absorb, settings,
                  complex_field(rng, geom.nr, geom.nb, look.speckle_smooth),
                  complex_field(rng, geom.nr, geom.nb, look.speckle_smooth), speckle(rng, geom.nr, geom.nb, 0.7),
                  mask, box)
    # the brightness is set on the plane itself (as a dataset image's), then held while the probe moves
    _frame(scene, 0.0, 0.0, 0.0, 3.0)
    return scene


def _frame(scene: Scene, dx: float, dy: float, rot_deg: float, phase: float) -> np.ndarray:
    """The image area (uint8, layout size) with the tissue shifted (fractions of the scan width/height) and
    rotated under the probe; speckle decorrelates with ``phase``; brightness fixed per scene."""
    lw, lh = scene.layout.scan_w, scene.layout.scan_h
    m = cv2.getRotationMatrix2D((lw / 2, lh * 0.5), rot_deg, 1.0)
    m[0, 2] += dx * lw
    m[1, 2] += dy * lh
    refl = cv2.warpAffine(scene.reflect, m, (lw, lh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    absb = cv2.warpAffine(scene.absorb, m, (lw, lh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    c, s = math.cos(phase), math.sin(phase)
    (ar, ai), (br, bi) = scene.field_a, scene.field_b
    env = envelope(c * ar + s * br, c * ai + s * bi)
    img, scene.top_db = form_bmode(scene.geom, refl, absb, scene.settings, env, scene.noise, scene.top_db)
    shown = _magnify(scene.layout, img)
    shown[~scene.mask] = 0
    return shown


def _chrome(width: int, height: int, layout: Layout, rng: np.random.Generator, machine: str) -> np.ndarray:
    """The screen around the sector: header band, side menus, depth scale, TGC curve, gray bar (BGR)."""
    img = np.full((height, width, 3), 8, np.uint8)
    hb = int(height * 0.07)
    img[:hb] = (38, 34, 30)
    fs = height / 720
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "PHANTOM^DEMO   ID 0000123   GA 22w3d", (int(10 * fs), int(hb * 0.65)), font, 0.6 * fs,
                (220, 220, 200), 1, cv2.LINE_AA)
    cv2.putText(img, f"{machine}   MI 0.9  TIS 0.4   2026-11-29", (int(width * 0.55), int(hb * 0.65)), font,
                0.5 * fs, (200, 200, 200), 1, cv2.LINE_AA)
    menu = ["B-Mode", f"Gain {int(rng.integers(30, 60))}", f"DR {int(rng.integers(50, 75))}", "Freq H", "Focus 1",
            "Persist 3", "SRI 3", "Harm ON", "", "Measure", "Annotate", "Body mark", "Report"]
    for i, t in enumerate(menu):
        cv2.putText(img, t, (int(12 * fs), hb + int((30 + 28 * i) * fs)), font, 0.5 * fs, (170, 170, 170), 1, cv2.LINE_AA)
    rx = int(width * 0.86)
    params = [f"D {layout.depth_cm:.1f}cm", f"{int(rng.integers(18, 40))}Hz", "C1-5", "2D 97%", "Obstetric"]
    for i, t in enumerate(params):
        cv2.putText(img, t, (rx, hb + int((30 + 26 * i) * fs)), font, 0.5 * fs, (180, 200, 200), 1, cv2.LINE_AA)
    # gray bar
    gx, gy, gh = rx, hb + int(170 * fs), int(120 * fs)
    img[gy : gy + gh, gx : gx + int(14 * fs)] = np.linspace(255, 0, gh).astype(np.uint8)[:, None, None]
    # TGC curve (slider positions) beside the sector
    tx = int(width * 0.95)
    ys = np.linspace(layout.y, layout.y + layout.h, 8)
    xs = tx + rng.normal(0, 6 * fs, 8).cumsum() * 0.5
    cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, (120, 200, 200), 1, cv2.LINE_AA)
    # depth scale with cm marks, beside the convex sector
    sec, k = layout.convex, layout.h / layout.scan_h
    sx = min(width - int(30 * fs), layout.x + int(min(layout.scan_w, sec.ax + sec.r1 * math.sin(sec.half)) * k) + int(12 * fs))
    y_top = layout.y + max(0.0, sec.ay + sec.r0 * math.cos(sec.half)) * k
    y_bot = layout.y + min(layout.scan_h, sec.ay + sec.r1) * k
    for cm in range(int(layout.depth_cm) + 1):
        y = int(y_top + cm / layout.depth_cm * (y_bot - y_top))
        cv2.line(img, (sx, y), (sx + int((10 if cm % 5 == 0 else 5) * fs), y), (200, 200, 200), 1)
        if cm % 5 == 0:
            cv2.putText(img, str(cm), (sx + int(14 * fs), y + 4), font, 0.4 * fs, (200, 200, 200), 1, cv2.LINE_AA)
    return img


def open_writer(out: Path, fps: int, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    """Open a writer for ``out``'s container; fall back to MJPG/.avi (with a message) when it cannot."""
    tries = [(out, CODECS.get(out.suffix.lower(), "mp4v"))]
    if out.suffix.lower() != ".avi":
        tries.append((out.with_suffix(".avi"), "MJPG"))
    for path, fourcc in tries:
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), size)
        if w.isOpened():
            if path != out:
                print(f"note: this OpenCV cannot write {out.suffix} ({tries[0][1]}); wrote {path} (MJPG) instead",
                      file=sys.stderr)
            return w, path
        w.release()
    raise FetalPlanesError(
        f"{out}: OpenCV cannot open a video writer here (tried {', '.join(f for _, f in tries)})",
        hint="use an .avi name (MJPG), or an OpenCV build with video writing (opencv-python-headless)",
        exit_code=EXIT_FAILURE,
    )


def write_phantom_video(
    out: str | Path,
    seconds: float = 20.0,
    fps: int = 30,
    width: int = 1280,
    height: int = 720,
    seed: int = 0,
    scan_width: int = SCAN_WIDTH,
) -> Path:
    """Write a synthetic scanner video-out and ``<out minus suffix>.truth.csv``; return the video's path.

    ``scan_width``: width (px) at which each image is formed before it is magnified into the screen's
    image area; match the ``--size`` of the phantom dataset a model was trained on (default 128, the demo's).
    """
    if seconds <= 0 or fps <= 0:
        raise FetalPlanesError(f"seconds={seconds}, fps={fps}: both must be positive", hint="e.g. --seconds 20 --fps 30")
    if width < 320 or height < 240:
        raise FetalPlanesError(f"{width}x{height}: too small for a scanner screen", hint="use at least 320x240, e.g. 1280x720")
    if scan_width < 32:
        raise FetalPlanesError(f"scan_width={scan_width}: too small to form an ultrasound image", hint="use at least 32, e.g. 128")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1792])
    machine = ("Voluson E6", "Aloka", "Voluson S10")[int(rng.integers(3))]
    look = LOOKS[machine]
    ew, eh = MACHINE_SIZES[machine][0]
    aspect = eh / ew  # the image area has the shape of this machine's exported images
    layouts = [_layout(width, height, 16.0, 1.0, aspect, scan_width, rng, look),
               _layout(width, height, 12.0, rng.uniform(0.78, 0.88), aspect, scan_width, rng, look)]
    chromes = [_chrome(width, height, lay, np.random.default_rng([seed, i]), machine) for i, lay in enumerate(layouts)]
    n_frames = max(1, int(round(seconds * fps)))
    writer, path = open_writer(out, fps, (width, height))

    def placed(scene: Scene, area: np.ndarray) -> np.ndarray:
        """The image area put on an otherwise black full frame."""
        full = np.zeros((height, width), np.uint8)
        lay = scene.layout
        full[lay.y : lay.y + lay.h, lay.x : lay.x + lay.w] = area
        return full

    truth: list[tuple] = []
    start = int(rng.integers(len(SWEEP)))
    seg, frame_idx = 0, 0
    prev: tuple[Scene, tuple] | None = None  # last scene and its last pose
    try:
        while frame_idx < n_frames:
            layout_i = 0 if frame_idx < n_frames // 2 else 1
            lay = layouts[layout_i]
            plane, brain = SWEEP[(start + seg) % len(SWEEP)]
            scene = _scene(rng, plane, brain, lay, machine)
            n_trans = int(fps * rng.uniform(0.6, 1.2)) if prev is not None else 0
            n_steady = int(fps * rng.uniform(1.5, 3.5))
            n_freeze = int(fps * rng.uniform(1.0, 2.0)) if rng.random() < 0.65 else 0
            slide = rng.choice([-1, 1]) * rng.uniform(0.3, 0.6)  # fractions of the image width
            drift = rng.normal(0, 0.02, 2)
            jitter_f = rng.uniform(0.6, 1.6)
            last = None
            for i in range(n_trans + n_steady + n_freeze):
                if frame_idx >= n_frames:
                    break
                t = frame_idx / fps
                if i < n_trans:  # probe sliding from the previous plane to this one, blurred, cross-faded
                    w = (i + 1) / (n_trans + 1)
                    pscene, (pdx, pdy, prot) = prev
                    oimg = placed(pscene, _frame(pscene, pdx - slide * w, pdy, prot, 3 * w))
                    nimg = placed(scene, _frame(scene, slide * (1 - w), 0, 4 * (1 - w), 3 * w))
                    sigma = 0.5 + 4.0 * math.sin(math.pi * w)
                    screen = chromes[layout_i].copy()
                    mix = cv2.GaussianBlur(((1 - w) * oimg + w * nimg).astype(np.float32), (0, 0), sigma)
                    region = np.maximum(oimg, nimg) > 0
                    region |= cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigma) > 0.5
                    screen[region] = np.clip(mix[region], 0, 255).astype(np.uint8)[:, None]
                    dom = pscene if w < 0.5 else scene
                    truth.append((frame_idx, t, dom.plane, dom.brain_plane, "transition", *dom.box))
                elif i < n_trans + n_steady:  # live: hand jitter and slow drift
                    k = i - n_trans
                    dx = drift[0] * k / fps + 0.006 * math.sin(jitter_f * 2 * math.pi * k / fps)
                    dy = drift[1] * k / fps + 0.004 * math.sin(1.7 * jitter_f * 2 * math.pi * k / fps)
                    rot = 1.5 * math.sin(0.8 * jitter_f * 2 * math.pi * k / fps)
                    img = _frame(scene, dx, dy, rot, 3 + 0.15 * k)
                    screen = chromes[layout_i].copy()
                    screen[lay.y : lay.y + lay.h, lay.x : lay.x + lay.w][scene.mask] = img[scene.mask][:, None]
                    last = (screen, (dx, dy, rot))
                    truth.append((frame_idx, t, plane, brain, "steady", *scene.box))
                else:  # freeze: the stored plane, identical frames, with the FREEZE mark
                    if i == n_trans + n_steady:
                        screen = last[0].copy()
                        cv2.putText(screen, "FREEZE", (int(width * 0.86), int(height * 0.93)), cv2.FONT_HERSHEY_SIMPLEX,
                                    0.7 * height / 720, (80, 200, 255), 2, cv2.LINE_AA)
                        frozen = screen
                    screen = frozen
                    truth.append((frame_idx, t, plane, brain, "frozen", *scene.box))
                writer.write(screen)
                frame_idx += 1
            if last is not None:
                prev = (scene, last[1])
            seg += 1
    finally:
        writer.release()
    write_truth(path.with_suffix(".truth.csv"), truth)
    return path


def write_truth(path: str | Path, rows: list[tuple]) -> Path:
    """The ground-truth sidecar: one ``(frame, time_s, plane, brain_plane, state, x, y, w, h)`` tuple per frame
    (``TRUTH_COLUMNS``; the box may be empty strings where no image is on screen)."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        wcsv = csv.writer(f)
        wcsv.writerow(TRUTH_COLUMNS)
        for fr, t, pl, bp, st, x, y, w, h in rows:
            wcsv.writerow([fr, f"{t:.4f}", pl, bp, st, x, y, w, h])
    return path
