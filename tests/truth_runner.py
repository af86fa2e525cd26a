"""A stand-in model driven by a phantom video's truth sidecar (not a test module).

It exercises everything after the model (smoothing, hysteresis, freeze, the exam tracker) on the
timing of a real phantom video, with a classifier of known, imperfect quality: for each frame the
true plane leads by a margin drawn per segment, with Gaussian noise on every logit, and a share
``p_wrong`` of frames led by a random wrong class (more inside transitions, where the truth is only
the dominant of two cross-faded planes, where the margin is also scaled by ``transition_scale``). It is NOT a trained model: scores obtained with it measure
the loop's and tracker's logic, not recognition.

The loop runs the model once per new image, in frame order; the runner learns which frame comes
next from ``on_record`` (pass ``on_record=runner.seen`` to ``run_loop``): unpaced files lose no
frame, so the next inference is for the frame after the last record.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


class TruthRunner:
    def __init__(self, base_runner, truth_csv: str | Path, column: str = "plane", p_wrong: float = 0.15,
                 p_wrong_transition: float = 0.4, noise: float = 0.8, margin: tuple[float, float] = (2.0, 5.0),
                 transition_scale: float = 0.6, seed: int = 0):
        self.base = base_runner
        self.info = base_runner.info
        labels = list(self.info.labels)
        with open(truth_csv, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        self.rng = np.random.default_rng(seed)
        self.labels = labels
        self.truth = [labels.index(r[column]) for r in rows]
        self.state = [r["state"] for r in rows]
        # a margin per segment (some planes are easy, some hard), so confidences vary
        self.margin = np.empty(len(rows), np.float32)
        m = 0.0
        for i, r in enumerate(rows):
            if i == 0 or r[column] != rows[i - 1][column] or r["state"] != rows[i - 1]["state"]:
                m = float(self.rng.uniform(*margin))
            self.margin[i] = m
        self.p_wrong, self.p_wrong_transition, self.noise = p_wrong, p_wrong_transition, noise
        self.transition_scale = transition_scale
        self.next_frame = 0
        self.calls = 0

    def activate(self):
        self.base.activate()

    def deactivate(self):
        self.base.deactivate()

    def seen(self, record: dict) -> None:
        self.next_frame = int(record["frame"]) + 1

    def infer(self, x: np.ndarray) -> np.ndarray:
        i = min(self.next_frame, len(self.truth) - 1)
        self.calls += 1
        k = len(self.labels)
        logits = self.rng.normal(0.0, self.noise, k).astype(np.float32)
        lead = self.truth[i]
        p_wrong = self.p_wrong_transition if self.state[i] == "transition" else self.p_wrong
        if self.rng.random() < p_wrong:
            lead = int(self.rng.choice([j for j in range(k) if j != self.truth[i]]))
        # cross-fades are blurred mixtures of two planes: a classifier is less sure there
        logits[lead] += self.margin[i] * (self.transition_scale if self.state[i] == "transition" else 1.0)
        out = logits[None, :]
        if self.info.outputs == "probabilities":
            e = np.exp(out - out.max())
            out = e / e.sum()
        return out.astype(np.float32)
