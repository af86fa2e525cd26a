"""Temporal logic of the live loop: smoothing, hysteresis, "uncertain", freeze.

Pure numpy. One :class:`TemporalLogic` per stream; per frame call
:meth:`TemporalLogic.step` with a small gray thumbnail of the frame (used for
freeze detection) and a callable that runs the model (called only when the
image changed, so a frozen scanner image is classified once).

- Smoothing: exponential moving average (EMA) of the class probabilities.
- Hysteresis: the shown label changes only when another class leads the
  smoothed probabilities by ``switch_margin`` for ``hold_frames`` frames.
- Uncertain: the shown label's smoothed probability is below ``uncertain_below``.
- Freeze: ``freeze_frames`` consecutive frames whose mean absolute gray-level
  difference to the previous frame is below ``freeze_diff``. On entering a
  freeze the frame is classified once more and a ``stored_plane`` event is
  reported: on a scanner, freezing the image is how a sonographer stores a plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from edge.errors import FetalPlanesError

STATE_OK = "ok"
STATE_UNCERTAIN = "uncertain"
STATE_FROZEN = "frozen"
EVENT_STORED_PLANE = "stored_plane"


@dataclass
class TemporalConfig:
    """Thresholds of the temporal logic (all overridable from the config file)."""

    ema_alpha: float = 0.4  # weight of the newest frame in the moving average (1 = no smoothing)
    switch_margin: float = 0.1  # a new label must lead the shown one by this much ...
    hold_frames: int = 3  # ... for this many consecutive frames
    uncertain_below: float = 0.5  # smoothed confidence under which the state is "uncertain"
    freeze_diff: float = 0.3  # mean |difference| (gray levels, 96 px thumbnails) under which two frames are "the same"
    freeze_frames: int = 8  # that many unchanged frames in a row = a frozen image

    def validate(self, source: str = "temporal settings") -> None:
        problems = []
        if not 0.0 < self.ema_alpha <= 1.0:
            problems.append(f"ema_alpha {self.ema_alpha} is not in (0, 1]")
        if not 0.0 <= self.switch_margin < 1.0:
            problems.append(f"switch_margin {self.switch_margin} is not in [0, 1)")
        if self.hold_frames < 1:
            problems.append(f"hold_frames {self.hold_frames} < 1")
        if not 0.0 <= self.uncertain_below <= 1.0:
            problems.append(f"uncertain_below {self.uncertain_below} is not in [0, 1]")
        if self.freeze_diff < 0:
            problems.append(f"freeze_diff {self.freeze_diff} < 0")
        if self.freeze_frames < 1:
            problems.append(f"freeze_frames {self.freeze_frames} < 1")
        if problems:
            raise FetalPlanesError(f"{source}: {'; '.join(problems)}", hint="fix these values in the config file or flags")


@dataclass
class Decision:
    """What the temporal logic says about one frame."""

    index: int  # index of the shown label
    label: str
    confidence: float  # smoothed probability of the shown label (or the frozen frame's own)
    state: str  # ok / uncertain / frozen
    probabilities: np.ndarray  # smoothed (or, when frozen, the frozen frame's) probabilities
    raw: np.ndarray | None  # this frame's own probabilities; None when the model was not run
    event: str | None = None  # "stored_plane" on the frame a freeze starts
    inferred: bool = True  # False when the model was not run (frozen image)
    labels: Sequence[str] = ()

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable (label, probability) pairs, best first."""
        order = np.argsort(-self.probabilities)[:k]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]


