"""Kinds of files by suffix, and file digests: one list of image and video suffixes and one sha256 for
the whole project (the live sources, classify, doctor, the dataset reader and selftest use them)."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: still images OpenCV's imread reads (compare lower-cased suffixes)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")
#: DICOM files (edge.dicom reads them; pydicom is imported there)
DICOM_SUFFIXES = (".dcm", ".dicom")
#: video containers a file source opens with OpenCV's VideoCapture
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".ts")


def is_image_file(path: str | Path) -> bool:
    """True when the file's suffix (any case) is an image suffix."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def strip_image_suffix(name: str) -> str:
    """``img_001.png`` (any case) -> ``img_001``; other names unchanged."""
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix and suffix.lower() in IMAGE_SUFFIXES else name


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
