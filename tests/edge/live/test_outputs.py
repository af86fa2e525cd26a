"""Output URIs: video files (codec fallback, size changes, rotation), jsonl, display errors."""

import json

import cv2
import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.live.outputs import DisplayOutput, VideoOutput, open_output, open_video_writer, parse_output
from edge.live.rotation import RotationConfig


def count_frames(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_parse_outputs():
    assert parse_output("display://0").kind == "display"
    assert parse_output("jsonl://predictions.jsonl").location == "predictions.jsonl"
    assert parse_output("jsonl:///var/log/p.jsonl").location == "/var/log/p.jsonl"
    spec = parse_output("rec.avi?codec=XVID&fps=15")
    assert spec.kind == "video" and spec.options == {"codec": "XVID", "fps": "15"}
    assert parse_output("file://rec.mp4").location == "rec.mp4"
    with pytest.raises(FetalPlanesError, match="unknown kind"):
        parse_output("rec.txt")
    with pytest.raises(FetalPlanesError, match="unknown scheme foo") as err:
        parse_output("foo://bar.mp4")
    assert "jsonl://" in err.value.hint and "display://" in err.value.hint


@pytest.mark.parametrize("wanted", ["avc1", "ZZZZ"])
def test_codec_falls_back_with_a_message(tmp_path, wanted):
    path = tmp_path / "out.mp4"
    writer, used, message = open_video_writer(path, (64, 48), 10, wanted)
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    if used == wanted:  # an OpenCV with this encoder: nothing to fall back from
        pytest.skip(f"this OpenCV writes {wanted}")
    assert used == "mp4v" and wanted in message and "instead" in message
    assert count_frames(path) == 3


def test_video_output_handles_gray_bgra_and_size_changes(tmp_path):
    out = VideoOutput(parse_output(str(tmp_path / "o.avi")), fps=10)
    out.write(np.zeros((48, 64, 3), np.uint8), {})
    out.write(np.zeros((48, 64), np.uint8), {})  # gray
    out.write(np.zeros((48, 64, 4), np.uint8), {})  # BGRA
    out.write(np.zeros((480, 640, 3), np.uint8), {})  # another size: resized to the file's
    assert (tmp_path / "o.incomplete.avi").exists() and not (tmp_path / "o.avi").exists()  # marked until closed
    out.close()
    assert out.codec_used == "MJPG" and count_frames(tmp_path / "o.avi") == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.avi"]


def test_jsonl_writes_each_line_at_once(tmp_path):
    out = open_output(f"jsonl://{tmp_path / 'p.jsonl'}")
    out.write(None, {"frame": 0})
    assert (tmp_path / "p.jsonl").read_text() == '{"frame":0}\n'  # on disk before close: nothing buffered
    out.close()


def test_video_rotation(tmp_path):
    # FFmpeg flushes in 256 KiB blocks, so pieces are checked at that granularity
    rot = RotationConfig(max_file_mb=0.3, max_total_mb=1.2)
    out = VideoOutput(parse_output(str(tmp_path / "r.avi")), fps=10, rotation=rot)
    rng = np.random.default_rng(0)
    for _ in range(400):  # about 3 MB of noise frames
        out.write(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8), {})
    out.close()
    archives = sorted(tmp_path.glob("r.*.avi"))
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert archives and (tmp_path / "r.avi").exists()
    assert out.rotator.deleted  # the oldest pieces were removed ...
    assert not any(p.exists() for p in out.rotator.deleted)
    assert total <= (1.2 + 0.3) * 1024 * 1024  # ... to keep the bound (+ one piece of slack for FFmpeg's buffering)
    assert all(count_frames(p) > 0 for p in archives)  # every closed piece plays


def test_jsonl_rotation_keeps_records(tmp_path):
    rot = RotationConfig(max_file_mb=0.001)
    out = open_output(f"jsonl://{tmp_path / 'p.jsonl'}", rotation=rot)
    for i in range(200):
        out.write(None, {"frame": i, "label": "x" * 20})
    out.close()
    files = sorted(tmp_path.glob("p.*.jsonl")) + [tmp_path / "p.jsonl"]
    frames = [json.loads(line)["frame"] for f in files for line in f.read_text().splitlines()]
    assert len(files) > 2 and frames == list(range(200))


def test_jsonl_restart_archives_previous_run(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"frame": 0}\n')
    open_output(f"jsonl://{path}", rotation=RotationConfig(max_file_mb=10)).close()
    assert (tmp_path / "p.000001.jsonl").read_text() == '{"frame": 0}\n'


def test_display_without_desktop_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(FetalPlanesError) as err:
        DisplayOutput(parse_output("display://0"))
    assert "display://0" in err.value.message and "--output out.mp4" in err.value.hint
