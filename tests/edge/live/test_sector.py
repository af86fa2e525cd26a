"""Sector detection and tracking (edge.live.sector) on real scanner recordings and synthetic frames."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.live.sector import Box, SectorTracker, detect_sector
from video_frames import read_frames

# Reference sector boxes [x, y, w, h], judged BY EYE (no ground truth exists): for each clip the
# per-pixel temporal maximum of all frames was drawn with a 50 px grid and the fan's / linear image's
# outer edges (apex to arc, left to right edge) were read off it (see docs/sector.md). The three
# test_test.* files are one clip in three containers. 0013 and 0015 were checked on their own
# temporal maxima: same probe, depth and fan as 0011, so the same box. lung.mov's fan is near-black
# on its right side: its right edge was read off the temporal maximum at gain 40 and from the rows
# where any pixel ever rose above the background (symmetric about x ~338: 149..529 at y 350; the
# earlier box, 150..455, stopped where the right side turns dark).
REFERENCE = {
    "nbs_autocrop_media_dynamic-sample.avi": [0, 0, 112, 112],
    "nbs_autocrop_media_echo-with-borders.mp4": [83, 44, 515, 359],
    "nbs_autocrop_media_heavy-borders.mp4": [112, 68, 478, 317],
    "nbs_autocrop_media_low-frame-count.mov": [155, 62, 610, 453],
    "nbs_autocrop_media_lung.mov": [148, 45, 382, 358],
    "nbs_autocrop_media_odd-window-size.mov": [255, 0, 290, 240],
    "nbs_autocrop_media_ruq-simple.mp4": [100, 55, 590, 385],
    "nbs_autocrop_media_simple-soft-tissue.mp4": [245, 65, 430, 450],
    "sonosite-anon-eye1-video.mp4": [387, 42, 336, 598],
    "test_sampleDir_0011.mp4": [118, 53, 564, 389],
    "test_sampleDir_0012.mp4": [120, 53, 560, 387],
    "test_sampleDir_0013.mp4": [118, 53, 564, 389],
    "test_sampleDir_0014.mp4": [118, 53, 564, 389],
    "test_sampleDir_0015.mp4": [118, 53, 564, 389],
    "test_test.avi": [140, 65, 640, 452],
    "test_test.mov": [140, 65, 640, 452],
    "test_test.mp4": [140, 65, 640, 452],
}
# Clips whose fan is mostly near-black at its sides (dark lung, a cardiac fan dark on one side, a 2D fan dimmed
# around a colour Doppler box): the tracker takes those sides in from the cells that were ever above the
# background within the textured sector's rows. Kept as a set so the benchmark can mark them.
DARK_SIDED = {"nbs_autocrop_media_lung.mov", "nbs_autocrop_media_low-frame-count.mov", "test_sampleDir_0014.mp4"}
KNOWN_HARD: set[str] = set()  # clips below MIN_IOU, documented in docs/sector.md (none at present)
MIN_IOU = 0.8


def track(frames, **kw):
    tracker = SectorTracker(**kw)
    return tracker, [tracker.update(f) for f in frames]


def test_every_real_clip_has_a_reference(real_videos):
    assert sorted(p.name for p in real_videos) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_tracker_matches_reference_on_real_clip(real_videos, name):
    path = next((p for p in real_videos if p.name == name), None)
    if path is None:
        pytest.skip(f"{name} not present")
    tracker, boxes = track(read_frames(path, 90))
    iou = boxes[-1].iou(Box(*REFERENCE[name]))
    if name in KNOWN_HARD:
        assert 0.3 <= iou  # found the sector's core, not chrome
        pytest.xfail(f"{name}: dark fan sides, IoU {iou:.2f} < {MIN_IOU} (documented limit)")
    assert iou >= MIN_IOU, f"{name}: box {boxes[-1].as_list()} vs reference {REFERENCE[name]}: IoU {iou:.2f}"
    assert tracker.layout_changes == 0  # every real clip is one steady layout


def test_box_is_constant_once_settled_on_steady_clip(real_videos):
    path = next(p for p in real_videos if p.name == "test_test.mp4")
    _, boxes = track(read_frames(path, 120))
    assert len(set(boxes[40:])) == 1


def test_frozen_clip_keeps_box_and_skips_detection(real_videos):
    path = next(p for p in real_videos if p.name == "sonosite-anon-eye1-video.mp4")
    tracker, boxes = track(read_frames(path, 60))
    assert len(set(boxes)) == 1 and tracker.frozen_frames >= 55 and tracker.detections <= 2


def test_blank_start_falls_back_to_full_frame_then_acquires(real_videos):
    # ruq-simple's first two frames show only chrome (no image yet)
    path = next(p for p in real_videos if p.name == "nbs_autocrop_media_ruq-simple.mp4")
    frames = read_frames(path, 40)
    _, boxes = track(frames)
    assert boxes[0] == Box.full(frames[0])
    assert boxes[-1].iou(Box(*REFERENCE[path.name])) >= MIN_IOU


def test_layout_change_by_synthetic_zoom_is_redetected(real_videos):
    import cv2

    path = next(p for p in real_videos if p.name == "test_sampleDir_0011.mp4")
    frames = read_frames(path, 100)
    h, w = frames[0].shape[:2]
    zoomed = []
    for f in frames[50:]:  # the screen from frame 50 on: image shrunk to 60 % and moved to the top left
        canvas = np.zeros_like(f)
        small = cv2.resize(f, (int(w * 0.6), int(h * 0.6)), interpolation=cv2.INTER_AREA)
        canvas[: small.shape[0], : small.shape[1]] = small
        zoomed.append(canvas)
    tracker, boxes = track(frames[:50] + zoomed)
    ref = Box(*REFERENCE[path.name])
    assert boxes[49].iou(ref) >= MIN_IOU
    expected = ref.scaled(0.6)
    assert boxes[-1].iou(expected) >= 0.7, (boxes[-1], expected)
    assert tracker.layout_changes == 1


def test_splice_of_two_clips_counts_a_layout_change(real_videos):
    # same 800x600 screen size, different image (curved fan -> linear rectangle): only the layout changes
    a = next(p for p in real_videos if p.name == "test_test.mp4")
    b = next(p for p in real_videos if p.name == "nbs_autocrop_media_simple-soft-tissue.mp4")
    fa, fb = read_frames(a, 50), read_frames(b, 60)
    tracker, boxes = track(fa + fb)
    assert boxes[49].iou(Box(*REFERENCE[a.name])) >= MIN_IOU
    assert tracker.layout_changes == 1
    assert boxes[-1].iou(Box(*REFERENCE[b.name])) >= MIN_IOU


def test_roi_override_is_always_returned(real_videos):
    roi = Box.parse("10,20,300,200")
    tracker, boxes = track(read_frames(real_videos[0], 20), roi=roi)
    assert set(boxes) == {roi} and tracker.detections == 0


def synthetic_screen(h=480, w=640, seed=0):
    """Black screen, white text-like bars, a speckle rectangle at (160,100,320,280)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.uint8)
    img[100:380, 160:480] = rng.integers(20, 200, (280, 320), dtype=np.uint8)
    img[10:18, 10:200] = 255
    img[40:44, 10:120] = 200
    return img


