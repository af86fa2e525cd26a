"""Drawing tissue maps in a posed local frame (OpenCV primitives on float maps).

A :class:`Canvas` holds two float maps in image pixels: ``reflect`` (echo
strength: fluid ~0.03, soft tissue ~0.3, bone surfaces 2-4) and ``absorb``
(fraction of the beam's energy a pixel stops: bone, which casts shadows).
A :class:`Pose` maps an anatomy's local units (its radius is 1, ``u`` along
its long axis, ``v`` across) to image pixels: centre, scale, rotation, mirror.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 4  # sub-pixel bits for OpenCV drawing
ONE = 1 << SHIFT


class Canvas:
    """Reflectivity and absorption maps of one image, plus the probe's sector."""

    def __init__(self, width: int, height: int, sector) -> None:
        self.width, self.height, self.sector = width, height, sector
        self.reflect = np.zeros((height, width), np.float32)
        self.absorb = np.zeros((height, width), np.float32)

    def point_at(self, depth: float, lateral: float) -> tuple[float, float]:
        """Image point at a fraction ``depth`` (0 probe .. 1 bottom) and ``lateral`` (-1 .. 1) of the sector."""
        s = self.sector
        r = s.r0 + depth * (s.r1 - s.r0)
        phi = lateral * s.half
        return s.ax + r * math.sin(phi), s.ay + r * math.cos(phi)

    @property
    def depth_px(self) -> float:
        return self.sector.r1 - self.sector.r0


@dataclass
class Pose:
    """Local anatomy frame -> image pixels."""

    canvas: Canvas
    cx: float
    cy: float
    scale: float  # pixels per local unit
    angle: float  # radians
    flip: bool = False

    def pt(self, u: float, v: float) -> tuple[float, float]:
        u = -u if self.flip else u
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.cx + self.scale * (c * u - s * v), self.cy + self.scale * (s * u + c * v)

    def pts(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        u = -uv[:, 0] if self.flip else uv[:, 0]
        c, s = math.cos(self.angle), math.sin(self.angle)
        x = self.cx + self.scale * (c * u - s * uv[:, 1])
        y = self.cy + self.scale * (s * u + c * uv[:, 1])
        return np.stack([x, y], 1)

    def _angle_deg(self, rot: float) -> float:
        return math.degrees(self.angle) + (-rot if self.flip else rot)

    def _px(self, t: float) -> int:
        return max(1, int(round(t * self.scale)))

    def _targets(self, value: float, absorb: float | None):
        yield self.canvas.reflect, float(value)
        if absorb is not None:
            yield self.canvas.absorb, float(absorb)

    def ellipse(self, u: float, v: float, a: float, b: float, rot: float, value: float,
                thick: float | None = None, absorb: float | None = None) -> None:
        """Filled ellipse (``thick`` None) or its outline ``thick`` local units wide; ``rot`` in degrees."""
        x, y = self.pt(u, v)
        center = (int(round(x * ONE)), int(round(y * ONE)))
        axes = (max(1, int(round(a * self.scale * ONE))), max(1, int(round(b * self.scale * ONE))))
        t = -1 if thick is None else self._px(thick)
        for img, val in self._targets(value, absorb):
            cv2.ellipse(img, center, axes, self._angle_deg(rot), 0, 360, val, t, cv2.LINE_8, SHIFT)

    def arc(self, u: float, v: float, a: float, b: float, rot: float, t0: float, t1: float, value: float,
            thick: float, absorb: float | None = None, n: int = 24) -> None:
        """Part of an ellipse outline, parameter from ``t0`` to ``t1`` degrees (local frame)."""
        t = np.radians(np.linspace(t0, t1, n))
        r = math.radians(rot)
        lu, lv = a * np.cos(t), b * np.sin(t)
        self.polyline(np.stack([u + lu * math.cos(r) - lv * math.sin(r), v + lu * math.sin(r) + lv * math.cos(r)], 1),
                      value, thick, absorb)

    def polyline(self, uv, value: float, thick: float, absorb: float | None = None, closed: bool = False) -> None:
        p = np.round(self.pts(uv) * ONE).astype(np.int32)
        for img, val in self._targets(value, absorb):
            cv2.polylines(img, [p], closed, val, self._px(thick), cv2.LINE_8, SHIFT)

    def poly(self, uv, value: float, absorb: float | None = None) -> None:
        p = np.round(self.pts(uv) * ONE).astype(np.int32)
        for img, val in self._targets(value, absorb):
            cv2.fillPoly(img, [p], val, cv2.LINE_8, SHIFT)

    def dots(self, uv, r: float, value: float, absorb: float | None = None) -> None:
        for u, v in np.asarray(uv).reshape(-1, 2):
            self.ellipse(u, v, r, r, 0, value, None, absorb)


def low_frequency(rng: np.random.Generator, height: int, width: int, cells: int, amount: float) -> np.ndarray:
    """Smooth random field around 1 (tissue heterogeneity), ``cells`` blobs across."""
    gh, gw = max(2, cells * height // max(width, 1)), max(2, cells)
    g = rng.normal(0, 1, (gh, gw)).astype(np.float32)
    f = cv2.resize(g, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(1.0 + amount * f, 0.2, 3.0)
