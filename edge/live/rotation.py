"""Size bounds for files a box writes for months: predictions and recordings.

The file being written always keeps its configured name (``predictions.jsonl``,
``rec.mp4``). When it grows past ``max_file_mb`` it is closed and renamed to
``<stem>.<NNNNNN><suffix>`` (``predictions.000001.jsonl``; numbers only grow),
and a new current file is started. Then archives are deleted, oldest (lowest
number) first, until all files together fit ``max_total_mb`` (counting the
current file at its full ``max_file_mb``, so the bound also holds while it
grows) and at most
``max_files`` archives remain. The current file is never deleted.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from edge.errors import FetalPlanesError

log = logging.getLogger("fetalplanes.live")

MB = 1024 * 1024


@dataclass
class RotationConfig:
    """When to start a new file and how much old data to keep (0 = no bound)."""

    max_file_mb: float = 0.0  # start a new file past this size; 0 = never rotate
    max_total_mb: float = 0.0  # current + archives together; 0 = unbounded
    max_files: int = 0  # archives kept; 0 = unbounded

    @property
    def enabled(self) -> bool:
        return self.max_file_mb > 0

    def validate(self, source: str = "rotation settings") -> None:
        if self.max_file_mb < 0 or self.max_total_mb < 0 or self.max_files < 0:
            raise FetalPlanesError(f"{source}: sizes and counts must be >= 0 ({self})", hint="use 0 for 'no bound'")
        if self.max_total_mb and self.max_file_mb and self.max_total_mb < self.max_file_mb:
            raise FetalPlanesError(
                f"{source}: max_total_mb {self.max_total_mb} is smaller than max_file_mb {self.max_file_mb}",
                hint="keep room for at least one whole file: max_total_mb >= max_file_mb",
            )
        if (self.max_total_mb or self.max_files) and not self.max_file_mb:
            raise FetalPlanesError(
                f"{source}: max_total_mb / max_files need max_file_mb (a single growing file cannot be trimmed)",
                hint="set max_file_mb (e.g. 100) so the file is split into pieces that can be removed",
            )


class Rotator:
    """Archives and prunes the pieces of one output file."""

    def __init__(self, path: str | Path, config: RotationConfig):
        self.path = Path(path)
        self.config = config
        self._pattern = re.compile(re.escape(self.path.stem) + r"\.(\d{6,})" + re.escape(self.path.suffix) + r"$")
        self.rotations = 0
        self.deleted: list[Path] = []

    def archives(self) -> list[tuple[int, Path]]:
        """Existing archives of this file as (number, path), oldest first."""
        found = []
        if self.path.parent.is_dir():
            for entry in os.scandir(self.path.parent):
                m = self._pattern.match(entry.name)
                if m and entry.is_file():
                    found.append((int(m.group(1)), Path(entry.path)))
        return sorted(found)

    def due(self, current_bytes: int) -> bool:
        """Whether the current file has grown past max_file_mb."""
        return self.config.enabled and current_bytes >= self.config.max_file_mb * MB

    def archive_current(self) -> Path | None:
        """Rename the (closed) current file to the next archive name, then prune. None if there was none."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        existing = self.archives()
        number = (existing[-1][0] + 1) if existing else 1
        target = self.path.with_name(f"{self.path.stem}.{number:06d}{self.path.suffix}")
        os.replace(self.path, target)
        self.rotations += 1
        self.prune()
        return target

    def prune(self) -> list[Path]:
        """Delete archives, oldest first, until the bounds hold; never the current file."""
        c = self.config
        archives = self.archives()
        sizes = {p: p.stat().st_size for _, p in archives}
        current = self.path.stat().st_size if self.path.exists() else 0
        # reserve room for the current file to grow to max_file_mb, so the bound holds between rotations
        total = sum(sizes.values()) + max(current, c.max_file_mb * MB)
        removed = []
        while archives:
            over_size = c.max_total_mb > 0 and total > c.max_total_mb * MB
            over_count = c.max_files > 0 and len(archives) > c.max_files
            if not (over_size or over_count):
                break
            _, oldest = archives.pop(0)
            try:
                oldest.unlink()
            except FileNotFoundError:
                pass
            total -= sizes[oldest]
            removed.append(oldest)
            log.info("rotation: removed %s (oldest) to keep %s within its bounds", oldest, self.path.name)
        self.deleted.extend(removed)
        return removed
