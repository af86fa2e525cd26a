"""The output stage in its own thread (OutputThread): order, drops, faults reported once, windows on the main
thread, clean stop, and the same records as without it."""

import errno
import json
import logging
import threading
import time

import numpy as np
import pytest

import edge.live.loop as loop_mod
from edge.errors import FetalPlanesError
from edge.live.config import RunConfig
from edge.live.loop import run_loop
from edge.live.output_stage import OutputItem, OutputThread
from edge.live.outputs import Output, OutputSpec

from live_fakes import EndlessSource, FakeSource, RecordingOutput, moving


def config(model, **kw):
    kw.setdefault("input", "fake")
    kw.setdefault("log_every_s", 0)
    return RunConfig(model=str(model), **kw)


class SlowOutput(Output):
    """A frame output that takes ``delay`` s per frame (an encoder on a slow disk) and notes which thread wrote."""

    wants_frames = True

    def __init__(self, delay=0.0, main_thread=False):
        super().__init__(OutputSpec("video", "slow.mp4"))
        self.delay, self.main_thread = delay, main_thread
        self.records, self.threads = [], set()

    def write(self, frame, record):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        self.records.append(record)


def item(n):
    return OutputItem(None, None, 0.0, {"n": n}, time.perf_counter())


def stage_with(out, lossless):
    st = OutputThread(lambda it: np.zeros((4, 4, 3), np.uint8), lambda: [out], lambda: False, lossless=lossless)
    st.start()
    return st


def test_behind_a_live_input_drops_oldest_counts_and_never_blocks():
    out = SlowOutput(delay=0.02)
    st = stage_with(out, lossless=False)
    t0 = time.perf_counter()
    for n in range(30):
        st.offer(item(n))
    offered_s = time.perf_counter() - t0
    assert st.finish(timeout=5)
    written = [r["n"] for r in out.records]
    assert offered_s < 0.1  # 30 offers while each write takes 20 ms: the loop never waited
    assert st.dropped > 0 and len(written) + st.dropped == 30
    assert written == sorted(written) and written[-1] == 29  # in order, and the newest frame always gets out


def test_lossless_input_every_frame_in_order():
    out = SlowOutput(delay=0.002)
    st = stage_with(out, lossless=True)
    for n in range(20):
        st.offer(item(n))
    assert st.finish(timeout=5)
    assert [r["n"] for r in out.records] == list(range(20)) and st.dropped == 0


def record_fields(recs):
    return [{k: r[k] for k in ("frame", "label", "confidence", "state", "probs", "box", "inferred")} for r in recs]


def test_same_records_and_frames_as_without_the_thread(tiny_onnx, tmp_path):
    runs = {}
    for threaded in (False, True):
        out, path = RecordingOutput(), tmp_path / f"p{int(threaded)}.jsonl"
        s = run_loop(config(tiny_onnx, outputs=[f"jsonl://{path}"], output_thread=threaded),
                     source_factory=lambda: FakeSource(moving(25, shape=(240, 320, 3))), extra_outputs=[out])
        assert s.errors == 0 and s.output_dropped == 0 and s.frames == 25
        runs[threaded] = ([json.loads(x) for x in path.read_text().splitlines()], out)
    (rec0, out0), (rec1, out1) = runs[False], runs[True]
    assert record_fields(rec0) == record_fields(rec1) == record_fields(out1.records)
    assert len(out1.frames) == len(out0.frames) == 25
    for a, b in zip(out0.frames, out1.frames):  # the same frames; the overlay's text (Hz, ms) is in the top part
        assert a.shape == b.shape and np.array_equal(a[140:], b[140:]) and a[140:].any()


def test_frame_outputs_written_by_the_output_thread_windows_by_the_main_thread(tiny_onnx):
    other, window = SlowOutput(), SlowOutput(main_thread=True)
    s = run_loop(config(tiny_onnx), source_factory=lambda: FakeSource(moving(12)), extra_outputs=[other, window])
    assert other.threads == {"fetalplanes-output"}
    assert window.threads == {threading.main_thread().name}
    assert len(other.records) == 12 and 0 < len(window.records) <= 12  # a window shows the newest drawn frame
    assert len(window.records) + s.display_skipped == 12
    assert s.overlay_latency_ms["samples"] == len(window.records)


def test_capture_to_overlay_latency_reported_like_real_time_pipelines(tiny_onnx):
    s = run_loop(config(tiny_onnx), source_factory=lambda: FakeSource(moving(20)), extra_outputs=[RecordingOutput()])
    o = s.overlay_latency_ms
    assert o["samples"] == 20
    assert o["p50_ms"] <= o["p90_ms"] <= o["p95_ms"] <= o["p99_ms"] <= o["p99.9_ms"] <= o["max_ms"]
    assert o["p50_ms"] >= s.latency_ms["p50_ms"]  # the overlay comes after the label
    assert "capture-to-overlay latency" in s.format()


