"""The live loop: capture -> sector crop -> preprocess -> infer -> temporal -> overlay -> outputs.

:func:`run_loop` is the Python API (benchmarks and the demo call it);
`fetalplanes run` is a thin wrapper. The per-frame work lives in :class:`LiveSession`
(``step(frame) -> record``: the model, sector tracker, temporal logic and outputs of one
run), so the loop itself is a few lines: take the newest frame, step, until a limit. Each stage is timed per frame (the last
:data:`TIMING_WINDOW` frames are kept, so memory stays flat over months), and
capture-to-label latency is measured from the moment the capture thread got the
frame to the moment its label was decided.

With ``RunConfig.pipeline`` (the default) the per-frame work is split in two
threads: a :class:`~edge.live.capture.PrepareThread` runs :func:`prepare_frame`
(sector tracking, crop, gray, resize, freeze thumbnail, input tensor) on frame
N+1 while the loop's thread infers frame N and runs temporal logic, overlay and
outputs. OpenCV and ONNX Runtime release the GIL, so the two overlap on a
multi-core box. ``pipeline=False`` does everything in the loop's thread; both
paths call the same :func:`prepare_frame`, so their outputs are identical.

With ``RunConfig.output_thread`` (the default) the overlay and the frame outputs (recordings,
streams) run in a third thread, :class:`~edge.live.output_stage.OutputThread`, fed through a queue of
two items that drops the oldest when it falls behind (never blocking inference on a live input);
records (``jsonl://``) are still written by the loop's thread, in order, every one. Windows
(``display://``) are shown by the loop's thread (OpenCV highgui's one-thread rule): :meth:`LiveSession.pump`.
Two latencies are kept per frame: capture-to-label (the decision) and capture-to-overlay (the
overlaid frame handed to every frame output: written to the recording, shown in the window).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.live.capture import STATE_FAILED, STATE_RECONNECTING, CaptureThread, Frame, PrepareThread
from edge.live.config import RunConfig
from edge.live.exam import ChecklistOverlay, ExamTracker
from edge.live.output_stage import OutputItem, OutputThread
from edge.live.outputs import Output, open_output
from edge.live.overlay import draw_banner, draw_overlay, mask_header
from edge.live.sector import Box, SectorTracker
from edge.live.sources import FrameSource, describe_source, open_source, parse_source
from edge.live.status import StatusWriter
from edge.live.temporal import TemporalLogic

log = logging.getLogger("fetalplanes.live")

TIMING_WINDOW = 8192  # frames kept for the per-stage percentiles
MIN_SIDE = 16  # frames smaller than this (either side) are skipped as corrupt
MAX_CONSECUTIVE_ERRORS = 100
WARM_UP_RUNS = 2  # model runs on a blank input before the first frame (LiveSession.warm_up)
#: Python's thread switch interval while :func:`run_loop` runs (seconds; None = Python's, 0.005): how long a
#: thread that runs Python code keeps the GIL when another thread (capture, preparation, output, the loop)
#: waits for it, i.e. the worst hand-over delay between the stages (restored when the loop ends)
SWITCH_INTERVAL_S: float | None = 0.001
#: OpenCV's worker threads while :func:`run_loop` runs (None = OpenCV's default, one per core): resize and
#: colour conversion of one frame are split across them, and on a small box those workers wait for cores that
#: the model and the other stages hold (restored when the loop ends)
CV_THREADS: int | None = None
FREEZE_THUMB = 96  # freeze detection compares 96-191 px thumbnails of the sector (what TemporalConfig.freeze_diff is tuned for)
#: per-frame stages; with the output thread "overlay" and "frame_outputs" run in that thread, "outputs" is what
#: the loop's thread spends on outputs (records written, the frame handed over) and "total" the loop's work only
STAGES = ("sector", "preprocess", "infer", "temporal", "overlay", "outputs", "frame_outputs", "total")


class StageTimes:
    """Per-stage durations in a fixed-size ring buffer (milliseconds)."""

    def __init__(self, stages: Sequence[str] = STAGES, window: int = TIMING_WINDOW):
        self.window = window
        self.data = {s: np.zeros(window, np.float32) for s in stages}
        self.count = {s: 0 for s in stages}

    def add(self, stage: str, seconds: float) -> None:
        i = self.count[stage]
        self.data[stage][i % self.window] = seconds * 1000.0
        self.count[stage] = i + 1

    def values(self, stage: str) -> np.ndarray:
        n = min(self.count[stage], self.window)
        return self.data[stage][:n]

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage in self.data:
            v = self.values(stage)
            if v.size:
                out[stage] = {
                    "p50_ms": round(float(np.percentile(v, 50)), 3),
                    "p99_ms": round(float(np.percentile(v, 99)), 3),
                    "mean_ms": round(float(v.mean()), 3),
                    "samples": int(v.size),
                }
        return out


@dataclass
class RunSummary:
    """What a run did; ``to_dict()`` for JSON, ``format()`` for people."""

    frames: int = 0  # frames processed (labelled)
    seconds: float = 0.0
    hz: float = 0.0
    captured: int = 0
    dropped: int = 0  # captured but replaced by a newer frame before the loop took them
    skipped: int = 0  # odd or corrupt frames skipped
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    last_error: str = ""
    reconnects: int = 0
    layout_changes: int = 0
    stored_planes: int = 0
    label_changes: int = 0
    inferences: int = 0
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)  # capture-to-label
    overlay_latency_ms: dict[str, float] = field(default_factory=dict)  # capture-to-overlay (frame outputs only)
    output_dropped: int = 0  # labelled frames the output thread dropped (behind; newest first): no frame output got them
    display_skipped: int = 0  # overlaid frames a window never showed (a newer one was ready first)
    end_reason: str = ""
    exit_code: int = 0
    source: str = ""
    model: str = ""
    sector: str = ""  # "detected", "roi" or "full frame (sector detection not installed)"
    outputs: list[str] = field(default_factory=list)
    output_failures: dict[str, str] = field(default_factory=dict)  # output -> why it stopped being written
    input_truncated: str = ""  # a file that ended before the frames its container declares
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        lines = [
            f"{self.frames} frames in {self.seconds:.1f} s = {self.hz:.1f} Hz ({self.end_reason})",
            f"captured {self.captured}, dropped {self.dropped}, skipped {self.skipped}"
            + (f" {self.skipped_reasons}" if self.skipped_reasons else "")
            + f", errors {self.errors}, reconnects {self.reconnects}, layout changes {self.layout_changes}",
            f"stored planes (freezes) {self.stored_planes}, label changes {self.label_changes}, model runs {self.inferences}",
        ]
        if self.latency_ms:
            lines.append(
                f"capture-to-label latency p50 {self.latency_ms['p50_ms']:.2f} ms, p99 {self.latency_ms['p99_ms']:.2f} ms"
            )
        if self.overlay_latency_ms:
            o = self.overlay_latency_ms
            lines.append(f"capture-to-overlay latency p50 {o['p50_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms, "
                         f"p99.9 {o['p99.9_ms']:.2f} ms, max {o['max_ms']:.2f} ms; output frames dropped {self.output_dropped}")
        for stage, s in self.stages_ms.items():
            lines.append(f"  {stage:<10} p50 {s['p50_ms']:8.3f} ms   p99 {s['p99_ms']:8.3f} ms")
        if self.last_error:
            lines.append(f"last error: {self.last_error}")
        if self.input_truncated:
            lines.append(f"INPUT TRUNCATED: {self.input_truncated} (exit 1)")
        for name, why in self.output_failures.items():
            lines.append(f"OUTPUT FAILED: {name}: {why}")
        lines.extend(self.messages)
        return "\n".join(lines)


def make_tracker(roi) -> tuple[Any, str]:
    """The sector tracker (fixed to ``roi`` when given, else detecting the sector) and how the sector is found.

    Its detections are deferred (``defer_checks``): the loop runs them after the frame was handed on
    (:meth:`LiveSession.after_prepare`), so they never add to a frame's latency."""
    return SectorTracker(roi=Box(*roi) if roi else None, defer_checks=True), ("roi" if roi else "detected")


