"""The live loop: capture -> sector crop -> preprocess -> infer -> temporal -> overlay -> outputs.

:func:`run_loop` is the Python API (benchmarks and the demo call it);
`fetalplanes run` is a thin wrapper. Each stage is timed per frame (the last
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
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.live.capture import STATE_FAILED, STATE_RECONNECTING, CaptureThread, Frame, PrepareThread
from edge.live.config import RunConfig
from edge.live.exam import ChecklistOverlay, ExamTracker  # exam-hook (issue 14)
from edge.live.outputs import Output, open_output
from edge.live.overlay import draw_banner, draw_overlay, mask_header
from edge.live.sources import FrameSource, describe_source, open_source, parse_source
from edge.live.status import StatusWriter
from edge.live.temporal import TemporalLogic

log = logging.getLogger("fetalplanes.live")

TIMING_WINDOW = 8192  # frames kept for the per-stage percentiles
MIN_SIDE = 16  # frames smaller than this (either side) are skipped as corrupt
MAX_CONSECUTIVE_ERRORS = 100
FREEZE_THUMB = 96  # freeze detection compares 96-191 px thumbnails of the sector (what TemporalConfig.freeze_diff is tuned for)
STAGES = ("sector", "preprocess", "infer", "temporal", "overlay", "outputs", "total")


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
    end_reason: str = ""
    exit_code: int = 0
    source: str = ""
    model: str = ""
    sector: str = ""  # "detected", "roi" or "full frame (sector detection not installed)"
    outputs: list[str] = field(default_factory=list)
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
        for stage, s in self.stages_ms.items():
            lines.append(f"  {stage:<10} p50 {s['p50_ms']:8.3f} ms   p99 {s['p99_ms']:8.3f} ms")
        if self.last_error:
            lines.append(f"last error: {self.last_error}")
        lines.extend(self.messages)
        return "\n".join(lines)


# --- sector tracking (edge.live.sector is optional until it lands) ------------------
class _Box:
    """Stand-in for edge.live.sector.Box when that module is absent."""

    __slots__ = ("x", "y", "w", "h")

    def __init__(self, x: int, y: int, w: int, h: int):
        self.x, self.y, self.w, self.h = int(x), int(y), int(w), int(h)

    def crop(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.y : self.y + self.h, self.x : self.x + self.w]

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


class _FixedTracker:
    """The ROI (clipped to the frame) or the whole frame, when sector detection is not installed."""

    def __init__(self, roi):
        self.roi = roi
        self.layout_changes = 0

    def update(self, frame: np.ndarray) -> _Box:
        h, w = frame.shape[:2]
        if self.roi is None:
            return _Box(0, 0, w, h)
        x, y, bw, bh = self.roi
        x, y = min(x, w), min(y, h)
        return _Box(x, y, min(bw, w - x), min(bh, h - y))


def make_tracker(roi) -> tuple[Any, str]:
    """edge.live.sector.SectorTracker when available, else a fixed ROI / full frame."""
    try:
        from edge.live.sector import Box, SectorTracker
    except ModuleNotFoundError as exc:
        if exc.name not in ("edge.live.sector",):
            raise
        how = "roi" if roi else "full frame (sector detection not installed)"
        return _FixedTracker(roi), how
    return SectorTracker(roi=Box(*roi) if roi else None), ("roi" if roi else "detected")


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
    return Prepared(image, box, small, thumb, x, t1 - t0, t2 - t1)


def _percentiles(v: np.ndarray) -> dict[str, float]:
    if v.size == 0:
        return {}
    return {
        "p50_ms": round(float(np.percentile(v, 50)), 3),
        "p99_ms": round(float(np.percentile(v, 99)), 3),
        "max_ms": round(float(v.max()), 3),
    }


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
) -> RunSummary:
    """Run the live loop until the input ends, ``max_frames``/``max_seconds``, a signal, or ``stop_event``.

    ``source_factory`` (tests, custom inputs) opens a FrameSource instead of ``config.input``;
    ``runner`` replaces the model file's runner; ``extra_outputs`` are written like URI outputs.
    """
    config.validate()
    stop = stop_event or threading.Event()
    summary = RunSummary(model=str(config.model))

    # model
    if runner is None:
        from edge.backends import open_runner
        from edge.backends.loader import model_kind

        options: dict[str, Any] = {}
        if model_kind(config.model) == "onnx":
            options = {"providers": list(config.providers), "threads": int(config.threads), "spin": bool(config.spin)}
        runner = open_runner(config.model, **options)
    runner.activate()
    info = runner.info
    labels = list(info.labels)

    # input
    if source_factory is None:
        spec = parse_source(config.input_uri)
        live = spec.live
        summary.source = describe_source(spec)

        def source_factory() -> FrameSource:
            return open_source(spec, config.source)
    else:
        live = bool(live)
        summary.source = "custom source"
    try:
        source = source_factory()
    except BaseException:
        runner.deactivate()
        raise
    native_fps = float(getattr(source, "fps", 0.0) or 0.0)
    pace_fps = None if live else config.source.pace_fps(native_fps)

    outputs: list[Output] = []
    capture: CaptureThread | None = None
    writer: StatusWriter | None = None
    exam: ExamTracker | None = None  # exam-hook
    try:
        for uri in config.outputs:
            outputs.append(open_output(uri, fps=native_fps or config.source.fps or 30.0, codec=config.codec or None, rotation=config.rotation))
        outputs.extend(extra_outputs)
        summary.outputs = [o.describe() for o in outputs]
        want_frames = any(o.wants_frames for o in outputs)

        tracker, summary.sector = make_tracker(config.roi)
        temporal = TemporalLogic(labels, config.temporal)
        exam = ExamTracker(labels, config.exam, config.exam_report, config.exam_id, fps=native_fps, mask_header=config.mask_header)  # exam-hook
        checklist = ChecklistOverlay() if config.exam.checklist else None  # exam-hook
        times = StageTimes()
        latency = np.zeros(TIMING_WINDOW, np.float32)
        state = {"status": "starting", "label": "", "confidence": 0.0, "label_state": "", "hz": 0.0}

        capture = CaptureThread(
            source,
            source_factory,
            live=bool(live),
            pace_fps=pace_fps,
            loop=config.source.loop,
            reconnect_max_s=config.source.reconnect_max_s,
            reconnect_tries=config.source.reconnect_tries,
        )
        if config.pipeline:  # the loop reads the second stage exactly like the capture thread
            capture = PrepareThread(capture, lambda frame: prepare_frame(frame.image, tracker, info, make_tensor=True))

        def snapshot() -> dict[str, Any]:
            n = summary.frames
            return {
                "state": state["status"],
                "frames": n,
                "hz": round(state["hz"], 2),
                "captured": capture.captured,
                "dropped": capture.dropped,
                "skipped": summary.skipped,
                "errors": summary.errors,
                "last_error": summary.last_error,
                "reconnects": capture.reconnects,
                "layout_changes": int(getattr(tracker, "layout_changes", 0)),
                "stored_planes": temporal.stored_planes,
                "label": state["label"],
                "label_state": state["label_state"],
                "confidence": round(state["confidence"], 4),
                "latency_ms": round(float(latency[(n - 1) % TIMING_WINDOW]), 3) if n else None,
                "source": summary.source,
                "model": summary.model,
                "exam": exam.status(),  # exam-hook
            }

        for o in outputs:  # http-hook: outputs that serve the status / start exams (http://, the window's key)
            getattr(o, "attach", lambda **_: None)(snapshot=snapshot, exam=exam)

        if config.status:
            writer = StatusWriter(config.status, snapshot, config.status_interval_s)
            writer.maybe_write(force=True)

        with _Signals(stop) as signals:
            capture.start()
            state["status"] = "running"
            _process(config, capture, runner, info, labels, tracker, temporal, outputs, want_frames,
                     times, latency, state, summary, stop, writer, on_record, exam, checklist)  # exam-hook: exam, checklist
        if signals.received:
            summary.end_reason = f"interrupted ({signals.received})"
            summary.exit_code = 130 if signals.received == "SIGINT" else 0
        state["status"] = "stopped" if summary.exit_code in (0, 130) else "failed"
        if summary.end_reason.startswith("end of input"):
            state["status"] = "finished"
    except BaseException as exc:
        summary.last_error = str(getattr(exc, "message", exc))[:300]
        if "state" in locals():
            state["status"] = "failed"
        raise
    finally:
        if capture is not None:
            capture.stop()
            capture.join(timeout=5.0)
        else:
            source.close()
        for out in outputs:
            try:
                out.close()
            except Exception as exc:  # flush what can be flushed, report the rest
                summary.errors += 1
                summary.last_error = f"closing {out.describe()}: {exc}"
        runner.deactivate()
        if exam is not None:  # exam-hook: the last exam's report
            exam.close("interrupted" if stop.is_set() else "end of run")
        if writer is not None:
            writer.maybe_write(force=True)  # the final state, also after a failure

    # the numbers
    if capture is not None:
        summary.captured = capture.captured
        summary.dropped = capture.dropped
        summary.reconnects = capture.reconnects
    summary.layout_changes = int(getattr(tracker, "layout_changes", 0))
    summary.stored_planes = temporal.stored_planes
    summary.label_changes = temporal.label_changes
    summary.inferences = temporal.inferences
    summary.stages_ms = times.summary()
    summary.latency_ms = _percentiles(latency[: min(summary.frames, TIMING_WINDOW)])
    for out in outputs:
        summary.messages.extend(out.messages)
    summary.messages.extend([f"exam report: {p}" for p in exam.reports] + exam.errors)  # exam-hook
    return summary


def _process(config, capture, runner, info, labels, tracker, temporal, outputs, want_frames,
             times, latency, state, summary, stop, writer, on_record, exam=None, checklist=None) -> None:
    """The per-frame loop proper (runs until the input ends or something says stop)."""
    import cv2

    from edge.preprocess import to_probabilities

    perf = time.perf_counter
    t_start = perf()
    t_first = t_last = None
    dt_ema = 0.0
    consecutive_errors = 0
    last_frame: np.ndarray | None = None
    last_banner = 0.0
    next_log = t_start + config.log_every_s if config.log_every_s > 0 else float("inf")
    jsonl_outputs = [o for o in outputs if not o.wants_frames]
    frame_outputs = [o for o in outputs if o.wants_frames]

    while True:
        if stop.is_set() or any(o.stop_requested for o in outputs):
            summary.end_reason = summary.end_reason or "stopped"
            return
        if config.max_seconds and perf() - t_start >= config.max_seconds:
            summary.end_reason = "max seconds reached"
            return
        frame: Frame | None = capture.slot.get(timeout=0.1)
        if frame is None:
            if capture.finished:
                stage_error = getattr(capture, "stage_error", None)
                if stage_error is not None:  # a fault of the pipeline's own thread, not of the input
                    raise FetalPlanesError(
                        f"the frame-preparation thread failed: {getattr(stage_error, 'message', stage_error)}",
                        hint="run again with --no-pipeline to see where it fails, and report it",
                        exit_code=EXIT_FAILURE,
                    ) from stage_error
                if capture.state == STATE_FAILED:
                    err = capture.error
                    summary.last_error = str(getattr(err, "message", err))
                    summary.end_reason = "input lost"
                    summary.exit_code = EXIT_FAILURE
                    summary.errors += 1
                else:
                    summary.end_reason = "end of input"
                return
            if capture.state == STATE_RECONNECTING:
                state["status"] = "reconnecting"
                now = perf()
                if last_frame is not None and frame_outputs and now - last_banner > 0.5:
                    last_banner = now
                    banner = draw_banner(last_frame.copy(), "input lost - reconnecting ...")
                    for o in frame_outputs:
                        o.show_status(banner)
            if writer is not None:
                writer.maybe_write()
            if exam is not None:  # exam-hook: a long loss of signal ends the exam
                exam.tick()
            continue
        state["status"] = "running"

        t0 = perf()
        prep: Prepared = frame.prepared if frame.prepared is not None else prepare_frame(frame.image, tracker, info)
        if prep.skip:
            summary.skipped += 1
            summary.skipped_reasons[prep.skip] = summary.skipped_reasons.get(prep.skip, 0) + 1
            continue
        try:
            if prep.error is not None:
                raise prep.error
            image, box, thumb = prep.image, prep.box, prep.thumb
            t2 = perf()
            infer_s = [0.0, 0.0]

            def infer() -> np.ndarray:
                ta = perf()
                x = prep.tensor(info)
                tb = perf()
                p = to_probabilities(runner.infer(x), info)[0]
                infer_s[0] = tb - ta
                infer_s[1] = perf() - tb
                return p

            decision = temporal.step(thumb, infer)
            t3 = perf()
            frame_latency = t3 - frame.t_capture
            n = summary.frames
            summary.frames += 1
            consecutive_errors = 0

            if t_last is not None:
                dt = t3 - t_last
                dt_ema = dt if dt_ema == 0.0 else 0.9 * dt_ema + 0.1 * dt
            t_first = t_first if t_first is not None else t3
            t_last = t3
            hz = 1.0 / dt_ema if dt_ema > 0 else 0.0
            state.update(label=decision.label, confidence=decision.confidence, label_state=decision.state, hz=hz)
            box_list = box.as_list()
            if exam is not None:  # exam-hook: checklist + best frame (before the overlay draws on the frame)
                exam.observe(frame.index, time.time(), decision.label, decision.confidence, decision.state, image, box_list, prep.small, decision.event)

            # overlay (only when some output shows frames)
            shown = None
            if want_frames:
                shown = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                if config.mask_header:
                    mask_header(shown, config.mask_header)
                draw_overlay(shown, decision.label, decision.confidence, decision.state, hz, frame_latency * 1000.0,
                             box_list, decision.top(3) if config.top3 else None)
                if checklist is not None and exam is not None:  # exam-hook
                    checklist.draw(shown, exam)
                last_frame = shown
            t4 = perf()

            record = {
                "t": round(time.time(), 3),
                "frame": frame.index,
                "n": n,
                "label": decision.label,
                "confidence": round(decision.confidence, 4),
                "state": decision.state,
                "probs": {lab: round(float(p), 4) for lab, p in zip(labels, decision.probabilities)},
                "latency_ms": round(frame_latency * 1000.0, 3),
                "box": box_list,
                "inferred": decision.inferred,
            }
            if decision.event:
                record["event"] = decision.event
            for o in jsonl_outputs:
                o.write(None, record)
            for o in frame_outputs:
                o.write(shown, record)
            if on_record is not None:
                on_record(record)
            t5 = perf()
        except Exception as exc:  # one bad frame (or a full disk) must not end a months-long run
            summary.errors += 1
            consecutive_errors += 1
            summary.last_error = str(getattr(exc, "message", exc)).strip().splitlines()[0][:300]
            log.warning("frame %d: %s", frame.index, summary.last_error)
            if consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                raise FetalPlanesError(
                    f"{consecutive_errors} frames in a row failed; last error: {summary.last_error}",
                    hint="see the log above; check the model and the input",
                    exit_code=EXIT_FAILURE,
                ) from None
            continue

        latency[n % TIMING_WINDOW] = frame_latency * 1000.0
        times.add("sector", prep.sector_s)
        times.add("preprocess", prep.preprocess_s + infer_s[0])
        if decision.inferred:
            times.add("infer", infer_s[1])
        times.add("temporal", (t3 - t2) - infer_s[0] - infer_s[1])
        if want_frames:
            times.add("overlay", t4 - t3)
        times.add("outputs", t5 - t4)
        # the work spent on this frame (in the pipeline the sector/preprocess part ran in the other thread)
        times.add("total", prep.sector_s + prep.preprocess_s + (t5 - t2) if frame.prepared is not None else t5 - t0)
        summary.seconds = (t_last - t_first) if t_first is not None else 0.0
        summary.hz = (summary.frames - 1) / summary.seconds if summary.seconds > 0 else 0.0

        if writer is not None:
            writer.maybe_write()
        if t5 >= next_log:
            next_log = t5 + config.log_every_s
            log.info("%d frames, %.1f Hz, %s %.0f%% (%s), dropped %d, errors %d",
                     summary.frames, hz, decision.label, decision.confidence * 100, decision.state,
                     capture.dropped, summary.errors)
        if config.max_frames and summary.frames >= config.max_frames:
            summary.end_reason = "max frames reached"
            return