def test_output_failing_in_the_thread_reported_once_others_go_on(tiny_onnx, tmp_path, caplog):
    class Failing(RecordingOutput):
        def __init__(self):
            super().__init__()
            self.spec = OutputSpec("video", "usb/rec.mp4")
            self.calls = 0

        def write(self, frame, record):
            self.calls += 1
            if self.calls >= 4:
                raise OSError(errno.EIO, "Input/output error")
            super().write(frame, record)

    bad, good, path = Failing(), RecordingOutput(), tmp_path / "p.jsonl"
    with caplog.at_level(logging.WARNING, logger="fetalplanes"):
        s = run_loop(config(tiny_onnx, outputs=[f"jsonl://{path}"]), source_factory=lambda: FakeSource(moving(15)),
                     extra_outputs=[bad, good])
    assert bad.calls == 4 and bad.closed and len(good.frames) == 15 and len(path.read_text().splitlines()) == 15
    assert s.exit_code == 1 and list(s.output_failures) == ["video:usb/rec.mp4"] and s.frames == 15
    assert len([r for r in caplog.records if "usb/rec.mp4" in r.getMessage()]) == 1


def test_overlay_fault_counted_as_a_frame_error(tiny_onnx, monkeypatch):
    real, calls = loop_mod.LiveSession._overlay, []

    def flaky(self, *a):
        calls.append(1)
        if len(calls) % 4 == 0:
            raise ValueError("simulated drawing fault")
        return real(self, *a)

    monkeypatch.setattr(loop_mod.LiveSession, "_overlay", flaky)
    out = RecordingOutput()
    s = run_loop(config(tiny_onnx), source_factory=lambda: FakeSource(moving(12)), extra_outputs=[out])
    assert s.frames == 12 and s.errors == 3 and "simulated drawing fault" in s.last_error and len(out.frames) == 9


def test_a_crash_of_the_output_thread_surfaces(tiny_onnx, monkeypatch):
    monkeypatch.setattr(OutputThread, "_handle", lambda self, it: (_ for _ in ()).throw(RuntimeError("bug in the stage")))
    with pytest.raises(FetalPlanesError) as ei:
        run_loop(config(tiny_onnx), source_factory=lambda: FakeSource(moving(30)), extra_outputs=[RecordingOutput()])
    assert ei.value.exit_code == 1 and "bug in the stage" in ei.value.message


def test_stop_ends_the_output_thread_and_writes_what_was_queued(tiny_onnx):
    stop, seen = threading.Event(), []
    out = SlowOutput(delay=0.005)

    def on_record(rec):
        seen.append(rec)
        if len(seen) == 20:
            stop.set()

    s = run_loop(config(tiny_onnx), source_factory=EndlessSource, live=True, stop_event=stop, on_record=on_record,
                 extra_outputs=[out])
    assert s.frames == 20 and len(out.records) + s.output_dropped == 20
    assert [r["n"] for r in out.records] == sorted(r["n"] for r in out.records)
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "fetalplanes-output"]


def test_output_thread_flag_and_config_default():
    import argparse

    from edge.commands.run import overrides_from_args, register

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    register(sub)
    assert RunConfig().output_thread is True
    assert overrides_from_args(parser.parse_args(["run", "--no-output-thread"]))["output_thread"] is False
    assert overrides_from_args(parser.parse_args(["run"]))["output_thread"] is None


class SlowLiveSource(EndlessSource):
    """A live source delivering a frame every ``period`` s (a scanner at a low frame rate)."""

    def __init__(self, period=0.15, **kw):
        super().__init__(**kw)
        self.period = period

    def read(self):
        time.sleep(self.period)
        return super().read()


def test_a_window_is_woken_for_its_frame_not_at_the_next_one(tiny_onnx):
    """The output thread wakes the main thread: a window shows a frame long before the next frame arrives."""
    window, stop, seen = SlowOutput(main_thread=True), threading.Event(), []

    def on_record(rec):
        seen.append(rec)
        if len(seen) == 6:
            stop.set()

    s = run_loop(config(tiny_onnx), source_factory=SlowLiveSource, live=True, stop_event=stop, on_record=on_record,
                 extra_outputs=[window])
    assert len(window.records) >= 5 and window.threads == {threading.main_thread().name}
    assert s.overlay_latency_ms["p50_ms"] < 100  # not held until the next frame (150 ms) or the loop's 100 ms poll


def test_reconnecting_banner_reaches_a_window_on_the_main_thread(tiny_onnx):
    class Window(RecordingOutput):
        main_thread = True

        def show_status(self, frame):
            assert threading.current_thread() is threading.main_thread()
            super().show_status(frame)

    calls, stop, after = [], threading.Event(), []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            return FakeSource(moving(6), live=True)
        if len(calls) == 2:
            raise FetalPlanesError("capture card unplugged")
        return EndlessSource(seed=3)

    def on_record(rec):
        if len(calls) == 3:
            after.append(rec)
            if len(after) == 3:
                stop.set()

    out = Window()
    s = run_loop(config(tiny_onnx), source_factory=factory, live=True, extra_outputs=[out], stop_event=stop,
                 on_record=on_record)
    assert s.reconnects == 1 and out.status_frames, "the reconnecting banner was never shown"
    assert (out.status_frames[0][-3:, :, 2] > 200).mean() > 0.9  # the red band
