"""Find the ultrasound image sector inside a scanner's full-screen video-out.

A scanner's video output is its whole screen: the image sector (a fan for
phased/curved probes, a rectangle for linear ones) surrounded by menus, text,
scales, a patient header and black or coloured borders. This module finds the
sector's bounding box:

* :func:`detect_sector` looks at one frame: on a downscaled copy it marks the
  cells whose pixels are almost all above the background level (speckle fills
  its cells, text and thin scales do not), removes thin structures with a
  morphological opening, and picks the largest connected component (scored up
  when a temporal history shows it moving). Pieces of a linear image that a
  black structure (the eye's vitreous, a cyst) splits apart are merged back
  when they share the same columns and texture.
* :class:`SectorTracker` holds that box steady across a stream: it re-detects
  only every ``redetect_every`` frames (or sooner when a cheap thumbnail of the
  screen chrome changes), keeps the box while fresh detections agree with it,
  and switches (counting ``layout_changes``) only after several consecutive
  checks agree on a different box. ``roi`` pins the box (``--roi x,y,w,h``).

Only numpy and OpenCV are used (imported when first needed).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.errors import EXIT_USAGE, FetalPlanesError

__all__ = ["Box", "DetectorConfig", "SectorTracker", "detect_sector"]


def _cv2():
    from edge.preprocess import _cv2 as load

    return load()


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of a frame: left ``x``, top ``y``, width ``w``, height ``h``."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        """Pixels covered (0 for an empty box)."""
        return max(self.w, 0) * max(self.h, 0)

    def as_list(self) -> list[int]:
        """``[x, y, w, h]`` (what JSON outputs record)."""
        return [int(self.x), int(self.y), int(self.w), int(self.h)]

    def clip(self, width: int, height: int) -> "Box":
        """This box intersected with a ``width`` x ``height`` frame."""
        x0, y0 = min(max(self.x, 0), width), min(max(self.y, 0), height)
        x1, y1 = min(max(self.x + self.w, 0), width), min(max(self.y + self.h, 0), height)
        return Box(x0, y0, x1 - x0, y1 - y0)

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """The part of ``frame`` inside this box: a view (no copy), clipped to the frame."""
        b = self.clip(frame.shape[1], frame.shape[0])
        return frame[b.y : b.y + b.h, b.x : b.x + b.w]

    def iou(self, other: "Box") -> float:
        """Intersection over union with ``other`` (0.0 when both are empty)."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, sx: float, sy: float | None = None) -> "Box":
        """This box with coordinates multiplied by ``sx`` (x, w) and ``sy`` (y, h)."""
        sy = sx if sy is None else sy
        x0, y0 = int(round(self.x * sx)), int(round(self.y * sy))
        x1, y1 = int(round((self.x + self.w) * sx)), int(round((self.y + self.h) * sy))
        return Box(x0, y0, x1 - x0, y1 - y0)

    @classmethod
    def full(cls, frame: np.ndarray) -> "Box":
        """The whole frame."""
        return cls(0, 0, int(frame.shape[1]), int(frame.shape[0]))

    @classmethod
    def parse(cls, text: str) -> "Box":
        """``"x,y,w,h"`` (integers, w and h > 0, x and y >= 0) -> Box; the ``--roi`` syntax."""
        parts = [p.strip() for p in str(text).replace(" ", ",").split(",") if p.strip()]
        hint = "give the sector as four integers x,y,w,h in pixels of the source frame, e.g. --roi 120,60,400,360"
        if len(parts) != 4:
            raise FetalPlanesError(f"--roi {text!r}: expected 4 comma-separated integers x,y,w,h, got {len(parts)}", hint)
        try:
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise FetalPlanesError(f"--roi {text!r}: x,y,w,h must be integers", hint) from None
        if w <= 0 or h <= 0:
            raise FetalPlanesError(f"--roi {text!r}: width and height must be positive (got w={w}, h={h})", hint)
        if x < 0 or y < 0:
            raise FetalPlanesError(f"--roi {text!r}: x and y must not be negative (got x={x}, y={y})", hint)
        return cls(x, y, w, h)