# --- frames ------------------------------------------------------------------
def normalize_frame(image: Any) -> tuple[np.ndarray | None, str]:
    """A frame as delivered -> uint8 gray (H,W) or BGR (H,W,3), or (None, reason to skip)."""
    if image is None:
        return None, "empty"
    if not isinstance(image, np.ndarray) or image.size == 0:
        return None, "empty"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        return None, "shape"
    if min(image.shape[:2]) < MIN_SIDE:
        return None, "tiny"
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        elif np.issubdtype(image.dtype, np.number):
            image = np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)
        else:
            return None, "dtype"
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        import cv2

        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image, ""


def freeze_thumbnail(model_input: np.ndarray, gray_crop: np.ndarray) -> np.ndarray:
    """A ~96-128 px gray thumbnail of the sector for freeze detection, cheaply.

    From the model's (square) input by an integer-factor area reduction (about 20x
    faster than an arbitrary-ratio one), or from the crop when the input is smaller
    than :data:`FREEZE_THUMB`.
    """
    import cv2

    s = model_input.shape[0]
    if s < FREEZE_THUMB:
        return cv2.resize(gray_crop, (FREEZE_THUMB, FREEZE_THUMB), interpolation=cv2.INTER_AREA)
    factor = s // FREEZE_THUMB
    if factor == 1:
        return model_input
    size = s // factor
    return cv2.resize(model_input[: size * factor, : size * factor], (size, size), interpolation=cv2.INTER_AREA)


class Prepared:
    """What :func:`prepare_frame` made of one frame (see its docstring)."""

    __slots__ = ("image", "box", "small", "thumb", "x", "sector_s", "preprocess_s", "skip", "error")

    def __init__(self, image=None, box=None, small=None, thumb=None, x=None,
                 sector_s: float = 0.0, preprocess_s: float = 0.0, skip: str = "", error: BaseException | None = None):
        self.image = image  # the frame as uint8 gray or BGR (what the overlay draws on)
        self.box = box  # the sector box used
        self.small = small  # the gray crop resized to the model's input
        self.thumb = thumb  # freeze-detection thumbnail
        self.x = x  # the model's input tensor (None: make it when needed)
        self.sector_s = sector_s  # seconds: frame check + sector tracking + crop
        self.preprocess_s = preprocess_s  # seconds: gray + resize + thumbnail (+ tensor when made here)
        self.skip = skip  # reason the frame is skipped ("" = not skipped)
        self.error = error  # a per-frame error (the loop counts it like one of its own)

    def tensor(self, info) -> np.ndarray:
        """The model's input tensor (made once)."""
        if self.x is None:
            from edge.preprocess import normalize

            self.x = normalize(self.small, info)
        return self.x


