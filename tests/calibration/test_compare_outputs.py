"""The one output comparison (calibration/compare_outputs.py): tolerances, argmax and top-k agreement, counts."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.compare_outputs import compare_outputs, gate_evidence


def test_identical_outputs():
    x = np.random.default_rng(0).normal(size=(20, 6))
    c = compare_outputs(x, x.copy(), atol=0.0, min_agreement=1.0, top_k=(1, 3))
    assert c.ok and c.same == 20 and c.max_abs_diff == 0.0 and c.within_tolerance is True
    assert c.topk_agreement == {1: 1.0, 3: 1.0}


def test_absolute_and_relative_tolerance():
    ref = np.array([[10.0, 1.0], [0.5, 2.0]])
    cand = ref + np.array([[0.05, 0.0], [0.0, 0.011]])
    assert not compare_outputs(ref, cand, atol=0.01).ok  # 0.05 > 0.01
    c = compare_outputs(ref, cand, atol=0.01, rtol=0.01)  # 0.05 <= 0.01 + 0.01*10 and 0.011 <= 0.01 + 0.02
    assert c.ok and c.max_abs_diff == pytest.approx(0.05) and c.mean_abs_diff == pytest.approx(0.061 / 4)
    tight = compare_outputs(ref, cand, atol=0.001, rtol=0.001)
    assert not tight.ok and "exceeds the tolerance" in tight.problems[0]
    assert compare_outputs(ref, cand).within_tolerance is None  # no tolerance asked: not judged


def test_argmax_and_topk_agreement():
    ref = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    cand = np.array([[0.8, 0.15, 0.05], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5], [0.1, 0.2, 0.7]])
    c = compare_outputs(ref, cand, min_agreement=0.75, top_k=(1, 2, 3))
    # rows 1 and 2 flip; row 1's reference class is the candidate's 2nd, row 2's the candidate's 3rd
    assert c.same == 2 and c.changed == 2 and c.argmax_agreement == 0.5
    assert c.topk_agreement == {1: 0.5, 2: 0.75, 3: 1.0}
    assert not c.ok and "argmax agreement 0.5000 < 0.75 (2 of 4 changed)" in c.problems[0]
    assert compare_outputs(ref, cand, min_agreement=0.5).ok
    assert c.to_dict()["topk_agreement"] == {"1": 0.5, "2": 0.75, "3": 1.0}


def test_shapes_are_matched_and_empty_is_refused():
    ref = np.zeros((3, 4))
    assert compare_outputs(ref, np.zeros(12)).same == 3  # flat candidate reshaped to the reference
    with pytest.raises(ValueError):
        compare_outputs(np.zeros((0, 4)), np.zeros((0, 4)))


def test_gate_evidence_counts_agreement_on_all_rows_and_top1_on_the_labelled_ones():
    ref = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    cand = np.eye(4)[[0, 1, 3, 3, 1, 1]]  # row 2 (labelled) and row 4 (label-free) flip
    e = gate_evidence(ref, cand, targets=np.array([0, 1, 2, 0]), where="x")
    assert (e.images, e.same, e.labelled, e.reference_correct, e.candidate_correct) == (6, 4, 4, 3, 2)
    assert e.where == "x" and gate_evidence(ref, cand).labelled == 0
    with pytest.raises(ValueError):
        gate_evidence(ref[:2], cand[:2], targets=np.zeros(3, int))