@dataclass
class DetectorConfig:
    """Knobs of :func:`detect_sector` (defaults tuned on the real recordings, see docs/sector.md)."""

    work_size: int = 160  # longest side of the cell grid the detection runs on
    samples_per_cell: int = 3  # each cell is judged from this many x this many sampled pixels
    background_margin: int = 1  # a pixel is "content" if brighter than the background level + this
    cell_fill: float = 0.55  # a working cell is image if this fraction of its pixels is content ...
    texture_std: float = 1.5  # ... and its pixels vary by at least this std (flat UI panels do not)
    open_px: int = 3  # opening kernel (working pixels): removes text, scales, thin lines
    close_px: int = 3  # closing kernel: fills speckle holes
    min_area_frac: float = 0.02  # a component must cover at least this fraction of the frame
    moving_std: float = 1.5  # temporal std of a cell's mean (gray levels) above which it counts as moving
    merge_col_iou: float = 0.75  # merge a piece sharing this column overlap with the main sector ...
    merge_min_frac: float = 0.1  # ... if it is at least this fraction of the main sector's area ...
    merge_min_height: float = 0.2  # ... and at least this fraction of its height


@dataclass
class CellMaps:
    """One frame reduced to working cells: what detection looks at (and what a tracker's history keeps)."""

    fill: np.ndarray  # fraction of the cell's sampled pixels above the background level
    std: np.ndarray  # standard deviation of the cell's sampled pixels (texture)
    mean: np.ndarray  # mean gray level of the cell
    frame_shape: tuple[int, int]  # (h, w) of the full frame
    background: float = 0.0  # the screen's background level found among the sampled pixels
    candidate: np.ndarray | None = None  # fill and texture both high enough (set by cell_maps)


def _as_gray(frame: np.ndarray) -> np.ndarray:
    from edge.preprocess import to_gray

    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
        shape = getattr(frame, "shape", None)
        raise FetalPlanesError(
            f"sector detection got no usable image (shape {shape})",
            hint="pass a gray (H,W), BGR (H,W,3) or BGRA (H,W,4) frame; skip empty frames",
        )
    return to_gray(frame)


