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

import errno
import json
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.live.rotation import RotationConfig, Rotator
from edge.files import VIDEO_SUFFIXES

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
    else:
        m = re.match(r"([a-z][a-z0-9+.-]*)://", low)
        if m:
            raise FetalPlanesError(
                f"output {uri!r}: unknown scheme {m.group(1)}",
                hint="valid schemes: display://, jsonl://, file://; or a video file (.mp4/.avi/.mkv/.mov)",
            )
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
    main_thread = False  # write()/show_status() only from the loop's (main) thread: OpenCV highgui windows
    stop_requested = False  # set by a window when the user presses q / Esc

    # write() raises when the output can no longer be written (disk full, device gone); the loop
    # then reports it once, closes it and goes on with the other outputs.

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


def check_file_writable(path: str | Path, what: str) -> None:
    """Before any work: ``path``'s folder takes a new file (created if missing); a FetalPlanesError (exit 2) naming it if not.

    ``what`` names the file for the message (e.g. ``"--out results.csv"``). Nothing is left behind.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise FetalPlanesError(f"{what}: cannot write ({exc.strerror or exc})", hint="choose a writable path (a folder this user may write to)") from None


def _make_parent(path: Path, what: str) -> None:
    """Create the folder of an output file, or a FetalPlanesError (exit 2) naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetalPlanesError(
            f"{what} {path}: cannot create its folder {path.parent} ({exc.strerror or exc})",
            hint="choose a writable path (a folder this user may write to, on a disk with space)",
        ) from None


class JsonlOutput(Output):
    """Per-frame records as JSON lines, each written whole by one system call as it comes.

    Nothing is buffered in the process, so a crash loses no record; if a write is cut short (disk
    full) the partial line is cut off again, so the file only ever holds whole lines.
    """

    def __init__(self, spec: OutputSpec, rotation: RotationConfig | None = None):
        super().__init__(spec)
        if not spec.location:
            raise FetalPlanesError("jsonl:// output without a file name", hint="e.g. jsonl://predictions.jsonl")
        self.path = Path(spec.location)
        _make_parent(self.path, "predictions file")
        self.rotator = Rotator(self.path, rotation or RotationConfig())
        if self.rotator.config.enabled:
            self.rotator.archive_current()  # a restart keeps the previous run's records
        self.lines = 0
        self.size = 0  # bytes of whole lines in the current file
        self._fd: int | None = self._open()

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise FetalPlanesError(
                f"predictions file {self.path}: cannot write ({exc.strerror or exc})",
                hint="check the folder exists and is writable",
            ) from None
        self.size = 0
        return fd

    def write(self, frame, record):
        if self._fd is None:
            raise OSError(errno.EBADF, f"{self.path} is closed")
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            if done:  # never leave half a line: cut the file back to the last whole one
                try:
                    os.ftruncate(self._fd, self.size)
                    os.lseek(self._fd, self.size, os.SEEK_SET)
                except OSError:  # pragma: no cover - truncating needs no space; nothing more to do
                    pass
            raise OSError(exc.errno, f"{exc.strerror or exc} after {self.lines} whole records") from exc
        self.size += len(data)
        self.lines += 1
        if self.rotator.due(self.size):
            os.close(self._fd)
            self._fd = None
            self.rotator.archive_current()
            self._fd = self._open()

    def close(self):
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


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


#: a recording stops (and is finalised) when its disk has less free space than this, so its index still fits
VIDEO_RESERVE_BYTES = 256 * 1024
VIDEO_RESERVE_PER_FRAME = 64  # + this much per frame written (the index grows with the frames)


def incomplete_path(path: Path) -> Path:
    """Where a recording is written until it is finalised: ``rec.mp4`` -> ``rec.incomplete.mp4``."""
    return path.with_name(f"{path.stem}.incomplete{path.suffix}")


def free_bytes(folder: Path) -> int | None:
    """Free bytes for this user on the disk of ``folder`` (None where it cannot be asked)."""
    try:
        st = os.statvfs(folder)
    except (AttributeError, OSError):  # no statvfs (Windows) or the folder is gone
        return None
    return st.f_bavail * st.f_frsize


