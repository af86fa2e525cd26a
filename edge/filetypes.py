"""File-name suffixes the box reads, in one place (lower case; compare with ``suffix.lower()``).

The live loop's sources, ``classify``, the doctor and the dataset reader all use these lists, so a
new image or video type is added here once.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".ts")


def is_image(path: str | Path) -> bool:
    """Whether the name ends in an image suffix (any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: str | Path) -> bool:
    """Whether the name ends in a video suffix (any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
