"""The training command data-parallel under torchrun: two CPU processes, gloo, only rank 0 writes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")


def test_train_under_torchrun_two_cpu_processes(phantom_db, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "edge.cli", "train", "--data", str(phantom_db), "--out", str(out), "--pretrained", "none",
           "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--workers", "0", "--max-per-split", "16",
           "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x 2 processes" in proc.stdout  # it really ran distributed
    assert proc.stdout.count("epoch 1/2:") == 1  # only rank 0 reports (and writes)
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    from export.models import load_checkpoint

    _, info, ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and info.extra["train_images"] == 16
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no leftover temporary files
