"""The two-stage pipeline (PrepareThread): ordering, newest frame, drops, latency, stop, errors, same output."""

import json
import threading
import time

import cv2
import pytest

import edge.live.loop as loop_mod
from edge.errors import FetalPlanesError
from edge.live.capture import CaptureThread, PrepareThread
from edge.live.config import RunConfig
from edge.live.loop import run_loop
from edge.live.sector import Box

from live_fakes import EndlessSource, FakeSource, RecordingOutput, moving


def config(model, **kw):
    kw.setdefault("input", "fake")
    kw.setdefault("log_every_s", 0)
    return RunConfig(model=str(model), **kw)


def stage(source, prepare, live=False, pace_fps=None):
    cap = CaptureThread(source, lambda: source, live=live, pace_fps=pace_fps)
    return PrepareThread(cap, prepare)


def drain(st, slow_s=0.0, limit=10**9):
    """Take frames from a stage like the loop does; returns them."""
    taken = []
    while len(taken) < limit:
        f = st.slot.get(timeout=0.1)
        if f is None:
            if st.finished:
                break
            continue
        taken.append(f)
        if slow_s:
            time.sleep(slow_s)
    return taken


def test_lossless_file_every_frame_in_order_prepared_once():
    calls = []

    def prepare(frame):
        calls.append(frame.index)
        return ("prepared", frame.index, time.perf_counter())

    st = stage(FakeSource(moving(25, shape=(20, 24, 3))), prepare)
    st.start()
    taken = drain(st, slow_s=0.002)
    st.join(2.0)
    assert [f.index for f in taken] == list(range(25)) and calls == list(range(25))
    assert st.dropped == 0 and st.captured == 25 and st.state == "ended" and st.error is None
    for f in taken:
        assert f.prepared[:2] == ("prepared", f.index)
        assert f.t_capture <= f.prepared[2]  # the capture time is kept, not re-stamped at the second slot


def test_live_newest_frame_drops_counted_at_both_slots():
    def prepare(frame):
        time.sleep(0.001)
        return frame.index

    st = stage(EndlessSource(shape=(20, 24, 3)), prepare, live=True)
    st.start()
    taken = drain(st, slow_s=0.01, limit=30)  # the loop is slower than capture and preparation
    st.stop()
    st.join(2.0)
    idx = [f.index for f in taken]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)  # never an older frame after a newer one
    assert st.slot.dropped > 0 and st.upstream.dropped > 0  # replaced both before and after preparation
    assert st.dropped == st.upstream.dropped + st.slot.dropped
    assert 0 <= st.captured - len(taken) - st.dropped <= 3  # the rest were still in a slot or in hand at stop
    assert not st.is_alive() and not st.upstream.is_alive()


def test_stage_error_is_kept_and_stops_capture():
    calls = []

    def prepare(frame):
        calls.append(frame.index)
        if len(calls) == 4:
            raise RuntimeError("bug in prepare")
        return frame.index

    st = stage(EndlessSource(shape=(20, 24, 3)), prepare, live=True)
    st.start()
    taken = drain(st, limit=1000)
    st.join(2.0)
    assert len(taken) <= 3 and [f.prepared for f in taken] == [f.index for f in taken]
    assert st.finished and st.state == "failed" and "bug in prepare" in str(st.error)
    assert not st.upstream.is_alive()


def record_fields(recs):
    return [{k: r[k] for k in ("frame", "label", "confidence", "state", "probs", "box", "inferred")} for r in recs]


def test_pipeline_gives_the_same_records_as_one_thread(tiny_onnx, real_videos, tmp_path):
    clip = min(real_videos, key=lambda p: cv2.VideoCapture(str(p)).get(cv2.CAP_PROP_FRAME_COUNT))
    runs = {}
    for pipeline in (False, True):
        path = tmp_path / f"p{int(pipeline)}.jsonl"
        s = run_loop(config(tiny_onnx, input=str(clip), outputs=[f"jsonl://{path}"], pipeline=pipeline, max_frames=60))
        assert s.errors == 0 and s.dropped == 0
        runs[pipeline] = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(runs[True]) == len(runs[False]) > 0
    assert record_fields(runs[True]) == record_fields(runs[False])


def test_latency_measured_from_capture_includes_preparation(tiny_onnx, monkeypatch):
    real = loop_mod.prepare_frame

    def slow_prepare(*a, **kw):
        time.sleep(0.03)
        return real(*a, **kw)

    monkeypatch.setattr(loop_mod, "prepare_frame", slow_prepare)
    recs = []
    s = run_loop(config(tiny_onnx, pipeline=True), source_factory=lambda: FakeSource(moving(5)), on_record=recs.append)
    assert s.frames == 5 and [r["frame"] for r in recs] == list(range(5))
    assert min(r["latency_ms"] for r in recs) >= 30.0
    assert s.stages_ms["sector"]["samples"] == 5  # stage times measured in the other thread still reach the summary


@pytest.mark.parametrize("pipeline", [False, True])
def test_per_frame_errors_in_preparation_counted_not_fatal(tiny_onnx, monkeypatch, pipeline):
    class FlakyTracker:
        layout_changes = 0

        def __init__(self):
            self.n = 0

        def update(self, frame):
            self.n += 1
            if self.n % 3 == 0:
                raise ValueError("simulated tracker fault")
            return Box(0, 0, frame.shape[1], frame.shape[0])

    monkeypatch.setattr(loop_mod, "make_tracker", lambda roi: (FlakyTracker(), "test"))
    s = run_loop(config(tiny_onnx, pipeline=pipeline), source_factory=lambda: FakeSource(moving(9)))
    assert s.errors == 3 and s.frames == 6 and "simulated tracker fault" in s.last_error


def test_crash_of_the_preparation_thread_surfaces(tiny_onnx, monkeypatch):
    def broken(*a, **kw):
        raise RuntimeError("bug outside the per-frame guard")

    monkeypatch.setattr(loop_mod, "prepare_frame", broken)
    out = RecordingOutput()
    with pytest.raises(FetalPlanesError) as ei:
        run_loop(config(tiny_onnx, pipeline=True), source_factory=lambda: FakeSource(moving(5)), extra_outputs=[out])
    assert ei.value.exit_code == 1 and "bug outside the per-frame guard" in ei.value.message
    assert out.closed
    assert not [t for t in threading.enumerate() if t.name in ("fetalplanes-prepare", "fetalplanes-capture")]


def test_stop_ends_both_threads_and_flushes(tiny_onnx, tmp_path):
    stop = threading.Event()
    seen = []

    def on_record(rec):
        seen.append(rec)
        if len(seen) == 12:
            stop.set()

    path = tmp_path / "p.jsonl"
    s = run_loop(config(tiny_onnx, pipeline=True, outputs=[f"jsonl://{path}"]), source_factory=EndlessSource,
                 live=True, stop_event=stop, on_record=on_record)
    assert s.end_reason == "stopped" and s.frames == 12 and len(path.read_text().splitlines()) == 12
    assert s.captured >= s.frames + s.dropped  # every captured frame was labelled, dropped, or still in a slot
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name in ("fetalplanes-prepare", "fetalplanes-capture")]


def test_no_pipeline_flag_and_config_default():
    import argparse

    from edge.commands.run import overrides_from_args, register

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    register(sub)
    assert RunConfig().pipeline is True
    assert overrides_from_args(parser.parse_args(["run", "--no-pipeline"]))["pipeline"] is False
    assert overrides_from_args(parser.parse_args(["run", "--pipeline"]))["pipeline"] is True
    assert overrides_from_args(parser.parse_args(["run"]))["pipeline"] is None
