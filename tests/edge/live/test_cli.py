"""`fetalplanes run` and `classify` as a user runs them (subprocesses where signals matter)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.labels import PLANES

REPO = Path(__file__).resolve().parents[3]


def short_clip(real_videos):
    return min(real_videos, key=lambda p: cv2.VideoCapture(str(p)).get(cv2.CAP_PROP_FRAME_COUNT))


def test_run_with_config_file_and_summary(tiny_onnx, real_videos, tmp_path, capsys):
    clip = short_clip(real_videos)
    box = tmp_path / "box.toml"
    box.write_text(
        f'model = "{tiny_onnx}"\ninput = "{clip}"\noutputs = ["jsonl://{tmp_path / "p.jsonl"}"]\n'
        f'status = "{tmp_path / "st.json"}"\n[temporal]\nuncertain_below = 0.99\n'
    )
    rc = main(["run", "--config", str(box), "--max-frames", "7", "--summary-json", str(tmp_path / "s.json"), "-q"])
    assert rc == 0
    recs = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(recs) == 7 and all(r["state"] == "uncertain" for r in recs)  # the file's threshold applied
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 7 and summary["end_reason"] == "max frames reached"
    assert "7 frames" in capsys.readouterr().out


def test_run_missing_model_exits_2(real_videos, tmp_path, capsys):
    rc = main(["run", "--model", str(tmp_path / "none.onnx"), "--input", str(real_videos[0])])
    assert rc == 2 and "model file not found" in capsys.readouterr().err


def test_sigint_stops_cleanly_and_flushes(tiny_onnx, real_videos, tmp_path):
    clip = short_clip(real_videos)
    jsonl, video, status = tmp_path / "p.jsonl", tmp_path / "rec.avi", tmp_path / "st.json"
    cmd = [sys.executable, "-m", "edge.cli", "run", "--model", str(tiny_onnx), "--input", str(clip), "--loop",
           "--pace", "realtime", "--output", f"jsonl://{jsonl}", "--output", str(video), "--status", str(status), "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it is labelling frames
            if status.exists() and json.loads(status.read_text() or "{}").get("frames", 0) >= 5:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the loop never started: " + proc.stderr.read() if proc.poll() is not None else "timeout")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted (SIGINT)" in out
    lines = jsonl.read_text().splitlines()
    recs = [json.loads(line) for line in lines]  # every line complete
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    assert len(recs) >= 5 and n == len(recs)  # the recording was closed properly, every frame in it
    assert json.loads(status.read_text())["state"] == "stopped"


def make_archive(root):
    rng = np.random.default_rng(0)
    (root / "exam_b").mkdir(parents=True)
    (root / "x").mkdir()
    for name in ["Patient00002_Plane1_10_of_15.png", "Patient00002_Plane1_2_of_15.png", "Patient00001_Plane3_1_of_3.png"]:
        cv2.imwrite(str(root / "x" / name), rng.integers(0, 255, (50, 60), dtype=np.uint8))
    cv2.imwrite(str(root / "exam_b" / "img1.jpg"), rng.integers(0, 255, (50, 60, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "exam_b" / "img2.png"), rng.integers(0, 255, (50, 60, 4), dtype=np.uint8))
    (root / "exam_b" / "broken.png").write_bytes(b"not an image")


def test_classify_csv_sorted_by_exam(tiny_onnx, tmp_path, capsys):
    make_archive(tmp_path / "arch")
    out = tmp_path / "results.csv"
    rc = main(["classify", str(tmp_path / "arch"), "--model", str(tiny_onnx), "--out", str(out), "--batch", "2"])
    assert rc == 0
    rows = list(csv.DictReader(open(out)))
    # exams in natural, case-insensitive order; the exam from the name, else from the folder
    assert [(r["exam"], Path(r["file"]).name) for r in rows] == [
        ("exam_b", "broken.png"),
        ("exam_b", "img1.jpg"),
        ("exam_b", "img2.png"),
        ("Patient00001", "Patient00001_Plane3_1_of_3.png"),
        ("Patient00002", "Patient00002_Plane1_2_of_15.png"),
        ("Patient00002", "Patient00002_Plane1_10_of_15.png"),
    ]
    good = [r for r in rows if not r["error"]]
    assert len(good) == 5 and "not a readable image" in rows[0]["error"]
    for r in good:
        assert r["label"] == r["top1"] and r["label"] in PLANES
        assert float(r["top1_p"]) >= float(r["top2_p"]) >= float(r["top3_p"]) > 0
        assert float(r["confidence"]) == float(r["top1_p"])
    assert "6 images, 3 exams, 1 unreadable" in capsys.readouterr().err


def test_classify_same_result_as_runner_predict(tiny_onnx, real_db_dir, tmp_path):
    from edge.backends import open_runner
    from edge.preprocess import read_gray

    out = tmp_path / "r.csv"
    images = real_db_dir / "Images"
    assert main(["classify", str(images), "--model", str(tiny_onnx), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == len(list(images.glob("*.png"))) and all(r["exam"].startswith("Patient") for r in rows)
    with open_runner(str(tiny_onnx)) as runner:
        for r in rows[:4]:
            p = runner.predict([read_gray(r["file"])])[0]
            assert r["label"] == PLANES[int(np.argmax(p))]
            assert float(r["confidence"]) == pytest.approx(float(p.max()), abs=1e-4)


def test_classify_dicom_without_pydicom_is_clear(tiny_onnx, tmp_path, capsys):
    try:
        import pydicom  # noqa: F401
        pytest.skip("pydicom is installed here")
    except ImportError:
        pass
    (tmp_path / "a.dcm").write_bytes(b"\0" * 200)
    rc = main(["classify", str(tmp_path), "--model", str(tiny_onnx), "--out", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "pydicom" in err and "fetalplanes[dicom]" in err
