"""The heartbeat file a monitor reads: written atomically about once a second.

The file is JSON: ``{"state", "timestamp", "time", "pid", "frames", "hz",
"dropped", "errors", "last_error", "label", ...}``. It is written to a temporary
file in the same folder and renamed over the old one, so a reader never sees a
half-written file. A monitor treats the box as dead when ``timestamp`` is older
than a few seconds.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from edge.errors import FetalPlanesError

log = logging.getLogger("fetalplanes.live")


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> None:
    """Write JSON so that readers see either the old or the new file, never a partial one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class StatusWriter:
    """Writes ``snapshot()`` to ``path`` at most every ``interval_s`` seconds (and when forced).

    :meth:`check` writes it once and raises a FetalPlanesError (exit 2) if that fails, so an
    unwritable path is refused before the first frame. Later failures (a full disk) never stop
    the loop: the first is logged and kept in :attr:`failed`; writing is tried again each interval.
    """

    def __init__(self, path: str | Path, snapshot: Callable[[], dict[str, Any]], interval_s: float = 1.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FetalPlanesError(f"status file {self.path}: cannot create its folder ({exc.strerror})", hint="choose a writable --status path") from None
        self.snapshot = snapshot
        self.interval_s = interval_s
        self.writes = 0
        self.failed = ""  # the first write error after check(), "" if none
        self._last = 0.0
        self.started = time.time()

    def check(self) -> None:
        """Write now; a FetalPlanesError (exit 2) naming the file if it cannot be written."""
        try:
            self._write()
        except OSError as exc:
            raise FetalPlanesError(
                f"status file {self.path}: cannot write ({exc.strerror or exc})",
                hint="choose a writable --status path (a folder this user may write to)",
            ) from None

    def maybe_write(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return False
        try:
            self._write()
        except OSError as exc:  # a full or read-only disk must not stop the loop
            if not self.failed:
                self.failed = f"cannot write ({exc.strerror or exc})"
                log.error("status file %s: %s; the run goes on, writing is retried", self.path, self.failed)
            return False
        return True

    def _write(self) -> None:
        self._last = time.monotonic()
        data = dict(self.snapshot())
        t = time.time()
        data.setdefault("timestamp", round(t, 3))
        data.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t)))
        data.setdefault("pid", os.getpid())
        data.setdefault("started", round(self.started, 3))
        write_json_atomic(self.path, data)
        self.writes += 1


def read_status(path: str | Path) -> dict[str, Any]:
    """Read a status file (for monitors and tests)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
