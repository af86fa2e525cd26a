"""Issue 17 (live loop speed and latency tail): deferred sector detection, warm-up, switch interval,
per-frame stage stamps, the unchanged model input, and the side-by-side benchmark's helpers."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import edge.live.loop as loop_mod
from edge.live.capture import STAMPS, CaptureThread, PrepareThread
from edge.live.config import RunConfig
from edge.live.loop import LiveSession, prepare_frame, run_loop
from edge.live.sector import SectorTracker
from edge.live.sources import SourceConfig
from edge.preprocess import prepare

from live_fakes import FakeSource, RecordingOutput, moving
from video_frames import read_frames

BENCH = Path(__file__).resolve().parents[3] / "benchmarks"


def clip(real_videos, name="nbs_autocrop_media_echo-with-borders.mp4"):
    by_name = {p.name: p for p in real_videos}
    if name not in by_name:
        pytest.skip(f"{name} not among the real recordings")
    return by_name[name]


# --- the sector detection after the hand-over ----------------------------------------------------------
def test_deferred_detection_gives_the_same_boxes_one_frame_later(real_videos):
    """A deferred check changes nothing but when its result shows: the frame that triggered it keeps the
    box it had, every other frame gets exactly the box of the tracker that checks at once."""
    frames = read_frames(clip(real_videos), 90)
    now, later = SectorTracker(), SectorTracker(defer_checks=True)
    checked, boxes_now, boxes_later = [], [], []
    for f in frames:
        before = now.detections
        boxes_now.append(now.update(f))
        checked.append(now.detections > before)
        boxes_later.append(later.update(f))
        ran = later.run_deferred()
        assert ran == checked[-1]  # the same frames trigger a check
    assert sum(checked) >= 3 and now.detections == later.detections and now.layout_changes == later.layout_changes
    for i, (a, b) in enumerate(zip(boxes_now, boxes_later)):
        if not checked[i]:
            assert b == a, f"frame {i}"
        elif i > 0:
            assert b == boxes_now[i - 1], f"frame {i}: the box before the check"
    assert boxes_later[-1] == boxes_now[-1] and later.pop_deferred_seconds() > 0 and later.pop_deferred_seconds() == 0


def test_a_check_nobody_ran_runs_before_the_next_frame(real_videos):
    frames = read_frames(clip(real_videos), 60)
    called, skipped = SectorTracker(defer_checks=True), SectorTracker(defer_checks=True)
    for f in frames:
        a = called.update(f)
        called.run_deferred()
        assert skipped.update(f) == a  # update() runs the pending check first: same state, same box
    assert called.detections == skipped.detections > 0


def test_a_failing_deferred_check_is_the_next_frames_error(real_videos, monkeypatch):
    frames = read_frames(clip(real_videos), 10)
    t = SectorTracker(defer_checks=True)
    monkeypatch.setattr(t, "_check", lambda *a: (_ for _ in ()).throw(ValueError("simulated detection fault")))
    t.update(frames[0])  # the first frame always checks
    assert t.run_deferred() is True  # does not raise here (the pipeline's thread must go on) ...
    with pytest.raises(ValueError, match="simulated"):
        t.update(frames[1])  # ... but the next frame reports it (the loop counts it as that frame's error)
    t.update(frames[2])  # and only once


def test_prepare_thread_runs_after_once_the_frame_was_handed_on():
    """What ``after`` costs delays no frame whose preparation it follows (a paced source: it fits between frames)."""
    def after():
        time.sleep(0.12)

    cap = CaptureThread(FakeSource(moving(4, shape=(20, 24, 3))), lambda: None, live=False, pace_fps=5.0)
    st = PrepareThread(cap, lambda frame: "ok", after=after)
    st.start()
    lat = []
    while len(lat) < 4:
        f = st.slot.get(timeout=0.1)
        if f is None:
            assert not st.finished
            continue
        lat.append(time.perf_counter() - f.t_capture)
    st.join(2.0)
    assert max(lat) < 0.12, lat  # 120 ms of work after each frame, none of it in a frame's latency


def test_loop_detection_never_delays_its_frame(tiny_onnx, real_videos, monkeypatch):
    real_check = SectorTracker._check
    checks = []

    def slow_check(self, *a):
        checks.append(1)
        time.sleep(0.15)
        return real_check(self, *a)

    monkeypatch.setattr(SectorTracker, "_check", slow_check)
    for pipeline in (True, False):
        checks.clear()
        recs = []
        cfg = RunConfig(model=str(tiny_onnx), input=str(clip(real_videos)), log_every_s=0, max_frames=7,
                        pipeline=pipeline, source=SourceConfig(pace="4"))
        s = run_loop(cfg, on_record=recs.append)
        assert s.frames == 7 and len(checks) >= 2  # acquisition checks every few frames
        assert max(r["latency_ms"] for r in recs) < 150.0, (pipeline, [r["latency_ms"] for r in recs])
        assert s.stages_ms["sector"]["mean_ms"] * 7 >= 150.0 * (len(checks) - 1)  # still counted as sector time


# --- the model's input is unchanged ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bgr", "gray", "bgra"])
def test_prepared_tensor_is_exactly_prepare_of_the_crop(tiny_onnx, real_videos, make_tiny_onnx, tmp_path, kind):
    """The loop's input tensor is edge.preprocess.prepare of the sector crop, bit for bit (the model contract)."""
    import cv2

    from edge.backends import read_model_info

    infos = [read_model_info(str(tiny_onnx)), read_model_info(str(make_tiny_onnx(tmp_path / "m.onnx", input_size=224)))]
    frames = read_frames(clip(real_videos), 20)
    for info in infos:
        tracker = SectorTracker(defer_checks=True)
        for f in frames:
            image = {"bgr": f, "gray": cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), "bgra": cv2.cvtColor(f, cv2.COLOR_BGR2BGRA)}[kind]
            p = prepare_frame(image, tracker, info, make_tensor=True)
            tracker.run_deferred()
            assert not p.skip and p.error is None
            want = prepare(p.box.crop(image), info)
            assert p.x.dtype == want.dtype and p.x.shape == want.shape and np.array_equal(p.x, want)
            q = prepare_frame(image, SectorTracker(roi=p.box), info)  # the tensor made later, in the loop's thread
            assert np.array_equal(q.tensor(info), want)


