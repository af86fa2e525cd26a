"""Image files -> arrays, with the project's errors: the one place that decodes an image file.

PNG/JPEG/... through OpenCV (``IMREAD_UNCHANGED``: gray, BGR or BGRA, 8 or 16 bit), DICOM through
:mod:`edge.dicom`. An empty file, a truncated PNG or an undecodable file is a FetalPlanesError naming the
file; the decoders' own chatter on stderr (OpenCV's warnings, libpng's "libpng error" lines) is kept off,
since the tool's message says it already.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from edge.errors import FetalPlanesError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: a complete PNG ends with its IEND chunk: length 0, type IEND, CRC
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
DEFAULT_HINT = "the file is corrupt, truncated or not an image: replace it with the original"


@contextmanager
def quiet_opencv():
    """OpenCV's log at ERROR level for the duration (its decoder warnings duplicate our messages)."""
    try:
        import cv2

        logging = cv2.utils.logging
        before = logging.getLogLevel()
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    except Exception:  # an OpenCV without the logging API
        yield
        return
    try:
        yield
    finally:
        logging.setLogLevel(before)


def decode_bytes(data: np.ndarray, name: str, hint: str = DEFAULT_HINT) -> np.ndarray:
    """Encoded image bytes (uint8 array) -> the decoded image; ``name`` names it in errors."""
    import cv2

    if data.size == 0:
        raise FetalPlanesError(f"{name}: empty file (0 bytes), not an image", hint=hint)
    head = data[:8].tobytes()
    if head == PNG_SIGNATURE and data[-12:].tobytes() != PNG_END:
        raise FetalPlanesError(f"{name}: truncated PNG (the file ends before the PNG end marker, {data.size} bytes)",
                               hint=hint)
    with quiet_opencv():
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise FetalPlanesError(f"{name}: not a readable image (corrupt or unsupported format)", hint=hint)
    return image


def decode_image(path: str | Path, hint: str = DEFAULT_HINT) -> np.ndarray:
    """An image file as stored (gray/BGR/BGRA, any depth); DICOM: its middle frame as uint8 gray/BGR."""
    from edge.dicom import is_dicom, read_dicom

    path = Path(path)
    if is_dicom(path):
        return read_dicom(path)[0]
    if not path.is_file():
        raise FetalPlanesError(f"{path}: image file not found", hint="check the path")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise FetalPlanesError(f"{path}: cannot be read ({exc.strerror or exc})", hint="check the file's permissions") from None
    return decode_bytes(data, str(path), hint)


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame of an image file: one for PNG/JPEG/..., all of a DICOM cine loop."""
    from edge.dicom import is_dicom, open_dicom

    if is_dicom(path):
        yield from open_dicom(path)
    else:
        yield decode_image(path)
