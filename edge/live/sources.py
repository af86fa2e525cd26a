"""Video sources named by URIs (jetson-inference style).

=================================  ==========================================
``v4l2:///dev/video0``, ``0``      a capture card / camera (V4L2), live
``/dev/video0``                    the same
``file://clip.mp4``, ``clip.mp4``  a video file (mp4, avi, mov, mkv, ...)
``rtsp://host/stream``             a network stream, live
``v4l2src ... ! appsink``          a GStreamer pipeline (OpenCV with GStreamer), live
``folder/``, ``imgs/*.png``        an image folder or glob, read in name order
=================================  ==========================================

A source is opened with :func:`open_source` and read with ``read() -> (ok, frame)``:
``ok`` False means the stream ended (file) or dropped (live); ``(True, None)`` is
a frame that could not be decoded (counted and skipped by the loop).
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.dicom import check_readable, frame_count as dicom_frame_count, is_dicom
from edge.errors import FetalPlanesError
from edge.files import DICOM_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES  # noqa: F401  (re-exported)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
INPUT_SCHEMES = ("v4l2", "file", *STREAM_SCHEMES)  # what parse_source accepts before "://"
#: image folders and single files may also hold DICOM (every frame of a cine loop is a frame)
FOLDER_SUFFIXES = IMAGE_SUFFIXES + DICOM_SUFFIXES


@dataclass
class SourceConfig:
    """How to open and read the input."""

    uri: str = ""
    width: int = 0  # requested capture size (live sources); 0 = the device's default
    height: int = 0
    fps: float = 0.0  # requested capture rate (live); for image folders the pacing rate
    loop: bool = False  # files and folders: start again at the end
    pace: str = "off"  # files: "off" (every frame, as fast as the loop goes), "realtime" (the file's fps), or a number
    reconnect_max_s: float = 10.0  # live sources: longest wait between reconnection attempts
    reconnect_tries: int = 0  # live sources: give up after this many failed attempts in a row (0 = never)
    fourcc: str = ""  # V4L2 pixel format to ask for, e.g. MJPG for 1080p60 on USB capture cards

    def pace_fps(self, native_fps: float) -> float | None:
        """Frames per second to pace a file at, or None for unpaced."""
        p = str(self.pace).strip().lower()
        if p in ("", "off", "none", "0", "false"):
            return None
        if p in ("realtime", "real-time", "native", "on", "true"):
            return native_fps if native_fps > 0 else 30.0
        try:
            value = float(p)
        except ValueError:
            raise FetalPlanesError(
                f"--pace {self.pace!r} is not off, realtime or a number of frames per second",
                hint="e.g. --pace realtime or --pace 60",
            ) from None
        if value <= 0:
            return None
        return value


@dataclass(frozen=True)
class SourceSpec:
    """A parsed input URI."""

    kind: str  # v4l2 | file | stream | gstreamer | images
    location: str
    live: bool

    @property
    def device_index(self) -> int | None:
        return int(self.location) if self.kind == "v4l2" and self.location.isdigit() else None


class FrameSource(Protocol):
    """What the capture thread reads from."""

    spec: SourceSpec
    fps: float

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def rewind(self) -> bool: ...

    def close(self) -> None: ...


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def parse_source(uri: str) -> SourceSpec:
    """Input URI or path -> SourceSpec; a FetalPlanesError saying what is accepted otherwise."""
    text = str(uri).strip()
    if not text:
        raise FetalPlanesError("no input given", hint="pass --input (e.g. v4l2:///dev/video0 or clip.mp4) or set input in the config file")
    if "!" in text:
        return SourceSpec("gstreamer", text, live=True)
    if re.fullmatch(r"\d+", text):
        return SourceSpec("v4l2", text, live=True)
    low = text.lower()
    if low.startswith("v4l2://"):
        return SourceSpec("v4l2", text[len("v4l2://"):] or "/dev/video0", live=True)
    if text.startswith("/dev/video"):
        return SourceSpec("v4l2", text, live=True)
    for scheme in STREAM_SCHEMES:
        if low.startswith(f"{scheme}://"):
            return SourceSpec("stream", text, live=True)
    if low.startswith("file://"):
        text = text[len("file://"):]
    else:
        m = re.match(r"([a-z][a-z0-9+.-]*)://", low)
        if m:
            raise FetalPlanesError(
                f"input {uri!r}: unknown scheme {m.group(1)}",
                hint=f"valid schemes: {', '.join(s + '://' for s in INPUT_SCHEMES)}; or a path, a device index, "
                "or a GStreamer pipeline ending in appsink",
            )
    if _is_glob(text):
        return SourceSpec("images", text, live=False)
    path = Path(text)
    if path.is_dir():
        return SourceSpec("images", str(path), live=False)
    if not path.exists():
        raise FetalPlanesError(
            f"input {uri!r}: no such file or folder",
            hint="give a video file, an image folder or glob, v4l2:///dev/videoN, rtsp://..., or a GStreamer pipeline",
        )
    if path.suffix.lower() in FOLDER_SUFFIXES:
        return SourceSpec("images", str(path), live=False)
    return SourceSpec("file", str(path), live=False)


def natural_key(text: str) -> list:
    """Sort key that puts 'img2' before 'img10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def list_images(location: str, recursive: bool = False) -> list[Path]:
    """Image files of a folder, a glob or a single file, in natural name order."""
    if _is_glob(location):
        found = [Path(p) for p in glob.glob(location, recursive=True)]
    else:
        path = Path(location)
        if path.is_file():
            return [path]
        found = list(path.rglob("*") if recursive else path.iterdir())
    return sorted((p for p in found if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES), key=lambda p: natural_key(str(p)))


