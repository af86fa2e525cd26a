"""Drawing the result onto the frame: plane, confidence, Hz, latency, top-3 bars, banners.

Sizes scale with the frame so the text is legible from 112 px clips to 4K
screens. Drawing happens in place on the BGR frame (no copy). Text sizes are
cached (:func:`text_size`): most of the overlay's strings repeat from frame to frame.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from edge.labels import short_name

STATE_COLORS = {  # BGR
    "ok": (80, 220, 80),
    "uncertain": (0, 200, 255),
    "frozen": (255, 200, 0),
}
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
RED = (40, 40, 230)


def font_scale(frame_shape: Sequence[int]) -> tuple[float, int]:
    """cv2 font scale and line thickness for a frame of this size (text ~4% of the height)."""
    h, w = frame_shape[:2]
    scale = max(0.3, min(h / 720.0, w / 960.0) * 0.9)
    return scale, max(1, int(round(scale * 2)))


def mask_header(frame: np.ndarray, band: float) -> None:
    """Black out the top band (pixels if >= 1, else a fraction of the height), in place."""
    if band <= 0:
        return
    rows = int(band) if band >= 1 else int(round(band * frame.shape[0]))
    frame[: min(rows, frame.shape[0])] = 0


@lru_cache(maxsize=2048)
def text_size(text: str, scale: float, thick: int) -> tuple[tuple[int, int], int]:
    """``cv2.getTextSize`` in FONT_HERSHEY_SIMPLEX, memoised (labels, percentages and sizes repeat)."""
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)


def _text(img, text, org, scale, thick, color, bg=True):
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = text_size(text, scale, thick)
    x, y = org
    if bg:
        cv2.rectangle(img, (x - 2, y - th - 3), (x + tw + 2, y + base + 1), BLACK, -1)
    cv2.putText(img, text, (x, y), font, scale, color, thick, cv2.LINE_AA)
    return tw, th + base


def draw_overlay(
    frame: np.ndarray,
    label: str,
    confidence: float,
    state: str,
    hz: float,
    latency_ms: float,
    box: Sequence[int] | None = None,
    top: Sequence[tuple[str, float]] | None = None,
    banner: str | None = None,
) -> np.ndarray:
    """Draw the result onto a BGR frame in place and return it."""
    import cv2

    h, w = frame.shape[:2]
    scale, thick = font_scale(frame.shape)
    pad = max(2, int(6 * scale))
    color = STATE_COLORS.get(state, WHITE)
    if box is not None:
        x, y, bw, bh = (int(v) for v in box)
        cv2.rectangle(frame, (x, y), (x + bw - 1, y + bh - 1), color, max(1, thick // 2))
    name = short_name(label) if w < 480 else label
    head = f"{name} {confidence * 100:.0f}%" if state != "uncertain" else f"uncertain ({short_name(label)}?)"
    if state == "frozen":
        head += " [frozen]"
    big = scale * 1.3
    # shrink the headline until it fits the width
    while big > 0.3 and text_size(head, big, thick + 1)[0][0] > w - 2 * pad:
        big *= 0.85
    y = pad
    (_, th), base = text_size(head, big, thick + 1)
    y += th + 2
    _text(frame, head, (pad, y), big, thick + 1, color)
    y += base + pad
    small = scale * 0.8
    info = f"{hz:.1f} Hz  {latency_ms:.1f} ms"
    (_, th), base = text_size(info, small, thick)
    y += th + 2
    _text(frame, info, (pad, y), small, thick, WHITE)
    y += base + pad
    if top:
        bar_w = max(20, int(w * 0.25))
        (_, th), base = text_size("Abdomen 100%", small * 0.9, thick)
        bar_h = th + base + 2
        for name_k, p in top:
            cv2.rectangle(frame, (pad, y), (pad + bar_w, y + bar_h), (60, 60, 60), -1)
            cv2.rectangle(frame, (pad, y), (pad + int(bar_w * float(np.clip(p, 0, 1))), y + bar_h), color, -1)
            _text(frame, f"{short_name(name_k)} {p * 100:.0f}%", (pad + bar_w + pad, y + th + 1), small * 0.9, thick, WHITE)
            y += bar_h + max(2, pad // 2)
    if banner:
        draw_banner(frame, banner)
    return frame


def draw_banner(frame: np.ndarray, text: str) -> np.ndarray:
    """A red band across the bottom of the frame (e.g. 'reconnecting ...'), in place."""
    import cv2

    h, w = frame.shape[:2]
    scale, thick = font_scale(frame.shape)
    band = max(12, int(44 * scale))
    cv2.rectangle(frame, (0, h - band), (w, h), RED, -1)
    s = scale
    while s > 0.3 and text_size(text, s, thick)[0][0] > w - 8:
        s *= 0.85
    cv2.putText(frame, text, (4, h - band // 3), cv2.FONT_HERSHEY_SIMPLEX, s, WHITE, thick, cv2.LINE_AA)
    return frame