def _work_shape(h: int, w: int, work_size: int) -> tuple[int, int]:
    s = min(1.0 / 3.0, work_size / max(h, w))  # a cell spans at least 3x3 pixels: texture needs several
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def _background_level(gray: np.ndarray) -> float:
    """The screen's background gray: the most common level among the darker half of (sampled) pixels.

    Scanners paint their chrome in one flat dark level (0, or 1-2 on some Philips screens), which
    is what a pixel of image must rise above."""
    h, w = gray.shape
    sample = gray[:: max(1, h // 120), :: max(1, w // 120)]
    median = int(np.median(sample))
    hist = np.bincount(sample.ravel(), minlength=256)[: median + 1]
    return float(np.argmax(hist))


def _sample(frame: np.ndarray, wh: int, ww: int, k: int) -> np.ndarray:
    """``k`` x ``k`` pixels per working cell, picked (not averaged) from the frame, as gray uint8.

    Picking instead of reducing the whole frame keeps the cost independent of the frame size
    (a 4K frame costs what a 640x480 one does)."""
    cv2 = _cv2()
    if frame.dtype == bool or frame.dtype.kind not in "uif":
        frame = frame.astype(np.uint8)
    small = cv2.resize(frame, (ww * k, wh * k), interpolation=cv2.INTER_NEAREST)
    if frame.ndim == 3 and small.ndim == 2:  # OpenCV drops a single channel axis
        small = small[:, :, None]
    return _as_gray(small)


def _fill(sample: np.ndarray, background: float, margin: int, wh: int, ww: int) -> np.ndarray:
    cv2 = _cv2()
    content = (sample > background + margin).astype(np.float32)
    return cv2.resize(content, (ww, wh), interpolation=cv2.INTER_AREA)


def cell_maps(frame: np.ndarray, config: DetectorConfig | None = None) -> CellMaps:
    """Reduce a frame (gray/BGR/BGRA) to the detector's working cells (well under a millisecond)."""
    cv2 = _cv2()
    cfg = config or DetectorConfig()
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
        _as_gray(frame)  # raises the FetalPlanesError
    h, w = int(frame.shape[0]), int(frame.shape[1])
    wh, ww = _work_shape(h, w, cfg.work_size)
    k = max(1, int(cfg.samples_per_cell))
    sample = _sample(frame, wh, ww, k)
    bg = _background_level(sample)
    fill = _fill(sample, bg, cfg.background_margin, wh, ww)
    g = sample.astype(np.float32)
    mean = cv2.resize(g, (ww, wh), interpolation=cv2.INTER_AREA)
    sq = cv2.resize(g * g, (ww, wh), interpolation=cv2.INTER_AREA)
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    cand = (fill >= cfg.cell_fill) & (std >= cfg.texture_std)
    return CellMaps(fill, std, mean, (h, w), bg, cand)


def _detect_mask(cand: np.ndarray, fill: np.ndarray, moving: np.ndarray | None, cfg: DetectorConfig):
    """The sector's cells (bool mask on the working grid), or None."""
    cv2 = _cv2()
    raw = cand.astype(np.uint8)
    k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.open_px, cfg.open_px))
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.close_px, cfg.close_px))
    closed = cv2.morphologyEx(raw, cv2.MORPH_CLOSE, k_close)
    mask = cv2.morphologyEx(closed, cv2.MORPH_OPEN, k_open)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = cfg.min_area_frac * mask.size
    scores: dict[int, float] = {}
    for i in range(1, n):
        area = float(stats[i, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        scores[i] = area * (0.25 + float(moving[labels == i].mean())) if moving is not None else area
    if not scores:
        return None
    best = max(scores, key=scores.get)
    keep = labels == best
    # merge pieces of one image split by a black structure (the eye's vitreous): same columns, same fill
    bx, bw, area_b = stats[best, 0], stats[best, 2], stats[best, cv2.CC_STAT_AREA]
    bh = stats[best, cv2.CC_STAT_HEIGHT]
    fill_b = float(fill[keep].mean())
    for i in scores:
        if i == best or stats[i, cv2.CC_STAT_AREA] < cfg.merge_min_frac * area_b:
            continue
        if stats[i, cv2.CC_STAT_HEIGHT] < cfg.merge_min_height * bh:  # a flat strip (button bar), not a piece
            continue
        x, w = stats[i, 0], stats[i, 2]
        inter = max(0, min(bx + bw, x + w) - max(bx, x))
        col_iou = inter / float(max(bx + bw, x + w) - min(bx, x))
        piece = labels == i
        if col_iou >= cfg.merge_col_iou and float(fill[piece].mean()) >= 0.85 * fill_b:
            keep |= piece
    # give back what the opening shaved off the rim (fan apex, corners), not what merely touches it
    grown = cv2.dilate(keep.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (cfg.open_px + 2,) * 2))
    return (grown > 0) & (closed > 0)


def _extend_rows(keep: np.ndarray, ever: np.ndarray) -> np.ndarray:
    """``keep`` plus, row by row, the horizontal runs of ``ever`` cells that touch it.

    ``ever`` marks cells that were above the background at some time in the window: the near-black
    sides of a fan (dark lung, one side of a heart) belong to the image although they never show
    texture. Only rows the textured sector already spans are extended, so the header band above the
    apex and strips below the fan (ECG, buttons) stay out, whatever their gray level."""
    rows = np.nonzero(keep.any(axis=1))[0]
    if rows.size == 0:
        return keep
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    edge = max(1, (r1 - r0) // 25)  # not the first and last rows: text beside the apex, a scale under the image
    r0, r1 = r0 + edge, r1 - edge
    if r1 <= r0:
        return keep
    band = ever[r0:r1] | keep[r0:r1]
    starts = band & ~np.pad(band, ((0, 0), (1, 0)))[:, :-1]
    run_id = np.cumsum(starts, axis=1) + (np.arange(r1 - r0) * (band.shape[1] + 1))[:, None]
    run_id[~band] = -1
    touched = np.unique(run_id[keep[r0:r1]])
    out = keep.copy()
    out[r0:r1] |= np.isin(run_id, touched[touched >= 0])
    return out


def ever_cells(ever_fill: np.ndarray, config: DetectorConfig | None = None) -> np.ndarray:
    """Cells whose fill reached ``cell_fill`` at some time: ``ever_fill`` is the temporal maximum of
    :attr:`CellMaps.fill` over a window (a max of per-frame fills, so the odd bright pixel that video
    compression scatters over a dark screen does not add up). Bool mask, gaps closed."""
    cv2 = _cv2()
    cfg = config or DetectorConfig()
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.close_px, cfg.close_px))
    k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.open_px, cfg.open_px))
    closed = cv2.morphologyEx((ever_fill >= cfg.cell_fill).astype(np.uint8), cv2.MORPH_CLOSE, k_close)
    return cv2.morphologyEx(closed, cv2.MORPH_OPEN, k_open) > 0  # text and scales are thin: gone