def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


class CvCaptureSource:
    """cv2.VideoCapture behind the FrameSource interface (files, V4L2, network, GStreamer)."""

    def __init__(self, spec: SourceSpec, config: SourceConfig):
        import cv2

        self.spec = spec
        self.config = config
        self.cap = None
        self.frame_count = 0
        self._cv2 = cv2
        self.open()
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else (config.fps or 0.0)
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not spec.live else 0

    def open(self) -> None:
        cv2 = self._cv2
        spec, cfg = self.spec, self.config
        if spec.kind == "gstreamer":
            if not opencv_has_gstreamer():
                raise FetalPlanesError(
                    "this OpenCV build has no GStreamer support, so it cannot open a GStreamer pipeline",
                    hint="on Jetson use JetPack's system OpenCV (uninstall pip's opencv-python*, see docs/deploy.md), "
                    "or give the device directly: --input v4l2:///dev/video0",
                )
            cap = cv2.VideoCapture(spec.location, cv2.CAP_GSTREAMER)
        elif spec.kind == "v4l2":
            target = spec.device_index if spec.device_index is not None else spec.location
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
            if not cap.isOpened():  # some boxes expose the device only through the default backend
                cap = cv2.VideoCapture(target)
        elif spec.kind == "stream":
            cap = cv2.VideoCapture(spec.location, cv2.CAP_FFMPEG)
        else:
            cap = cv2.VideoCapture(spec.location, cv2.CAP_FFMPEG)
            if not cap.isOpened():
                cap = cv2.VideoCapture(spec.location)
        if not cap.isOpened():
            raise FetalPlanesError(
                f"input {spec.location!r}: OpenCV cannot open it ({spec.kind})",
                hint={
                    "v4l2": "check the capture card is plugged in and the device exists (ls /dev/video*), "
                    "that this user is in the 'video' group, and that no other program holds it; `fetalplanes doctor` checks this",
                    "stream": "check the address and that the stream is reachable from this box",
                    "gstreamer": "test the pipeline with gst-launch-1.0, ending it in 'appsink'",
                }.get(spec.kind, "check the file plays (ffprobe) and is not truncated; mp4/avi/mov/mkv are read through FFmpeg"),
                exit_code=1 if spec.live else 2,
            )
        if spec.live:
            if cfg.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc[:4].ljust(4)))
            if cfg.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            if cfg.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
            if cfg.fps:
                cap.set(cv2.CAP_PROP_FPS, cfg.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a driver backlog
        self.cap = cap

    def read(self) -> tuple[bool, np.ndarray | None]:
        ok, frame = self.cap.read()
        return (bool(ok), frame if ok else None)

    def rewind(self) -> bool:
        if self.spec.live:
            return False
        if self.cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0):
            return True
        self.cap.release()
        self.open()
        return True

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class ImageFolderSource:
    """Still images as a stream of frames (gray, BGR or BGRA as stored)."""

    def __init__(self, spec: SourceSpec, config: SourceConfig):
        self.spec = spec
        self.files = list_images(spec.location)
        if not self.files:
            raise FetalPlanesError(
                f"input {spec.location!r}: no images ({', '.join(IMAGE_SUFFIXES)}) found",
                hint="check the folder or quote the glob so that the shell does not expand it",
            )
        self.fps = config.fps or 0.0
        dicom = [p for p in self.files if is_dicom(p)]
        check_readable(dicom)  # pydicom and its decoders are there: exit 2 now, not an error on every frame
        self.frame_count = len(self.files) - len(dicom) + sum(dicom_frame_count(p) for p in dicom)
        self.position = 0
        self._frames = None  # the frames of the current DICOM cine loop

    def read(self) -> tuple[bool, np.ndarray | None]:
        from edge.images import decode_image, iter_frames

        try:
            if self._frames is not None:
                frame = next(self._frames, None)
                if frame is not None:
                    return True, frame
                self._frames = None
            if self.position >= len(self.files):
                return False, None
            path = self.files[self.position]
            self.position += 1
            if is_dicom(path):
                self._frames = iter_frames(path)
                return True, next(self._frames, None)
            return True, decode_image(path)
        except FetalPlanesError:
            self._frames = None
            return True, None  # unreadable image, skipped and counted by the loop

    def rewind(self) -> bool:
        self.position = 0
        self._frames = None
        return True

    def close(self) -> None:
        pass


def open_source(spec: SourceSpec | str, config: SourceConfig | None = None) -> FrameSource:
    """Open the source a URI names (raises FetalPlanesError when it cannot)."""
    config = config or SourceConfig()
    if not isinstance(spec, SourceSpec):
        spec = parse_source(spec)
    if spec.kind == "images":
        return ImageFolderSource(spec, config)
    return CvCaptureSource(spec, config)


def describe_source(spec: SourceSpec) -> str:
    return f"{spec.kind}:{spec.location}" + (" (live)" if spec.live else "")
