"""The layer search: KL/margin ranking, the criterion with its resolution and label-free agreement images,
greedy put-back (largest weights first), --method auto."""

from __future__ import annotations

import json

import numpy as np
import pytest
from calib_fixtures import make_outlier_onnx, phantom_db_60  # noqa: F401

from calibration.quantize_ort import (
    QuantizeConfig,
    calibrate_ranges,
    node_weight_bytes,
    prepare_for_quantization,
    quantizable_nodes,
    quantize_with_ranges,
)
from calibration.sensitivity import (
    _predict_plain,
    judge,
    kl_divergence,
    layer_sensitivity,
    margin_loss,
    put_back,
    search_exclusions,
)
from edge.cli import main


def _probs(rng, n, k=6):
    z = rng.normal(0, 2, (n, k))
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_judge_resolution_and_label_free_agreement_images():
    rng = np.random.default_rng(0)
    ref = _probs(rng, 500)
    targets = ref[:96].argmax(1)  # 96 labelled rows, 404 label-free ones
    worse = ref.copy()
    worse[0] = worse[0][::-1]  # one labelled image lost: 1.04 points, below the resolution: allowed
    h = judge(ref, worse, targets, max_drop=1.0, min_agreement=0.99)
    assert h.labelled_images == 96 and h.agreement_images == 500
    assert h.resolution_points == pytest.approx(100 / 96) and h.allowed_drop_points == pytest.approx(100 / 96)
    assert h.drop_points == pytest.approx(100 / 96) and h.flips == 1 and h.ok
    worse[1] = worse[1][::-1]  # two lost: beyond one image
    assert not judge(ref, worse, targets, 1.0, 0.99).ok
    # flips on label-free rows count against the agreement only
    other = ref.copy()
    for i in range(100, 106):  # 6 of 500 = 98.8 % agreement
        other[i] = other[i][::-1]
    h = judge(ref, other, targets, 1.0, 0.99)
    assert h.drop_points == 0.0 and h.flips == 6 and not h.ok
    assert judge(ref, other, targets, 1.0, 0.98).ok
    # with 200 labelled images the resolution (0.5) is finer than --max-drop: the threshold itself applies
    assert judge(ref, ref, ref[:200].argmax(1), 1.0, 0.99).allowed_drop_points == 1.0
    with pytest.raises(ValueError):
        judge(ref[:10], ref[:10], targets, 1.0, 0.99)


def test_kl_and_margin_loss():
    rng = np.random.default_rng(1)
    p = _probs(rng, 50)
    assert np.allclose(kl_divergence(p, p), 0.0, atol=1e-9) and np.allclose(margin_loss(p, p), 0.0)
    q = 0.7 * p + 0.3 / p.shape[1]  # flatter: every winner loses margin, no argmax changes
    assert (q.argmax(1) == p.argmax(1)).all()
    assert (kl_divergence(p, q) > 0).all() and (margin_loss(p, q) > 0).all()
    sharper = p ** 2 / (p ** 2).sum(1, keepdims=True)  # the winner's margin grows: no loss
    assert np.allclose(margin_loss(p, sharper), 0.0)


def test_put_back_tries_largest_weights_first_and_keeps_int8_where_harmless():
    kept = ["act", "small", "big", "needed", "huge"]
    weights = {"act": 0, "small": 10, "big": 1000, "needed": 500, "huge": 10_000}
    calls = []

    def holds(rest):
        calls.append(list(rest))
        return "needed" in rest  # only 'needed' must stay in float

    final, tries = put_back(kept, holds, weights, {"act": 0.1})
    assert final == ["needed"]
    assert [t["node"] for t in tries] == ["huge", "big", "needed", "small", "act"]
    assert [t["int8_ok"] for t in tries] == [True, True, False, True, True]
    assert calls[0] == ["act", "small", "big", "needed"]  # each try removes one node from the current set
    # ties in weight: least sensitive first
    _, tries = put_back(["a", "b"], lambda rest: True, {}, {"a": 0.9, "b": 0.1})
    assert [t["node"] for t in tries] == ["b", "a"]


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    d = tmp_path_factory.mktemp("outlier")
    prep = prepare_for_quantization(make_outlier_onnx(d / "o.onnx"), d / "prep.onnx")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (64, 1, 32, 32)).astype(np.float32)
    config = QuantizeConfig(method="minmax")
    cache = calibrate_ranges(prep, x, config, d / "r.json")
    return prep, cache, config, x, _predict_plain(prep, x, 1)


def test_node_weight_bytes(outlier):
    prep = outlier[0]
    w = node_weight_bytes(prep)
    assert w["conv"] == 8 * 1 * 3 * 3 * 4 and w["head"] == 6 * 8 * 4 and w["relu"] == 0 and w["pool"] == 0