def _to_frame_box(mask: np.ndarray, frame_shape: tuple[int, int]) -> Box:
    h, w = frame_shape
    sh, sw = mask.shape
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    sx, sy = w / sw, h / sh
    bx, by = int(np.floor(x0 * sx)), int(np.floor(y0 * sy))
    return Box(bx, by, int(np.ceil(x1 * sx)) - bx, int(np.ceil(y1 * sy)) - by).clip(w, h)


def detect_from_maps(
    current: CellMaps,
    history: list[CellMaps] | None = None,
    config: DetectorConfig | None = None,
    ever_fill: np.ndarray | None = None,
) -> Box | None:
    """Detection on precomputed :class:`CellMaps`; ``history`` (earlier maps of the same layout) adds
    the cells that showed image at any time and favours what moves; ``ever_fill`` (the temporal
    maximum of the maps' fill over a longer window) lets the box take in a fan's near-black sides."""
    cfg = config or DetectorConfig()
    hist = [m for m in (history or []) if m.fill.shape == current.fill.shape]
    cand = current.candidate.copy()
    fill = current.fill.copy()
    moving = None
    if hist:
        for m in hist:
            cand |= m.candidate
            np.maximum(fill, m.fill, out=fill)
        if len(hist) >= 2:
            std = np.stack([m.mean for m in hist] + [current.mean]).std(axis=0)
            moving_cells = std > cfg.moving_std
            if moving_cells.mean() > 0.01:  # otherwise a frozen image: no temporal cue
                moving = moving_cells.astype(np.float32)
    keep = _detect_mask(cand, fill, moving, cfg)
    if keep is None:
        return None
    if ever_fill is not None and ever_fill.shape == keep.shape:
        keep = _extend_rows(keep, ever_cells(ever_fill, cfg))
    return _to_frame_box(keep, current.frame_shape)


def detect_sector(frame: np.ndarray, config: DetectorConfig | None = None) -> Box | None:
    """The ultrasound image sector's bounding box in one frame (gray, BGR or BGRA, any size), or None
    when nothing image-like is there (an all-black or flat frame). Raises FetalPlanesError on a
    non-image. One frame cannot see the parts of a fan that are pure black right now; the
    :class:`SectorTracker` adds a history for that."""
    cfg = config or DetectorConfig()
    return detect_from_maps(cell_maps(frame, cfg), None, cfg)


def _union(a: Box, b: Box) -> Box:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    return Box(x0, y0, max(a.x + a.w, b.x + b.w) - x0, max(a.y + a.h, b.y + b.h) - y0)