def prepare_frame(image: Any, tracker: Any, info: Any, make_tensor: bool = False) -> Prepared:
    """One frame -> :class:`Prepared`: check/convert, track the sector, crop, gray, resize, thumbnail.

    Never raises for a bad frame: a frame to skip has ``skip`` set, an error is returned in
    ``error`` (the loop counts both). ``make_tensor`` also makes the input tensor (the pipeline
    does, so the loop's thread only infers).
    """
    from edge.preprocess import model_gray, model_resize, normalize

    perf = time.perf_counter
    t0 = perf()
    try:
        image, why = normalize_frame(image)
        if image is None:
            return Prepared(skip=why)
        box = tracker.update(image)
        deferred_s = tracker.pop_deferred_seconds() if hasattr(tracker, "pop_deferred_seconds") else 0.0
        crop = box.crop(image)
        if crop.size == 0 or min(crop.shape[:2]) < 2:
            return Prepared(image=image, box=box, skip="roi outside frame")
        t1 = perf()
        gray = model_gray(crop, info)  # edge.preprocess.prepare's steps, keeping the resized image
        small = model_resize(gray, info)
        thumb = freeze_thumbnail(small, gray)
        x = normalize(small, info) if make_tensor else None
        t2 = perf()
    except Exception as exc:
        return Prepared(error=exc)
    return Prepared(image, box, small, thumb, x, t1 - t0 + deferred_s, t2 - t1)


LATENCY_PERCENTILES = (50, 90, 95, 99, 99.9)  # what real-time pipelines report (NVIDIA HoloHub's flow benchmarks)


def latency_stats(v: np.ndarray) -> dict[str, float]:
    """Mean, p50, p90, p95, p99, p99.9 and max of latencies in ms, and how many (empty dict for none)."""
    v = np.asarray(v, np.float64)
    if v.size == 0:
        return {}
    out = {"mean_ms": round(float(v.mean()), 3)}
    for q in LATENCY_PERCENTILES:
        out[f"p{q:g}_ms"] = round(float(np.percentile(v, q)), 3)
    out["max_ms"] = round(float(v.max()), 3)
    out["samples"] = int(v.size)
    return out


def warm_overlay() -> None:
    """Draw one overlay on a blank frame in the calling thread (OpenCV's per-thread set-up of anti-aliased text)."""
    draw_overlay(np.zeros((480, 640, 3), np.uint8), "warm-up", 0.5, "ok", 0.0, 0.0, [0, 0, 64, 64], [("a", 0.5)])


class _Signals:
    """SIGINT/SIGTERM -> a stop event, while the loop runs (main thread only)."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.received: str = ""
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        self.received = signal.Signals(signum).name
        self.stop.set()

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


# --- the session: one run's state, one frame at a time ------------------------------
def open_model(config: RunConfig) -> Any:
    """The runner for ``config.model`` with the run's ONNX Runtime settings (not yet activated)."""
    from edge.backends import open_runner
    from edge.backends.loader import model_kind

    options: dict[str, Any] = {}
    if model_kind(config.model) == "onnx":
        options = {"providers": list(config.providers), "threads": int(config.threads), "spin": bool(config.spin)}
    return open_runner(config.model, **options)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


class _Ring:
    """The last :data:`TIMING_WINDOW` values (ms), added from any one thread at a time (a lock keeps it whole)."""

    def __init__(self, window: int = TIMING_WINDOW):
        self.data = np.zeros(window, np.float32)
        self.count = 0
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self.data[self.count % self.data.size] = ms
            self.count += 1

    def values(self) -> np.ndarray:
        with self._lock:
            return self.data[: min(self.count, self.data.size)].copy()