@pytest.mark.parametrize("kind", ["gray", "bgr", "bgra"])
def test_detect_sector_on_gray_bgr_bgra(kind):
    import cv2

    g = synthetic_screen()
    frame = {"gray": g, "bgr": cv2.cvtColor(g, cv2.COLOR_GRAY2BGR), "bgra": cv2.cvtColor(g, cv2.COLOR_GRAY2BGRA)}[kind]
    assert detect_sector(frame).iou(Box(160, 100, 320, 280)) >= 0.9


def test_detect_sector_tiny_and_4k():
    import cv2

    g = synthetic_screen()
    tiny = cv2.resize(g, (64, 48), interpolation=cv2.INTER_AREA)
    big = cv2.resize(g, (3840, 2880), interpolation=cv2.INTER_NEAREST)
    assert detect_sector(tiny).iou(Box(16, 10, 32, 28)) >= 0.7
    assert detect_sector(big).iou(Box(960, 600, 1920, 1680)) >= 0.9


def test_all_black_gives_none_and_tracker_falls_back():
    black = np.zeros((120, 160, 3), np.uint8)
    assert detect_sector(black) is None
    tracker = SectorTracker()
    assert tracker.update(black) == Box(0, 0, 160, 120)


def test_tracker_keeps_last_good_box_through_black_frames():
    g = synthetic_screen()
    tracker = SectorTracker(redetect_every=2)
    for _ in range(30):
        good = tracker.update(g)
    for _ in range(10):
        assert tracker.update(np.zeros_like(g)) == good


def test_bad_inputs_raise_fetalplaneserror():
    with pytest.raises(FetalPlanesError):
        detect_sector(np.zeros((0, 0), np.uint8))
    with pytest.raises(FetalPlanesError):
        SectorTracker().update(None)


def test_box_parse_crop_iou():
    b = Box.parse("10, 20, 30, 40")
    assert b.as_list() == [10, 20, 30, 40] and b.area == 1200
    frame = np.zeros((50, 35), np.uint8)
    crop = b.crop(frame)
    assert crop.shape == (30, 25) and crop.base is frame  # clipped view
    assert b.iou(b) == 1.0 and b.iou(Box(100, 100, 5, 5)) == 0.0
    assert abs(Box(0, 0, 10, 10).iou(Box(5, 0, 10, 10)) - 50 / 150) < 1e-9
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,10", "-1,0,5,5"):
        with pytest.raises(FetalPlanesError) as err:
            Box.parse(bad)
        assert "x,y,w,h" in str(err.value)