class SectorTracker:
    """Holds the sector box steady across a stream of frames and re-finds it when the layout changes.

    Per frame it samples a ~40x30 thumbnail (a few microseconds): the thumbnail tells a frozen
    image (nothing changed: keep the box, detect nothing) and a changed screen chrome (text or
    scales outside the box changed: re-detect now). Every ``history_every`` frames it reduces the
    frame to :class:`CellMaps` (a few thousand sampled pixels, well under a millisecond) and keeps
    the last ``history`` of them, plus a temporal maximum over ``ever_blocks``
    blocks of ``history`` maps of their fill (so a fan's sides that are near-black for seconds
    still count).
    A detection runs on the maps already kept, on a frame that did not compute maps, every
    ``redetect_every`` frames: no frame does both, so no frame is much slower than the others.

    A detection overlapping the held box by ``hold_iou`` or more is ignored (no jitter); a
    different box must be found on ``confirm_checks`` consecutive checks before the tracker
    switches to it and counts a ``layout_changes``. For the first ``settle_checks`` checks after
    acquiring a box it may still grow or shrink (the history is filling up) without that counting
    as a layout change. With no detection it keeps the last good box, or the full frame when it
    never had one. ``roi`` pins the box (``--roi``).
    """

    def __init__(
        self,
        roi: Box | None = None,
        redetect_every: int = 15,
        *,
        hold_iou: float = 0.8,
        confirm_checks: int = 2,
        chrome_change: float = 6.0,
        history: int = 30,
        history_every: int = 3,
        ever_blocks: int = 4,
        recent: int = 6,
        settle_checks: int = 8,
        config: DetectorConfig | None = None,
        defer_checks: bool = False,
        steady_factor: int = 2,
    ):
        if redetect_every < 1 or history_every < 1 or confirm_checks < 1 or history < 1 or ever_blocks < 1 or steady_factor < 1:
            raise FetalPlanesError(
                f"SectorTracker: redetect_every={redetect_every}, history_every={history_every}, "
                f"confirm_checks={confirm_checks}, history={history}, ever_blocks={ever_blocks}, "
                f"steady_factor={steady_factor} must all be >= 1",
                hint="use positive frame counts",
                exit_code=EXIT_USAGE,
            )
        self.roi = roi
        self.redetect_every = redetect_every
        self.hold_iou = hold_iou
        self.confirm_checks = confirm_checks
        self.chrome_change = chrome_change
        self.history_every = history_every
        self.steady_factor = steady_factor  # once settled: maps and checks this many times less often
        self.settle_checks = settle_checks
        self.recent = max(2, recent)  # maps the layout-change check looks at
        self.config = config or DetectorConfig()
        self.layout_changes = 0  # switches from one detected box to another
        self.detections = 0  # detections run (cost accounting)
        self.frozen_frames = 0  # frames identical to the previous one (detection skipped)
        self.box: Box | None = roi
        self.is_fallback = roi is None  # True while the box is the full-frame fallback
        self._hist: deque[CellMaps] = deque(maxlen=history)
        self._ever_blocks: deque[np.ndarray] = deque(maxlen=ever_blocks)  # finished block maxima
        self._ever_cur: np.ndarray | None = None  # the block being filled
        self._ever_n = 0
        self._frame = -1
        self._due = 0
        self._shape: tuple[int, int] | None = None
        self._last_good: Box | None = None
        self._pending: Box | None = None
        self._pending_n = 0
        self._settle = 0
        self._ref_thumb: np.ndarray | None = None
        self._prev_thumb: np.ndarray | None = None
        self._chrome: np.ndarray | None = None  # thumbnail cells outside the box
        self._chrome_changed = False
        self._acquiring = True  # until the first box has settled
        self.defer_checks = defer_checks
        self._deferred: tuple[np.ndarray, tuple[int, int]] | None = None  # a check update() left for run_deferred()
        self._deferred_error: Exception | None = None
        self.deferred_s = 0.0  # seconds spent in deferred checks not yet reported (see pop_deferred_seconds)

    def _forget(self) -> None:
        """Drop the history (new layout): detections start again from the frames that follow."""
        self._hist.clear()
        self._ever_blocks.clear()
        self._ever_cur, self._ever_n = None, 0

    def _remember(self, maps: CellMaps) -> None:
        self._hist.append(maps)
        s = maps.fill
        if self._ever_cur is None or self._ever_cur.shape != s.shape:
            self._ever_cur, self._ever_n = s.copy(), 0
        else:
            np.maximum(self._ever_cur, s, out=self._ever_cur)
        self._ever_n += 1
        if self._ever_n >= (self._hist.maxlen or 1):  # block full: keep it, start the next
            self._ever_blocks.append(self._ever_cur)
            self._ever_cur, self._ever_n = None, 0

    def _ever(self) -> np.ndarray | None:
        parts = list(self._ever_blocks) + ([self._ever_cur] if self._ever_cur is not None else [])
        parts = [p for p in parts if p.shape == parts[-1].shape] if parts else []
        if not parts:
            return None
        out = parts[0].copy()
        for p in parts[1:]:
            np.maximum(out, p, out=out)
        return out

    # -- cheap per-frame measures -------------------------------------------------------------
    @staticmethod
    def _thumb(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        t = frame[:: max(1, h // 30), :: max(1, w // 40)]
        if t.ndim == 3:
            t = t[:, :, : min(3, t.shape[2])].mean(axis=2, dtype=np.float32)
        return t.astype(np.float32)

    def _chrome_mask(self, thumb: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
        th, tw = thumb.shape
        h, w = frame_shape
        mask = np.ones((th, tw), bool)
        if self.box is not None and not self.is_fallback:
            ys = (np.arange(th) * max(1, h // 30))[:, None]
            xs = (np.arange(tw) * max(1, w // 40))[None, :]
            b = self.box
            inside = (ys >= b.y - 4) & (ys < b.y + b.h + 4) & (xs >= b.x - 4) & (xs < b.x + b.w + 4)
            mask &= ~inside
        return mask

    # -- the per-frame entry point ------------------------------------------------------------
    def update(self, frame: np.ndarray) -> Box:
        """The sector box to crop ``frame`` with (gray/BGR/BGRA). Raises FetalPlanesError on a non-image."""
        if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
            raise FetalPlanesError(
                f"SectorTracker.update got no usable frame (shape {getattr(frame, 'shape', None)})",
                hint="skip empty or corrupt frames before sector tracking",
                exit_code=EXIT_USAGE,
            )
        if self._deferred is not None:  # nobody ran the last frame's check: run it now, before this frame
            self.run_deferred()
        if self._deferred_error is not None:
            exc, self._deferred_error = self._deferred_error, None
            raise exc
        self._frame += 1
        if self.roi is not None:
            return self.roi
        shape = (int(frame.shape[0]), int(frame.shape[1]))
        thumb = self._thumb(frame)
        if shape != self._shape:  # new source or resolution: everything known is void
            self._shape = shape
            self._forget()
            self._due = self._frame
            self._pending, self._pending_n = None, 0
            self._ref_thumb = self._prev_thumb = None
            if self.box is not None and not self.is_fallback:
                self._pending_n = self.confirm_checks - 1  # a resolution change is a layout change already
                self._pending = None
            if self._last_good is not None and not (0 <= self._last_good.x + self._last_good.w <= shape[1]
                                                    and self._last_good.y + self._last_good.h <= shape[0]):
                self._last_good = None
        frozen = self._prev_thumb is not None and float(np.abs(thumb - self._prev_thumb).mean()) < 0.05
        self._prev_thumb = thumb
        if frozen:
            self.frozen_frames += 1
            if self.box is not None and not self.is_fallback:
                return self.box
        if self._ref_thumb is not None and self._chrome is not None:
            diff = float(np.abs(thumb - self._ref_thumb)[self._chrome].mean()) if self._chrome.any() else 0.0
            if diff > self.chrome_change:  # menus/scales changed: the layout probably did
                self._forget()
                self._ref_thumb = None
                self._chrome_changed = True
                self._due = self._frame
        due = self._frame >= self._due
        every = self.history_every * (self.steady_factor if self.steady else 1)
        fresh = self._frame % every == 0 or (due and not self._hist)
        if fresh:
            self._remember(cell_maps(frame, self.config))  # this frame's work: the maps ...
        if due and self._hist and (not fresh or self.history_every == 1 or self.is_fallback):
            if self.defer_checks:  # ... or a detection on the maps kept (now, or after the frame was handed on)
                self._deferred = (thumb, shape)
            else:
                self._check(thumb, shape)
        if self.box is None or self.is_fallback:
            self.box = self._last_good or Box(0, 0, shape[1], shape[0])
            self.is_fallback = self._last_good is None
        return self.box

    @property
    def steady(self) -> bool:
        """Settled on a box, nothing pending: maps and checks ``steady_factor`` times less often (a changed
        screen chrome or a different detection ends it at once)."""
        return (self.steady_factor > 1 and not self._acquiring and self._pending is None and self._pending_n == 0
                and self._settle >= self.settle_checks and self.box is not None and not self.is_fallback)

    def run_deferred(self) -> bool:
        """Run the detection :meth:`update` left pending (``defer_checks``); True when one ran.

        The live loop calls this after the frame was handed on (the pipeline's thread while the model runs),
        so a detection (a few milliseconds) never delays the frame that triggered it; what it finds applies
        from the next frame on, as it would without deferring had the check come one frame later."""
        if self._deferred is None:
            return False
        t0 = time.perf_counter()
        thumb, shape = self._deferred
        self._deferred = None
        try:
            self._check(thumb, shape)
            if self.box is None or self.is_fallback:
                self.box = self._last_good or Box(0, 0, shape[1], shape[0])
                self.is_fallback = self._last_good is None
        except Exception as exc:  # reported by the next update(), as that frame's error (the loop counts it)
            self._deferred_error = exc
        finally:
            self.deferred_s += time.perf_counter() - t0
        return True

    def pop_deferred_seconds(self) -> float:
        """Seconds spent in deferred detections since the last call (the loop adds them to the sector stage)."""
        s, self.deferred_s = self.deferred_s, 0.0
        return s

    def _adopt(self, det: Box, count_change: bool, thumb: np.ndarray, shape: tuple[int, int]) -> None:
        if count_change:
            self.layout_changes += 1
            self._forget()  # what was seen before belongs to the old layout
        self.box, self.is_fallback, self._last_good = det, False, det
        self._pending, self._pending_n = None, 0
        self._chrome = self._chrome_mask(thumb, shape)

    def _inside(self, det: Box) -> float:
        """Fraction of ``det`` inside the held box."""
        b = self.box
        ix = max(0, min(det.x + det.w, b.x + b.w) - max(det.x, b.x))
        iy = max(0, min(det.y + det.h, b.y + b.h) - max(det.y, b.y))
        return ix * iy / float(det.area)

    def _emptied(self, recent: Box, maps: list[CellMaps]) -> bool:
        """The held box shrank to ``recent``: what lies outside ``recent`` but inside the held box
        showed no image in any of ``maps`` (a fan's dark side still rises above the background
        now and then; an area the image has left does not)."""
        h, w = maps[-1].frame_shape
        sh, sw = maps[-1].fill.shape
        fill = np.max(np.stack([m.fill for m in maps]), axis=0)

        def cells(b: Box) -> np.ndarray:
            m = np.zeros((sh, sw), bool)
            m[int(b.y * sh / h) : int(np.ceil((b.y + b.h) * sh / h)), int(b.x * sw / w) : int(np.ceil((b.x + b.w) * sw / w))] = True
            return m

        ring = cells(self.box) & ~cells(Box(recent.x - 8, recent.y - 8, recent.w + 16, recent.h + 16))
        return bool(ring.any()) and float((fill[ring] >= self.config.cell_fill).mean()) < 0.05

    def _grows(self, det: Box, shape: tuple[int, int]) -> bool:
        """``det`` covers 85 % of the held box and is larger: dark parts of the fan lit up since the
        box was found (the tracker then holds the union)."""
        b = self.box
        covered = det.iou(b) * (det.area + b.area) / (1.0 + det.iou(b))  # intersection
        return covered >= 0.85 * b.area and det.area > 1.02 * b.area

    def _check(self, thumb: np.ndarray, shape: tuple[int, int]) -> None:
        self.detections += 1
        hist = list(self._hist)
        det = detect_from_maps(hist[-1], hist[:-1], self.config, self._ever())
        if self.box is not None and not self.is_fallback and len(hist) > self.recent:
            # the long window still remembers the old layout for seconds: a box found in the last
            # ``recent`` maps alone that lies largely outside the held box means the image moved
            recent = detect_from_maps(hist[-1], hist[-self.recent : -1], self.config)
            if recent is not None and recent.area and recent.iou(self.box) < self.hold_iou:
                if self._inside(recent) < 0.9 or self._emptied(recent, hist[-self.recent :]):
                    det = recent
        settling = self._settle < self.settle_checks
        self._settle += 1
        chrome_changed, self._chrome_changed = self._chrome_changed, False
        if det is None:
            pass  # dark, blank or frozen-looking frame: keep what we have
        elif self.box is None or self.is_fallback:
            self._adopt(det, count_change=False, thumb=thumb, shape=shape)
            self._settle = 0
        elif self._pending_n == 0 and (det.iou(self.box) >= self.hold_iou or (settling and det.iou(self.box) >= 0.5)):
            if settling:  # the history is still filling in: follow the detection
                self._adopt(det, count_change=False, thumb=thumb, shape=shape)
        elif self._pending_n == 0 and not chrome_changed and self._grows(det, shape):
            self._adopt(_union(self.box, det), count_change=False, thumb=thumb, shape=shape)
        else:
            agrees = self._pending is None or det.iou(self._pending) >= 0.5
            self._pending_n = self._pending_n + 1 if agrees else 1
            self._pending = det
            if self._pending_n >= self.confirm_checks:
                # a switch while still settling after acquisition is the acquisition, not a layout change
                self._adopt(det, count_change=not (settling and self._acquiring), thumb=thumb, shape=shape)
                self._settle = 0
        if self._settle >= self.settle_checks:
            self._acquiring = False
        self._ref_thumb = thumb
        if self._chrome is None or self._chrome.shape != thumb.shape:
            self._chrome = self._chrome_mask(thumb, shape)
        soon = self._pending is not None or self._settle < self.settle_checks or self.is_fallback
        self._due = self._frame + (self.history_every if soon else self.redetect_every * (self.steady_factor if self.steady else 1))