class LiveSession:
    """One live run: model, sector tracker, temporal logic, outputs, status file, timings, counters.

    ``step(frame) -> record`` labels one frame and writes the record to every output; the loop
    (:func:`run_loop`), the pipeline's second thread (:meth:`prepare`), benchmarks and tests drive
    it. Faults of one frame never escape ``step``: a frame to skip or one that fails is counted and
    None returned (:data:`MAX_CONSECUTIVE_ERRORS` failures in a row raise, exit 1). An output that
    fails is reported once, closed, and the other outputs go on; the run then ends with exit 1.
    As a context manager (or with :meth:`close`) it closes the input, the outputs, the status file
    and the model, and completes :attr:`summary`.
    """

    def __init__(self, config: RunConfig, runner: Any = None):
        self.config = config
        self._own_runner = runner is None  # a runner given by the caller is the caller's to warm up
        self.runner = runner if runner is not None else open_model(config)
        self.runner.activate()
        self.info = self.runner.info
        self.labels = list(self.info.labels)
        self.summary = RunSummary(model=str(config.model))
        self.tracker, self.summary.sector = make_tracker(config.roi)
        self.temporal = TemporalLogic(self.labels, config.temporal)
        self.times = StageTimes()
        self.latency = np.zeros(TIMING_WINDOW, np.float32)
        self.overlay_latency = _Ring()  # capture-to-overlay, ms
        self.output_stage: OutputThread | None = None  # the output thread (started by start() when asked for)
        self.outputs: list[Output] = []
        self.status: StatusWriter | None = None
        self.exam: ExamTracker | None = None  # the exam view (checklist, best frame per plane): made in open_outputs
        self.checklist: ChecklistOverlay | None = None
        self.source: FrameSource | None = None  # closed by close() unless a capture thread took it over
        self.capture: Any = None  # the CaptureThread / PrepareThread feeding the session (its counters are reported)
        self.state = "starting"
        self.taken = 0  # frames taken from the input: labelled, skipped or failed
        self.consecutive_errors = 0
        self.hz = 0.0
        self._failed: set[int] = set()  # id() of outputs that failed
        self._last = {"label": "", "confidence": 0.0, "state": ""}
        self._t_start = time.perf_counter()
        self._t_first: float | None = None
        self._t_last: float | None = None
        self._dt_ema = 0.0
        self._last_shown: np.ndarray | None = None
        self._last_banner = 0.0
        self._next_log = float("inf")
        self._closed = False
        self._exit_code: int | None = None
        #: when a deque/list: (frame index, capture time, stamps) of every labelled frame, see edge.live.capture.STAMPS
        self.trace: Any = None

    # --- opening -------------------------------------------------------------
    def open_outputs(self, fps: float = 30.0, extra: Sequence[Output] = ()) -> None:
        """Open every output and the status file before the first frame; a FetalPlanesError (exit 2) names one that cannot be written."""
        c = self.config
        for uri in c.outputs:
            self.outputs.append(open_output(uri, fps=fps, codec=c.codec or None, rotation=c.rotation))
        self.outputs.extend(extra)
        self.summary.outputs = [o.describe() for o in self.outputs]
        self.exam = ExamTracker(self.labels, c.exam, c.exam_report, c.exam_id, fps=fps, mask_header=c.mask_header)
        self.checklist = ChecklistOverlay() if c.exam.checklist else None
        for out in self.outputs:  # outputs that serve the status or start exams (http://, the window's key)
            getattr(out, "attach", lambda **_: None)(snapshot=self.snapshot, exam=self.exam)
        if c.status:
            status = StatusWriter(c.status, self.snapshot, c.status_interval_s)
            status.check()
            self.status = status

    def start(self) -> None:
        """The clock of ``max_seconds`` and of the progress log starts now; the output thread too, when asked for.

        The output thread follows the input's rule: lossless for unpaced files (waits for room), newest
        first otherwise; it wakes the loop (``capture.slot.wake()``) when a window has a frame to show.
        """
        self.warm_up()
        self._t_start = time.perf_counter()
        self._next_log = self._t_start + self.config.log_every_s if self.config.log_every_s > 0 else float("inf")
        self.state = "running"
        if self.config.output_thread and self.output_stage is None and any(o.wants_frames for o in self.outputs):
            slot = getattr(self.capture, "slot", None)
            self.output_stage = OutputThread(
                self._draw, self._frame_outputs, self._window_waits, lossless=bool(getattr(self.capture, "lossless", False)),
                wake=getattr(slot, "wake", lambda: None), timed=self.times.add,
                done=lambda t_capture: self.overlay_latency.add((time.perf_counter() - t_capture) * 1000.0),
                warm_up=warm_overlay)
            self.output_stage.start()
            self.output_stage.ready.wait(5.0)  # the first frame finds the thread warm

    def warm_up(self) -> None:
        """Before the first frame: run the model :data:`WARM_UP_RUNS` times on a blank input and draw one overlay.

        The first model run allocates its buffers, and OpenCV's first anti-aliased text in a thread costs
        30-90 ms (per thread: the output thread warms itself up the same way, :func:`warm_overlay`); without
        this the first frame's overlay is that late (benchmarks/results/live_tuning.md). Only a runner
        the session opened itself is warmed up (a caller's runner may count its calls); a failure here is
        left for the first frame to report."""
        try:
            if self._own_runner and WARM_UP_RUNS:
                x = np.zeros(self.info.input_shape(1), np.float32)
                for _ in range(WARM_UP_RUNS):
                    self.runner.infer(x)
            warm_overlay()
        except Exception as exc:  # pragma: no cover - the first frame reports a real fault
            log.debug("warm-up failed: %s", exc)

    def __enter__(self) -> "LiveSession":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self.summary.last_error = _first_line(exc)
            self.state = "failed"
        self.close()

    # --- per frame -------------------------------------------------------------
    def prepare(self, frame: Frame) -> Prepared:
        """What the pipeline's second thread runs on each frame (sector, crop, preprocessing, tensor)."""
        return prepare_frame(frame.image, self.tracker, self.info, make_tensor=True)

    def warm_prepare(self) -> None:
        """Prepare a blank frame with a throwaway tracker, in the calling thread (the pipeline's, before its
        first frame): OpenCV's first conversions, resizes and morphology in a thread set themselves up."""
        from edge.live.sector import SectorTracker as Tracker

        blank = np.zeros((480, 640, 3), np.uint8)
        blank[100:380, 160:480] = 60
        tracker = Tracker(defer_checks=True)
        prepare_frame(blank, tracker, self.info, make_tensor=True)
        tracker.run_deferred()

    def after_prepare(self) -> None:
        """After a prepared frame was handed on: the sector detection its preparation left pending (if any).

        The pipeline's thread calls it while the loop infers; without the pipeline :meth:`step` calls it
        once the frame's record and overlay were handed to the outputs. Either way a detection's result
        applies from the next frame on, so both paths label the same frames with the same boxes."""
        run = getattr(self.tracker, "run_deferred", None)
        if run is not None:
            run()

    @property
    def live_outputs(self) -> list[Output]:
        """The outputs still being written (not failed)."""
        return [o for o in self.outputs if id(o) not in self._failed]

    def step(self, frame: Frame | np.ndarray) -> dict[str, Any] | None:
        """Label one frame and write it to every output: the record, or None when skipped or failed."""
        if not isinstance(frame, Frame):
            frame = Frame(frame, self.taken, time.perf_counter())
        self.taken += 1
        self.state = "running"
        s, perf = self.summary, time.perf_counter
        t0 = perf()
        stamps = frame.stamps
        stamps[2] = t0  # taken
        pipelined = frame.prepared is not None
        if not pipelined:
            stamps[0] = t0
            frame.prepared = prepare_frame(frame.image, self.tracker, self.info)
            stamps[1] = perf()
        prep: Prepared = frame.prepared
        if prep.skip:
            s.skipped += 1
            s.skipped_reasons[prep.skip] = s.skipped_reasons.get(prep.skip, 0) + 1
            return None
        self.collect()
        outputs = self.live_outputs
        want_frames = any(o.wants_frames for o in outputs)
        stage = self.output_stage
        infer_s = [0.0, 0.0, 0.0]  # tensor seconds, model seconds, when the model started
        try:
            if prep.error is not None:
                raise prep.error
            t2 = perf()
            decision = self.temporal.step(prep.thumb, lambda: self._infer(prep, infer_s))
            t3 = perf()
            latency = t3 - frame.t_capture
            plane = self.info.task_decision(decision.probabilities)[1] if self.info.label_map else None
            if self.exam is not None:  # checklist + best frame, from the frame before the overlay draws on it
                self.exam.observe(frame.index, time.time(), decision.label, decision.confidence, decision.state,
                                  prep.image, prep.box.as_list(), prep.small, decision.event)
            shown = self._overlay(prep, decision, latency, plane) if want_frames and stage is None else None
            t4 = perf()
        except Exception as exc:  # one bad frame must not end a months-long run
            self._frame_failed(frame, exc)
            return None
        self.consecutive_errors = 0
        n = s.frames
        s.frames += 1
        self._rate(t3)
        self._last = {"label": decision.label, "confidence": decision.confidence, "state": decision.state}
        record = {
            "t": round(time.time(), 3),
            "frame": frame.index,
            "n": n,
            "label": decision.label,
            **({"plane": plane} if plane is not None else {}),
            "confidence": round(decision.confidence, 4),
            "state": decision.state,
            "probs": {lab: round(float(p), 4) for lab, p in zip(self.labels, decision.probabilities)},
            "latency_ms": round(latency * 1000.0, 3),
            "box": prep.box.as_list(),
            "inferred": decision.inferred,
        }
        if decision.event:
            record["event"] = decision.event
        if stage is not None and want_frames:  # first, so the overlay is drawn while the records are written
            stamps[6] = perf()  # handed to the output thread
            stage.offer(OutputItem(prep, decision, latency, record, frame.t_capture, stamps=stamps))
        for out in outputs:  # each output on its own: one that fails does not stop the others
            if stage is not None and out.wants_frames:
                continue  # the output thread writes it
            try:
                out.write(shown if out.wants_frames else None, record)
            except Exception as exc:
                self._output_failed(out, exc)
        t5 = perf()
        stamps[5] = t3  # label decided
        if not stamps[6]:
            stamps[6] = t5  # handed: every output written (the output thread's hand-over is stamped above)
        if decision.inferred:
            stamps[3], stamps[4] = infer_s[2], infer_s[2] + infer_s[1]  # inference start, end
        if want_frames and stage is None:
            self.overlay_latency.add((t5 - frame.t_capture) * 1000.0)
            stamps[7], stamps[8], stamps[9] = t3, t4, t5
        if self.trace is not None:
            self.trace.append((frame.index, frame.t_capture, stamps))
        if not pipelined:
            self.after_prepare()

        self.latency[n % TIMING_WINDOW] = latency * 1000.0
        t = self.times
        t.add("sector", prep.sector_s)
        t.add("preprocess", prep.preprocess_s + infer_s[0])
        if decision.inferred:
            t.add("infer", infer_s[1])
        t.add("temporal", (t3 - t2) - infer_s[0] - infer_s[1])
        if want_frames and stage is None:
            t.add("overlay", t4 - t3)
        t.add("outputs", t5 - t4)
        # the work spent on this frame (in the pipeline the sector/preprocess part ran in the other thread)
        t.add("total", prep.sector_s + prep.preprocess_s + (t5 - t2) if pipelined else t5 - t0)
        self.heartbeat()
        if t5 >= self._next_log:
            self._next_log = t5 + self.config.log_every_s
            log.info("%d frames, %.1f Hz, %s %.0f%% (%s), dropped %d, errors %d", s.frames, self.hz, decision.label,
                     decision.confidence * 100, decision.state, getattr(self.capture, "dropped", 0), s.errors)
        return record

    def _infer(self, prep: Prepared, infer_s: list[float]) -> np.ndarray:
        from edge.preprocess import to_probabilities

        ta = time.perf_counter()
        x = prep.tensor(self.info)
        tb = time.perf_counter()
        p = to_probabilities(self.runner.infer(x), self.info)[0]
        infer_s[0], infer_s[1], infer_s[2] = tb - ta, time.perf_counter() - tb, tb
        return p

    def _draw(self, item: OutputItem) -> np.ndarray:
        """The output thread's overlay of one item."""
        return self._overlay(item.prepared, item.decision, item.latency_s, item.record.get("plane"))

    def _frame_outputs(self) -> list[Output]:
        return [o for o in self.live_outputs if o.wants_frames]

    def _window_waits(self) -> bool:
        """Whether a window (an output the loop's thread must show) is still open."""
        return any(o.wants_frames and o.main_thread for o in self.live_outputs)

    def pump(self) -> None:
        """In the loop's (main) thread: show the output thread's newest frame in the windows; report its faults."""
        stage = self.output_stage
        if stage is None:
            return
        self.collect()
        item = stage.to_show.take()
        if item is None:
            return
        shown, record, t_capture, stamps = item
        windows = [o for o in self.live_outputs if o.wants_frames and o.main_thread]
        for out in windows:
            try:
                if record is None:
                    out.show_status(shown)
                else:
                    out.write(shown, record)
            except Exception as exc:
                self._output_failed(out, exc)
        if record is not None and windows:
            t = time.perf_counter()
            self.overlay_latency.add((t - t_capture) * 1000.0)
            if stamps is not None:
                stamps[9] = t

    def collect(self) -> None:
        """Report, once each, what the output thread queued: outputs that failed, frames whose overlay failed."""
        stage = self.output_stage
        if stage is None:
            return
        while stage.failures:
            out, exc, close_error = stage.failures.popleft()
            self._output_failed(out, exc, closed=True, close_error=close_error)
        while stage.frame_errors:
            record, exc = stage.frame_errors.popleft()
            self.summary.errors += 1
            self.summary.last_error = _first_line(exc)
            log.warning("frame %s (overlay): %s", record.get("frame"), self.summary.last_error)
        if stage.crashed is not None:
            crashed, stage.crashed = stage.crashed, None
            raise FetalPlanesError(
                f"the output thread failed: {_first_line(crashed)}",
                hint="run again with --no-output-thread to see where it fails, and report it",
                exit_code=EXIT_FAILURE,
            ) from crashed

    def _overlay(self, prep: Prepared, decision: Any, latency_s: float, plane: str | None = None) -> np.ndarray:
        """The frame with its label, box and checklist; ``plane``: the plane the step decided (a label map's)."""
        import cv2

        c = self.config
        image = prep.image
        shown = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if c.mask_header:
            mask_header(shown, c.mask_header)
        label = self.info.display_label(decision.index, sep=" - ")  # "4CH - Fetal thorax" for a mapped model
        if plane is not None and self.info.task_label(decision.index) != plane:
            label = plane  # the top view is of another plane than the views' probabilities add up to: the plane
        draw_overlay(shown, label, decision.confidence, decision.state, self.hz, latency_s * 1000.0,
                     prep.box.as_list(), decision.top(3) if c.top3 else None)
        if self.checklist is not None and self.exam is not None:
            self.checklist.draw(shown, self.exam)
        self._last_shown = shown
        return shown

    def _rate(self, t: float) -> None:
        s = self.summary
        if self._t_last is not None:
            dt = t - self._t_last
            self._dt_ema = dt if self._dt_ema == 0.0 else 0.9 * self._dt_ema + 0.1 * dt
        self._t_first = self._t_first if self._t_first is not None else t
        self._t_last = t
        self.hz = 1.0 / self._dt_ema if self._dt_ema > 0 else 0.0
        s.seconds = self._t_last - self._t_first
        s.hz = (s.frames - 1) / s.seconds if s.seconds > 0 else 0.0

    def _frame_failed(self, frame: Frame, exc: BaseException) -> None:
        s = self.summary
        s.errors += 1
        self.consecutive_errors += 1
        s.last_error = _first_line(exc)
        log.warning("frame %d: %s", frame.index, s.last_error)
        self.heartbeat()
        if self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
            raise FetalPlanesError(
                f"{self.consecutive_errors} frames in a row failed; last error: {s.last_error}",
                hint="see the log above; check the model and the input",
                exit_code=EXIT_FAILURE,
            ) from None

    def _output_failed(self, out: Output, exc: BaseException, closing: bool = False, closed: bool = False,
                       close_error: BaseException | None = None) -> None:
        """Report an output's failure once; close it (unless ``closed``: the output thread did); the run goes on without it (and ends with exit 1)."""
        name, why = out.describe(), _first_line(exc)
        if id(out) in self._failed:
            return
        self._failed.add(id(out))
        self.summary.output_failures[name] = why if close_error is None else f"{why}; {_first_line(close_error)}"
        log.error("output %s failed: %s; the run goes on without it", name, why)
        if not (closing or closed):
            try:
                out.close()  # finalise what it holds (a recording is renamed only if it reads back whole)
            except Exception as exc2:
                self.summary.output_failures[name] = f"{why}; {_first_line(exc2)}"
        self.heartbeat(force=True)

    # --- between frames ----------------------------------------------------------
    def done(self, stop: threading.Event | None = None) -> bool:
        """Whether to stop now (asked to, or a limit reached); sets the end reason. Checked on every pass of the loop."""
        s, c = self.summary, self.config
        if (stop is not None and stop.is_set()) or any(o.stop_requested for o in self.outputs):
            s.end_reason = s.end_reason or "stopped"
        elif c.max_frames and self.taken >= c.max_frames:
            s.end_reason = "max frames reached"
        elif c.max_seconds and time.perf_counter() - self._t_start >= c.max_seconds:
            s.end_reason = "max seconds reached"
        else:
            return False
        return True

    def idle(self) -> None:
        """No new frame yet: show 'reconnecting' while a live input is lost; keep the heartbeat going."""
        cap = self.capture
        if cap is not None and cap.state == STATE_RECONNECTING:
            self.state = "reconnecting"
            now = time.perf_counter()
            if self._last_shown is not None and now - self._last_banner > 0.5:
                self._last_banner = now
                banner = draw_banner(self._last_shown.copy(), "input lost - reconnecting ...")
                if self.output_stage is not None:  # the output thread shows it (windows: via pump)
                    self.output_stage.offer(OutputItem(None, None, 0.0, {}, now, status=banner))
                    self.heartbeat()
                    return
                for out in self.live_outputs:
                    if out.wants_frames:
                        try:
                            out.show_status(banner)
                        except Exception as exc:
                            self._output_failed(out, exc)
        if self.exam is not None:  # a long loss of signal ends the exam
            self.exam.tick()
        self.heartbeat()

    def input_ended(self) -> None:
        """The capture stage finished: end of the file, a live input given up on, or a fault of the pipeline."""
        cap, s = self.capture, self.summary
        stage_error = getattr(cap, "stage_error", None)
        if stage_error is not None:  # a fault of the pipeline's own thread, not of the input
            raise FetalPlanesError(
                f"the frame-preparation thread failed: {_first_line(stage_error)}",
                hint="run again with --no-pipeline to see where it fails, and report it",
                exit_code=EXIT_FAILURE,
            ) from stage_error
        if cap.state == STATE_FAILED:
            s.last_error = _first_line(cap.error) if cap.error is not None else "input failed"
            s.end_reason = "input lost"
            s.exit_code = EXIT_FAILURE
            s.errors += 1
        else:
            s.end_reason = "end of input"

    def interrupted_by(self, signal_name: str) -> None:
        """A signal stopped the run: SIGINT exits 130, SIGTERM (a service stop) 0."""
        if signal_name:
            self.summary.end_reason = f"interrupted ({signal_name})"
            self.summary.exit_code = 130 if signal_name == "SIGINT" else 0

    def heartbeat(self, force: bool = False) -> None:
        """Write the status file when due (a failure to write it is reported once, as an output's)."""
        if self.status is None:
            return
        self.status.maybe_write(force=force)
        if self.status.failed:
            self.summary.output_failures.setdefault(f"status:{self.status.path}", self.status.failed)

    def snapshot(self) -> dict[str, Any]:
        """The status file's content."""
        s, cap, n = self.summary, self.capture, self.summary.frames
        return {
            "state": self.state,
            "frames": n,
            "hz": round(self.hz, 2),
            "captured": getattr(cap, "captured", 0),
            "dropped": getattr(cap, "dropped", 0),
            "skipped": s.skipped,
            "errors": s.errors,
            "last_error": s.last_error,
            "reconnects": getattr(cap, "reconnects", 0),
            "layout_changes": int(getattr(self.tracker, "layout_changes", 0)),
            "stored_planes": self.temporal.stored_planes,
            "label": self._last["label"],
            "label_state": self._last["state"],
            "confidence": round(self._last["confidence"], 4),
            "latency_ms": round(float(self.latency[(n - 1) % TIMING_WINDOW]), 3) if n else None,
            "output_dropped": self.output_stage.dropped if self.output_stage is not None else 0,
            "source": s.source,
            "model": s.model,
            "output_failures": dict(s.output_failures),
            "input_truncated": s.input_truncated,
            "exit_code": self._exit_code,  # None while running
            "exam": self.exam.status() if self.exam is not None else None,
        }

    # --- closing -------------------------------------------------------------------
    def close(self) -> RunSummary:
        """Stop the input, close every output (recordings finalised), the model and the status file; the summary."""
        if self._closed:
            return self.summary
        self._closed = True
        s, cap = self.summary, self.capture
        try:
            if cap is not None and cap.ident is not None:
                cap.stop()
                cap.join(timeout=5.0)
            elif self.source is not None:
                self.source.close()
            stage = self.output_stage
            if stage is not None:  # write what is queued, then close the outputs from here
                if not stage.finish(timeout=10.0):
                    log.error("the output thread did not finish within 10 s; closing the outputs anyway")
                try:
                    self.pump()
                except FetalPlanesError as exc:
                    s.last_error = exc.message
                    s.exit_code = EXIT_FAILURE
                s.output_dropped, s.display_skipped = stage.dropped, stage.to_show.replaced
            for out in self.live_outputs:
                try:
                    out.close()
                except Exception as exc:  # flush what can be flushed, report the rest
                    self._output_failed(out, exc, closing=True)
        finally:
            self.runner.deactivate()
            if self.exam is not None:  # the last exam's report
                self.exam.close("interrupted" if s.end_reason.startswith(("interrupted", "stopped")) else "end of run")
                s.messages.extend([f"exam report: {p}" for p in self.exam.reports] + self.exam.errors)
            if cap is not None:
                s.captured, s.dropped, s.reconnects = cap.captured, cap.dropped, cap.reconnects
                if cap.truncated is not None:
                    s.input_truncated = f"read {cap.truncated[0]} of the {cap.truncated[1]} frames its container declares"
            s.layout_changes = int(getattr(self.tracker, "layout_changes", 0))
            s.stored_planes = self.temporal.stored_planes
            s.label_changes = self.temporal.label_changes
            s.inferences = self.temporal.inferences
            s.stages_ms = self.times.summary()
            s.latency_ms = latency_stats(self.latency[: min(s.frames, TIMING_WINDOW)])
            s.overlay_latency_ms = latency_stats(self.overlay_latency.values())
            for out in self.outputs:
                s.messages.extend(out.messages)
            if s.exit_code == 0 and (s.output_failures or s.input_truncated):
                s.exit_code = EXIT_FAILURE
            if self.state != "failed":
                self.state = "finished" if s.end_reason == "end of input" else (
                    "stopped" if s.exit_code in (0, 130) or s.output_failures or s.input_truncated else "failed")
            self._exit_code = s.exit_code
            self.heartbeat(force=True)  # the final state, also after a failure
        return s


