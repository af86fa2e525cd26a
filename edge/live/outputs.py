"""Outputs named by URIs; several at once.

=====================================  =============================================
``display://0``                        a window (cv2.imshow); needs a desktop session
``rec.mp4``, ``file://rec.avi``        a video file with the overlay (mp4v / MJPG ...)
``rec.mp4?codec=MJPG``                 ... with a chosen FourCC (falls back if it cannot)
``jsonl://predictions.jsonl``          one JSON line per frame (label, probabilities, ...)
``http://127.0.0.1:8080/``             a web page with the live stream, label and exam checklist
                                       (:mod:`edge.live.http_output`)
=====================================  =============================================

Files are bounded by :mod:`edge.live.rotation` when a RotationConfig is given.
No frame is ever written unless a video output is asked for.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.live.rotation import RotationConfig, Rotator
from edge.live.sources import VIDEO_SUFFIXES

log = logging.getLogger("fetalplanes.live")

#: codecs that write and read back with pip's OpenCV (no H.264 encoder there), by container
DEFAULT_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
FALLBACK_CODECS = ("mp4v", "MJPG", "XVID")


@dataclass(frozen=True)
class OutputSpec:
    """A parsed output URI."""

    kind: str  # display | video | jsonl | http
    location: str
    options: dict[str, str] = field(default_factory=dict)


def parse_output(uri: str) -> OutputSpec:
    """Output URI -> OutputSpec, or a FetalPlanesError listing what is accepted."""
    text = str(uri).strip()
    options: dict[str, str] = {}
    if "?" in text:
        text, _, query = text.partition("?")
        for part in query.split("&"):
            if part:
                key, _, value = part.partition("=")
                options[key.strip().lower()] = value.strip()
    low = text.lower()
    if low.startswith("display://") or low == "display":
        return OutputSpec("display", text[len("display://"):] or "0", options)
    if low.startswith("jsonl://"):
        return OutputSpec("jsonl", text[len("jsonl://"):], options)
    if low.startswith("http://"):  # http-hook (issue 14)
        return OutputSpec("http", text[len("http://"):].split("/", 1)[0], options)
    if low.startswith("file://"):
        text = text[len("file://"):]
        low = text.lower()
    suffix = Path(low).suffix
    if suffix in (".jsonl", ".ndjson"):
        return OutputSpec("jsonl", text, options)
    if suffix in VIDEO_SUFFIXES:
        return OutputSpec("video", text, options)
    raise FetalPlanesError(
        f"output {uri!r}: unknown kind",
        hint="use display://0, a video file (.mp4/.avi/.mkv/.mov), jsonl://predictions.jsonl or http://127.0.0.1:8080/",
    )


class Output:
    """One destination of the loop's results."""

    wants_frames = False  # whether write() needs the (overlaid) frame
    stop_requested = False  # set by a window when the user presses q / Esc

    def __init__(self, spec: OutputSpec):
        self.spec = spec
        self.messages: list[str] = []

    def write(self, frame: np.ndarray | None, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def show_status(self, frame: np.ndarray) -> None:
        """A frame shown while no new frames arrive (e.g. 'reconnecting'); only windows show it."""

    def attach(self, snapshot: Any = None, exam: Any = None) -> None:
        """The loop's status snapshot (a callable) and exam tracker, for outputs that show or control them."""
        self.snapshot, self.exam = snapshot, exam

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.spec.kind}:{self.spec.location}"


class JsonlOutput(Output):
    """Per-frame records as JSON lines, flushed about once a second and on close."""

    def __init__(self, spec: OutputSpec, rotation: RotationConfig | None = None, flush_s: float = 1.0):
        super().__init__(spec)
        self.path = Path(spec.location)
        if not spec.location:
            raise FetalPlanesError("jsonl:// output without a file name", hint="e.g. jsonl://predictions.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rotator = Rotator(self.path, rotation or RotationConfig())
        if self.rotator.config.enabled:
            self.rotator.archive_current()  # a restart keeps the previous run's records
        self.flush_s = flush_s
        self.lines = 0
        self._file = self._open()
        self._last_flush = time.monotonic()

    def _open(self):
        try:
            return open(self.path, "w", encoding="utf-8", buffering=1 << 16)
        except OSError as exc:
            raise FetalPlanesError(f"{self.path}: cannot write ({exc.strerror})", hint="check the folder exists and is writable") from None

    def write(self, frame, record):
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.lines += 1
        now = time.monotonic()
        if now - self._last_flush >= self.flush_s:
            self.flush()
            self._last_flush = now
            if self.rotator.due(self._file.tell()):
                self._file.close()
                self.rotator.archive_current()
                self._file = self._open()

    def flush(self):
        if self._file and not self._file.closed:
            self._file.flush()

    def close(self):
        if self._file and not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def _bgr(frame: np.ndarray) -> np.ndarray:
    """Gray or BGRA -> BGR (a copy only when needed)."""
    import cv2

    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.shape[2] == 1:
        return cv2.cvtColor(frame[:, :, 0], cv2.COLOR_GRAY2BGR)
    return frame


def open_video_writer(path: Path, size: tuple[int, int], fps: float, codec: str | None):
    """A cv2.VideoWriter for ``path``; tries ``codec``, then ones that work here, and says so.

    Returns (writer, codec used, message or "").
    """
    import cv2

    suffix = path.suffix.lower()
    wanted = (codec or DEFAULT_CODECS.get(suffix, "MJPG"))[:4]
    tried = []
    for cc in [wanted, DEFAULT_CODECS.get(suffix, "MJPG"), *FALLBACK_CODECS]:
        if cc in tried:
            continue
        tried.append(cc)
        try:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*cc.ljust(4)), float(fps), size)
        except cv2.error:
            continue
        if writer.isOpened():
            message = ""
            if cc != wanted:
                message = (
                    f"{path.name}: this OpenCV cannot write codec {wanted!r} into {suffix or 'this container'}; "
                    f"wrote {cc!r} instead"
                )
            return writer, cc, message
        writer.release()
    raise FetalPlanesError(
        f"{path}: OpenCV cannot write video here (tried codecs {', '.join(tried)})",
        hint="write .avi (MJPG) or .mp4 (mp4v), and check the folder is writable",
        exit_code=EXIT_FAILURE,
    )


