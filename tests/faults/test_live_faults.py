"""Faults of the live loop (`fetalplanes run`): outputs that cannot be written or fail mid-run, a full disk,
limits on error paths, truncated videos, unknown schemes, signals. Each case: the message, the exit code,
and what is kept on disk (docs/faults.md, "Live loop", lists them)."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.errors import FetalPlanesError
from edge.live.config import RunConfig
from edge.live.loop import LiveSession, run_loop
from edge.live.outputs import Output, OutputSpec, open_output
from edge.live.sources import SourceConfig, SourceSpec
from edge.live.status import read_status

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- helpers
class Frames:
    """A file-like source of random frames (``n`` of them, or endless with ``n=None``)."""

    def __init__(self, n=None, shape=(64, 80, 3), seed=0, live=False):
        self.spec = SourceSpec("v4l2" if live else "file", "fake", live)
        self.n, self.i, self.shape, self.fps = n, 0, shape, 0.0
        self.rng = np.random.default_rng(seed)

    def read(self):
        if self.n is not None and self.i >= self.n:
            return False, None
        self.i += 1
        return True, self.rng.integers(0, 255, self.shape, dtype=np.uint8)

    def rewind(self):
        self.i = 0
        return True

    def close(self):
        pass


class FailingOutput(Output):
    """Writes fine, then fails like a pulled USB disk from write number ``fail_from`` on."""

    def __init__(self, fail_from=5, wants_frames=True):
        super().__init__(OutputSpec("video", "usb/rec.mp4"))
        self.wants_frames = wants_frames
        self.fail_from, self.calls, self.closed = fail_from, 0, False

    def write(self, frame, record):
        self.calls += 1
        if self.calls >= self.fail_from:
            raise OSError(errno.EIO, "Input/output error")

    def close(self):
        self.closed = True


def config(model, **kw):
    kw.setdefault("input", "fake")
    kw.setdefault("log_every_s", 0)
    return RunConfig(model=str(model), **kw)


def jsonl_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the last line was cut in half"
    return [json.loads(line) for line in text.splitlines()]


def write_clip(path: Path, frames=60, shape=(64, 80)) -> Path:
    codec = "MJPG" if path.suffix == ".avi" else "mp4v"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 25, (shape[1], shape[0]))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        w.write(rng.integers(0, 255, (*shape, 3), dtype=np.uint8))
    w.release()
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def _mount_tmpfs(where: Path, options: str) -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (runs where the suite runs as root)")
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {r.stderr.strip() or r.returncode}")


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MB filesystem (tmpfs), when running as root and mount is permitted."""
    mnt = tmp_path / "disk"
    _mount_tmpfs(mnt, "size=1m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody may write: a read-only tmpfs as root (root ignores permissions), chmod 555 otherwise."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        mnt = tmp_path / "ro"
        _mount_tmpfs(mnt, "ro,size=64k")
        yield mnt
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    else:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        yield d
        d.chmod(0o755)


# ----------------------------------------------------------------------------- outputs refused before the first frame
@pytest.mark.parametrize("make_args, named", [
    (lambda d: ["-o", "/proc/x.mp4", "-o", f"jsonl://{d}/p.jsonl"], "/proc/x.mp4"),
    (lambda d: ["-o", "jsonl:///proc/fetalplanes/p.jsonl"], "/proc/fetalplanes"),
    (lambda d: ["--status", "/proc/status.json"], "/proc/status.json"),
])
def test_unwritable_output_exits_2_before_the_first_frame(tiny_onnx, tmp_path, capsys, make_args, named):
    clip = write_clip(tmp_path / "in.avi", frames=10)
    code = main(["run", "--model", str(tiny_onnx), "-i", str(clip), "-q", *make_args(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and named in err and "Traceback" not in err
    assert "frames in" not in err  # no summary: nothing ran
    assert not (tmp_path / "p.jsonl").exists() or (tmp_path / "p.jsonl").read_text() == ""


@pytest.mark.parametrize("kind", ["rec.mp4", "jsonl://p.jsonl", "status"])
def test_read_only_folder_exits_2_naming_it(tiny_onnx, tmp_path, readonly_dir, capsys, kind):
    clip = write_clip(tmp_path / "in.avi", frames=10)
    args = ["--status", str(readonly_dir / "st.json")] if kind == "status" else (
        ["-o", f"jsonl://{readonly_dir}/p.jsonl"] if kind.startswith("jsonl") else ["-o", str(readonly_dir / kind)])
    code = main(["run", "--model", str(tiny_onnx), "-i", str(clip), "-q", *args])
    err = capsys.readouterr().err
    assert code == 2 and str(readonly_dir) in err and "cannot" in err
    assert list(readonly_dir.iterdir()) == []


# ----------------------------------------------------------------------------- an output that fails mid-run
def test_output_failing_mid_run_reported_once_others_go_on(tiny_onnx, tmp_path, caplog):
    bad = FailingOutput(fail_from=5)
    path, status = tmp_path / "p.jsonl", tmp_path / "st.json"
    cfg = config(tiny_onnx, outputs=[f"jsonl://{path}"], status=str(status))
    with caplog.at_level(logging.WARNING, logger="fetalplanes"):
        s = run_loop(cfg, source_factory=lambda: Frames(20), extra_outputs=[bad])
    assert s.frames == 20 and s.errors == 0 and s.end_reason == "end of input"
    assert len(jsonl_lines(path)) == 20  # the other output got every frame
    assert bad.calls == 5 and bad.closed  # not retried on every frame; closed
    assert s.exit_code == 1 and list(s.output_failures) == ["video:usb/rec.mp4"]
    assert "Input/output error" in s.output_failures["video:usb/rec.mp4"]
    assert "OUTPUT FAILED: video:usb/rec.mp4" in s.format()
    reports = [r for r in caplog.records if "usb/rec.mp4" in r.getMessage()]
    assert len(reports) == 1 and reports[0].levelno == logging.ERROR
    st = read_status(status)
    assert st["output_failures"] == s.output_failures and st["exit_code"] == 1 and st["state"] == "finished"


def test_status_file_failing_mid_run_is_reported(tiny_onnx, tmp_path, monkeypatch):
    import edge.live.status as status_mod

    real = status_mod.write_json_atomic
    calls = []

    def flaky(path, data):
        calls.append(1)
        if len(calls) > 1:  # the check before the first frame passes, then the disk goes
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(status_mod, "write_json_atomic", flaky)
    cfg = config(tiny_onnx, status=str(tmp_path / "st.json"), status_interval_s=0.0)
    s = run_loop(cfg, source_factory=lambda: Frames(10))
    assert s.frames == 10 and s.exit_code == 1
    assert "No space left" in s.output_failures[f"status:{tmp_path / 'st.json'}"]


def test_jsonl_never_keeps_half_a_line(tmp_path, monkeypatch):
    """A write cut short by a full disk is cut back to the last whole line."""
    import edge.live.outputs as outputs_mod

    out = open_output(f"jsonl://{tmp_path / 'p.jsonl'}")
    for i in range(3):
        out.write(None, {"frame": i})
    real_write = os.write

    def short_then_full(fd, data):
        if len(data) > 10:
            return real_write(fd, data[: len(data) // 2])  # the disk takes half the line ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then nothing

    monkeypatch.setattr(outputs_mod.os, "write", short_then_full)
    with pytest.raises(OSError):
        out.write(None, {"frame": 3, "label": "x" * 40})
    monkeypatch.undo()
    out.close()
    assert [r["frame"] for r in jsonl_lines(tmp_path / "p.jsonl")] == [0, 1, 2]


# ----------------------------------------------------------------------------- a real full disk (tmpfs, root)
def test_disk_full_predictions_survive_recording_finalised_max_frames_holds(tiny_onnx, tmp_path, tiny_disk):
    clip = write_clip(tmp_path / "in.avi", frames=40, shape=(240, 320))
    pred, rec = tiny_disk / "p.jsonl", tiny_disk / "rec.avi"
    cfg = config(tiny_onnx, input=str(clip), outputs=[f"jsonl://{pred}", str(rec)], status=str(tiny_disk / "st.json"),
                 max_frames=1500, source=SourceConfig(loop=True))
    t0 = time.perf_counter()
    s = run_loop(cfg)  # the case: --loop --max-frames ran until killed once the disk was full
    assert s.end_reason == "max frames reached" and s.frames == 1500 and time.perf_counter() - t0 < 120
    assert s.exit_code == 1 and "disk almost full" in s.output_failures[f"video:{rec}"]
    assert "No space left" in s.output_failures[f"jsonl:{pred}"]  # 1500 records do not fit: the disk filled
    recs = jsonl_lines(pred)  # whole lines only, however the disk filled
    assert recs and [r["n"] for r in recs] == list(range(len(recs)))
    assert f"after {len(recs)} whole records" in s.output_failures[f"jsonl:{pred}"]
    if rec.exists():  # finalised while its index still fitted: it plays, every frame written
        assert not (tiny_disk / "rec.incomplete.avi").exists() and count_frames(rec) > 0
    else:  # or unmistakably marked
        assert (tiny_disk / "rec.incomplete.avi").exists()


def test_disk_full_jsonl_on_a_real_filesystem(tiny_disk):
    out = open_output(f"jsonl://{tiny_disk / 'p.jsonl'}")
    written = 0
    with pytest.raises(OSError) as err:
        for i in range(10_000):
            out.write(None, {"frame": i, "pad": "x" * 3000})
            written += 1
    assert err.value.errno == errno.ENOSPC
    out.close()
    assert [r["frame"] for r in jsonl_lines(tiny_disk / "p.jsonl")] == list(range(written))


# ----------------------------------------------------------------------------- limits on every path
@pytest.mark.parametrize("case", ["skipped", "model fails", "output fails"])
def test_max_frames_holds_on_error_paths(tiny_onnx, case):
    from edge.backends import open_runner

    runner, extra, shape = None, [], (64, 80, 3)
    if case == "skipped":
        shape = (4, 4, 3)  # every frame too small: skipped
    elif case == "model fails":
        runner = open_runner(str(tiny_onnx))
        runner.infer = lambda x: (_ for _ in ()).throw(ValueError("simulated model fault"))
    else:
        extra = [FailingOutput(fail_from=1)]
    cfg = config(tiny_onnx, max_frames=30, pipeline=False)
    done = threading.Event()
    result = {}

    def go():
        result["s"] = run_loop(cfg, source_factory=lambda: Frames(None, shape=shape, live=True), live=True,
                               runner=runner, extra_outputs=extra)
        done.set()

    threading.Thread(target=go, daemon=True).start()
    assert done.wait(30), f"--max-frames ignored when {case}"
    s = result["s"]
    assert s.end_reason == "max frames reached"
    assert s.frames + s.skipped + s.errors == 30


def test_max_frames_counts_frames_taken(tiny_onnx):
    s = run_loop(config(tiny_onnx, max_frames=7), source_factory=lambda: Frames(None, live=True), live=True)
    assert s.frames == 7 and s.end_reason == "max frames reached"


# ----------------------------------------------------------------------------- truncated video
def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_truncated_video_is_reported(tiny_onnx, tmp_path, capsys):
    clip = _cut(write_clip(tmp_path / "full.avi", frames=60), tmp_path / "cut.avi", 0.5)
    status = tmp_path / "st.json"
    code = main(["run", "--model", str(tiny_onnx), "-i", str(clip), "-q", "--status", str(status),
                 "-o", f"jsonl://{tmp_path / 'p.jsonl'}"])
    out = capsys.readouterr().out
    m = re.search(r"INPUT TRUNCATED: read (\d+) of the 60 frames its container declares", out)
    assert code == 1 and m and 0 < int(m.group(1)) < 60
    assert len(jsonl_lines(tmp_path / "p.jsonl")) == int(m.group(1))  # every readable frame labelled
    st = read_status(status)
    assert st["input_truncated"].startswith(f"read {m.group(1)} of the 60") and st["exit_code"] == 1


def test_whole_video_is_not_called_truncated(tiny_onnx, tmp_path):
    s = run_loop(config(tiny_onnx, input=str(write_clip(tmp_path / "full.mp4", frames=30))))
    assert s.frames == 30 and s.input_truncated == "" and s.exit_code == 0


def test_real_clip_cut_with_its_index_first(tiny_onnx, tmp_path, real_videos):
    # the case: an mp4 whose index (moov) comes first, cut to 40 %: 70 of 180 frames readable
    src = next((p for p in real_videos if p.name == "nbs_autocrop_media_heavy-borders.mp4"), None)
    if src is None:
        pytest.skip("nbs_autocrop_media_heavy-borders.mp4 is not among the real clips")
    s = run_loop(config(tiny_onnx, input=str(_cut(src, tmp_path / "cut.mp4", 0.4))))
    assert s.exit_code == 1 and re.fullmatch(r"read \d+ of the 180 frames its container declares", s.input_truncated)
    assert s.frames < 180


# ----------------------------------------------------------------------------- unknown schemes
@pytest.mark.parametrize("flag, value", [("-i", "foo://bar"), ("-o", "foo://bar.mp4")])
def test_unknown_scheme_named_with_the_valid_ones(tiny_onnx, tmp_path, capsys, flag, value):
    args = ["run", "--model", str(tiny_onnx), "-q"]
    args += [flag, value] if flag == "-i" else ["-i", str(write_clip(tmp_path / "in.avi", frames=5)), flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown scheme foo" in err and "file://" in err and "no such file" not in err


# ----------------------------------------------------------------------------- signals during `run`
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 0), (signal.SIGKILL, -9)])
def test_signal_during_run_leaves_valid_files(tiny_onnx, tmp_path, sig, code):
    clip = write_clip(tmp_path / "in.avi", frames=30)
    pred, rec, status = tmp_path / "p.jsonl", tmp_path / "rec.avi", tmp_path / "st.json"
    cmd = [sys.executable, "-m", "edge.cli", "run", "--model", str(tiny_onnx), "-i", str(clip), "--loop",
           "--pace", "200", "-o", f"jsonl://{pred}", "-o", str(rec), "--status", str(status), "-q"]
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (not pred.exists() or pred.read_text().count("\n") < 20):
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.05)
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == code, err
    assert "Traceback" not in err
    lines = jsonl_lines(pred)  # whole lines, every one valid JSON
    assert len(lines) >= 20
    if sig == signal.SIGKILL:  # no chance to finish: the recording is marked incomplete
        assert (tmp_path / "rec.incomplete.avi").exists() and not rec.exists()
    else:  # finalised and renamed: plays with every frame labelled
        assert rec.exists() and not (tmp_path / "rec.incomplete.avi").exists()
        st = read_status(status)
        # every record; every frame the output thread did not drop (paced input: it drops rather than block, counted)
        assert count_frames(rec) + st["output_dropped"] == len(lines)
        assert st["state"] == "stopped" and st["exit_code"] == code and st["frames"] == len(lines)


def test_a_previous_unfinished_recording_is_kept_aside(tiny_onnx, tmp_path):
    (tmp_path / "rec.incomplete.avi").write_bytes(b"previous run, killed")
    s = run_loop(config(tiny_onnx, outputs=[str(tmp_path / "rec.avi")]), source_factory=lambda: Frames(5))
    aside = list(tmp_path.glob("rec.incomplete-*.avi"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"previous run, killed"
    assert count_frames(tmp_path / "rec.avi") == 5 and not (tmp_path / "rec.incomplete.avi").exists()
    assert any("kept a previous run's unfinished recording" in m for m in s.messages) and s.exit_code == 0


# ----------------------------------------------------------------------------- the session on its own
def test_session_step_without_a_loop(tiny_onnx, tmp_path):
    """LiveSession.step(frame) -> record: what benchmarks and tests can drive without threads."""
    cfg = config(tiny_onnx, outputs=[f"jsonl://{tmp_path / 'p.jsonl'}"])
    frames = Frames(None)
    with LiveSession(cfg) as session:
        session.open_outputs()
        records = [session.step(frames.read()[1]) for _ in range(5)]
        assert session.step(np.zeros((4, 4, 3), np.uint8)) is None  # skipped, counted
    assert [r["n"] for r in records] == list(range(5)) and session.summary.skipped == 1
    assert len(jsonl_lines(tmp_path / "p.jsonl")) == 5 and session.summary.stages_ms["total"]["samples"] == 5


def test_unopenable_output_leaves_the_model_closed(tiny_onnx):
    from edge.backends import open_runner

    runner = open_runner(str(tiny_onnx))
    calls = []
    real = runner.deactivate
    runner.deactivate = lambda: (calls.append(1), real())[1]
    with pytest.raises(FetalPlanesError) as err:
        run_loop(config(tiny_onnx, outputs=["/proc/x.mp4"]), source_factory=lambda: Frames(5), runner=runner)
    assert err.value.exit_code == 2 and calls == [1]


# ----------------------------------------------------------------------------- classify --out
def test_classify_unwritable_out_exits_2_before_any_work(tiny_onnx, tmp_path, capsys, monkeypatch):
    import edge.live.classify as classify_mod

    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 40), 128, np.uint8))
    monkeypatch.setattr(classify_mod, "classify_files", lambda *a, **k: pytest.fail("classified before checking --out"))
    assert main(["classify", str(tmp_path / "a.png"), "--model", str(tiny_onnx), "--out", "/proc/x.csv"]) == 2
    err = capsys.readouterr().err
    assert "/proc/x.csv" in err and "cannot write" in err and "Traceback" not in err


def test_classify_disk_full_at_the_end_leaves_no_half_csv(tiny_onnx, tmp_path, capsys, monkeypatch):
    import edge.live.classify as classify_mod

    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 40), 128, np.uint8))
    out = tmp_path / "res.csv"
    out.write_text("previous results\n")

    def full(f, rows):
        f.write("exam,file\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(classify_mod, "_write_rows", full)
    assert main(["classify", str(tmp_path / "a.png"), "--model", str(tiny_onnx), "--out", str(out)]) == 1
    assert "No space left" in capsys.readouterr().err
    assert out.read_text() == "previous results\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "res.csv"]


def test_unwritable_summary_json_exits_2_before_the_first_frame(tiny_onnx, tmp_path, capsys):
    clip = write_clip(tmp_path / "in.avi", frames=5)
    assert main(["run", "--model", str(tiny_onnx), "-i", str(clip), "-q", "--summary-json", "/proc/s.json"]) == 2
    err = capsys.readouterr().err
    assert "--summary-json /proc/s.json: cannot write" in err and "Traceback" not in err