# --- the loop ----------------------------------------------------------------------
def run_loop(
    config: RunConfig,
    *,
    stop_event: threading.Event | None = None,
    source_factory: Callable[[], FrameSource] | None = None,
    live: bool | None = None,
    runner: Any = None,
    extra_outputs: Sequence[Output] = (),
    on_record: Callable[[dict[str, Any]], None] | None = None,
    trace: Any = None,
) -> RunSummary:
    """Run the live loop until the input ends, ``max_frames``/``max_seconds``, a signal, or ``stop_event``.

    ``source_factory`` (tests, custom inputs) opens a FrameSource instead of ``config.input``;
    ``runner`` replaces the model file's runner; ``extra_outputs`` are written like URI outputs.
    ``trace`` (a list or deque) gets ``(frame index, capture time, stamps)`` of every labelled frame
    (see :data:`edge.live.capture.STAMPS`; benchmarks look at where the slowest frames lost their time).
    """
    config.validate()
    switch, cv_threads = sys.getswitchinterval(), None
    if SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
    if CV_THREADS is not None:
        import cv2

        cv_threads = cv2.getNumThreads()
        cv2.setNumThreads(int(CV_THREADS))
    try:
        return _run_loop(config, stop_event, source_factory, live, runner, extra_outputs, on_record, trace)
    finally:
        sys.setswitchinterval(switch)
        if cv_threads is not None:
            import cv2

            cv2.setNumThreads(cv_threads)