# --- warm-up, switch interval, stamps ---------------------------------------------------------------------
def test_warm_up_runs_the_sessions_own_model_not_a_callers(tiny_onnx):
    from edge.backends import open_runner

    cfg = RunConfig(model=str(tiny_onnx), input="fake", log_every_s=0)
    with LiveSession(cfg) as session:
        calls = []
        real = session.runner.infer
        session.runner.infer = lambda x: (calls.append(x.shape), real(x))[1]
        session.start()
        assert calls == [session.info.input_shape(1)] * loop_mod.WARM_UP_RUNS and loop_mod.WARM_UP_RUNS >= 1
    runner = open_runner(str(tiny_onnx))
    calls2 = []
    real2 = runner.infer
    runner.infer = lambda x: (calls2.append(1), real2(x))[1]
    with LiveSession(cfg, runner) as session:
        session.start()
    assert calls2 == []  # a caller's runner may count its calls: left alone


def test_switch_interval_while_the_loop_runs_then_restored(tiny_onnx):
    seen = []
    before = sys.getswitchinterval()
    run_loop(RunConfig(model=str(tiny_onnx), input="fake", log_every_s=0), source_factory=lambda: FakeSource(moving(3)),
             on_record=lambda r: seen.append(sys.getswitchinterval()))
    assert seen and all(abs(v - loop_mod.SWITCH_INTERVAL_S) < 1e-9 for v in seen)
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("pipeline,output_thread", [(True, True), (False, False), (True, False)])
def test_trace_stamps_every_frame_in_order(tiny_onnx, pipeline, output_thread):
    trace = []
    cfg = RunConfig(model=str(tiny_onnx), input="fake", log_every_s=0, pipeline=pipeline, output_thread=output_thread)
    s = run_loop(cfg, source_factory=lambda: FakeSource(moving(12)), extra_outputs=[RecordingOutput()], trace=trace)
    assert s.frames == 12 and [i for i, _, _ in trace] == list(range(12))
    col = {n: i for i, n in enumerate(STAMPS)}
    for _, t_capture, st in trace:
        order = (("prepare_start", "prepare_end", "taken") if pipeline else ("taken", "prepare_start", "prepare_end")) + (
            "infer_start", "infer_end", "label", "handed")  # without the pipeline the loop takes the frame, then prepares it
        chain = [t_capture] + [st[col[n]] for n in order]
        assert all(b >= a > 0 for a, b in zip(chain, chain[1:])), chain
        ov0, ov1, shown = st[col["overlay_start"]], st[col["overlay_end"]], st[col["shown"]]
        assert st[col["label"]] <= ov0 <= ov1 <= shown  # the overlay follows the label, the frame is shown after it


# --- the side-by-side benchmark's helpers --------------------------------------------------------------------
def _bench():
    sys.path.insert(0, str(BENCH))
    import bench_live

    return bench_live


def test_trace_report_names_where_the_slowest_frame_lost_its_time():
    b = _bench()
    trace = []
    for i in range(200):
        t = 100.0 + i
        gaps = [0.001, 0.001, 0.0005, 0.0001, 0.002, 0.0001, 0.0002, 0.0001, 0.0003, 0.0001]
        if i == 150:
            gaps[8] = 0.030  # one frame's overlay took 30 ms
        stamps, now = [], t
        for g in gaps:
            now += g
            stamps.append(now)
        trace.append((i, t, stamps))
    r = b.trace_report(trace, worst=3, warm=120)
    assert r["frames"] == 200 and r["slowest"][0]["frame"] == 150 and r["slowest"][0]["worst_segment"] == "overlay"
    assert abs(r["slowest"][0]["total_ms"] - 35.1) < 0.01 and r["segments"]["overlay"]["max_ms"] == pytest.approx(30.0)
    assert r["after_warmup"]["max_ms"] == pytest.approx(35.1)


