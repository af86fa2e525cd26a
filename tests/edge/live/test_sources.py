"""Input URIs and the sources behind them."""

import cv2
import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.live.sources import SourceConfig, open_source, opencv_has_gstreamer, parse_source


def test_parse_live_uris():
    assert parse_source("v4l2:///dev/video0") .kind == "v4l2"
    assert parse_source("v4l2:///dev/video0").location == "/dev/video0"
    assert parse_source("/dev/video2").live
    spec = parse_source("1")
    assert spec.kind == "v4l2" and spec.device_index == 1
    assert parse_source("rtsp://10.0.0.2/stream").kind == "stream"
    gst = parse_source("v4l2src device=/dev/video0 ! videoconvert ! appsink")
    assert gst.kind == "gstreamer" and gst.live


def test_parse_files_folders_globs(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"")
    assert parse_source(str(clip)) .kind == "file"
    assert parse_source(f"file://{clip}").location == str(clip)
    assert not parse_source(str(clip)).live
    assert parse_source(str(tmp_path)).kind == "images"
    assert parse_source(str(tmp_path / "*.png")).kind == "images"


def test_unknown_scheme_names_it_and_the_valid_ones():
    with pytest.raises(FetalPlanesError) as err:
        parse_source("foo://bar")
    assert "unknown scheme foo" in err.value.message and err.value.exit_code == 2
    for scheme in ("v4l2://", "file://", "rtsp://"):
        assert scheme in err.value.hint


def test_missing_input_names_it():
    with pytest.raises(FetalPlanesError, match="nope.mp4"):
        parse_source("nope.mp4")
    with pytest.raises(FetalPlanesError, match="no input"):
        parse_source("")


@pytest.mark.skipif(opencv_has_gstreamer(), reason="this OpenCV has GStreamer")
def test_gstreamer_without_support_says_so():
    with pytest.raises(FetalPlanesError) as err:
        open_source("videotestsrc ! appsink")
    assert "GStreamer" in err.value.message and "JetPack" in err.value.hint


def test_image_folder_reads_gray_bgra_and_corrupt_in_name_order(tmp_path):
    cv2.imwrite(str(tmp_path / "img2.png"), np.full((40, 50), 7, np.uint8))
    cv2.imwrite(str(tmp_path / "img10.png"), np.full((40, 50, 4), 9, np.uint8))
    (tmp_path / "img3.png").write_bytes(b"not a png")
    src = open_source(str(tmp_path))
    got = [src.read() for _ in range(4)]
    assert [ok for ok, _ in got] == [True, True, True, False]
    assert got[0][1].ndim == 2  # img2: gray kept as delivered
    assert got[1][1] is None  # img3: unreadable -> (True, None), skipped by the loop
    assert got[2][1].shape == (40, 50, 4)  # img10 after img3 (natural order), BGRA kept
    assert src.rewind() and src.read()[0]


def test_video_file_source(real_videos):
    clip = real_videos[0]
    src = open_source(str(clip))
    ok, frame = src.read()
    assert ok and frame.ndim == 3 and src.fps > 0 and src.frame_count > 0
    src.close()


@pytest.mark.parametrize("pace,native,expected", [("off", 25, None), ("realtime", 25, 25), ("60", 25, 60.0), ("0", 25, None)])
def test_pace(pace, native, expected):
    assert SourceConfig(pace=pace).pace_fps(native) == expected


def test_bad_pace():
    with pytest.raises(FetalPlanesError, match="--pace"):
        SourceConfig(pace="fast").pace_fps(25)
