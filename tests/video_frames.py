"""Decoded frames of a video file, for tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_frames(path: str | Path, limit: int | None = None) -> list[np.ndarray]:
    """The first ``limit`` frames of ``path`` (every frame when None), as OpenCV decodes them."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames
