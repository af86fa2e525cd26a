"""The live loop's records count a prediction as its most probable plane (ModelInfo.task_decision), as
evaluate and classify do, also when the top view belongs to another plane."""

from __future__ import annotations

import json

import cv2
import numpy as np

from edge.backends import open_runner
from edge.default_model import DEFAULT_MODEL
from edge.live.config import RunConfig
from edge.live.loop import run_loop


class FixedRunner:
    """The shipped SonoNet-16's description, a fixed output: Brain (Tv.) on top, Other's views add up to more."""

    def __init__(self, base):
        self.base, self.info = base, base.info
        p = np.zeros(len(self.info.labels), np.float32)
        labels = list(self.info.labels)
        p[labels.index("Brain (Tv.)")] = 0.35
        for view in ("Lips", "Profile", "Kidneys"):
            p[labels.index(view)] = 0.15
        p[labels.index("4CH")] = 0.20
        self.p = p

    def activate(self):
        self.base.activate()

    def deactivate(self):
        self.base.deactivate()

    def infer(self, x):
        return np.repeat(self.p[None], len(x), 0)


def test_records_carry_the_most_probable_plane(tmp_path):
    video = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(6):
        w.write(cv2.cvtColor(rng.integers(0, 255, (120, 160), np.uint8), cv2.COLOR_GRAY2BGR))
    w.release()
    out = tmp_path / "r.jsonl"
    cfg = RunConfig(model=str(DEFAULT_MODEL), input=str(video), outputs=[f"jsonl://{out}"], log_every_s=0, threads=1)
    run_loop(cfg, runner=FixedRunner(open_runner(str(DEFAULT_MODEL))))
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert records
    assert {r["label"] for r in records} <= {"Brain (Tv.)", "uncertain"}  # the top view is shown as it was
    for r in records:
        assert r["plane"] == "Other"  # 0.45 of Other's views against 0.35 of the brain view
