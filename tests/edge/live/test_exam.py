"""The exam tracker: checklist, best frame per plane, exam boundaries, report, overlay."""

import json

import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.labels import BRAIN, PLANES
from edge.live.exam import ChecklistOverlay, ExamConfig, ExamTracker, checklist_planes

BRAIN_P, FEMUR, OTHER = "Fetal brain", "Fetal femur", "Other"
BOX = [10, 20, 40, 30]


def frame_with(value, h=60, w=80):
    img = np.full((h, w, 3), value, np.uint8)
    img[:6] = 250  # a "header band" with bright text
    return img


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def feed(tr, start, label, confs, state="ok", small_level=80, image_value=None):
    """Observe frames start.. with the given confidences; returns the next index."""
    for k, c in enumerate(confs):
        img = frame_with(image_value if image_value is not None else (start + k) % 256)
        tr.observe(start + k, 1000.0 + start + k, label, c, state, img, BOX, np.full((8, 8), small_level, np.uint8))
    return start + len(confs)


def test_checklist_is_the_taxonomy_without_other():
    assert checklist_planes(PLANES) == [p for p in PLANES if p != "Other"]
    assert checklist_planes(BRAIN) == ["Trans-thalamic", "Trans-cerebellum", "Trans-ventricular"]
    assert checklist_planes(PLANES, ["Fetal brain"]) == ["Fetal brain"]
    # SonoNet's 14 labels: its 13 standard views; Background (no standard view on screen) is no plane to capture
    sononet = ["3VV", "4CH", "Abdominal", "Background", "Brain (Cb.)", "Brain (Tv.)", "Femur", "Kidneys", "Lips",
               "LVOT", "Profile", "RVOT", "Spine (cor.)", "Spine (sag.)"]
    assert checklist_planes(sononet) == [lab for lab in sononet if lab != "Background"]
    with pytest.raises(FetalPlanesError, match="not labels of this model"):
        checklist_planes(PLANES, ["Fetal heart"])
    with pytest.raises(FetalPlanesError, match="seen_frames"):
        ExamTracker(PLANES, ExamConfig(seen_frames=0))


def test_seen_after_n_confident_frames_and_dips_tolerated():
    tr = ExamTracker(PLANES, ExamConfig(seen_frames=5, min_confidence=0.6, dip_frames=2, settle_frames=0))
    i = feed(tr, 0, BRAIN_P, [0.9] * 4)
    assert not tr.exam.planes[BRAIN_P].seen  # 4 < 5
    i = feed(tr, i, BRAIN_P, [0.4, 0.5])  # a dip of 2 frames, label held: tolerated
    i = feed(tr, i, BRAIN_P, [0.8])
    assert tr.exam.planes[BRAIN_P].seen and tr.exam.planes[BRAIN_P].first_seen_frame == 6
    # a dip longer than dip_frames breaks the segment
    i = feed(tr, i, FEMUR, [0.9] * 4 + [0.3] * 3 + [0.9] * 4)
    assert not tr.exam.planes[FEMUR].seen
    # uncertain frames never count; Other is not on the checklist
    i = feed(tr, i, FEMUR, [0.9] * 10, state="uncertain")
    i = feed(tr, i, OTHER, [0.99] * 10)
    assert not tr.exam.planes[FEMUR].seen and OTHER not in tr.exam.planes
    assert tr.exam.seen == [BRAIN_P] and FEMUR in tr.exam.missing


def test_frozen_marks_seen_and_stored_but_a_lone_freeze_is_no_best_frame():
    tr = ExamTracker(PLANES, ExamConfig(seen_frames=5, settle_frames=0))
    feed(tr, 0, FEMUR, [0.95] * 3, state="frozen")  # a freeze with no live segment of femur before it
    st = tr.exam.planes[FEMUR]
    assert st.seen and st.stored and st.best is None
    i = feed(tr, 10, BRAIN_P, [0.7] * 5)
    feed(tr, i, BRAIN_P, [0.9] * 3, state="frozen")  # the freeze continues the live brain segment
    st = tr.exam.planes[BRAIN_P]
    assert st.stored and st.best.frame == i and st.best.state == "frozen"


def test_best_frame_is_highest_settled_confidence_with_copied_pixels(tmp_path):
    tr = ExamTracker(PLANES, ExamConfig(seen_frames=3, settle_frames=2), report_dir=tmp_path / "rep")
    confs = [0.7, 0.8, 0.95, 0.9, 0.85, 0.8]  # best = frame 2, followed by 3 confident frames
    feed(tr, 0, BRAIN_P, confs)
    best = tr.exam.planes[BRAIN_P].best
    assert best.frame == 2 and best.confidence == pytest.approx(0.95)
    assert best.image is not None and best.image[30, 40, 0] == 2  # the frame's own pixels, copied
    assert best.crop.shape[:2] == (BOX[3], BOX[2])
    # a higher peak at a segment's very end (not followed by settle_frames frames) is not taken
    feed(tr, 10, FEMUR, [0.8] * 4 + [0.99])
    feed(tr, 15, BRAIN_P, [0.99, 0.99])  # the label moved on
    assert tr.exam.planes[FEMUR].best.confidence == pytest.approx(0.8)
    # without a report folder no pixels are kept
    tr2 = ExamTracker(PLANES, ExamConfig(seen_frames=3, settle_frames=0))
    feed(tr2, 0, BRAIN_P, confs)
    assert tr2.exam.planes[BRAIN_P].best.image is None