class VideoOutput(Output):
    """Writes the overlaid frames to a video file, rotating by size when asked."""

    wants_frames = True

    def __init__(self, spec: OutputSpec, fps: float = 30.0, codec: str | None = None, rotation: RotationConfig | None = None):
        super().__init__(spec)
        self.path = Path(spec.location)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = float(spec.options.get("fps") or fps or 30.0)
        self.codec = spec.options.get("codec") or codec
        self.rotator = Rotator(self.path, rotation or RotationConfig())
        if self.rotator.config.enabled:
            self.rotator.archive_current()
        self.writer = None
        self.size: tuple[int, int] | None = None
        self.codec_used = ""
        self.frames = 0
        self._since_check = 0

    def _open(self, size: tuple[int, int]) -> None:
        self.writer, self.codec_used, message = open_video_writer(self.path, size, self.fps, self.codec)
        self.size = size
        if message and message not in self.messages:
            self.messages.append(message)
            log.warning(message)

    def write(self, frame, record):
        import cv2

        if frame is None:
            return
        frame = _bgr(frame)
        h, w = frame.shape[:2]
        if self.writer is None:
            self._open((w + (w & 1), h + (h & 1)))  # even sizes: some codecs need them
        if (w, h) != self.size:  # the source changed size (layout switch, odd frame): keep one size per file
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)
        self.frames += 1
        self._since_check += 1
        if self.rotator.config.enabled and self._since_check >= 10:
            self._since_check = 0
            if self.rotator.due(self.path.stat().st_size):
                self.writer.release()
                self.rotator.archive_current()
                self._open(self.size)

    def close(self):
        if self.writer is not None:
            self.writer.release()
            self.writer = None


def display_available() -> tuple[bool, str]:
    """Whether a cv2 window can be opened here, and why not."""
    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no desktop session (DISPLAY / WAYLAND_DISPLAY unset)"
    info = cv2.getBuildInformation()
    gui = ""
    for line in info.splitlines():
        if line.strip().startswith("GUI:"):
            gui = line.split(":", 1)[1].strip()
    if gui.upper() in ("NONE", "NO", ""):
        return False, "this OpenCV build has no GUI (opencv-python-headless)"
    return True, ""


class DisplayOutput(Output):
    """A window showing the overlaid frames; q or Esc stops the loop, n starts a new exam."""

    wants_frames = True

    def __init__(self, spec: OutputSpec):
        super().__init__(spec)
        import cv2

        ok, why = display_available()
        if not ok:
            raise FetalPlanesError(
                f"display://{spec.location}: cannot open a window: {why}",
                hint="run on the box's desktop (export DISPLAY=:0), install an OpenCV with GUI "
                "(opencv-python, or the system one on Jetson), or record instead: --output out.mp4",
            )
        self.window = f"fetalplanes {spec.location}"
        try:
            cv2.namedWindow(self.window, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise FetalPlanesError(
                f"display://{spec.location}: OpenCV cannot open a window ({str(exc).strip().splitlines()[-1][:200]})",
                hint="install an OpenCV with GUI support, or record instead: --output out.mp4",
            ) from None

    def write(self, frame, record):
        if frame is not None:
            self.show_status(frame)

    def show_status(self, frame):
        import cv2

        cv2.imshow(self.window, frame)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.stop_requested = True
        elif key == ord("n") and getattr(self, "exam", None) is not None:  # exam-hook: a key starts a new exam
            self.exam.request_new_exam(reason="new exam (key n)")

    def close(self):
        import cv2

        try:
            cv2.destroyWindow(self.window)
        except cv2.error:  # pragma: no cover
            pass


def open_output(spec: OutputSpec | str, fps: float = 30.0, codec: str | None = None, rotation: RotationConfig | None = None) -> Output:
    """Open one output (raises FetalPlanesError when it cannot)."""
    if not isinstance(spec, OutputSpec):
        spec = parse_output(spec)
    if spec.kind == "display":
        return DisplayOutput(spec)
    if spec.kind == "jsonl":
        return JsonlOutput(spec, rotation)
    if spec.kind == "http":  # http-hook (issue 14)
        from edge.live.http_output import HttpOutput

        return HttpOutput(spec)
    return VideoOutput(spec, fps=fps, codec=codec, rotation=rotation)
