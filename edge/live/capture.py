"""Capture in its own thread; the loop always gets the newest frame.

:class:`LatestFrame` is a one-slot mailbox: a new frame replaces one the loop
has not taken yet (counted as dropped), so inference never works through a
backlog. Files read unpaced are the exception: there the capture thread waits
for the loop to take each frame (every frame processed, none dropped), which is
what scoring against a ground-truth sidecar needs. Live sources that drop are
reopened with exponential back-off.

:class:`PrepareThread` is the optional second stage of the pipeline: it takes
the newest frame from the capture thread, runs a ``prepare`` function on it
(sector tracking, crop, preprocessing) and offers the result in its own
one-slot mailbox, so the loop infers frame N while frame N+1 is prepared.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np

from edge.errors import FetalPlanesError
from edge.live.sources import FrameSource

log = logging.getLogger("fetalplanes.live")

STATE_RUNNING = "running"
STATE_RECONNECTING = "reconnecting"
STATE_ENDED = "ended"  # the file or folder ended (not looping)
STATE_FAILED = "failed"  # a live source could not be reopened; see .error
STATE_STOPPED = "stopped"


#: the moments of a frame's trace (:attr:`Frame.stamps`), in order: prepare start/end (in the pipeline's
#: thread or the loop's), taken by the loop, inference start/end, label decided, handed on (to the output
#: thread when there is one, else every output written),
#: overlay start/end (the output thread's, or the loop's), shown (handed to the frame outputs / window)
STAMPS = ("prepare_start", "prepare_end", "taken", "infer_start", "infer_end", "label", "handed",
          "overlay_start", "overlay_end", "shown")


class Frame:
    """One captured frame: the image as delivered, its index in the source, and when it arrived.

    ``prepared`` holds what a :class:`PrepareThread` made of it (None when the loop prepares it itself).
    ``stamps`` are the frame's moments through the stages (``perf_counter()`` seconds, 0.0 = not reached;
    see :data:`STAMPS`): a trace of where a slow frame lost its time.
    """

    __slots__ = ("image", "index", "t_capture", "prepared", "stamps")

    def __init__(self, image: np.ndarray | None, index: int, t_capture: float):
        self.image = image
        self.index = index
        self.t_capture = t_capture  # time.perf_counter() when the frame was captured
        self.prepared = None
        self.stamps = [0.0] * len(STAMPS)


class LatestFrame:
    """A one-slot mailbox between the capture thread and the loop."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.dropped = 0
        self.closed = False
        self._woken = False

    def put(self, frame: Frame, wait: bool = False, stop: threading.Event | None = None, stamp: bool = True) -> None:
        """Offer a frame; replaces an untaken one (dropped) unless ``wait``, which waits for the slot.

        ``stamp`` (with ``wait``): the frame counts as captured when handed over (read-ahead of a
        lossless file); a later pipeline stage passes False to keep the capture time."""
        with self._cond:
            if wait:
                while self._frame is not None and not self.closed and not (stop is not None and stop.is_set()):
                    self._cond.wait(0.1)
                if stamp:
                    frame.t_capture = time.perf_counter()  # read ahead: it is "captured" when handed over
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        """The newest frame, or None when none arrived within ``timeout`` seconds, the slot closed, or :meth:`wake` was called."""
        with self._cond:
            if self._frame is None and not self.closed and not self._woken:
                self._cond.wait(timeout)
            self._woken = False
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def wake(self) -> None:
        """Make the waiting (or the next) :meth:`get` return now, with or without a frame (the loop has a window to update)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def pending(self) -> bool:
        with self._cond:
            return self._frame is not None


class CaptureThread(threading.Thread):
    """Reads a FrameSource into a LatestFrame until the source ends or ``stop()``.

    ``reopen`` opens the source again after a live source dropped. ``pace_fps``
    paces files at that rate (newest-frame semantics, like a live source);
    unpaced files are read lossless (the thread waits for the loop).
    """

    def __init__(
        self,
        source: FrameSource,
        reopen: Callable[[], FrameSource],
        live: bool,
        pace_fps: float | None = None,
        loop: bool = False,
        reconnect_max_s: float = 10.0,
        reconnect_tries: int = 0,
        first_backoff_s: float = 0.25,
    ):
        super().__init__(name="fetalplanes-capture", daemon=True)
        self.source = source
        self.reopen = reopen
        self.live = live
        self.pace_fps = pace_fps
        self.loop = loop
        self.lossless = not live and not pace_fps
        self.reconnect_max_s = reconnect_max_s
        self.reconnect_tries = reconnect_tries
        self.first_backoff_s = first_backoff_s
        self.slot = LatestFrame()
        self.state = STATE_RUNNING
        self.error: BaseException | None = None
        self.captured = 0
        self.reconnects = 0
        self.loops = 0
        self.next_index = 0
        self.truncated: tuple[int, int] | None = None  # (frames read, frames declared) when a file ended early
        self._backoff = first_backoff_s
        self._halt = threading.Event()

    # --- control -----------------------------------------------------------
    def stop(self) -> None:
        self._halt.set()
        self.slot.close()

    @property
    def dropped(self) -> int:
        return self.slot.dropped

    @property
    def finished(self) -> bool:
        """The thread is done and the last frame was taken."""
        return self.state in (STATE_ENDED, STATE_FAILED, STATE_STOPPED) and not self.slot.pending()

    # --- thread body -------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # never die silently: the loop reports it
            self.error = exc
            self.state = STATE_FAILED
            log.error("capture failed: %s", exc)
        finally:
            try:
                self.source.close()
            except Exception:  # pragma: no cover
                pass
            self.slot.close()

    def _run(self) -> None:
        period = 1.0 / self.pace_fps if self.pace_fps else 0.0
        due = time.perf_counter()
        while not self._halt.is_set():
            ok, image = self.source.read()
            if not ok:
                if self.live:
                    if not self._reconnect():
                        return
                    due = time.perf_counter()
                    continue
                self._check_length()
                if self.loop and self.captured > 0 and self.source.rewind():
                    self.loops += 1
                    self.next_index = 0
                    continue
                self.state = STATE_ENDED
                return
            if period:
                due += period
                delay = due - time.perf_counter()
                if delay > 0:
                    if self._halt.wait(delay):
                        break
                elif delay < -period:  # fell behind (slow decode): do not burst to catch up
                    due = time.perf_counter()
            self._backoff = self.first_backoff_s  # frames flow again: next drop starts the back-off anew
            frame = Frame(image, self.next_index, time.perf_counter())
            self.next_index += 1
            self.captured += 1
            self.slot.put(frame, wait=self.lossless, stop=self._halt)
        self.state = STATE_STOPPED

    def _check_length(self) -> None:
        """At the end of a file: fewer frames read than its container declares means a truncated file."""
        declared = int(getattr(self.source, "frame_count", 0) or 0)
        read = self.next_index
        if self.truncated is None and declared > 0 and declared - read > max(1, declared // 100):
            self.truncated = (read, declared)
            log.warning("input ended after %d of the %d frames its container declares (truncated or damaged file)", read, declared)

    def _reconnect(self) -> bool:
        """Reopen a live source with exponential back-off; False when giving up or stopped."""
        self.state = STATE_RECONNECTING
        log.warning("input dropped; reconnecting")
        try:
            self.source.close()
        except Exception:  # pragma: no cover
            pass
        delay = self._backoff
        attempts = 0
        while not self._halt.is_set():
            if self._halt.wait(delay):
                break
            attempts += 1
            try:
                self.source = self.reopen()
            except FetalPlanesError as exc:
                log.warning("reconnect attempt %d failed: %s", attempts, exc.message)
                if self.reconnect_tries and attempts >= self.reconnect_tries:
                    self.error = exc
                    self.state = STATE_FAILED
                    return False
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            self.reconnects += 1
            self._backoff = min(delay * 2, self.reconnect_max_s)  # opened but may drop at once: keep backing off
            self.state = STATE_RUNNING
            log.info("input reconnected after %d attempt(s)", attempts)
            return True
        self.state = STATE_STOPPED
        return False


class PrepareThread(threading.Thread):
    """The pipeline's second stage: ``prepare(frame)`` on the newest captured frame, in its own thread.

    Takes frames from ``upstream`` (a :class:`CaptureThread`), sets ``frame.prepared =
    prepare(frame)`` and offers the frame in :attr:`slot` with the same rules as the capture
    thread: newest frame only (a frame the loop did not take in time is replaced and counted
    in :attr:`dropped`), or lossless when the upstream is (unpaced files). The capture time is
    kept, so latency is still measured from capture. ``after`` (optional) runs once each frame was
    handed on: work that must not delay the frame (the sector detection, while the loop infers).
    ``prepare`` should catch per-frame errors itself (the loop counts them); anything it raises stops this stage, and :attr:`stage_error`
    holds it for the loop to report. The attributes the loop reads (``state``, ``error``,
    ``captured``, ``dropped``, ``reconnects``, ``finished``) read through to the upstream.
    """

    def __init__(self, upstream: CaptureThread, prepare: Callable[[Frame], object],
                 after: Callable[[], object] | None = None, warm_up: Callable[[], object] | None = None):
        super().__init__(name="fetalplanes-prepare", daemon=True)
        self.upstream = upstream
        self.prepare = prepare
        self.after = after  # run after each frame was handed on (deferred work off the frame's latency)
        self.warm_up = warm_up  # run once in this thread before the first frame (OpenCV's per-thread set-up)
        self.ready = threading.Event()  # set once warm_up has run (start() waits for it before capturing)
        self.lossless = upstream.lossless
        self.slot = LatestFrame()
        self.stage_error: BaseException | None = None
        self.prepared = 0
        self._halt = threading.Event()
        self._done = False

    # --- what the loop reads -------------------------------------------------
    @property
    def state(self) -> str:
        return STATE_FAILED if self.stage_error is not None else self.upstream.state

    @property
    def error(self) -> BaseException | None:
        return self.stage_error or self.upstream.error

    @property
    def captured(self) -> int:
        return self.upstream.captured

    @property
    def reconnects(self) -> int:
        return self.upstream.reconnects

    @property
    def truncated(self) -> tuple[int, int] | None:
        return self.upstream.truncated

    @property
    def dropped(self) -> int:
        """Frames replaced before they were used: at the capture slot plus at this stage's slot."""
        return self.upstream.dropped + self.slot.dropped

    @property
    def finished(self) -> bool:
        """This stage is done (input ended, failed or stopped) and its last frame was taken."""
        return self._done and not self.slot.pending()

    # --- control -------------------------------------------------------------
    def start(self) -> None:
        """Start this stage, let it warm up (at most 5 s), then start capturing: no frame waits for the warm-up."""
        super().start()
        self.ready.wait(5.0)
        self.upstream.start()

    def stop(self) -> None:
        self._halt.set()
        self.upstream.stop()
        self.slot.close()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        self.upstream.join(timeout)

    # --- thread body ---------------------------------------------------------
    def run(self) -> None:
        try:
            if self.warm_up is not None:
                try:
                    self.warm_up()
                except Exception as exc:  # pragma: no cover - the first frame reports a real fault
                    log.debug("prepare thread warm-up failed: %s", exc)
            self.ready.set()
            while not self._halt.is_set():
                frame = self.upstream.slot.get(timeout=0.1)
                if frame is None:
                    if self.upstream.finished:
                        return
                    continue
                frame.stamps[0] = time.perf_counter()
                frame.prepared = self.prepare(frame)
                frame.stamps[1] = time.perf_counter()
                self.prepared += 1
                self.slot.put(frame, wait=self.lossless, stop=self._halt, stamp=False)
                if self.after is not None:
                    self.after()
        except BaseException as exc:  # never die silently: the loop reports it
            self.stage_error = exc
            log.error("frame preparation failed: %s", exc)
            self.upstream.stop()
        finally:
            self.ready.set()
            self._done = True
            self.slot.close()