def test_search_puts_harmless_layers_back_in_int8(outlier):
    prep, cache, config, x, ref = outlier
    targets = ref.argmax(1)
    full = quantize_with_ranges(prep, prep.with_name("full.onnx"), cache, config, metadata=False)
    assert not judge(ref, _predict_plain(full, x, 1), targets, 1.0, 0.99).ok  # the full INT8 model breaks
    sens = layer_sensitivity(prep, cache, config, x, ref, quantizable_nodes(prep), 1)
    assert {s.node for s in sens} == set(quantizable_nodes(prep)) and all(s.kl >= 0 for s in sens)
    assert [s.score for s in sens] == sorted((s.score for s in sens), reverse=True)
    # a bad ranking (least sensitive first) makes the bisection keep many layers; put-back must undo that
    ranking = [s.node for s in reversed(sens)]
    weights = node_weight_bytes(prep)
    r = search_exclusions(prep, cache, config, ranking, x, ref, targets, 1.0, 0.99, 1, weight_bytes=weights)
    assert r.holds is not None and r.holds.ok and r.smallest_k is not None
    assert 0 < len(r.excluded) < r.smallest_k  # fewer in float than the bisection's set
    assert set(r.excluded) <= set(ranking[: r.smallest_k])
    back = [t["node"] for t in r.put_back if t["int8_ok"]]
    assert back and not set(back) & set(r.excluded)
    assert [t["weight_bytes"] for t in r.put_back] == sorted((t["weight_bytes"] for t in r.put_back), reverse=True)
    # re-quantized independently with the final exclusions, the accuracy holds; without put-back it keeps more
    again = quantize_with_ranges(prep, prep.with_name("again.onnx"), cache, config, nodes_to_exclude=r.excluded,
                                 metadata=False)
    assert judge(ref, _predict_plain(again, x, 1), targets, 1.0, 0.99).ok
    # no KL increase allowed at all: a put-back needs a candidate at least as close to FP32 as the bisection set
    strict = search_exclusions(prep, cache, config, ranking, x, ref, targets, 1.0, 0.99, 1, weight_bytes=weights,
                               kl_slack=0.0)
    assert strict.holds.ok and len(strict.excluded) >= len(r.excluded)
    plain = search_exclusions(prep, cache, config, ranking, x, ref, targets, 1.0, 0.99, 1, prune=False)
    assert plain.excluded == ranking[: plain.smallest_k] and len(plain.excluded) > len(r.excluded)


def test_method_auto_tries_each_and_keeps_the_closest(phantom_db_60, tmp_path, capsys):
    src = make_outlier_onnx(tmp_path / "outlier.onnx")
    out = tmp_path / "outlier.int8.onnx"
    code = main(["quantize", "--onnx", str(src), "--data", str(phantom_db_60), "--out", str(out), "--calib-size", "32",
                 "--method", "auto", "--num-bins", "256", "--threads", "1", "--speed-seconds", "0.1",
                 "--speed-rounds", "1", "--agreement-images", "20"])
    r = json.loads((tmp_path / "outlier.int8.quantize.json").read_text())
    assert code == (0 if r["accuracy_holds"] else 1), capsys.readouterr()
    tried = {m["method"]: m for m in r["methods"]}
    assert set(tried) == {"minmax", "entropy", "percentile"}
    best = min(tried.values(), key=lambda m: (not m["ok"], -m["agreement"], m["kl"]))
    assert r["settings"]["method"] == best["method"]
    assert r["validation"]["int8_all_layers"]["kl"] == pytest.approx(best["kl"])
    c = r["criterion"]
    assert c["agreement_extra_training_images"] == 20 and c["agreement_images"] == c["labelled_images"] + 20
    assert c["resolution_points"] == pytest.approx(100 / c["labelled_images"])
    md = (tmp_path / "outlier.int8.quantize.md").read_text()
    assert "Calibration method used: **" + best["method"] in md


def test_put_back_stops_once_the_size_target_is_met():
    from calibration.sensitivity import put_back

    kept = ["a", "b", "c", "d"]
    weights = {"a": 400, "b": 300, "c": 200, "d": 100}
    asked: list[list[str]] = []

    def holds(rest):
        asked.append(rest)
        return True

    # "enough" once at most two layers remain in float: only two put-backs are tried
    left, tries = put_back(kept, holds, weights, enough=lambda cur: len(cur) <= 2)
    assert left == ["c", "d"] and len(asked) == 2
    assert tries[-1] == {"node": None, "stopped": "size target met"}
    # without a target every layer is tried
    left, tries = put_back(kept, holds, weights)
    assert left == [] and len(tries) == 4


def test_expected_agreement_sets_each_margin_loss_against_the_labelled_margins():
    from calibration.sensitivity import expected_agreement, logit_margin

    ref = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.55, 0.45]])
    assert expected_agreement(ref, ref) == 1.0  # no loss anywhere
    m = logit_margin(ref, ref)
    assert np.allclose(m, np.log(ref[:, 0]) - np.log(ref[:, 1]))
    # every image loses a little more than the smallest margin (image 3): that margin flips in every pair
    small = m.min() + 0.01
    lowered = ref.copy()
    for i in range(len(ref)):  # shift each image's logit margin down by `small`
        logits = np.log(ref[i]) - np.array([small, 0.0])
        lowered[i] = np.exp(logits) / np.exp(logits).sum()
    assert logit_margin(ref, lowered) == pytest.approx(m - small)
    assert expected_agreement(ref, lowered) == pytest.approx(1 - 1 / 4)
    # margins from the first n (labelled) images only: there the smallest of 2 margins is above the loss
    assert expected_agreement(ref, lowered, n_margins=2) == 1.0
    # larger losses: never more expected agreement (smooth, monotone), and 0 once every margin is exceeded
    values = []
    for loss in (0.05, 0.5, 1.0, 3.0):
        z = np.log(ref) - np.array([loss, 0.0])
        values.append(expected_agreement(ref, np.exp(z) / np.exp(z).sum(1, keepdims=True)))
    assert values == sorted(values, reverse=True) and values[-1] == 0.0
    h = judge(ref, lowered, np.zeros(4, int), 100.0, 0.0, min_expected=0.9)
    assert h.expected_agreement == pytest.approx(0.75) and not h.ok and judge(ref, lowered, np.zeros(4, int), 100.0, 0.0).ok
