"""Fault class: training on real data and its run folder. The real release has RGBA and large PNGs: with
the default DataLoader workers, training used to hang for ever in OpenCV after the fork. A damaged
last.pt says how to go on."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from faults_common import needs_proc, real_subset_db, run_cli

pytest.importorskip("torch")
TRAIN = ["--image-size", "32", "--pretrained", "none", "--no-progress", "--batch-size", "4"]


@pytest.fixture(scope="module")
def real12(real_db_dir, tmp_path_factory) -> Path:
    return real_subset_db(real_db_dir, tmp_path_factory.mktemp("real12"))


@pytest.mark.parametrize("cache", [pytest.param(True, marks=pytest.mark.slow), False],
                         ids=["cached", "decoded-in-workers"])
def test_train_on_the_real_images_with_default_workers_finishes(real12, tmp_path, cache):
    out = tmp_path / "run"
    args = ["train", "--data", str(real12), "--out", str(out), "--epochs", "1", *TRAIN]  # default --workers 2
    if not cache:
        args.append("--no-cache")  # every RGBA/large PNG decoded inside the forked workers
    r = run_cli(args, timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["last_epoch"] == 1 and (out / "best.pt").is_file()


def test_opencv_is_fork_safe_inside_the_guard():
    """The root cause, without torch: a child forked while the parent's OpenCV pool runs, calling
    cv2.setNumThreads, hung; inside opencv_fork_safe it returns at once."""
    needs_proc()
    import cv2
    import numpy as np

    from export.data_torch import opencv_fork_safe

    big = np.random.default_rng(0).integers(0, 255, (900, 1200, 4), dtype=np.uint8)
    cv2.cvtColor(big, cv2.COLOR_BGRA2GRAY)  # the parent's pool is started
    before = cv2.getNumThreads()
    with opencv_fork_safe(2):
        pid = os.fork()
        if pid == 0:  # the DataLoader worker's first OpenCV calls
            cv2.setNumThreads(1)
            cv2.cvtColor(big, cv2.COLOR_BGRA2GRAY)
            cv2.resize(big, (224, 224), interpolation=cv2.INTER_AREA)
            os._exit(0)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in OpenCV")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert cv2.getNumThreads() == before  # the parent's threads are given back


def test_resume_on_a_damaged_last_pt_says_how_to_go_on(real12, tmp_path, capsys):
    from edge.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", str(real12), "--out", str(out), "--epochs", "1", "--workers", "0", *TRAIN]) == 0
    last = out / "last.pt"
    last.write_bytes(last.read_bytes()[:20000])  # cut, as by a full disk or a lost copy
    resume = ["train", "--data", str(real12), "--out", str(out), "--epochs", "2", "--workers", "0", "--resume", *TRAIN]
    capsys.readouterr()
    assert main(resume) == 2
    err = capsys.readouterr().err
    for needle in ("last.pt", "damaged", f"cp {out / 'best.pt'} {last}", "epoch 1", "without --resume"):
        assert needle in err, err
    last.write_bytes((out / "best.pt").read_bytes())  # the advice works
    assert main(resume) == 0
    assert json.loads((out / "metrics.json").read_text())["last_epoch"] == 2