def _run_loop(config, stop_event, source_factory, live, runner, extra_outputs, on_record, trace) -> RunSummary:
    stop = stop_event or threading.Event()
    factory, live, described = _input(config, source_factory, live)
    with LiveSession(config, runner) as session:
        session.trace = trace
        session.summary.source = described
        session.source = source = factory()
        fps = float(getattr(source, "fps", 0.0) or 0.0)
        session.open_outputs(fps or config.source.fps or 30.0, extra_outputs)
        src = config.source
        capture: Any = CaptureThread(source, factory, live=live, pace_fps=None if live else src.pace_fps(fps), loop=src.loop,
                                     reconnect_max_s=src.reconnect_max_s, reconnect_tries=src.reconnect_tries)
        if config.pipeline:  # the loop reads the second stage exactly like the capture thread
            capture = PrepareThread(capture, session.prepare, after=session.after_prepare, warm_up=session.warm_prepare)
        session.capture = capture
        with _Signals(stop) as signals:
            session.start()
            capture.start()
            while not session.done(stop):
                frame = capture.slot.get(timeout=0.1)
                session.pump()  # windows show the output thread's newest frame (main thread only)
                if frame is None:
                    if capture.finished:
                        session.input_ended()
                        break
                    session.idle()
                    continue
                record = session.step(frame)
                if record is not None and on_record is not None:
                    on_record(record)
        session.interrupted_by(signals.received)
    return session.summary


def _input(config: RunConfig, source_factory: Callable[[], FrameSource] | None, live: bool | None):
    """(a function opening the source, whether it is live, its description) from the config or the caller."""
    if source_factory is not None:
        return source_factory, bool(live), "custom source"
    spec = parse_source(config.input_uri)
    return (lambda: open_source(spec, config.source)), spec.live, describe_source(spec)
