"""The output stage in its own thread: overlay, encode and write, off the inference thread.

:class:`OutputThread` takes one item per labelled frame from the loop (:meth:`OutputThread.offer`),
draws the overlay and writes the frame to every frame output (recordings, streams). Its queue holds
at most :data:`DEPTH` items. Live inputs and paced files never wait for it: when it falls behind,
the oldest waiting item is dropped (newest first, counted in :attr:`OutputThread.dropped`), so
inference never blocks on an encoder or a slow disk. Files read unpaced (every frame, lossless)
are the exception, as for the capture thread: there the loop waits for room, so a recording of a
file holds every frame.

OpenCV's highgui allows windows only from one thread (the main thread on most platforms):
outputs with ``main_thread = True`` (``display://``) are never written here; the thread hands
the drawn frame to :attr:`OutputThread.to_show`, wakes the loop, and the loop's thread shows it
(:meth:`edge.live.loop.LiveSession.pump`).

Faults never escape the thread: an output that fails is closed here, never written again, and
queued in :attr:`OutputThread.failures` for the loop's thread to report once; a frame whose
overlay fails is queued in :attr:`OutputThread.frame_errors` to be counted like any frame error.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Sequence

log = logging.getLogger("fetalplanes.live")

DEPTH = 2  # items waiting for the output thread at most (newest first beyond that)


class OutputItem:
    """What the output stage needs of one labelled frame (the loop's thread no longer touches it)."""

    __slots__ = ("prepared", "decision", "latency_s", "record", "t_capture", "status", "stamps")

    def __init__(self, prepared: Any, decision: Any, latency_s: float, record: dict[str, Any], t_capture: float,
                 status: Any = None, stamps: list[float] | None = None):
        self.prepared = prepared  # edge.live.loop.Prepared: the image to draw on, the sector box
        self.decision = decision  # edge.live.temporal decision: label, confidence, state, top-3
        self.latency_s = latency_s  # capture-to-label (drawn into the overlay)
        self.record = record  # the record the other outputs got
        self.t_capture = t_capture  # perf_counter() when the frame was captured
        self.status = status  # a ready 'reconnecting' banner to show instead (no frame)
        self.stamps = stamps  # the frame's trace (edge.live.capture.Frame.stamps): overlay start/end, shown


class Shown:
    """A one-slot mailbox of the newest drawn frame for the main thread's windows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: tuple[Any, dict[str, Any] | None, float, list[float] | None] | None = None
        self.replaced = 0  # drawn frames a window never showed (a newer one came first)

    def put(self, frame: Any, record: dict[str, Any] | None, t_capture: float, stamps: list[float] | None = None) -> None:
        with self._lock:
            self.replaced += self._item is not None
            self._item = (frame, record, t_capture, stamps)

    def take(self) -> tuple[Any, dict[str, Any] | None, float, list[float] | None] | None:
        with self._lock:
            item, self._item = self._item, None
            return item


class OutputThread(threading.Thread):
    """Overlay + frame outputs for each :class:`OutputItem`, in a thread of their own.

    ``draw(item) -> frame`` draws the overlay; ``outputs()`` lists the frame outputs still alive;
    ``main_thread_outputs()`` whether a window waits for the drawn frame (then it goes to
    :attr:`to_show` and ``wake()`` is called); ``timed(stage, seconds)`` and ``done(t_capture)``
    report stage times and the capture-to-overlay moment (only from this thread). ``warm_up()`` runs first,
    in this thread, before any item (:attr:`ready` is set after it): OpenCV's first anti-aliased text in a
    thread costs 30-90 ms, which would otherwise land on the first frame's overlay.
    """

    def __init__(
        self,
        draw: Callable[[OutputItem], Any],
        outputs: Callable[[], Sequence[Any]],
        main_thread_outputs: Callable[[], bool],
        lossless: bool = False,
        wake: Callable[[], None] = lambda: None,
        timed: Callable[[str, float], None] = lambda stage, s: None,
        done: Callable[[float], None] = lambda t_capture: None,
        depth: int = DEPTH,
        warm_up: Callable[[], None] | None = None,
    ):
        super().__init__(name="fetalplanes-output", daemon=True)
        self.warm_up = warm_up  # run first, in this thread (OpenCV's first anti-aliased text costs 30-90 ms per thread)
        self.ready = threading.Event()  # set once warm_up has run
        self.draw = draw
        self.outputs = outputs
        self.main_thread_outputs = main_thread_outputs
        self.lossless = lossless
        self.wake = wake
        self.timed = timed
        self.done = done
        self.depth = max(1, int(depth))
        self.to_show = Shown()
        self.dropped = 0  # items dropped because the stage was behind (newest first)
        self.written = 0  # items drawn and written
        self.failures: collections.deque = collections.deque()  # (output, exception, close error or None)
        self.frame_errors: collections.deque = collections.deque()  # (record, exception)
        self.crashed: BaseException | None = None
        self._failed: set[int] = set()
        self._queue: collections.deque[OutputItem] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False

    # --- the loop's side ---------------------------------------------------------
    def offer(self, item: OutputItem) -> None:
        """Queue an item; when full, drop the oldest (or, lossless, wait for room). Never raises."""
        with self._cond:
            if self.lossless:
                while len(self._queue) >= self.depth and not self._stopping and self.is_alive():
                    self._cond.wait(0.1)
            elif len(self._queue) >= self.depth:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def finish(self, timeout: float = 5.0) -> bool:
        """Write what is queued, then end the thread; False when it did not end within ``timeout`` s."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self.ident is not None:
            self.join(timeout)
        return not self.is_alive()

    # --- the thread ---------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.warm_up is not None:
                try:
                    self.warm_up()
                except Exception as exc:  # pragma: no cover - the first real frame reports a real fault
                    log.debug("output thread warm-up failed: %s", exc)
            self.ready.set()
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait(0.5)
                    if not self._queue:
                        return  # stopping and drained
                    item = self._queue.popleft()
                    self._cond.notify_all()
                self._handle(item)
        except BaseException as exc:  # a bug here must not end the run silently: the loop reports it
            self.crashed = exc
            log.error("the output thread failed: %s", exc)

    def _handle(self, item: OutputItem) -> None:
        perf = time.perf_counter
        t0 = perf()
        if item.status is not None:  # a banner while the input is lost: windows show it, others may
            for out in self._alive():
                self._call(out, "show_status", item.status)
            if self.main_thread_outputs():
                self.to_show.put(item.status, None, item.t_capture)
                self.wake()
            return
        try:
            shown = self.draw(item)
        except Exception as exc:
            self.frame_errors.append((item.record, exc))
            return
        t1 = perf()
        for out in self._alive():
            self._call(out, "write", shown, item.record)
        t2 = perf()
        self.written += 1
        self.timed("overlay", t1 - t0)
        self.timed("frame_outputs", t2 - t1)
        if item.stamps is not None:
            item.stamps[7], item.stamps[8] = t0, t1  # overlay start, end
        if self.main_thread_outputs():
            self.to_show.put(shown, item.record, item.t_capture, item.stamps)
            self.wake()
        else:
            if item.stamps is not None:
                item.stamps[9] = perf()  # shown: written to every frame output
            self.done(item.t_capture)

    def _alive(self) -> list[Any]:
        return [o for o in self.outputs() if id(o) not in self._failed and not getattr(o, "main_thread", False)]

    def _call(self, out: Any, method: str, *args: Any) -> None:
        try:
            getattr(out, method)(*args)
        except Exception as exc:
            self._failed.add(id(out))  # never written again from here
            close_error = None
            try:
                out.close()  # finalise what it holds, in this thread (it may encode)
            except Exception as exc2:
                close_error = exc2
            self.failures.append((out, exc, close_error))
