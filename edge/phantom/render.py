"""Render one synthetic exported B-mode image of a FETAL_PLANES_DB class.

The pipeline imitates how a scanner forms the picture: a map of tissue
reflectivity and of bone absorption is drawn in the image plane (the anatomy
a sonographer looks for, posed at random), resampled on the probe's polar grid
(beams x depth), where depth attenuation with posterior enhancement behind
fluid, acoustic shadows behind bone, TGC, multiplicative speckle
(Rayleigh-distributed envelope of correlated complex noise) and log
compression are applied, then scan-converted back into the convex sector (or
the narrower transvaginal fan for the cervix) and dressed with the machine's
UI text, gray bar and depth scale. numpy + OpenCV only.

Synthetic: it exercises the software, it proves nothing clinical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.phantom.anatomy import draw_anatomy
from edge.phantom.canvas import Canvas


@dataclass(frozen=True)
class MachineLook:
    """How one scanner model's exported images differ: gain, compression, sector, speckle, UI."""

    gain: tuple[float, float]  # output brightness factor range
    gamma: tuple[float, float]
    dynamic_range_db: tuple[float, float]
    half_angle_deg: tuple[float, float]  # convex sector half-opening
    speckle_smooth: float  # >1: speckle reduction (smoother grain)
    sector_width: tuple[float, float]  # sector width / image width
    ui: str  # 'voluson' | 'aloka' | 'generic'


LOOKS: dict[str, MachineLook] = {
    "Voluson E6": MachineLook((0.9, 1.1), (0.95, 1.15), (52, 62), (34, 40), 1.0, (0.78, 0.92), "voluson"),
    "Voluson S10": MachineLook((0.95, 1.15), (0.9, 1.05), (56, 66), (36, 42), 1.35, (0.80, 0.94), "voluson"),
    "Aloka": MachineLook((0.8, 1.0), (1.1, 1.35), (46, 56), (30, 37), 0.85, (0.95, 1.15), "aloka"),
    "Other": MachineLook((0.8, 1.15), (0.9, 1.3), (48, 62), (28, 40), 1.0, (0.8, 1.1), "generic"),
}

VOLUSON_PRESETS = {
    "Fetal brain": "2.Trim.", "Fetal thorax": "Cardiac", "Maternal cervix": "qCERVIX",
    "Fetal femur": "2+3.Trim.", "Fetal abdomen": "2+3.Trim.", "Other": "3.Trim.",
}


@dataclass(frozen=True)
class Sector:
    """The probe's field of view in image pixels: apex, radii, half-opening (radians)."""

    ax: float
    ay: float
    r0: float
    r1: float
    half: float

    def bbox(self, width: int, height: int) -> tuple[int, int, int, int]:
        """x, y, w, h of the sector clipped to the image."""
        xs = [self.ax + r * math.sin(s * self.half) for r in (self.r0, self.r1) for s in (-1, 1)]
        y_top = self.ay + self.r0 * math.cos(self.half)
        x0, x1 = max(0, int(min(xs))), min(width, int(math.ceil(max(xs))))
        y0, y1 = max(0, int(y_top)), min(height, int(math.ceil(self.ay + self.r1)))
        return x0, y0, x1 - x0, y1 - y0


def make_sector(rng: np.random.Generator, width: int, height: int, look: MachineLook, transvaginal: bool) -> Sector:
    """A convex sector (virtual apex above the image) or a transvaginal fan (apex at the top)."""
    if transvaginal:
        half = math.radians(rng.uniform(48, 62))
        r0 = height * rng.uniform(0.07, 0.11)
        ay = -r0 * rng.uniform(0.2, 0.7)
        r1 = (height - ay) * rng.uniform(0.93, 1.06)
        # the fan is narrow at the probe and at most as wide as the image
        max_half = math.asin(min(0.99, 0.5 * width * rng.uniform(0.85, 1.05) / r1))
        half = min(half, max_half)
        return Sector(width / 2 + rng.uniform(-0.04, 0.04) * width, ay, r0, r1, half)
    half = math.radians(rng.uniform(*look.half_angle_deg))
    top_width = width * rng.uniform(0.22, 0.42)  # the probe's footprint (top arc's chord)
    r0 = top_width / (2 * math.sin(half))
    top = height * rng.uniform(-0.05, 0.05)  # where the probe surface sits (may be cropped off)
    bottom = height * rng.uniform(0.97, 1.15)
    ay = top - r0
    r1 = bottom - ay
    # the sector's bottom is at most about as wide as the exported image allows (edges may be cut)
    max_half = math.asin(min(0.99, 0.5 * width * rng.uniform(*look.sector_width) / r1))
    half = min(half, max(max_half, math.radians(22)))
    return Sector(width / 2 + rng.uniform(-0.05, 0.05) * width, ay, r0, r1, half)


