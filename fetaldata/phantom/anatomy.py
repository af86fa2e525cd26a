"""The anatomy a sonographer looks for in each plane, drawn as reflectivity/absorption.

Each drawer poses its structure at random (position in the sector, size, rotation,
mirror) and draws its cues with a random *cue strength* ``k`` (0.3-1): faint cues
make the hard pairs of the real task hard here too (the three brain sub-planes
differ only by small structures inside the same skull; abdomen and thorax are both
a round section with a spine; a femur and other long bones are all bright bars
with a shadow). Local units: the structure's radius is 1.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fetaldata.phantom.canvas import Canvas, Pose, low_frequency

FLUID = 0.004


def _mix(k: float, base: float, target: float) -> float:
    """A cue of strength ``k``: from the surrounding ``base`` value toward ``target``."""
    return base + k * (target - base)


def _pose(c: Canvas, rng: np.random.Generator, size: tuple[float, float], angle_deg: tuple[float, float],
          depth: tuple[float, float] = (0.42, 0.62), lateral: float = 0.3) -> Pose:
    x, y = c.point_at(rng.uniform(*depth), rng.uniform(-lateral, lateral))
    return Pose(c, x, y, rng.uniform(*size) * c.depth_px, math.radians(rng.uniform(*angle_deg)), bool(rng.random() < 0.5))


def _background(c: Canvas, rng: np.random.Generator, transvaginal: bool) -> None:
    """Maternal soft tissue, abdominal wall layers under a convex probe."""
    c.reflect[:] = rng.uniform(0.06, 0.14) if transvaginal else rng.uniform(0.22, 0.38)
    s = c.sector
    if transvaginal:
        return
    r = s.r0 + c.depth_px * rng.uniform(0.0, 0.02)
    center = (int(round(s.ax * 16)), int(round(s.ay * 16)))
    for _ in range(int(rng.integers(3, 7))):
        t = c.depth_px * rng.uniform(0.01, 0.035)
        val = rng.uniform(0.55, 1.1) if rng.random() < 0.55 else rng.uniform(0.06, 0.15)
        cv2.circle(c.reflect, center, int((r + t / 2) * 16), float(val), max(1, int(t)), cv2.LINE_8, 4)
        r += t + c.depth_px * rng.uniform(0.0, 0.03)


def _fluid_pocket(p: Pose, rng: np.random.Generator, extent: float = 1.6) -> None:
    """Amniotic fluid around the fetal part (a few overlapping ellipses)."""
    for _ in range(int(rng.integers(2, 5))):
        p.ellipse(rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), extent * rng.uniform(0.8, 1.25),
                  extent * rng.uniform(0.6, 1.0), rng.uniform(0, 180), FLUID * rng.uniform(0.5, 1.5))


def _speckle_lines(p: Pose, rng: np.random.Generator, n: int, radius: float, value: tuple[float, float]) -> None:
    """Short echoes inside an organ (sulci, vessels, bowel): texture common to the classes."""
    for _ in range(n):
        u, v = rng.uniform(-radius, radius, 2)
        if u * u + v * v > radius * radius:
            continue
        ln, ang = rng.uniform(0.05, 0.18), rng.uniform(0, math.pi)
        p.polyline([[u, v], [u + ln * math.cos(ang), v + ln * math.sin(ang)]], rng.uniform(*value), 0.012)


# ---------------------------------------------------------------- brain
def _brain(c: Canvas, rng: np.random.Generator, sub: str) -> None:
    p = _pose(c, rng, (0.26, 0.40), (-35, 35))
    _fluid_pocket(p, rng, rng.uniform(1.2, 1.6))
    k = rng.uniform(0.45, 1.0)
    ar = rng.uniform(0.72, 0.84) if sub != "Other" else rng.uniform(0.8, 0.95)
    par = rng.uniform(0.12, 0.24)  # parenchyma
    p.ellipse(0, 0, 1.07, ar + 0.07, 0, rng.uniform(0.3, 0.5), thick=0.04)  # scalp
    p.ellipse(0, 0, 1, ar, 0, par)
    _speckle_lines(p, rng, int(rng.integers(3, 10)), 0.8, (0.25, 0.6))
    p.ellipse(0, 0, 1, ar, 0, rng.uniform(2.0, 3.5), thick=rng.uniform(0.035, 0.065), absorb=rng.uniform(0.25, 0.5))
    side = 1 if rng.random() < 0.5 else -1  # which hemisphere shows the ventricle (the far one, mostly)
    if sub == "Other":  # e.g. a coronal or para-sagittal section: symmetric small horns, no midline echo
        for s in (-1, 1):
            p.ellipse(rng.uniform(-0.2, 0.2), s * rng.uniform(0.15, 0.3), rng.uniform(0.06, 0.14), 0.05,
                      rng.uniform(-30, 30), _mix(k, par, FLUID))
        return
    falx = _mix(k, par, 1.2)
    p.polyline([[-0.96, 0], [0.96, 0]], falx, 0.014)
    # cavum septi pellucidi (anterior third): a small fluid box with bright walls, in all three planes
    if sub != "Trans-cerebellum" or rng.random() < 0.7:
        ck = k * rng.uniform(0.6, 1.0)
        cu = rng.uniform(0.28, 0.4)
        p.ellipse(cu, 0, rng.uniform(0.07, 0.11), rng.uniform(0.035, 0.055), 0, _mix(ck, par, 1.1), thick=0.015)
        p.ellipse(cu, 0, rng.uniform(0.05, 0.09), rng.uniform(0.02, 0.04), 0, _mix(ck, par, FLUID))
    if sub == "Trans-thalamic":
        tk = k * rng.uniform(0.7, 1.0)
        tu, tv = rng.uniform(-0.12, 0.02), rng.uniform(0.11, 0.16)
        for s in (-1, 1):  # thalami: two hypoechoic ovals in a heart shape, third ventricle between
            p.ellipse(tu, s * tv, rng.uniform(0.19, 0.26), rng.uniform(0.1, 0.14), s * rng.uniform(15, 35), _mix(tk, par, 0.01))
        p.polyline([[tu - 0.12, 0], [tu + 0.12, 0]], _mix(tk, par, 1.0), 0.012)
        if rng.random() < 0.4:  # hippocampal gyri / faint posterior horn
            p.ellipse(-0.5, side * 0.3, 0.1, 0.04, side * 10, _mix(k * 0.4, par, FLUID))
    elif sub == "Trans-cerebellum":
        ck = k * rng.uniform(0.75, 1.0)
        cu = rng.uniform(-0.6, -0.5)
        rc = rng.uniform(0.12, 0.17)
        p.ellipse(cu - 0.14, 0, 0.12, rng.uniform(0.18, 0.26), 0, _mix(ck, par, FLUID))  # cisterna magna
        for s in (-1, 1):  # cerebellar hemispheres with bright rims, vermis between
            p.ellipse(cu, s * rc * 1.05, rc, rc * 0.9, 0, _mix(ck, par, 0.03))
            p.ellipse(cu, s * rc * 1.05, rc, rc * 0.9, 0, _mix(ck, par, 1.2), thick=0.02)
        p.ellipse(cu, 0, rc * 0.6, rc * 0.35, 90, _mix(ck, par, 1.0))
        if rng.random() < 0.6:  # the plane also crosses the thalami (fainter)
            for s in (-1, 1):
                p.ellipse(-0.05, s * 0.11, 0.15, 0.08, s * 25, _mix(k * 0.45, par, 0.02))
    elif sub == "Trans-ventricular":
        vk = k * rng.uniform(0.75, 1.0)
        vu, vv = rng.uniform(-0.55, -0.35), side * rng.uniform(0.22, 0.32)
        rot = side * rng.uniform(5, 25)
        p.ellipse(vu, vv, rng.uniform(0.2, 0.28), rng.uniform(0.07, 0.1), rot, _mix(vk, par, FLUID))  # atrium
        p.ellipse(vu + 0.02, vv, rng.uniform(0.12, 0.18), rng.uniform(0.04, 0.065), rot, _mix(vk, par, 1.4))  # choroid
        p.ellipse(rng.uniform(0.2, 0.3), side * 0.1, 0.1, 0.035, side * -15, _mix(vk * 0.8, par, FLUID))  # anterior horn
        p.polyline([[vu - 0.2, vv * 1.15], [vu + 0.25, vv * 1.1]], _mix(vk, par, 1.0), 0.012)  # ventricle wall


# ---------------------------------------------------------------- trunk
def _spine_section(p: Pose, rng: np.random.Generator, ar: float) -> None:
    """Transverse vertebra: three ossification centres, bright with shadows."""
    sv = ar * rng.uniform(0.62, 0.72)
    r = rng.uniform(0.04, 0.06)
    val, ab = rng.uniform(2.0, 3.5), rng.uniform(0.4, 0.7)
    p.dots([[0, sv + 0.12], [-0.11, sv - 0.02], [0.11, sv - 0.02]], r, val, ab)


def _round_section(c: Canvas, rng: np.random.Generator) -> tuple[Pose, float, float]:
    p = _pose(c, rng, (0.22, 0.36), (0, 360))
    _fluid_pocket(p, rng, rng.uniform(1.15, 1.6))
    ar = rng.uniform(0.84, 1.0)
    inside = rng.uniform(0.25, 0.45)
    p.ellipse(0, 0, 1, ar, 0, inside)
    p.ellipse(0, 0, 1, ar, 0, rng.uniform(0.5, 0.9), thick=rng.uniform(0.025, 0.045))  # skin
    return p, ar, inside


def _ribs(p: Pose, rng: np.random.Generator, ar: float, n: int, span: tuple[float, float]) -> None:
    for _ in range(n):
        t = rng.uniform(0, 360)
        if 60 < t % 360 < 120:  # not over the spine (posterior, +v)
            continue
        w = rng.uniform(*span)
        p.arc(0, 0, 0.93, ar * 0.93, 0, t - w / 2, t + w / 2, rng.uniform(1.5, 3.0), 0.035, rng.uniform(0.3, 0.6), 8)


def _abdomen(c: Canvas, rng: np.random.Generator) -> None:
    p, ar, inside = _round_section(c, rng)
    k = rng.uniform(0.3, 1.0)
    _speckle_lines(p, rng, int(rng.integers(2, 8)), 0.8, (0.45, 0.8))
    # stomach bubble (left), umbilical vein curving into the liver (anterior), aorta before the spine
    su = rng.uniform(-0.45, -0.15)
    p.ellipse(su, rng.uniform(-0.15, 0.15), rng.uniform(0.13, 0.3), rng.uniform(0.09, 0.18), rng.uniform(-40, 40),
              _mix(k, inside, FLUID))
    if rng.random() < 0.8:
        uk = k * rng.uniform(0.5, 1.0)
        t = np.linspace(0, 1, 10)
        uv = np.stack([0.1 + 0.15 * np.sin(t * 2.5), -ar * 0.85 + t * rng.uniform(0.45, 0.65)], 1)
        p.polyline(uv, _mix(uk, inside, FLUID), rng.uniform(0.04, 0.06))
    p.ellipse(0.08, ar * 0.45, 0.05, 0.05, 0, _mix(k, inside, FLUID))
    _spine_section(p, rng, ar)
    if rng.random() < 0.35:  # lower ribs cut at the sides
        _ribs(p, rng, ar, int(rng.integers(1, 3)), (8, 18))


def _heart(p: Pose, rng: np.random.Generator, k: float, inside: float) -> None:
    """Four-chamber-ish heart: myocardium, four cavities, the crux as a bright cross."""
    hu, hv = rng.uniform(-0.25, 0.05), rng.uniform(-0.25, 0.0)
    a = rng.uniform(0.3, 0.46)
    b = a * rng.uniform(0.75, 0.9)
    rot = rng.uniform(25, 65)
    my = _mix(k, inside, 0.55)
    p.ellipse(hu, hv, a, b, rot, my)
    r = math.radians(rot)
    for su, sv, size in ((1, 1, 1.0), (1, -1, 0.95), (-1, 1, 0.85), (-1, -1, 0.8)):
        lu, lv = su * 0.45 * a, sv * 0.42 * b
        cu, cv_ = hu + lu * math.cos(r) - lv * math.sin(r), hv + lu * math.sin(r) + lv * math.cos(r)
        p.ellipse(cu, cv_, 0.38 * a * size, 0.32 * b * size, rot, _mix(max(0.5, k) * rng.uniform(0.8, 1.0), inside, FLUID))
    ends = [(-a * 0.85, 0), (a * 0.85, 0), (0, -b * 0.8), (0, b * 0.8)]
    e = [(hu + u * math.cos(r) - v * math.sin(r), hv + u * math.sin(r) + v * math.cos(r)) for u, v in ends]
    p.polyline([e[0], e[1]], _mix(k, inside, 0.8), 0.02)
    p.polyline([e[2], e[3]], _mix(k, inside, 0.8), 0.02)


def _thorax(c: Canvas, rng: np.random.Generator) -> None:
    p, ar, inside = _round_section(c, rng)
    k = rng.uniform(0.3, 1.0)
    lungs = rng.uniform(0.38, 0.6)
    p.ellipse(0, 0, 0.96, ar * 0.96, 0, lungs)
    _heart(p, rng, k, lungs)
    p.ellipse(0.1, ar * 0.45, 0.05, 0.05, 0, _mix(k, lungs, FLUID))  # descending aorta
    _spine_section(p, rng, ar)
    if rng.random() < 0.85:
        _ribs(p, rng, ar, int(rng.integers(2, 7)), (12, 30))


# ---------------------------------------------------------------- long bones
def _bar(p: Pose, rng: np.random.Generator, length: float, v0: float = 0.0, thick: tuple[float, float] = (0.05, 0.08),
         curve: float = 0.03, caps: bool = True) -> None:
    """A bright ossified diaphysis with shadow; optional dark cartilage caps at the ends."""
    t = np.linspace(-1, 1, 12)
    bend = rng.uniform(-curve, curve)
    uv = np.stack([t * length / 2, v0 + bend * (1 - t * t)], 1)
    p.polyline(uv, rng.uniform(2.0, 4.0), rng.uniform(*thick), rng.uniform(0.7, 0.9))
    if caps:
        for s in (-1, 1):
            p.ellipse(s * (length / 2 + 0.06), v0, rng.uniform(0.05, 0.09), rng.uniform(0.05, 0.08), 0,
                      rng.uniform(0.05, 0.12))


def _limb(c: Canvas, rng: np.random.Generator, size: tuple[float, float], angle: tuple[float, float],
          width: tuple[float, float]) -> Pose:
    p = _pose(c, rng, size, angle, depth=(0.38, 0.6), lateral=0.2)
    _fluid_pocket(p, rng, rng.uniform(1.1, 1.4))
    p.ellipse(0, 0, 1.05, rng.uniform(*width), 0, rng.uniform(0.25, 0.45))  # soft tissue envelope
    return p


def _femur(c: Canvas, rng: np.random.Generator) -> None:
    p = _limb(c, rng, (0.3, 0.46), (-25, 25), (0.28, 0.42))
    _bar(p, rng, rng.uniform(1.45, 1.85), thick=(0.055, 0.085), curve=0.035)
    if rng.random() < 0.3:  # the other thigh / pelvis nearby
        p.ellipse(rng.uniform(-0.6, 0.6), rng.uniform(0.6, 0.9), rng.uniform(0.4, 0.8), 0.2, rng.uniform(-20, 20),
                  rng.uniform(0.25, 0.4))


# ---------------------------------------------------------------- other planes
def _other(c: Canvas, rng: np.random.Generator) -> None:
    kinds = ("humerus", "paired_bones", "profile", "kidneys", "spine", "placenta_cord", "foot")
    kind = kinds[int(rng.choice(len(kinds), p=[0.2, 0.15, 0.16, 0.14, 0.13, 0.14, 0.08]))]
    if kind == "humerus":  # one long bone, like a femur: shorter on average, more often oblique
        p = _limb(c, rng, (0.26, 0.42), (-45, 45), (0.24, 0.38))
        _bar(p, rng, rng.uniform(1.25, 1.7), thick=(0.045, 0.08), curve=0.06)
        if rng.random() < 0.4:  # shoulder: humeral head and scapula arc
            p.ellipse(1.0, 0, 0.16, 0.14, 0, 0.08)
            p.arc(1.15, 0.1, 0.25, 0.3, 0, 90, 250, rng.uniform(1.5, 2.5), 0.03, 0.4)
    elif kind == "paired_bones":  # forearm or lower leg: two parallel bars
        p = _limb(c, rng, (0.24, 0.4), (-40, 40), (0.3, 0.45))
        gap = rng.uniform(0.1, 0.2)
        _bar(p, rng, rng.uniform(1.2, 1.6), -gap / 2, (0.045, 0.07))
        _bar(p, rng, rng.uniform(1.0, 1.5), gap / 2, (0.03, 0.06))
    elif kind == "profile":  # mid-sagittal face: forehead, nose, lips, chin in fluid
        p = _pose(c, rng, (0.24, 0.36), (-30, 30))
        _fluid_pocket(p, rng, 1.5)
        p.ellipse(-0.2, 0.2, 0.9, 0.75, 0, rng.uniform(0.2, 0.35))
        p.arc(-0.2, 0.2, 0.9, 0.75, 0, 150, 300, rng.uniform(1.5, 3.0), 0.05, 0.4)  # skull
        face = np.array([[0.55, -0.45], [0.68, -0.2], [0.66, 0.0], [0.82, 0.1], [0.68, 0.2], [0.72, 0.3],
                         [0.66, 0.38], [0.7, 0.46], [0.6, 0.6], [0.4, 0.75]])
        face[:, 0] += rng.normal(0, 0.03, len(face))
        p.polyline(face, rng.uniform(0.7, 1.3), 0.035)
        p.polyline([[0.45, 0.55], [0.3, 0.25], [0.5, -0.05]], rng.uniform(1.0, 2.0), 0.03, 0.3)  # maxilla/mandible
    elif kind == "kidneys":  # transverse through the kidneys: round section, spine, two ovals beside it
        p, ar, inside = _round_section(c, rng)
        _spine_section(p, rng, ar)
        k = rng.uniform(0.4, 1.0)
        for s in (-1, 1):
            p.ellipse(s * 0.35, ar * 0.35, 0.2, 0.14, s * 30, _mix(k, inside, 0.15))
            p.ellipse(s * 0.35, ar * 0.35, 0.2, 0.14, s * 30, _mix(k, inside, 0.7), thick=0.02)
            p.ellipse(s * 0.35, ar * 0.35, 0.07, 0.04, s * 30, _mix(k, inside, 0.9))
    elif kind == "spine":  # sagittal spine: two converging rows of bright vertebrae, skin above
        p = _pose(c, rng, (0.3, 0.45), (-25, 25))
        _fluid_pocket(p, rng, 1.3)
        p.ellipse(0, 0.05, 1.1, 0.35, 0, rng.uniform(0.25, 0.4))
        n = int(rng.integers(8, 14))
        for i in range(n):
            u = -1 + 2 * i / (n - 1)
            conv = 0.12 - 0.06 * max(0.0, u)
            p.dots([[u, -conv], [u, conv]], 0.04, rng.uniform(1.8, 3.0), 0.5)
        p.polyline([[-1.1, -0.33], [1.1, -0.3]], rng.uniform(0.6, 1.0), 0.03)
    elif kind == "placenta_cord":  # a placenta band and loops of cord in fluid
        p = _pose(c, rng, (0.3, 0.45), (-30, 30), depth=(0.3, 0.5))
        _fluid_pocket(p, rng, 1.5)
        p.ellipse(0, -0.7, 1.4, rng.uniform(0.2, 0.35), 0, rng.uniform(0.45, 0.7))
        for _ in range(int(rng.integers(2, 6))):
            u, v = rng.uniform(-0.7, 0.7), rng.uniform(-0.1, 0.6)
            p.ellipse(u, v, 0.09, 0.09, 0, rng.uniform(0.5, 0.8), thick=0.025)
            p.ellipse(u + 0.1, v, 0.05, 0.05, 0, FLUID)
    else:  # foot: metatarsals fanning from the heel
        p = _pose(c, rng, (0.22, 0.34), (0, 360))
        _fluid_pocket(p, rng, 1.4)
        p.ellipse(0, 0, 1.0, 0.4, 0, rng.uniform(0.25, 0.4))
        for i in range(5):
            a = math.radians(-20 + 10 * i)
            p.polyline([[-0.2, 0], [-0.2 + 0.9 * math.cos(a), 0.9 * math.sin(a) * 0.4]], rng.uniform(1.5, 3.0), 0.035, 0.5)


# ---------------------------------------------------------------- cervix
def _cervix(c: Canvas, rng: np.random.Generator) -> None:
    """Transvaginal cervix: an elongated firm body with its canal, bladder, sometimes the presenting head."""
    p = _pose(c, rng, (0.32, 0.46), (-55, 55), depth=(0.3, 0.5), lateral=0.25)
    p.ellipse(0, 0, 1.0, rng.uniform(0.3, 0.42), 0, rng.uniform(0.35, 0.55))
    k = rng.uniform(0.5, 1.0)
    t = np.linspace(-0.9, 0.9, 10)
    bend = rng.uniform(-0.1, 0.1)
    canal = np.stack([t, bend * (1 - t * t)], 1)
    p.polyline(canal, _mix(k, 0.5, 2.0), rng.uniform(0.06, 0.1))  # echogenic endocervical mucosa
    p.polyline(canal, _mix(k, 0.5, 0.02), 0.02)  # the canal itself
    if rng.random() < 0.6:  # bladder, anterior
        p.ellipse(rng.uniform(0.3, 0.8), -rng.uniform(0.55, 0.8), rng.uniform(0.3, 0.6), rng.uniform(0.15, 0.3),
                  rng.uniform(-20, 20), FLUID)
    if rng.random() < 0.25:  # funnelling at the internal os
        p.poly([[-0.95, -0.12], [-0.6, 0], [-0.95, 0.12]], FLUID)
    if rng.random() < 0.3:  # presenting fetal head beyond the internal os
        p.arc(-1.6, 0, 0.6, 0.6, 0, -70, 70, rng.uniform(1.5, 3.0), 0.05, 0.4)
    for _ in range(int(rng.integers(0, 3))):  # Nabothian cysts
        p.ellipse(rng.uniform(-0.6, 0.6), rng.uniform(-0.2, 0.2), 0.05, 0.05, 0, FLUID)


def draw_anatomy(c: Canvas, rng: np.random.Generator, plane: str, brain_plane: str, transvaginal: bool) -> None:
    """Draw the background and the plane's structures onto the canvas' reflect/absorb maps."""
    _background(c, rng, transvaginal)
    if plane == "Fetal brain":
        _brain(c, rng, brain_plane)
    elif plane == "Fetal abdomen":
        _abdomen(c, rng)
    elif plane == "Fetal thorax":
        _thorax(c, rng)
    elif plane == "Fetal femur":
        _femur(c, rng)
    elif plane == "Maternal cervix":
        _cervix(c, rng)
    else:
        _other(c, rng)
    c.reflect *= low_frequency(rng, c.height, c.width, int(rng.integers(4, 9)), rng.uniform(0.1, 0.3))
    c.reflect = cv2.GaussianBlur(c.reflect, (0, 0), max(0.5, c.depth_px / 400))
