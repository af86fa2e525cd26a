"""Temporal logic: smoothing, hysteresis, uncertain, freeze (pure numpy)."""

import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.live.temporal import EVENT_STORED_PLANE, TemporalConfig, TemporalLogic

LABELS = ["a", "b", "c"]


def onehot(i, p=0.9):
    v = np.full(3, (1 - p) / 2, np.float32)
    v[i] = p
    return v


def moving_thumbs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (16, 16), dtype=np.uint8) for _ in range(n)]


def test_single_outlier_does_not_flicker():
    t = TemporalLogic(LABELS, TemporalConfig(ema_alpha=0.5, hold_frames=3, freeze_frames=100))
    seq = [0] * 5 + [1] + [0] * 5  # one wrong frame
    labels = [t.step(th, lambda i=i: onehot(i)).label for i, th in zip(seq, moving_thumbs(len(seq)))]
    assert set(labels) == {"a"}
    assert t.label_changes == 0


def test_persistent_change_switches_after_hold_frames():
    cfg = TemporalConfig(ema_alpha=1.0, hold_frames=3, switch_margin=0.1, freeze_frames=100)
    t = TemporalLogic(LABELS, cfg)
    seq = [0] * 3 + [2] * 6
    labels = [t.step(th, lambda i=i: onehot(i)).label for i, th in zip(seq, moving_thumbs(len(seq)))]
    # with alpha=1 the raw label leads from frame 3; it must lead 3 frames before it is shown
    assert labels == ["a"] * 5 + ["c"] * 4
    assert t.label_changes == 1


def test_ema_smooths_probabilities():
    t = TemporalLogic(LABELS, TemporalConfig(ema_alpha=0.25, freeze_frames=100))
    thumbs = moving_thumbs(2)
    t.step(thumbs[0], lambda: np.array([1.0, 0.0, 0.0]))
    d = t.step(thumbs[1], lambda: np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(d.probabilities, [0.75, 0.25, 0.0], atol=1e-6)
    np.testing.assert_allclose(d.raw, [0.0, 1.0, 0.0])


def test_uncertain_below_threshold():
    t = TemporalLogic(LABELS, TemporalConfig(uncertain_below=0.5, freeze_frames=100))
    th = moving_thumbs(2)
    assert t.step(th[0], lambda: np.array([0.4, 0.35, 0.25])).state == "uncertain"
    t2 = TemporalLogic(LABELS, TemporalConfig(uncertain_below=0.5, freeze_frames=100))
    assert t2.step(th[1], lambda: np.array([0.8, 0.1, 0.1])).state == "ok"


def test_freeze_classified_once_and_reported_as_stored_plane():
    cfg = TemporalConfig(freeze_frames=3, freeze_diff=1.0)
    t = TemporalLogic(LABELS, cfg)
    calls = []

    def infer(i):
        calls.append(i)
        return onehot(i)

    moving = moving_thumbs(4)
    frozen = moving[-1]
    decisions = [t.step(th, lambda: infer(1)) for th in moving]
    # the same image (plus a little capture noise) for 10 frames
    rng = np.random.default_rng(1)
    for _ in range(10):
        noisy = np.clip(frozen.astype(np.int16) + rng.integers(-1, 2, frozen.shape), 0, 255).astype(np.uint8)
        decisions.append(t.step(noisy, lambda: infer(1)))
    states = [d.state for d in decisions]
    events = [d.event for d in decisions]
    assert events.count(EVENT_STORED_PLANE) == 1
    first = events.index(EVENT_STORED_PLANE)
    assert first == 4 + 2  # 3 unchanged frames after the last moving one
    assert all(s == "frozen" for s in states[first:])
    assert all(s != "frozen" for s in states[:first])
    # the model ran for every moving frame and once for the frozen image, never again
    assert len(calls) == first + 1
    assert [d.inferred for d in decisions[first + 1 :]] == [False] * (len(decisions) - first - 1)
    assert t.stored_planes == 1
    # motion again: unfrozen and inferring
    d = t.step(moving_thumbs(1, seed=9)[0], lambda: infer(1))
    assert d.state != "frozen" and d.inferred


def test_wrong_number_of_scores_is_an_error():
    t = TemporalLogic(LABELS)
    with pytest.raises(FetalPlanesError, match="4 scores for 3 labels"):
        t.step(None, lambda: np.ones(4) / 4)


@pytest.mark.parametrize("field,value", [("ema_alpha", 0.0), ("hold_frames", 0), ("uncertain_below", 1.5)])
def test_bad_config_rejected(field, value):
    with pytest.raises(FetalPlanesError, match=field):
        TemporalLogic(LABELS, TemporalConfig(**{field: value}))


def test_top_k_sorted():
    t = TemporalLogic(LABELS, TemporalConfig(freeze_frames=100))
    d = t.step(None, lambda: np.array([0.2, 0.5, 0.3]))
    assert [name for name, _ in d.top(3)] == ["b", "c", "a"]