class VideoOutput(Output):
    """Writes the overlaid frames to a video file, rotating by size when asked.

    The file is written as ``<stem>.incomplete<suffix>`` and renamed to its name only once it is
    closed and reads back with every frame, so a recording cut short (power loss, a full disk, a
    crash) is unmistakable. When the disk runs low the recording is stopped and finalised while
    its index still fits, and the loop reports the output as failed.
    """

    wants_frames = True

    def __init__(self, spec: OutputSpec, fps: float = 30.0, codec: str | None = None, rotation: RotationConfig | None = None):
        super().__init__(spec)
        self.path = Path(spec.location)
        self.partial = incomplete_path(self.path)
        self.fps = float(spec.options.get("fps") or fps or 30.0)
        self.codec = spec.options.get("codec") or codec
        _make_parent(self.path, "recording")
        self._check_writable()
        self._keep_stale_partial()
        self.rotator = Rotator(self.path, rotation or RotationConfig())
        if self.rotator.config.enabled:
            self.rotator.archive_current()
        self.writer = None
        self.size: tuple[int, int] | None = None
        self.codec_used = ""
        self.frames = 0  # all files together
        self.frames_in_file = 0
        self._since_check = 0

    def _keep_stale_partial(self) -> None:
        """A previous run's unfinished recording is renamed aside (with its time), never overwritten."""
        if not self.partial.exists():
            return
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.partial.stat().st_mtime))
        aside = self.path.with_name(f"{self.path.stem}.incomplete-{stamp}{self.path.suffix}")
        try:
            os.replace(self.partial, aside)
        except OSError as exc:
            raise FetalPlanesError(f"recording {self.path}: cannot move the previous unfinished {self.partial.name} aside ({exc.strerror})",
                                   hint="move or delete it by hand") from None
        message = f"kept a previous run's unfinished recording as {aside.name}"
        self.messages.append(message)
        log.warning(message)

    def _check_writable(self) -> None:
        """Before the first frame: the folder takes a file and OpenCV can encode into it (exit 2 if not)."""
        probe = self.path.with_name(f".{self.path.stem}.probe{self.path.suffix}")
        try:
            with open(probe, "wb"):
                pass
            writer, _, message = open_video_writer(probe, (64, 64), self.fps, self.codec)
            writer.release()
        except OSError as exc:
            raise FetalPlanesError(
                f"recording {self.path}: cannot write ({exc.strerror or exc})",
                hint="choose a writable folder on a disk with space",
            ) from None
        except FetalPlanesError as exc:
            raise FetalPlanesError(f"recording {self.path}: {exc.message}", hint=exc.hint) from None
        finally:
            try:
                probe.unlink()
            except OSError:
                pass
        if message:
            self.messages.append(message)
            log.warning(message)

    def _open(self, size: tuple[int, int]) -> None:
        self.writer, self.codec_used, message = open_video_writer(self.partial, size, self.fps, self.codec)
        self.size = size
        self.frames_in_file = 0
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
            if self.size is not None:  # finalised after a failure: do not start a new file behind the loop's back
                raise OSError(errno.EBADF, f"{self.path} is closed")
            self._open((w + (w & 1), h + (h & 1)))  # even sizes: some codecs need them
        free = free_bytes(self.partial.parent)
        if free is not None and free < VIDEO_RESERVE_BYTES + VIDEO_RESERVE_PER_FRAME * self.frames_in_file:
            raise OSError(errno.ENOSPC, f"disk almost full ({free // 1024} KiB free): recording stopped after "
                                        f"{self.frames} frames so that it can still be finalised")
        if (w, h) != self.size:  # the source changed size (layout switch, odd frame): keep one size per file
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)
        self.frames += 1
        self.frames_in_file += 1
        self._since_check += 1
        if self.rotator.config.enabled and self._since_check >= 10:
            self._since_check = 0
            if self.rotator.due(self.partial.stat().st_size):
                self._finish()
                self.rotator.archive_current()
                self._open(self.size)

    def _finish(self) -> None:
        """Release the writer; rename the file to its name if it reads back whole, else keep the incomplete name."""
        import cv2

        writer, self.writer = self.writer, None
        writer.release()
        cap = cv2.VideoCapture(str(self.partial))
        try:
            readable = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        finally:
            cap.release()
        if readable < self.frames_in_file:
            raise OSError(
                errno.EIO,
                f"recording {self.path} is incomplete ({readable} of {self.frames_in_file} frames readable); "
                f"kept as {self.partial.name}",
            )
        os.replace(self.partial, self.path)

    def close(self):
        if self.writer is not None:
            self._finish()


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
    """A window showing the overlaid frames; q or Esc stops the loop, n starts a new exam.

    OpenCV's highgui works from one thread only: the loop shows it from its own thread, never the output thread.
    ``gui``: the window toolkit, OpenCV's highgui by default; anything with ``namedWindow``, ``imshow``,
    ``waitKey`` and ``destroyWindow`` works (tests pass one that replays key presses, no display needed).
    """

    wants_frames = True
    main_thread = True

    def __init__(self, spec: OutputSpec, gui: Any = None):
        super().__init__(spec)
        import cv2

        if gui is None:
            ok, why = display_available()
            if not ok:
                raise FetalPlanesError(
                    f"display://{spec.location}: cannot open a window: {why}",
                    hint="run on the box's desktop (export DISPLAY=:0), install an OpenCV with GUI "
                    "(opencv-python, or the system one on Jetson), or record instead: --output out.mp4",
                )
            gui = cv2
        self.gui = gui
        self.window = f"fetalplanes {spec.location}"
        try:
            gui.namedWindow(self.window, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise FetalPlanesError(
                f"display://{spec.location}: OpenCV cannot open a window ({str(exc).strip().splitlines()[-1][:200]})",
                hint="install an OpenCV with GUI support, or record instead: --output out.mp4",
            ) from None

    def write(self, frame, record):
        if frame is not None:
            self.show_status(frame)

    def show_status(self, frame):
        self.gui.imshow(self.window, frame)
        self.handle_key(self.gui.waitKey(1))

    def handle_key(self, key: int) -> None:
        """A key pressed in the window (``waitKey``'s value; -1 = none): q / Esc stop the loop, n starts a new exam."""
        key = int(key) & 0xFF
        if key in (ord("q"), 27):
            self.stop_requested = True
        elif key == ord("n") and getattr(self, "exam", None) is not None:  # exam-hook: a key starts a new exam
            self.exam.request_new_exam(reason="new exam (key n)")

    def close(self):
        import cv2

        try:
            self.gui.destroyWindow(self.window)
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