def test_sleep_floor_measures_lateness():
    b = _bench()
    f = b.sleep_floor(20, fps=400.0)
    assert f["samples"] == 20 and 0.0 <= f["p50_ms"] <= f["p99.9_ms"] <= f["max_ms"]


def test_parse_variant():
    b = _bench()
    v = b.parse_variant("fast=.:switch_interval=0.0005,cv_threads=1,gc_freeze")
    assert v["name"] == "fast" and (Path(v["repo"]) / "edge").is_dir()
    assert v["tuning"] == {"switch_interval": 0.0005, "cv_threads": 1, "gc_freeze": True}
    with pytest.raises(SystemExit):
        b.parse_variant("x=/nonexistent")


def test_settled_tracker_works_half_as_often_and_keeps_its_box(real_videos):
    frames = read_frames(clip(real_videos), 180)
    busy, steady = SectorTracker(steady_factor=1), SectorTracker()
    boxes_busy = [busy.update(f) for f in frames]
    boxes_steady, became_steady = [], None
    for i, f in enumerate(frames):
        boxes_steady.append(steady.update(f))
        if became_steady is None and steady.steady:
            became_steady = i
    assert not busy.steady and became_steady is not None and became_steady < 100 and steady.steady
    assert boxes_steady[-1] == boxes_busy[-1] and steady.layout_changes == busy.layout_changes == 0
    assert steady.detections < busy.detections  # fewer checks (and maps) once settled
    assert set(boxes_steady[became_steady:]) == {boxes_steady[-1]}


def test_output_thread_warms_itself_up_before_the_first_item():
    from edge.live.output_stage import OutputItem, OutputThread

    events = []
    stage = OutputThread(lambda item: events.append(("draw", threading.get_ident())) or np.zeros((4, 4, 3), np.uint8),
                         lambda: [], lambda: False, warm_up=lambda: (time.sleep(0.05), events.append(("warm", threading.get_ident()))))
    stage.start()
    assert stage.ready.wait(2.0)
    stage.offer(OutputItem(None, None, 0.0, {}, time.perf_counter()))
    assert stage.finish(2.0)
    assert [e[0] for e in events] == ["warm", "draw"] and events[0][1] == events[1][1] != threading.get_ident()


def test_first_overlay_is_not_late(tiny_onnx):
    """OpenCV's first anti-aliased text in a thread costs tens of ms: the output thread is warm before frame 0."""
    trace = []
    cfg = RunConfig(model=str(tiny_onnx), input="fake", log_every_s=0)
    run_loop(cfg, source_factory=lambda: FakeSource(moving(3, shape=(240, 320, 3))), extra_outputs=[RecordingOutput()],
             trace=trace)
    col = {n: i for i, n in enumerate(STAMPS)}
    first = trace[0][2]
    assert (first[col["overlay_end"]] - first[col["overlay_start"]]) * 1000.0 < 15.0  # cold: 30-90 ms here


def test_compare_runs_variants_side_by_side_with_trace_and_floor(tiny_onnx, tmp_path):
    import cv2

    b = _bench()
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (96, 72))
    rng = np.random.default_rng(0)
    for _ in range(20):
        w.write(rng.integers(0, 255, (72, 96, 3), dtype=np.uint8))
    w.release()
    variants = [b.parse_variant("now=."), b.parse_variant("si=.:switch_interval=0.002")]
    res = b.run_compare(variants, tiny_onnx, [video], tmp_path, frames=30, rounds=1, threads=1, log=lambda s: None)
    rows = res["latency"]
    assert [r["variant"] for r in rows] == ["now", "si"] and all("error" not in r for r in rows), rows
    assert all(r["frames"] == 30 and r["trace"]["frames"] == 30 and r["trace"]["slowest"] for r in rows)
    assert all(r["gc"]["gen2"]["count"] >= 0 for r in rows) and res["floor"][0]["samples"] == 30
    md = b.compare_markdown(res)
    assert "| clip.avi | now |" in md and "| clip.avi | si |" in md and "Machine floor" in md


def test_prepare_thread_warms_itself_up_before_the_first_frame(tiny_onnx):
    events = []
    cap = CaptureThread(FakeSource(moving(3, shape=(20, 24, 3))), lambda: None, live=False)

    def warm():
        time.sleep(0.1)
        events.append(("warm", threading.get_ident(), cap.ident))

    st = PrepareThread(cap, lambda frame: events.append(("prepare", threading.get_ident())), warm_up=warm)
    st.start()
    assert events[0][2] is None  # the capture thread starts only once the stage is warm (no frame waits for it)
    while not st.finished:
        st.slot.get(timeout=0.1)
    st.join(2.0)
    assert [e[0] for e in events] == ["warm", "prepare", "prepare", "prepare"] and len({e[1] for e in events}) == 1
    with LiveSession(RunConfig(model=str(tiny_onnx), input="fake", log_every_s=0)) as session:
        session.warm_prepare()  # a blank frame through the real preparation, its own tracker
        assert session.tracker.detections == 0 and session.tracker.box is None
