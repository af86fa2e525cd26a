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

from fetaldata.phantom.anatomy import draw_anatomy
from fetaldata.phantom.canvas import Canvas


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


class ScanGeometry:
    """The probe's polar grid (depth samples x beams) for a sector, and the maps between it and the image."""

    def __init__(self, sector: Sector, width: int, height: int) -> None:
        self.sector, self.width, self.height = sector, width, height
        self.nr = int(np.clip((sector.r1 - sector.r0) * 0.45, 24, 360))
        self.nb = int(np.clip(2 * sector.half * sector.r1 * 0.35, 24, 360))
        r = np.linspace(sector.r0, sector.r1, self.nr, dtype=np.float32)[:, None]
        phi = np.linspace(-sector.half, sector.half, self.nb, dtype=np.float32)[None, :]
        # image coordinates of each polar sample (for sampling the tissue maps)
        self.px = (sector.ax + r * np.sin(phi)).astype(np.float32)
        self.py = (sector.ay + r * np.cos(phi)).astype(np.float32)
        # polar coordinates of each image pixel (scan conversion); outside the sector -> -10 (black)
        x = np.arange(width, dtype=np.float32)[None, :] - sector.ax
        y = np.arange(height, dtype=np.float32)[:, None] - sector.ay
        ri = (np.sqrt(x * x + y * y) - sector.r0) / (sector.r1 - sector.r0) * (self.nr - 1)
        bj = (np.arctan2(x, y) + sector.half) / (2 * sector.half) * (self.nb - 1)
        outside = (ri < 0) | (ri > self.nr - 1) | (bj < 0) | (bj > self.nb - 1)
        ri[outside] = -10
        bj[outside] = -10
        self.cx, self.cy = bj.astype(np.float32), ri.astype(np.float32)

    def to_polar(self, image_map: np.ndarray, border: str = "replicate") -> np.ndarray:
        mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
        return cv2.remap(image_map, self.px, self.py, cv2.INTER_LINEAR, borderMode=mode, borderValue=0)

    def to_image(self, polar: np.ndarray) -> np.ndarray:
        return cv2.remap(polar, self.cx, self.cy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def complex_field(rng: np.random.Generator, nr: int, nb: int, smooth: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated complex Gaussian noise (real, imaginary): axial correlation shorter than lateral."""
    sa, sl = 0.6 * smooth, 1.1 * smooth
    re = cv2.GaussianBlur(rng.standard_normal((nr, nb), dtype=np.float32), (0, 0), sigmaX=sl, sigmaY=sa)
    im = cv2.GaussianBlur(rng.standard_normal((nr, nb), dtype=np.float32), (0, 0), sigmaX=sl, sigmaY=sa)
    return re, im


def envelope(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    """Speckle envelope |re + i im| normalised to mean 1 (Rayleigh-distributed)."""
    env = np.sqrt(re * re + im * im)
    return env / float(env.mean() + 1e-6)


def speckle(rng: np.random.Generator, nr: int, nb: int, smooth: float = 1.0) -> np.ndarray:
    """Fully developed speckle: |correlated complex Gaussian|, Rayleigh-distributed, mean 1."""
    return envelope(*complex_field(rng, nr, nb, smooth))


@dataclass(frozen=True)
class BModeSettings:
    """Acquisition settings of one image (or one video scene): attenuation, TGC, compression, gain."""

    attenuation: float  # nepers over the whole depth in soft tissue
    tgc_compensation: float  # fraction of it the TGC gives back
    tgc_wiggle: float
    tgc_freq: float
    near_field: float  # ring-down brightness under the probe
    noise: float  # electronic noise floor
    dynamic_range_db: float
    gamma: float
    gain: float
    top_offset_db: float

    @classmethod
    def draw(cls, rng: np.random.Generator, look: MachineLook) -> "BModeSettings":
        return cls(
            rng.uniform(1.4, 2.4), rng.uniform(0.6, 0.95), rng.normal(0, 0.1), rng.uniform(1, 3),
            rng.uniform(0.2, 0.7), 0.004 * rng.uniform(0.5, 1.5), rng.uniform(*look.dynamic_range_db),
            rng.uniform(*look.gamma), rng.uniform(*look.gain), rng.uniform(-2.0, 3.0),
        )


def form_bmode(
    geom: ScanGeometry,
    reflect: np.ndarray,
    absorb: np.ndarray,
    settings: BModeSettings,
    speckle_env: np.ndarray,
    noise_env: np.ndarray,
    top_db: float | None = None,
    fluid_level: float = 0.01,
) -> tuple[np.ndarray, float]:
    """Tissue maps (image plane) -> log-compressed B-mode image (uint8, black outside the sector).

    Returns the image and the dB level mapped to white (pass it back as ``top_db`` to keep
    a video's brightness steady from frame to frame).
    """
    nr, nb = geom.nr, geom.nb
    rp = geom.to_polar(reflect)
    ap = geom.to_polar(absorb, border="constant")
    # acoustic shadow: energy left after the bone above, per beam
    trans = np.cumprod(1.0 - np.clip(ap, 0, 0.97), axis=0)
    trans = np.vstack([np.ones((1, nb), np.float32), trans[:-1]])
    trans = cv2.GaussianBlur(trans, (0, 0), sigmaX=0.8, sigmaY=0.3)
    # depth attenuation, lower in fluid (posterior enhancement behind cysts, bladder, amniotic fluid)
    alpha = np.where(rp < fluid_level * 1.5, 0.15, 1.0).astype(np.float32) * (settings.attenuation / nr)
    att = np.exp(-np.cumsum(alpha, axis=0))
    d = np.linspace(0, 1, nr, dtype=np.float32)[:, None]
    # TGC gives back most of the soft-tissue loss, with the operator's slider wiggles
    tgc = np.exp(settings.attenuation * settings.tgc_compensation * d) * (
        1.0 + settings.tgc_wiggle * np.sin(math.pi * d * settings.tgc_freq))
    near = 1.0 + settings.near_field * np.exp(-d / 0.04)
    env = rp * speckle_env * trans * att * tgc * near + settings.noise * noise_env
    db = 20.0 * np.log10(env + 1e-6)
    if top_db is None:
        top_db = float(np.percentile(db, 99.3)) + settings.top_offset_db
    dr = settings.dynamic_range_db
    img = np.clip((db - (top_db - dr)) / dr, 0, 1) ** settings.gamma * settings.gain
    img = cv2.GaussianBlur(img.astype(np.float32), (3, 3), 0.5)
    return np.clip(geom.to_image(img) * 255.0, 0, 255).astype(np.uint8), top_db


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
    geom = ScanGeometry(sector, width, height)
    settings = BModeSettings.draw(rng, look)
    img, _ = form_bmode(geom, canvas.reflect, canvas.absorb, settings,
                        speckle(rng, geom.nr, geom.nb, look.speckle_smooth), speckle(rng, geom.nr, geom.nb, 0.7))
    draw_ui(img, rng, plane, look, sector)
    return img
