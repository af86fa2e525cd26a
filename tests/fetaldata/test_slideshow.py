"""The slideshow scanner video (fetaldata.slideshow): truth sidecar, exams, and scoring it with the live loop."""

import csv

import cv2
import numpy as np
import pytest

from edge.backends import open_runner
from edge.errors import FetalPlanesError
from edge.live.config import RunConfig
from edge.live.exam import ExamConfig
from edge.live.loop import run_loop
from fetaldata.phantom.video import TRUTH_COLUMNS
from fetaldata.scoring import exam_in_task_planes, read_exam, score_retrieval
from fetaldata.slideshow import Slide, SlideshowConfig, _compose, real_exams, write_slideshow
from truth_runner import TruthRunner

FAST = dict(fps=10, width=320, height=240, hold_s=(3.0, 3.5), freeze_s=(0.5, 0.8), transition_s=(0.3, 0.5),
            blank_s=(0.3, 0.5), exam_gap_s=3.0)


def make_images(tmp_path):
    """Four small 'ultrasound' images: gray, BGR, BGRA (like FETAL_PLANES_DB's one RGBA file), and a screen grab."""
    rng = np.random.default_rng(0)
    paths = {}
    for name, channels in (("gray", 1), ("bgr", 3), ("bgra", 4)):
        img = rng.integers(30, 220, (90, 120, channels), dtype=np.uint8)
        cv2.circle(img, (60, 45), 25, (255,) * channels, 2)
        if channels == 4:
            img[:, :, 3] = 255
        paths[name] = tmp_path / f"{name}.png"
        cv2.imwrite(str(paths[name]), img if channels > 1 else img[:, :, 0])
    grab = np.full((150, 200, 3), 20, np.uint8)  # a 'scanner screen' with its image area at (40, 30, 120, 100)
    grab[30:130, 40:160] = rng.integers(40, 200, (100, 120, 3), dtype=np.uint8)
    cv2.putText(grab, "MI 0.8", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
    paths["grab"] = tmp_path / "grab.png"
    cv2.imwrite(str(paths["grab"]), grab)
    return paths


def tiny_exams(paths):
    return [
        [Slide(paths["gray"], "Fetal brain", "Trans-thalamic"), Slide(paths["grab"], "Fetal femur", roi=(40, 30, 120, 100)),
         Slide(paths["bgr"], "Other")],
        [Slide(paths["bgra"], "Fetal thorax"), Slide(paths["gray"], "Fetal brain", "Trans-cerebellum")],
    ]


def read_video(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def test_tiny_slideshow_truth_exams_freezes_and_motion(tmp_path):
    paths = make_images(tmp_path)
    show = write_slideshow(tmp_path / "s.avi", tiny_exams(paths), SlideshowConfig(seed=3, freeze_p=1.0, blank_p=0.0, **FAST))
    rows = list(csv.DictReader(open(show.truth)))
    assert tuple(rows[0]) == TRUTH_COLUMNS and [int(r["frame"]) for r in rows] == list(range(show.frames))
    frames = read_video(show.path)
    assert len(frames) == show.frames and frames[0].shape == (240, 320, 3)
    assert {r["state"] for r in rows} == {"steady", "frozen", "transition", "blank"}
    # two exams, separated by exam_gap_s of blank screen (no box)
    (a0, b0), (a1, b1) = show.exams
    assert a0 == 0 and b1 == show.frames - 1 and a1 - b0 - 1 == 30
    gap = rows[b0 + 1:a1]
    assert all(r["state"] == "blank" and r["plane"] == "Other" and r["x"] == "" for r in gap)
    assert all(frames[i].max() == 0 for i in range(b0 + 1, a1))
    assert [g.exam for g in show.segments] == [0, 0, 0, 1, 1]
    for g in show.segments:
        held = rows[g.held[0]:g.held[1] + 1]
        assert {(r["plane"], r["state"]) for r in held} == {(g.slide.plane, "steady")} and len(held) >= 30
        x, y, w, h = g.box
        assert 0 <= x and 0 <= y and x + w <= 320 and y + h <= 240 and [int(held[0][k]) for k in "xywh"] == [x, y, w, h]
        # held frames move (not identical: the loop would call them frozen); frozen frames are identical
        assert np.abs(frames[g.held[0]].astype(int) - frames[g.held[1]].astype(int)).mean() > 1.0
        f0, f1 = g.frozen
        assert all(np.array_equal(frames[f0], frames[i]) for i in range(f0, f1 + 1))
        assert {r["state"] for r in rows[f0:f1 + 1]} == {"frozen"}
    # the screen grab fills the frame (200x150 -> 320x240: x1.6) and its image area is where the truth says
    grab = show.segments[1]
    assert grab.box == (64, 48, 192, 160)
    # a cross-fade's truth is the dominant image: the first half the previous slide's
    trans = [r for r in rows[show.segments[0].last + 1:show.segments[1].held[0]]]
    assert trans and all(r["state"] == "transition" for r in trans) and trans[-1]["plane"] == "Fetal femur"


def test_the_exam_tracker_ends_exams_at_the_gap_and_retrieval_is_scored_per_exam(tiny_onnx, tmp_path):
    """The loop on a tiny slideshow with the stand-in classifier (tests/truth_runner.py: reads the truth, errs on
    purpose): the blank screen between exams ends the first exam, and each report is scored on its own span."""
    paths = make_images(tmp_path)
    show = write_slideshow(tmp_path / "s.avi", tiny_exams(paths), SlideshowConfig(seed=1, **FAST))
    runner = TruthRunner(open_runner(str(tiny_onnx)), show.truth, seed=1)
    cfg = RunConfig(model=str(tiny_onnx), input=str(show.path), exam_report=str(tmp_path / "rep"), exam_id="first",
                    log_every_s=0, exam=ExamConfig(blank_s=2.0))
    s = run_loop(cfg, runner=runner, on_record=runner.seen)
    assert s.frames == show.frames
    reports = sorted((read_exam(p) for p in (tmp_path / "rep").glob("*/exam.json")), key=lambda d: d["first_frame"])
    assert len(reports) == 2 and "blank" in reports[0]["end_reason"]
    results = []
    for report, span, planes in zip(reports, show.exams, (["Fetal brain", "Fetal femur"], ["Fetal brain", "Fetal thorax"])):
        assert span[0] <= report["first_frame"] and report["last_frame"] <= span[1]
        r = score_retrieval(report, show.truth, frames=span)
        assert r["planes_present"] == planes  # only this exam's span of the truth counts
        results.append(r)
    # over the whole video, exam 1 would also have had thorax present (shown only in exam 2)
    assert "Fetal thorax" in score_retrieval(reports[0], show.truth)["planes_present"]
    got = sum(len(r["planes_retrieved"]) for r in results)
    assert got >= 3, results  # a stand-in of this quality retrieves (nearly) all 4


def test_exam_in_task_planes_maps_native_labels():
    native = {"exam_id": "x", "first_frame": 0, "last_frame": 9, "planes": {
        "4CH": {"seen": True, "stored": False, "best": {"frame": 3, "confidence": 0.8}},
        "RVOT": {"seen": True, "stored": True, "best": {"frame": 7, "confidence": 0.95}},
        "Femur": {"seen": False, "stored": False, "best": None},
        "Kidneys": {"seen": True, "stored": False, "best": {"frame": 1, "confidence": 0.99}},
    }}
    label_map = {"4CH": "Fetal thorax", "RVOT": "Fetal thorax", "Femur": "Fetal femur", "Kidneys": "Other",
                 "Background": "Other"}
    m = exam_in_task_planes(native, label_map, ["Fetal thorax", "Fetal femur", "Maternal cervix"])
    assert m["exam_id"] == "x" and m["first_frame"] == 0 and m["last_frame"] == 9
    thorax = m["planes"]["Fetal thorax"]
    assert thorax["seen"] and thorax["stored"] and thorax["best"] == {"frame": 7, "confidence": 0.95, "label": "RVOT"}
    assert m["planes"]["Fetal femur"] == {"seen": False, "stored": False, "labels": ["Femur"], "best": None}
    assert m["planes"]["Maternal cervix"]["labels"] == [] and m["missing"] == ["Fetal femur", "Maternal cervix"]
    assert m["seen"] == ["Fetal thorax"] and "Other" not in m["planes"]


def test_bad_slides_and_settings_are_named(tmp_path):
    paths = make_images(tmp_path)
    with pytest.raises(FetalPlanesError, match="Fetal heart"):
        Slide(paths["gray"], "Fetal heart")
    with pytest.raises(FetalPlanesError, match="brain plane"):
        Slide(paths["gray"], "Fetal brain", "Trans-frontal")
    with pytest.raises(FetalPlanesError, match="not inside"):
        _compose(Slide(paths["grab"], "Other", roi=(150, 30, 120, 100)), 320, 240)
    with pytest.raises(FetalPlanesError, match="no slides"):
        write_slideshow(tmp_path / "e.avi", [[]])
    with pytest.raises(FetalPlanesError, match="hold_s"):
        write_slideshow(tmp_path / "e.avi", tiny_exams(paths), SlideshowConfig(hold_s=(2.0, 1.0)))


def test_real_exams_use_every_real_image_once(real_db_dir, sononet_examples_dir, hc18_dir):
    shared = real_db_dir.parent
    exams = real_exams(shared, hc18=8)
    assert [len(e) for e in exams] == [13, 8, 8, 4]
    slides = [s for e in exams for s in e]
    assert len({s.path for s in slides}) == 33
    assert [s.view for s in exams[0]][:2] == ["Brain (Tv.)", "Brain (Cb.)"] and all(s.roi for s in exams[0])
    for e in exams[1:3]:  # one FETAL_PLANES_DB image of each of the six planes, two HC18 heads
        fpdb = sorted(s.plane for s in e if s.source == "fetal_planes_db")
        assert fpdb == sorted(["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other"])
        assert sum(s.source == "hc18_sample" for s in e) == 2
    assert {(s.plane, s.brain_plane) for s in exams[3]} == {("Fetal brain", "Trans-thalamic")}
    # the release's RGBA image is composed like the others (3 channels, its area inside the frame)
    rgba = next(s for s in slides if s.path.name == "Patient00001_Plane1_10_of_15.png")
    assert cv2.imread(str(rgba.path), cv2.IMREAD_UNCHANGED).shape[2] == 4
    screen, (x, y, w, h) = _compose(rgba, 640, 480)
    assert screen.shape == (480, 640, 3) and screen[y:y + h, x:x + w].mean() > 10
    # a SonoNet grab's image area (x 81, y 115, 793 x 619 of 975x735) lands scaled (x 480/735, letterboxed 1 px)
    _, box = _compose(exams[0][0], 640, 480)
    k = 480 / 735
    assert box == (1 + round(81 * k), round(115 * k), round(793 * k), round(619 * k)) == (54, 75, 518, 404)


def test_a_labelled_folder_becomes_an_exam_and_the_command_writes_the_video(tmp_path, capsys):
    from edge.cli import main
    from fetaldata.slideshow import folder_slides

    paths = make_images(tmp_path)
    (tmp_path / "labels.csv").write_text("file,plane,brain_plane\nbgra.png,Fetal thorax,\ngray.png,fetal brain,Trans-thalamic\n")
    slides = folder_slides(tmp_path)
    assert [(s.path, s.plane, s.brain_plane) for s in slides] == [
        (paths["bgra"], "Fetal thorax", "Not A Brain"), (paths["gray"], "Fetal brain", "Trans-thalamic")]
    out = tmp_path / "v.avi"
    cmd = ["data", "slideshow", "--out", str(out)]
    assert main(cmd + ["--folder", str(tmp_path), "--folder", str(tmp_path), "--width", "320", "--height", "240",
                       "--fps", "5"]) == 0
    assert "4 images in 2 exams" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "v.truth.csv")))
    assert len(read_video(out)) == len(rows) and {r["plane"] for r in rows} == {"Fetal thorax", "Fetal brain", "Other"}
    # usage errors: exit 2 with the fix, no traceback
    assert main(cmd) == 2 and "--folder" in capsys.readouterr().err
    assert main(cmd + ["--folder", str(tmp_path), "--width", "100"]) == 2 and "320x240" in capsys.readouterr().err
    (tmp_path / "labels.csv").write_text("file,plane\nmissing.png,Other\n")
    err = (main(cmd + ["--folder", str(tmp_path)]), capsys.readouterr().err)
    assert err[0] == 2 and "missing.png" in err[1] and "Traceback" not in err[1]