def _polar_maps(sector: Sector, nr: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates of each polar sample (depth i, beam j), for cv2.remap."""
    r = np.linspace(sector.r0, sector.r1, nr, dtype=np.float32)[:, None]
    phi = np.linspace(-sector.half, sector.half, nb, dtype=np.float32)[None, :]
    return (sector.ax + r * np.sin(phi)).astype(np.float32), (sector.ay + r * np.cos(phi)).astype(np.float32)


def _cartesian_maps(sector: Sector, width: int, height: int, nr: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Polar-grid coordinates of each image pixel (scan conversion), outside the sector -> -1."""
    x = np.arange(width, dtype=np.float32)[None, :] - sector.ax
    y = np.arange(height, dtype=np.float32)[:, None] - sector.ay
    r = np.sqrt(x * x + y * y)
    phi = np.arctan2(x, y)
    ri = (r - sector.r0) / (sector.r1 - sector.r0) * (nr - 1)
    bj = (phi + sector.half) / (2 * sector.half) * (nb - 1)
    outside = (ri < 0) | (ri > nr - 1) | (bj < 0) | (bj > nb - 1)
    ri[outside] = -10
    bj[outside] = -10
    return bj.astype(np.float32), ri.astype(np.float32)


def speckle(rng: np.random.Generator, nr: int, nb: int, smooth: float = 1.0) -> np.ndarray:
    """Fully developed speckle: |correlated complex Gaussian|, Rayleigh-distributed, mean 1."""
    re = rng.standard_normal((nr, nb), dtype=np.float32)
    im = rng.standard_normal((nr, nb), dtype=np.float32)
    sa, sl = 0.6 * smooth, 1.1 * smooth  # axial (depth) shorter than lateral (beam) correlation
    re = cv2.GaussianBlur(re, (0, 0), sigmaX=sl, sigmaY=sa)
    im = cv2.GaussianBlur(im, (0, 0), sigmaX=sl, sigmaY=sa)
    env = np.sqrt(re * re + im * im)
    return env / float(env.mean() + 1e-6)


def form_bmode(
    rng: np.random.Generator,
    reflect: np.ndarray,
    absorb: np.ndarray,
    sector: Sector,
    look: MachineLook,
    fluid_level: float = 0.01,
) -> np.ndarray:
    """Reflectivity + absorption maps (image plane) -> log-compressed B-mode image (uint8, black outside)."""
    height, width = reflect.shape
    depth_px = sector.r1 - sector.r0
    nr = int(np.clip(depth_px * 0.45, 24, 360))
    nb = int(np.clip(2 * sector.half * sector.r1 * 0.35, 24, 360))
    mx, my = _polar_maps(sector, nr, nb)
    rp = cv2.remap(reflect, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ap = cv2.remap(absorb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # acoustic shadow: energy left after the bone above, per beam
    trans = np.cumprod(1.0 - np.clip(ap, 0, 0.97), axis=0)
    trans = np.vstack([np.ones((1, nb), np.float32), trans[:-1]])
    trans = cv2.GaussianBlur(trans, (0, 0), sigmaX=0.8, sigmaY=0.3)
    # depth attenuation, lower in fluid (posterior enhancement behind cysts, bladder, amniotic fluid)
    total = rng.uniform(1.4, 2.4)  # nepers over the whole depth in soft tissue
    alpha = np.where(rp < fluid_level * 1.5, 0.15, 1.0).astype(np.float32) * total / nr
    att = np.exp(-np.cumsum(alpha, axis=0))
    d = np.linspace(0, 1, nr, dtype=np.float32)[:, None]
    # TGC compensates most of the soft-tissue loss, with the operator's slider wiggles
    tgc = np.exp(total * d * rng.uniform(0.6, 0.95)) * (1.0 + rng.normal(0, 0.1) * np.sin(math.pi * d * rng.uniform(1, 3)))
    near_field = 1.0 + rng.uniform(0.2, 0.7) * np.exp(-d / 0.04)  # bright ring-down under the probe
    env = rp * speckle(rng, nr, nb, look.speckle_smooth) * trans * att * tgc * near_field
    env += 0.004 * rng.uniform(0.5, 1.5) * speckle(rng, nr, nb, 0.7)  # electronic noise floor
    dr = rng.uniform(*look.dynamic_range_db)
    db = 20.0 * np.log10(env + 1e-6)
    top = float(np.percentile(db, 99.3)) + rng.uniform(-2.0, 3.0)
    img = np.clip((db - (top - dr)) / dr, 0, 1)
    img = img ** rng.uniform(*look.gamma) * rng.uniform(*look.gain)
    img = cv2.GaussianBlur(img.astype(np.float32), (3, 3), 0.5)
    bx, by = _cartesian_maps(sector, width, height, nr, nb)
    out = cv2.remap(img, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.clip(out * 255.0, 0, 255).astype(np.uint8)


def _text(img: np.ndarray, lines: list[str], x: int, y: int, scale: float, value: int, right: bool = False) -> None:
    h = img.shape[0]
    step = max(1, int(22 * scale / 0.45))
    thick = 1
    for i, line in enumerate(lines):
        (tw, _), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        xx = x - tw if right else x
        yy = y + i * step
        if yy < h:
            cv2.putText(img, line, (int(xx), int(yy)), cv2.FONT_HERSHEY_SIMPLEX, scale, value, thick, cv2.LINE_AA)


def draw_ui(img: np.ndarray, rng: np.random.Generator, plane: str, look: MachineLook, sector: Sector) -> None:
    """Machine UI in the margins: preset/parameter text, gray bar, depth scale, focus marker."""
    h, w = img.shape
    scale = max(0.12, 0.36 * h / 660)
    bright = int(rng.integers(170, 235))
    if look.ui == "voluson":
        preset = VOLUSON_PRESETS[plane] if rng.random() < 0.4 else str(rng.choice(list(VOLUSON_PRESETS.values())))
        lines = [preset, str(rng.choice(["Har-mid", "Har-high", "Har-low", "Har-intermedia"])),
                 str(int(rng.integers(85, 100))), f"Gn {int(rng.integers(-8, 4))}",
                 f"C{int(rng.integers(4, 8))} / M{int(rng.integers(5, 11))}",
                 f"FF{int(rng.integers(1, 4))} / E{int(rng.integers(1, 4))}",
                 f"SRI II {int(rng.integers(2, 5))} / CRI {int(rng.integers(1, 4))}"]
        _text(img, lines, w - 2, int(0.03 * h) + 6, scale, bright, right=True)
        _text(img, ["Voluson", "E6"], int(0.01 * w) + 10, int(0.04 * h) + 4, scale * 0.7, bright - 40)
        # gray bar on the left
        bh, bw = int(0.2 * h), max(2, int(0.012 * w))
        bar = np.linspace(255, 0, bh).astype(np.uint8)[:, None]
        y0 = int(0.04 * h)
        img[y0 : y0 + bh, 1 : 1 + bw] = bar
    elif look.ui == "aloka":
        lines = [f"{int(rng.integers(40, 500))}/{int(rng.integers(40, 500))}", f"{int(rng.integers(12, 40))}Hz"]
        _text(img, lines, w - 4, int(0.04 * h) + 8, scale * 1.2, bright, right=True)
        bh, bw = int(0.08 * h), max(2, int(0.025 * w))
        img[2 : 2 + bh, 2 : 2 + bw] = np.linspace(255, 40, bh).astype(np.uint8)[:, None]
    else:
        _text(img, [f"IM: 0,{int(rng.integers(1, 9))}"], int(0.01 * w) + 4, int(0.04 * h) + 6, scale * 1.1, bright)
        _text(img, [f"{int(rng.integers(10, 99))}%", f"D{rng.uniform(8, 18):.1f}"], w - 4, int(0.06 * h) + 6, scale, bright, right=True)
    # depth scale: tick marks every ~cm beside the sector
    x = min(w - 3, int(sector.ax + sector.r1 * math.sin(sector.half)) + 3) if rng.random() < 0.5 else max(2, int(0.012 * w))
    step = max(4, int(h * rng.uniform(0.08, 0.12)))
    for y in range(max(0, int(sector.ay + sector.r0)), h, step):
        cv2.line(img, (x, y), (x + max(1, w // 160), y), int(bright * 0.8), 1)
    # focus marker (a small triangle) on the scale
    fy = int(h * rng.uniform(0.3, 0.7))
    s = max(2, h // 120)
    cv2.fillPoly(img, [np.array([[x + 2 * s, fy - s], [x + 2 * s, fy + s], [x + s // 2, fy]], np.int32)], bright)


def render_image(
    plane: str, brain_plane: str, machine: str, rng: np.random.Generator, width: int, height: int
) -> np.ndarray:
    """One exported B-mode image (uint8 gray, ``height`` x ``width``) of ``plane`` / ``brain_plane`` on ``machine``."""
    look = LOOKS.get(machine, LOOKS["Other"])
    transvaginal = plane == "Maternal cervix" or (plane == "Other" and rng.random() < 0.04)
    sector = make_sector(rng, width, height, look, transvaginal)
    canvas = Canvas(width, height, sector)
    draw_anatomy(canvas, rng, plane, brain_plane, transvaginal)
    img = form_bmode(rng, canvas.reflect, canvas.absorb, sector, look)
    draw_ui(img, rng, plane, look, sector)
    return img
