"""Size bounds: rotate past max_file_mb, delete oldest archives first, never the current file."""

import pytest

from edge.errors import FetalPlanesError
from edge.live.rotation import MB, RotationConfig, Rotator


def write(path, n):
    path.write_bytes(b"x" * n)


def test_rotate_and_prune_oldest_first(tmp_path):
    cur = tmp_path / "p.jsonl"
    r = Rotator(cur, RotationConfig(max_file_mb=1 / MB * 100, max_total_mb=350 / MB, max_files=0))
    for i in range(6):
        write(cur, 100)
        assert r.due(cur.stat().st_size)
        r.archive_current()
    write(cur, 100)  # a new current file
    numbers = [n for n, _ in r.archives()]
    # 100 (current) + archives <= 350 bytes: two archives, the newest ones
    assert numbers == [5, 6]
    assert cur.exists() and cur.stat().st_size == 100
    assert len(r.deleted) == 4 and all(not p.exists() for p in r.deleted)


def test_max_files(tmp_path):
    cur = tmp_path / "rec.mp4"
    r = Rotator(cur, RotationConfig(max_file_mb=1, max_files=2))
    for _ in range(5):
        write(cur, 10)
        r.archive_current()
    assert [n for n, _ in r.archives()] == [4, 5]


def test_current_never_deleted_even_if_alone_over_budget(tmp_path):
    cur = tmp_path / "p.jsonl"
    r = Rotator(cur, RotationConfig(max_file_mb=100 / MB, max_total_mb=100 / MB))
    write(cur, 500)
    r.prune()
    assert cur.exists()


def test_numbers_continue_after_restart(tmp_path):
    cur = tmp_path / "p.jsonl"
    write(tmp_path / "p.000007.jsonl", 3)
    write(tmp_path / "other.000009.jsonl", 3)  # another file's archive: not ours
    write(cur, 3)
    r = Rotator(cur, RotationConfig(max_file_mb=1))
    assert r.archive_current().name == "p.000008.jsonl"
    assert (tmp_path / "other.000009.jsonl").exists()


def test_not_due_when_disabled(tmp_path):
    assert not Rotator(tmp_path / "x", RotationConfig()).due(10**12)


def test_bounds_without_file_size_rejected():
    with pytest.raises(FetalPlanesError, match="max_file_mb"):
        RotationConfig(max_total_mb=10).validate()
