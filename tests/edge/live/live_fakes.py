"""Fake sources and outputs for the live-loop tests (not a test module)."""

from __future__ import annotations

import numpy as np

from edge.live.outputs import Output, OutputSpec
from edge.live.sources import SourceSpec


class FakeSource:
    """Yields the given frames (None entries included), then ends or 'drops'."""

    def __init__(self, frames, live=False, fps=0.0):
        self.spec = SourceSpec("v4l2" if live else "file", "fake", live)
        self.frames = list(frames)
        self.i = 0
        self.fps = fps

    def read(self):
        if self.i >= len(self.frames):
            return False, None
        self.i += 1
        return True, self.frames[self.i - 1]

    def rewind(self):
        self.i = 0
        return True

    def close(self):
        pass


class EndlessSource(FakeSource):
    """A live source that never ends (random frames)."""

    def __init__(self, shape=(64, 80, 3), seed=0):
        super().__init__([], live=True)
        self.rng = np.random.default_rng(seed)
        self.shape = shape

    def read(self):
        return True, self.rng.integers(0, 255, self.shape, dtype=np.uint8)


class RecordingOutput(Output):
    """Keeps what the loop writes: frames (copies), records, status frames (banners)."""

    wants_frames = True

    def __init__(self):
        super().__init__(OutputSpec("display", "fake"))
        self.frames, self.records, self.status_frames = [], [], []
        self.closed = False

    def write(self, frame, record):
        self.frames.append(frame.copy())
        self.records.append(record)

    def show_status(self, frame):
        self.status_frames.append(frame.copy())

    def close(self):
        self.closed = True


def moving(n, shape=(64, 80, 3), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, shape, dtype=np.uint8) for _ in range(n)]
