"""The window's keys without a display: a stand-in for OpenCV's highgui replays key presses into DisplayOutput."""

import json

import pytest

from edge.live.config import RunConfig
from edge.live.loop import run_loop
from edge.live.outputs import DisplayOutput, OutputSpec
from edge.live.status import read_status

from live_fakes import FakeSource, moving


class KeyGui:
    """What DisplayOutput calls on cv2 (namedWindow, imshow, waitKey, destroyWindow); ``keys``: {imshow count: key}."""

    def __init__(self, keys, watch=None):
        self.keys = dict(keys)
        self.shown = 0
        self.windows = []
        self.watch = watch  # called after each imshow (what the test wants to see at that moment)
        self.seen = []

    def namedWindow(self, name, flags):  # noqa: N802 (cv2's names)
        self.windows.append(name)

    def imshow(self, name, frame):
        assert name in self.windows and frame.ndim == 3
        self.shown += 1
        if self.watch is not None:
            self.seen.append((self.shown, self.watch()))

    def waitKey(self, delay):  # noqa: N802
        return self.keys.get(self.shown, -1)

    def destroyWindow(self, name):  # noqa: N802
        self.windows.remove(name)


def run_with_keys(model, keys, n_frames, tmp_path, report=True, watch=None, status="", **cfg_kw):
    gui = KeyGui(keys, watch)
    window = DisplayOutput(OutputSpec("display", "0"), gui=gui)
    cfg = RunConfig(model=str(model), input="fake", log_every_s=0, exam_id="first",
                    exam_report=str(tmp_path / "rep") if report else "", status=status, **cfg_kw)
    records = []
    summary = run_loop(cfg, source_factory=lambda: FakeSource(moving(n_frames)), extra_outputs=[window],
                       on_record=records.append)
    return summary, records, gui


def exam_jsons(rep):
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(rep.glob("*/exam.json"))}


def test_key_n_closes_the_exam_writes_its_report_and_starts_a_new_one(tiny_onnx, tmp_path):
    rep = tmp_path / "rep"
    summary, records, gui = run_with_keys(tiny_onnx, {8: ord("n")}, 30, tmp_path,
                                          watch=lambda: (rep / "first" / "exam.json").is_file())
    assert summary.frames == 30 and 10 < gui.shown <= 30 and gui.windows == []  # the window shows the newest frame; closed
    exams = exam_jsons(rep)
    assert set(exams) == {"first", next(k for k in exams if k != "first")} and len(exams) == 2
    first = exams.pop("first")
    (second,) = exams.values()
    assert first["end_reason"] == "new exam (key n)" and second["end_reason"] == "end of run"
    # the key ended the first exam at the next frame the loop labelled (it may run ahead of the window)
    assert 8 <= first["frames"] < 30 and first["frames"] + second["frames"] == 30
    assert first["last_frame"] + 1 == second["first_frame"]
    # the first report was on disk while the loop still ran (written at the key, not at the end of the run)
    assert any(written for shown, written in gui.seen if shown < gui.shown)
    assert not any(written for shown, written in gui.seen if shown <= 8)
    assert 'href="first/index.html"' in (rep / "index.html").read_text()


def test_key_n_without_exam_report_starts_a_new_exam_and_writes_nothing(tiny_onnx, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    status = tmp_path / "status.json"
    # one thread (no pipeline, no output thread): every frame is shown right after it is labelled
    summary, _, gui = run_with_keys(tiny_onnx, {5: ord("n"), 15: 0x10000 | ord("n")}, 25, tmp_path, report=False,
                                    status=str(status), pipeline=False, output_thread=False)
    assert summary.frames == 25 and gui.shown == 25 and list(cwd.iterdir()) == []
    assert not any("exam report" in m for m in summary.messages)
    final = read_status(status)["exam"]
    assert final["exams_ended"] == 3  # two keys: three exams (the last ended by the end of the run)
    # the key after frame 14 was shown ended the second exam: the third has frames 15-24
    assert (final["first_frame"], final["last_frame"], final["frames"]) == (15, 24, 10)


@pytest.mark.parametrize("key", [ord("q"), 27])
def test_key_q_or_esc_stops_the_loop(tiny_onnx, tmp_path, key):
    summary, _, gui = run_with_keys(tiny_onnx, {4: key}, 40, tmp_path, report=False)
    assert summary.frames < 40 and gui.shown < 40


def test_other_keys_do_nothing(tmp_path):
    window = DisplayOutput(OutputSpec("display", "0"), gui=KeyGui({}))

    class Exam:
        asked = []

        def request_new_exam(self, exam_id="", reason=""):
            self.asked.append(reason)

    window.attach(exam=Exam())
    for key in (-1, ord("x"), ord("N"), 0x10000 | ord("m")):
        window.handle_key(key)
    assert not window.stop_requested and Exam.asked == []
    window.handle_key(0x10000 | ord("n"))  # waitKeyEx-style high bits are dropped
    assert Exam.asked == ["new exam (key n)"]