def test_exam_boundaries_request_gap_and_blank(tmp_path):
    clock = Clock()
    tr = ExamTracker(PLANES, ExamConfig(seen_frames=2, settle_frames=0, gap_s=30, blank_s=2, blank_level=5),
                     report_dir=tmp_path, exam_id="first exam", fps=10, clock=clock)
    assert tr.exam.exam_id == "first-exam"
    feed(tr, 0, BRAIN_P, [0.9] * 3)
    tr.request_new_exam("second", reason="test")  # e.g. from the HTTP thread
    feed(tr, 3, FEMUR, [0.9] * 3)
    assert [e.exam_id for e in tr.finished] == ["first-exam"] and tr.finished[0].end_reason == "test"
    assert tr.exam.exam_id == "second" and tr.exam.seen == [FEMUR]
    # loss of signal: no frame for gap_s -> the idle tick ends the exam
    clock.t = 31.0
    tr.tick()
    assert [e.exam_id for e in tr.finished] == ["first-exam", "second"] and "no signal" in tr.finished[1].end_reason
    # blank screen for blank_s of source time (20 frames at 10 fps) ends the next exam
    i = feed(tr, 10, BRAIN_P, [0.9] * 3)
    i = feed(tr, i, BRAIN_P, [0.9] * 25, small_level=1)
    assert len(tr.finished) == 3 and "blank" in tr.finished[2].end_reason
    feed(tr, i, BRAIN_P, [0.9] * 25, small_level=1)  # still blank: no empty exams
    tr.close()
    assert len(tr.finished) == 3 and len(tr.reports) == 3
    assert tr.exam.exam_id not in {e.exam_id for e in tr.finished}


def test_report_files_header_masked_and_index(tmp_path):
    rep = tmp_path / "rep"
    tr = ExamTracker(PLANES, ExamConfig(seen_frames=2, settle_frames=0), report_dir=rep, exam_id="e1", mask_header=6, fps=25)
    feed(tr, 0, BRAIN_P, [0.9, 0.95, 0.9], image_value=100)
    tr.request_new_exam("e2")
    feed(tr, 3, FEMUR, [0.9] * 3)
    tr.close()
    data = json.loads((rep / "e1" / "exam.json").read_text())
    assert data["seen"] == [BRAIN_P] and FEMUR in data["missing"] and data["planes"][BRAIN_P]["best"]["frame"] == 1
    assert data["planes"][BRAIN_P]["best"]["source_s"] == pytest.approx(1 / 25)
    import cv2

    full = cv2.imread(str(rep / "e1" / data["planes"][BRAIN_P]["best"]["image"]))
    assert full[:6].max() <= 3 and abs(int(full[30, 40, 0]) - 100) <= 3  # header band black, image kept
    assert (rep / "e1" / "fetal-brain_sector.jpg").is_file()
    page = (rep / "e1" / "index.html").read_text()
    assert "1 of 5 planes captured" in page and "fetal-brain_sector.jpg" in page
    index = (rep / "index.html").read_text()
    assert 'href="e1/index.html"' in index and 'href="e2/index.html"' in index


def test_nothing_written_without_report_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tr = ExamTracker(PLANES, ExamConfig(seen_frames=2))
    feed(tr, 0, BRAIN_P, [0.9] * 5)
    tr.close()
    assert list(tmp_path.iterdir()) == [] and tr.reports == []


def test_checklist_overlay_bottom_right_cached_and_skipped_on_small_frames():
    tr = ExamTracker(PLANES, ExamConfig(seen_frames=2, settle_frames=0))
    ov = ChecklistOverlay()
    big = np.zeros((480, 640, 3), np.uint8)
    ov.draw(big, tr)
    ys, xs = np.nonzero(big.max(axis=2))
    assert ys.min() > 240 and xs.min() > 320  # bottom-right quarter only
    patch = ov._patch
    ov.draw(big, tr)
    assert ov._patch is patch  # unchanged checklist: not re-rendered
    feed(tr, 0, BRAIN_P, [0.9] * 3)
    before = big.copy()
    ov.draw(big, tr)
    assert ov._patch is not patch and not np.array_equal(before, big)  # the brain's dot turned green
    assert (big[..., 1] > 150).any()
    small = np.zeros((100, 200, 3), np.uint8)
    ov.draw(small, tr)
    assert small.max() == 0


def test_report_folder_must_be_writable_and_ids_never_overwrite(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FetalPlanesError, match="cannot create it"):
        ExamTracker(PLANES, report_dir=blocker / "rep")
    for _ in range(2):
        tr = ExamTracker(PLANES, ExamConfig(seen_frames=2), report_dir=tmp_path / "rep", exam_id="same")
        feed(tr, 0, BRAIN_P, [0.9] * 3)
        tr.close()
    assert sorted(p.name for p in (tmp_path / "rep").iterdir() if p.is_dir()) == ["same", "same-2"]
