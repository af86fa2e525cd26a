"""The phantom scanner video-out: readable, one truth row per frame, boxes inside, freezes frozen."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.labels import BRAIN, PLANES
from fetaldata.phantom.video import TRUTH_COLUMNS, write_phantom_video
from video_frames import read_frames

W, H = 480, 270


def _truth(path: Path) -> list[dict[str, str]]:
    with open(path.with_suffix(".truth.csv"), newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == TRUTH_COLUMNS
        return list(reader)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_phantom_video(tmp_path_factory.mktemp("video") / "phantom.avi", seconds=8, fps=10, width=W, height=H, seed=3)


def test_frames_match_the_truth_sidecar(video):
    frames, truth = read_frames(video), _truth(video)
    assert len(frames) == len(truth) == 80
    assert frames[0].shape == (H, W, 3)
    assert [int(r["frame"]) for r in truth] == list(range(80))
    assert {r["state"] for r in truth} <= {"steady", "transition", "frozen"}
    assert {"steady", "transition", "frozen"} <= {r["state"] for r in truth}
    assert {r["plane"] for r in truth} <= set(PLANES) and len({r["plane"] for r in truth}) >= 2
    assert {r["brain_plane"] for r in truth} <= set(BRAIN)


def test_sector_boxes_inside_the_frame_and_show_the_image(video):
    frames, truth = read_frames(video), _truth(video)
    boxes = set()
    for frame, r in zip(frames, truth):
        x, y, w, h = (int(r[k]) for k in "xywh")
        assert 0 <= x and 0 <= y and w > W // 4 and h > H // 4 and x + w <= W and y + h <= H
        boxes.add((x, y, w, h))
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if r["state"] == "steady":  # the sector holds speckled image, the chrome around it is dark
            assert gray[y : y + h, x : x + w].mean() > 2 * gray[:, : x // 2].mean()
    assert len(boxes) >= 2  # the depth change moves/resizes the sector


def test_frozen_frames_are_identical(video):
    frames, truth = read_frames(video), _truth(video)
    runs = [i for i in range(1, len(truth)) if truth[i]["state"] == truth[i - 1]["state"] == "frozen"]
    assert runs
    for i in runs:
        assert np.array_equal(frames[i], frames[i - 1])
    steady = [i for i in range(1, len(truth)) if truth[i]["state"] == truth[i - 1]["state"] == "steady"]
    assert any(not np.array_equal(frames[i], frames[i - 1]) for i in steady)  # live frames move


def test_deterministic_for_a_seed_and_mp4_readable(tmp_path):
    a = write_phantom_video(tmp_path / "a.mp4", seconds=1.5, fps=10, width=W, height=H, seed=2)
    b = write_phantom_video(tmp_path / "b.mp4", seconds=1.5, fps=10, width=W, height=H, seed=2)
    c = write_phantom_video(tmp_path / "c.mp4", seconds=1.5, fps=10, width=W, height=H, seed=3)
    assert a.is_file() and len(read_frames(a)) == len(_truth(a)) == 15
    ta, tb = a.with_suffix(".truth.csv").read_text(), b.with_suffix(".truth.csv").read_text()
    assert ta == tb
    fa, fc = read_frames(a), read_frames(c)
    assert any(not np.array_equal(x, y) for x, y in zip(fa, fc))


def test_bad_arguments(tmp_path):
    from edge.errors import FetalPlanesError

    with pytest.raises(FetalPlanesError, match="seconds"):
        write_phantom_video(tmp_path / "x.avi", seconds=0)
    with pytest.raises(FetalPlanesError, match="too small"):
        write_phantom_video(tmp_path / "x.avi", width=100, height=80)
    with pytest.raises(FetalPlanesError, match="scan_width"):
        write_phantom_video(tmp_path / "x.avi", scan_width=8)


def test_sector_framed_like_the_dataset_images(video):
    """The live loop crops the sector's box: its shape must be one a dataset image's sector can have."""
    import math

    from fetaldata.phantom.dataset import MACHINE_SIZES
    from fetaldata.phantom.render import LOOKS, make_sector

    rng = np.random.default_rng(0)
    aspects = []
    for machine, sizes in MACHINE_SIZES.items():
        for w, h in sizes:
            hh = max(8, round(128 * h / w))
            for _ in range(30):
                _, _, bw, bh = make_sector(rng, 128, hh, LOOKS[machine], False).bbox(128, hh)
                aspects.append(bw / bh)
    lo, hi = min(aspects), max(aspects)
    steady = [r for r in _truth(video) if r["state"] == "steady" and r["plane"] != "Maternal cervix"]
    assert steady
    for r in steady:
        assert lo * 0.95 <= int(r["w"]) / int(r["h"]) <= hi * 1.05, (r, lo, hi)
    assert not math.isclose(lo, hi)