class FreezeDetector:
    """Says when consecutive thumbnails stop changing."""

    def __init__(self, diff: float, frames: int):
        self.diff = float(diff)
        self.frames = int(frames)
        self._prev: np.ndarray | None = None
        self.still = 0
        self.last_diff = float("inf")

    def reset(self) -> None:
        self._prev = None
        self.still = 0

    def update(self, thumb: np.ndarray | None) -> bool:
        """Feed one thumbnail (uint8 gray, any fixed size); True while frozen."""
        if thumb is None:
            self.reset()
            return False
        if self._prev is None or self._prev.shape != thumb.shape:
            self.last_diff = float("inf")
            self.still = 0
        else:
            # int16 difference without a float copy of the whole image
            self.last_diff = float(np.abs(thumb.astype(np.int16) - self._prev).mean())
            self.still = self.still + 1 if self.last_diff < self.diff else 0
        self._prev = thumb
        return self.still >= self.frames


class TemporalLogic:
    """EMA + hysteresis + uncertain + freeze, for one stream of frames."""

    def __init__(self, labels: Sequence[str], config: TemporalConfig | None = None):
        self.labels = list(labels)
        self.config = config or TemporalConfig()
        self.config.validate()
        self.freeze = FreezeDetector(self.config.freeze_diff, self.config.freeze_frames)
        self.ema: np.ndarray | None = None
        self.current: int | None = None
        self._pending: int | None = None
        self._pending_count = 0
        self._frozen: Decision | None = None
        self.stored_planes = 0
        self.label_changes = 0
        self.inferences = 0

    def reset(self) -> None:
        """Forget the history (e.g. after the source reconnected or the layout changed)."""
        self.freeze.reset()
        self.ema = None
        self.current = None
        self._pending = None
        self._pending_count = 0
        self._frozen = None

    def step(self, thumb: np.ndarray | None, infer: Callable[[], np.ndarray]) -> Decision:
        """One frame: ``thumb`` for freeze detection, ``infer()`` -> probabilities (called only if needed)."""
        frozen = self.freeze.update(thumb)
        if frozen and self._frozen is not None:
            d = self._frozen
            return self._decision(d.index, d.confidence, STATE_FROZEN, d.probabilities, None, inferred=False)
        if not frozen:
            self._frozen = None
        raw = np.asarray(infer(), dtype=np.float32).reshape(-1)
        self.inferences += 1
        if raw.shape[0] != len(self.labels):
            raise FetalPlanesError(
                f"the model returned {raw.shape[0]} scores for {len(self.labels)} labels",
                hint="the model's metadata does not match its output; re-export it",
                exit_code=1,
            )
        if frozen:  # the first frame of a freeze: the stored image, classified once
            return self._enter_freeze(raw)
        return self._update(raw)

    # --- internals -------------------------------------------------------
    def _update(self, raw: np.ndarray) -> Decision:
        c = self.config
        self.ema = raw.copy() if self.ema is None else (1.0 - c.ema_alpha) * self.ema + c.ema_alpha * raw
        p = self.ema
        best = int(np.argmax(p))
        if self.current is None:
            self._switch(best)
        elif best != self.current and p[best] - p[self.current] >= c.switch_margin:
            if best == self._pending:
                self._pending_count += 1
            else:
                self._pending, self._pending_count = best, 1
            if self._pending_count >= c.hold_frames:
                self._switch(best)
        else:
            self._pending, self._pending_count = None, 0
        conf = float(p[self.current])
        state = STATE_OK if conf >= c.uncertain_below else STATE_UNCERTAIN
        return self._decision(self.current, conf, state, p, raw)

    def _switch(self, index: int) -> None:
        if self.current is not None and index != self.current:
            self.label_changes += 1
        self.current = index
        self._pending, self._pending_count = None, 0

    def _enter_freeze(self, raw: np.ndarray) -> Decision:
        best = int(np.argmax(raw))
        # the frozen image decides; smoothing restarts from it when the image moves again
        self.ema = raw.copy()
        self._switch(best)
        self.stored_planes += 1
        d = self._decision(best, float(raw[best]), STATE_FROZEN, raw, raw, event=EVENT_STORED_PLANE)
        self._frozen = d
        return d

    def _decision(self, index, confidence, state, probs, raw, event=None, inferred=True) -> Decision:
        return Decision(index, self.labels[index], float(confidence), state, probs, raw, event, inferred, self.labels)
