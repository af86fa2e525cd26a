"""Capture thread: newest frame only, lossless files, pacing, reconnect with back-off."""

import threading
import time

import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.live.capture import STATE_ENDED, STATE_FAILED, CaptureThread, Frame, LatestFrame
from edge.live.sources import SourceSpec


class ListSource:
    """A finite source of numbered frames."""

    def __init__(self, n, live=False, fps=0.0, delay=0.0):
        self.spec = SourceSpec("file" if not live else "v4l2", "fake", live)
        self.n, self.i, self.fps, self.delay = n, 0, fps, delay
        self.closed = False

    def read(self):
        if self.i >= self.n:
            return False, None
        if self.delay:
            time.sleep(self.delay)
        self.i += 1
        return True, np.full((20, 20), self.i - 1, np.uint8)

    def rewind(self):
        self.i = 0
        return True

    def close(self):
        self.closed = True


def drain(cap, timeout=5.0):
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        f = cap.slot.get(0.05)
        if f is not None:
            got.append(f)
        elif cap.finished:
            break
    return got


def test_latest_frame_replaces_and_counts_drops():
    slot = LatestFrame()
    for i in range(5):
        slot.put(Frame(None, i, 0.0))
    assert slot.get(0.01).index == 4
    assert slot.dropped == 4
    assert slot.get(0.01) is None


def test_unpaced_file_is_lossless():
    cap = CaptureThread(ListSource(50), reopen=None, live=False)
    cap.start()
    got = []
    for f in iter(lambda: cap.slot.get(1.0), None):
        got.append(f.index)
        time.sleep(0.001)  # a slower consumer must not lose frames
        if cap.finished:
            break
    got += [f.index for f in drain(cap)]
    cap.join(2)
    assert got == list(range(50)) and cap.dropped == 0 and cap.state == STATE_ENDED


def test_paced_file_keeps_only_newest():
    cap = CaptureThread(ListSource(40), reopen=None, live=False, pace_fps=400.0)
    cap.start()
    got = []
    while not cap.finished:
        f = cap.slot.get(0.5)
        if f is not None:
            got.append(f.index)
            time.sleep(0.01)  # slower than 400 fps: frames get replaced
    cap.join(2)
    assert cap.dropped > 0
    assert len(got) + cap.dropped == 40
    assert got == sorted(got) and got[-1] == 39  # always the newest, ending with the last


def test_loop_restarts_file():
    cap = CaptureThread(ListSource(5), reopen=None, live=False, loop=True)
    cap.start()
    got = [cap.slot.get(1.0).index for _ in range(12)]
    cap.stop()
    cap.join(2)
    assert got[:7] == [0, 1, 2, 3, 4, 0, 1] and cap.loops >= 2


def test_live_drop_reconnects_with_backoff():
    opened = []

    def reopen():
        opened.append(time.monotonic())
        if len(opened) < 3:  # the first two attempts fail (cable still out)
            raise FetalPlanesError("device gone")
        return ListSource(5, live=True)

    cap = CaptureThread(ListSource(3, live=True), reopen=reopen, live=True, first_backoff_s=0.02, reconnect_max_s=0.2)
    cap.start()
    seen_reconnecting = False
    got = []
    end = time.monotonic() + 5
    while len(got) < 8 and time.monotonic() < end:
        f = cap.slot.get(0.01)
        seen_reconnecting |= cap.state == "reconnecting"
        if f is not None:
            got.append(f)
    cap.stop()
    cap.join(2)
    assert len(got) == 8 and cap.reconnects >= 1 and seen_reconnecting
    gaps = np.diff(opened[:3])
    assert gaps[1] > gaps[0] * 1.5  # back-off grows


def test_live_gives_up_after_tries():
    def reopen():
        raise FetalPlanesError("device gone")

    cap = CaptureThread(ListSource(1, live=True), reopen=reopen, live=True, first_backoff_s=0.01, reconnect_tries=3)
    cap.start()
    drain(cap)
    cap.join(2)
    assert cap.state == STATE_FAILED and "device gone" in str(cap.error)


def test_stop_ends_thread_quickly():
    cap = CaptureThread(ListSource(10**6, live=True, delay=0.001), reopen=None, live=True)
    cap.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    cap.stop()
    cap.join(2)
    assert not cap.is_alive() and time.monotonic() - t0 < 1.0 and cap.source.closed
