"""No tracked file names an absolute path of a development or build machine.

Project files name paths relative to the repository (``../shared/...``) or not at all; recorded results
write paths relative to their output folder. System paths a user's box really has (``/dev/video0``,
``/var/lib/fetalplanes``, ``/opt/...``, ``/usr/...``) are fine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Absolute paths of development machines: home folders, the work and scratch areas, temporary run folders.
MACHINE_PATH = re.compile(r"(?<![A-Za-z0-9_.~/-])/(?:work|home|root|Users|tmp|mnt|scratch)/[^\s\"'`)]*")
WINDOWS_HOME = re.compile(r"[A-Za-z]:\\\\?Users\\\\?")
#: Made-up paths that a test feeds to the code on purpose: file -> the paths allowed there.
ALLOWED = {"tests/edge/test_doctor.py": ("/home/me/src/cv2/__init__.py",)}
SELF = Path(__file__).resolve().relative_to(REPO).as_posix()


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout (or no git): cannot list the tracked files")
    files = []
    for name in out.decode().split("\0"):
        path = REPO / name
        if not name or not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        if b"\0" in path.read_bytes()[:8192]:
            continue  # binary (images, ...)
        files.append(path)
    return files


def find_machine_paths(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """The development-machine paths in ``text`` (those in ``allowed`` left out)."""
    found = [m.group(0) for m in MACHINE_PATH.finditer(text)] + [m.group(0) for m in WINDOWS_HOME.finditer(text)]
    return [f for f in found if f not in allowed]


def test_the_pattern_finds_machine_paths_and_spares_the_rest():
    bad = ('see /work/shared/data/README.md', '"video": "/root/.cache/x.onnx"', "--out /tmp/demo_full",
           "(/home/alice/data)", "`/Users/bob/x`", r"C:\Users\bob\x")
    assert all(find_machine_paths(t) for t in bad)
    good = ("../shared/data/README.md", "~/.cache/fetalplanes-bench", "/dev/video0", "/var/lib/fetalplanes",
            "https://example.org/home/page", "/opt/fetalplanes/venv", "OUT/resnet18/best.pt", "a/tmp/b")
    assert not any(find_machine_paths(t) for t in good)


def test_no_tracked_file_names_a_development_machine_path():
    files = tracked_text_files()
    assert len(files) > 50  # the listing worked
    hits = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        if rel == SELF:
            continue  # this file holds examples of what it looks for
        text = path.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for found in find_machine_paths(line, ALLOWED.get(rel, ())):
                hits.append(f"{rel}:{lineno}: {found}")
    assert not hits, "absolute development-machine paths (write them relative to the repository):\n" + "\n".join(hits)
