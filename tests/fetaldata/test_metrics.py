import numpy as np
import pytest

from edge.errors import FetalPlanesError
from fetaldata.metrics import classification_metrics, confusion_matrix, expected_calibration_error, topk_error


def test_hand_made_case():
    labels = ["a", "b", "c", "d"]
    # rows: true a, a, b, b, c, d ; predictions a, b, b, b, a, d
    probs = np.array(
        [
            [0.7, 0.1, 0.1, 0.1],
            [0.3, 0.4, 0.2, 0.1],
            [0.1, 0.8, 0.05, 0.05],
            [0.2, 0.5, 0.2, 0.1],
            [0.5, 0.1, 0.3, 0.1],
            [0.1, 0.1, 0.1, 0.7],
        ]
    )
    t = np.array([0, 0, 1, 1, 2, 3])
    m = classification_metrics(probs, t, labels)
    assert m.n == 6
    assert m.top1_error == pytest.approx(2 / 6)
    # top-3: every true class is within the 3 most probable except none
    assert m.top3_error == pytest.approx(0.0)
    # per-class recall: a 1/2, b 1, c 0, d 1 -> mean 0.625
    assert m.class_accuracy_mean == pytest.approx(0.625)
    assert m.class_accuracy_std == pytest.approx(np.std([0.5, 1, 0, 1]))
    assert m.confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    pc = {d["label"]: d for d in m.per_class}
    assert pc["a"]["precision"] == pytest.approx(0.5)
    assert pc["b"]["precision"] == pytest.approx(2 / 3)
    assert pc["c"]["f1"] == 0.0
    assert m.to_dict()["confusion"][0] == [1, 1, 0, 0]


def test_topk_and_confusion():
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    t = np.array([0, 3])
    assert topk_error(probs, t, 1) == 1.0
    assert topk_error(probs, t, 3) == 1.0
    assert topk_error(probs, t, 4) == 0.0
    assert confusion_matrix([0, 1, 1], [1, 1, 0], 2).tolist() == [[0, 1], [1, 1]]


def test_ece_perfectly_calibrated_and_overconfident():
    probs = np.array([[1.0, 0.0]] * 10)
    assert expected_calibration_error(probs, np.zeros(10, int)) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.ones(10, int)) == pytest.approx(1.0)


def test_bad_inputs_are_clear():
    with pytest.raises(FetalPlanesError, match="no images"):
        classification_metrics(np.zeros((0, 3)), np.zeros(0, int), ["a", "b", "c"])
    with pytest.raises(FetalPlanesError, match="out of range"):
        classification_metrics(np.ones((2, 3)) / 3, np.array([0, 5]), ["a", "b", "c"])
    with pytest.raises(FetalPlanesError, match="labels"):
        classification_metrics(np.ones((2, 3)) / 3, np.array([0, 1]), ["a", "b"])


# Newcombe, "Two-sided confidence intervals for the single proportion", Stat. Med. 17:857 (1998), Table I,
# method 3 (score interval without continuity correction), to 4 decimals
@pytest.mark.parametrize("k,n,lo,hi", [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
                                       (1, 29, 0.0061, 0.1718)])
def test_wilson_interval_against_newcombe_1998(k, n, lo, hi):
    from fetaldata.metrics import wilson_interval

    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=6e-5) and got[1] == pytest.approx(hi, abs=6e-5)


def test_wilson_interval_edges_and_formatting():
    from fetaldata.metrics import format_proportion, wilson_interval

    assert wilson_interval(13, 13) == (pytest.approx(13 / (13 + 1.959963984540054 ** 2)), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert format_proportion(12, 13) == "92.3 % (95 % CI 66.7–98.6 %)"
    assert format_proportion(290, 300) == "96.7 %"  # from 300 images on, the plain figure
    assert format_proportion(290, 300, always_interval=True).startswith("96.7 % (95 % CI ")
    with pytest.raises(FetalPlanesError):
        wilson_interval(5, 4)


def test_metrics_carry_the_interval():
    from fetaldata.metrics import wilson_interval

    probs = np.eye(3)[[0, 1, 2, 0]]
    m = classification_metrics(probs, np.array([0, 1, 2, 1]), ["a", "b", "c"])
    assert m.top1_correct == 3
    assert m.to_dict()["top1_accuracy_ci95"] == pytest.approx(list(wilson_interval(3, 4)))
