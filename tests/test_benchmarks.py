"""Mechanics of the benchmark scripts and of calibration.speed on the tiny ONNX fixture (not timings)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_live  # noqa: E402
import bench_models  # noqa: E402
import common  # noqa: E402

from calibration import speed  # noqa: E402


def test_interleaved_timing_counts_images_and_orders_percentiles():
    calls = {"a": 0}

    def slow(x):
        calls["a"] += 1
        return x.sum(axis=(1, 2, 3))[:, None]

    t = speed.time_interleaved([speed.Runtime("a", "ort-fp32", slow)], np.zeros((4, 1, 8, 8), np.float32),
                               seconds=0.01, rounds=2, warmup=1)["a"]
    assert t.calls == calls["a"] - 1 >= 6  # >= 3 calls per round, warm-up not counted
    assert t.p50_ms <= t.p90_ms <= t.p99_ms and 0 < t.hz <= t.hz_best


def test_disagreeing_runtime_is_reported_not_timed():
    ref = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    wrong = speed.Runtime("bad", "opencv", lambda x: np.array([[0.0, 1.0]], np.float32))
    assert not speed.check_agreement(wrong, np.zeros((2, 1, 4, 4), np.float32), ref, atol=1e-2)
    assert wrong.infer is None and "DISAGREES" in wrong.note and wrong.agreement["argmax_agreement"] == 0.5


def test_bench_models_core_on_tiny_onnx(tiny_onnx, tmp_path):
    files = bench_models.ModelFiles("tiny", Path(tiny_onnx), None, {"same file": Path(tiny_onnx)})
    result = bench_models.run_bench([files], batches=(1, 2), threads=1, seconds=0.01, rounds=1, log=lambda m: None)
    (m,) = result["models"]
    rows = {r["name"]: r for r in m["runtimes"]}
    assert rows["ORT FP32"]["batches"]["1"]["hz"] > 0 and rows["ORT FP32"]["batches"]["2"]["hz"] > 0
    assert rows["ORT FP32"]["batches"]["1"]["x_ort_fp32"] == pytest.approx(1.0)
    assert rows["ORT INT8 (same file)"]["agreement"]["argmax_agreement"] == 1.0
    assert "OpenCV DNN" in rows  # timed if it agreed, else a note says why
    assert rows["OpenCV DNN"]["batches"]["1"] is not None or rows["OpenCV DNN"]["note"]
    assert result["machine"]["cpu"]["logical_cpus"] >= 1
    paths = bench_models.write_results(result, tmp_path)
    md = paths["md"].read_text()
    assert "| ORT FP32 | 1 |" in md and "2-core machine SHARED" in md and paths["png"].stat().st_size > 0
    assert json.loads(paths["json"].read_text())["models"][0]["model"] == "tiny"


def test_targets_compare_best_deployable_with_pytorch():
    def rt(name, kind, hz):
        return {"name": name, "kind": kind, "deployable": kind != "pytorch",
                "batches": {"1": {"hz": hz, "x_pytorch": hz / 10.0}}}

    res = {"models": [{"model": "resnet18", "runtimes": [rt("PyTorch eager", "pytorch", 10.0), rt("ORT FP32", "ort-fp32", 30.0),
                                                         rt("ORT INT8 (uint8 act.)", "ort-int8", 20.0)]},
                      {"model": "mobilenet_v2", "runtimes": [rt("PyTorch eager", "pytorch", 10.0), rt("ORT FP32", "ort-fp32", 40.0)]}]}
    checks = {c["model"]: c for c in bench_models.check_targets(res)}
    assert checks["resnet18"]["best"] == "ORT FP32" and checks["resnet18"]["ok"] is True  # 3.0 >= 2.5
    assert checks["mobilenet_v2"]["value"] == 4.0 and checks["mobilenet_v2"]["ok"] is False  # 4.0 < 5


def test_measure_hz_is_the_shared_interleaved_timing(tiny_onnx):
    (r,) = speed.measure_hz([tiny_onnx], threads=1, seconds=0.01, rounds=2, warmup=1)
    assert r.hz > 0 and r.latency_ms_p50 > 0 and r.threads == 1 and r.rounds == 2


@pytest.mark.parametrize("holds, heldout, ok", [
    (True, 1.0, True), (None, 0.995, True), (True, None, True),
    (False, 1.0, False),  # quantize's validation check failed: never deployable, whatever the agreement
    (True, 0.25, False),  # held-out agreement below 0.99: never deployable, whatever quantize said
    (None, None, False),  # no evidence at all
])
def test_int8_deployable_only_when_accuracy_holds(holds, heldout, ok):
    agreement = {} if heldout is None else {"heldout_agreement": heldout, "heldout_images": 100}
    verdict, why = speed.judge_deployable("ort-int8", agreement, holds, 0.99)
    assert verdict is ok and why


def test_failing_variant_is_never_reported_deployable(make_tiny_onnx, tiny_onnx, tmp_path):
    """A faster 'INT8' variant whose predictions differ from FP32 is timed but never the best deployable."""
    other = make_tiny_onnx(tmp_path / "other.onnx", seed=7)  # different weights: disagrees with FP32
    files = bench_models.ModelFiles("mobilenet_v2", Path(tiny_onnx), None,
                                    {"uint8 act.": other, "int8 act.": Path(tiny_onnx)},
                                    quantize_holds={"uint8 act.": True, "int8 act.": False})
    from edge.backends import read_model_info
    from export.onnx_export import phantom_inputs

    held = phantom_inputs(read_model_info(tiny_onnx), 30, seed=1)
    m = speed.measure_model("mobilenet_v2", None, tiny_onnx, files.int8, held[:8], (1,), 1, 0.01, 1, opencv=False,
                            log=lambda msg: None, heldout=held, quantize_holds=files.quantize_holds)
    rows = {r["name"]: r for r in m["runtimes"]}
    bad, failed_quantize = rows["ORT INT8 (uint8 act.)"], rows["ORT INT8 (int8 act.)"]
    assert bad["agreement"]["heldout_agreement"] < 0.99 and bad["deployable"] is False
    assert failed_quantize["agreement"]["heldout_agreement"] == 1.0 and failed_quantize["deployable"] is False
    assert rows["ORT FP32"]["deployable"] is True
    # even when the failing variants are the fastest, they are not the best deployable, nor in the target
    for r in (bad, failed_quantize):
        r["batches"]["1"]["hz"] = 1e9
    assert speed.best_deployable(m, 1)["name"] == "ORT FP32"
    (check,) = bench_models.check_targets({"models": [m]})
    assert check["best"] == "ORT FP32"
    md = bench_models.markdown({"machine": {"cpu": {"model": "x", "usable_cpus": 1, "isa": {}, "int8_dot_product": False},
                                            "os": "x", "python": "3", "when": "now"},
                                "batches": [1], "threads": 1, "rounds": 1, "seconds_per_round": 0.01, "note": "n",
                                "tensorrt": "t", "models": [m], "targets": [check]})
    assert "| ORT INT8 (uint8 act.) | 1 |" in md and "NO (held-out: argmax agreement" in md
    assert "quantize: accuracy does not hold" in md


def test_bench_live_child_runs_edge_only(tiny_onnx, tmp_path):
    from fetaldata.phantom.video import write_phantom_video

    video = write_phantom_video(tmp_path / "v.mp4", seconds=1.0, fps=10, width=320, height=240, seed=0)
    result = bench_live.run_bench(tiny_onnx, [video], threads=1, latency_frames=0, max_frames=6, model_seconds=0.01,
                                  model_rounds=1, log=lambda m: None)
    (clip,) = result["clips"]
    un = clip["run"]
    assert "error" not in un, un
    assert un["frames"] == 6 and un["hz"] > 0 and un["infer_ms"] > 0 and un["decode_ms"] > 0
    assert un["overlay_ms"] is not None and un["temporal_ms"] is not None
    assert un["torch_imported"] is False and 10 < un["peak_rss_mb"] < 250  # the child's own peak, not the parent's
    assert un["live_over_model"] == pytest.approx(un["hz"] / un["model_only_hz"])
    mem = next(t for t in result["targets"] if t["target"].startswith("edge"))
    assert mem["measured"] == un["peak_rss_mb"] and mem["pass"] is True
    paths = bench_live.write_results(result, tmp_path)
    assert "| v.mp4 | 320x240 |" in paths["md"].read_text() and paths["png"].stat().st_size > 0


def test_bench_live_latency_rows_and_targets(tiny_onnx, tmp_path):
    """Paced latency runs loop the clip to the frame count; a 1920x1080 clip is made; SonoNet rows say 'not run'."""
    from fetaldata.phantom.video import write_phantom_video

    video = write_phantom_video(tmp_path / "v.mp4", seconds=1.0, fps=10, width=320, height=240, seed=0)
    result = bench_live.run_bench(tiny_onnx, [video], threads=1, latency_frames=25, latency_clips=[video],
                                  throughput=False, modes=("paced-60",), model_seconds=0.01, model_rounds=1,
                                  log=lambda m: None)
    rows = result["latency"]  # with the output thread, then the same without it (for comparison)
    assert [(r["mode"], r["width"], r["height"], r["output_thread"]) for r in rows] == [
        ("paced-60", 320, 240, True), ("paced-60", 1920, 1080, True), ("paced-60", 320, 240, False), ("paced-60", 1920, 1080, False)]
    for r in rows:
        assert "error" not in r, r
        o = r["overlay_latency"]
        assert r["frames"] == 25 and o["samples"] + r["output_dropped"] + r["display_skipped"] == 25  # 10 frames, looped
        assert r["output_thread"] or r["output_dropped"] == r["display_skipped"] == 0
        assert o["mean_ms"] > 0 and o["p50_ms"] <= o["p90_ms"] <= o["p95_ms"] <= o["p99_ms"] <= o["p99.9_ms"] <= o["max_ms"]
        assert 0 < r["cpu_cores"] < 64
    t = {row["target"]: row for row in result["targets"]}
    hdmi = next(v for k, v in t.items() if "1920x1080" in k and not k.startswith("sononet"))
    assert hdmi["measured"] == rows[1]["overlay_latency"]["p99.9_ms"] and hdmi["pass"] == (hdmi["measured"] <= 1000 / 60)
    sono = [v for k, v in t.items() if k.startswith("sononet16_int8")]
    assert len(sono) == 2 and all(v["pass"] is None and v["note"].startswith("not run: no SonoNet model") for v in sono)
    md = bench_live.markdown(result)
    assert "p99.9" in md and "1920x1080" in md and "load average" in md and "paced-60, no output thread" in md


def test_targets_file_schema_from_one_tiny_run(tiny_onnx, tmp_path):
    import run_all
    from fetaldata.phantom.video import write_phantom_video

    t0 = __import__("time").time()
    files = bench_models.ModelFiles("mobilenet_v2", Path(tiny_onnx), None, {"same file": Path(tiny_onnx)})
    bench_models.write_results(bench_models.run_bench([files], batches=(1,), threads=1, seconds=0.01, rounds=1,
                                                      log=lambda m: None), tmp_path)
    video = write_phantom_video(tmp_path / "v.mp4", seconds=0.5, fps=10, width=320, height=240, seed=0)
    live = bench_live.run_bench(tiny_onnx, [video], threads=1, latency_frames=0, max_frames=3, model_seconds=0.01,
                                model_rounds=1, log=lambda m: None)
    bench_live.write_results(live, tmp_path)
    path = run_all.write_targets_file(tmp_path, t0, {"id": "test-run", "quick": True, "load_average_start": 0.1}, "not run")
    data = json.loads(path.read_text())
    assert data["run"]["id"] == "test-run" and data["targets"] and data["run"]["loaded"] is False
    assert data["run"]["latency_frames"] == 0  # what this live.json ran (0: no latency part)
    for row in data["targets"]:
        assert {"target", "measured", "pass", "run"} <= set(row) and row["run"] == "test-run"
        assert row["pass"] in (True, False, None) and (row["measured"] is None or isinstance(row["measured"], float))
        assert row["pass"] is None or row["measured"] is not None
    names = [r["target"] for r in data["targets"]]
    assert any(n.startswith("mobilenet_v2: best deployable") for n in names)
    assert any(n.startswith("edge process peak memory") for n in names)
    assert any("capture-to-overlay" in n for n in names)
    loaded = run_all.write_targets_file(tmp_path, t0, {"id": "busy", "load_average_end": 99.0}, "not run")
    rows = json.loads(loaded.read_text())["targets"]
    assert all(r["note"].startswith("measured on a loaded machine") for r in rows if r["measured"] is not None)
    # a stale models.json (older than the run) is not taken as this run's
    old = run_all.write_targets_file(tmp_path, __import__("time").time() + 60, {"id": "later"}, "not run: skipped")
    rows = json.loads(old.read_text())["targets"]
    assert all(r["pass"] is None and r["note"].startswith("not run") for r in rows if "PyTorch" in r["target"])


def test_bench_live_matrix_per_model_and_setting(tiny_onnx, tmp_path):
    from fetaldata.phantom.video import write_phantom_video

    video = write_phantom_video(tmp_path / "v.mp4", seconds=1.0, fps=10, width=320, height=240, seed=0)
    settings = (("2 threads, output thread", 2, True, True), ("1 thread, no output thread", 1, True, False))
    matrix = bench_live.run_matrix({"mobilenet_v3_small": tiny_onnx}, [video], settings=settings, max_frames=5,
                                   model_seconds=0.01, log=lambda m: None)
    rows = matrix["models"]["mobilenet_v3_small"]["settings"]
    assert list(rows) == [s[0] for s in settings]
    for label, row in rows.items():
        (r,) = row["clips"].values()
        assert "error" not in r, r
        assert r["frames"] == 5 and r["torch_imported"] is False
        assert row["worst_ratio"] == pytest.approx(r["hz"] / r["model_only_hz"])
    (check,) = bench_live.matrix_targets(matrix)
    best = max(rows, key=lambda k: rows[k]["worst_ratio"])
    assert check["setting"] == best and check["measured"] == pytest.approx(rows[best]["worst_ratio"], abs=1e-4)
    assert check["limit"] == 0.75 and check["pass"] == (rows[best]["worst_ratio"] >= 0.75)
    md = "\n".join(bench_live.matrix_markdown(matrix))
    assert "| mobilenet_v3_small | " in md and "2 threads, output thread" in md


def test_live_faster_than_its_model_alone_is_not_a_pass():
    def setting(ratio):
        return {"worst_ratio": ratio, "clips": {"a.mp4": {"live_over_model": ratio}}}

    matrix = {"models": {"mobilenet_v2": {"settings": {"1 thread": setting(0.95), "2 threads": setting(1.84)}},
                         "resnet18": {"settings": {"1 thread": setting(0.93)}}}}
    checks = {c["target"].split(":")[0]: c for c in bench_live.matrix_targets(matrix)}
    assert checks["mobilenet_v2"]["pass"] is None and "NOT VALID" in checks["mobilenet_v2"]["note"]
    assert checks["resnet18"]["pass"] is True and checks["resnet18"]["limit"] == 0.9


def _sononet_measurement(ratio: float, same_planes: int, images: int = 71) -> dict:
    return {"activations": "uint8", "threads": 2, "rounds": 5, "seconds_per_round": 2.0, "int8": "w/sononet16.int8.onnx",
            "quantize": {"calibration_images": 74, "accuracy_holds": True},
            "heldout": {"agreement_planes": same_planes / images, "same_planes": same_planes, "images": images,
                        "agreement_native_text": "97.2 %"},
            "speed": {"fp32": {"hz": 100.0}, "int8": {"hz": 100.0 * ratio}}, "x_fp32": ratio}


@pytest.mark.parametrize("ratio, same, ok, why", [(2.1, 71, True, ""), (1.78, 71, False, "INT8 only 1.78x FP32"),
                                                  (2.5, 70, False, "plane agreement 98.6 %")])
def test_sononet_int8_row_passes_only_on_speed_and_agreement(ratio, same, ok, why):
    import sononet_int8

    row = sononet_int8.target_row(_sononet_measurement(ratio, same))
    assert row["pass"] is ok and row["measured"] == pytest.approx(ratio) and row["limit"] == 2.0
    assert row["target"].startswith("sononet16_int8: INT8 >= 2x ONNX Runtime FP32")
    assert (why in row["note"] and row["note"].startswith("FAIL")) if why else not row["note"].startswith("FAIL")
    assert f"on {71} held-out real images" in row["note"] and "medians of 5 interleaved rounds" in row["note"]


def test_run_all_sononet_row_says_why_without_shared_data(tmp_path):
    import run_all

    row, int8, rc = run_all.sononet_row(tmp_path / "no-shared", tmp_path / "w", threads=1, quick=True)
    assert row["pass"] is None and row["measured"] is None and "not run: no real data" in row["note"]
    assert int8 is None and rc == 0


def test_run_all_live_args_full_runs_1000_frames_and_take_the_runs_sononet_file(tmp_path):
    import run_all

    full = run_all.main.__globals__["argparse"].Namespace(threads=2, out=tmp_path, work=tmp_path, quick=False,
                                                          untrained=False, sononet=None, shared=run_all.SHARED)
    args = run_all.live_args(full, tmp_path / "made.int8.onnx")
    assert "--quick" not in args and "--latency-frames" not in args and bench_live.LATENCY_FRAMES >= 1000
    assert args[args.index("--sononet") + 1] == str(tmp_path / "made.int8.onnx")
    full.sononet = tmp_path / "given.onnx"  # --sononet wins over the run's own file
    assert run_all.live_args(full, tmp_path / "made.int8.onnx")[-1] == str(tmp_path / "given.onnx")
    full.sononet, full.quick = None, True
    assert "--quick" in run_all.live_args(full, None) and "--sononet" not in run_all.live_args(full, None)


def test_targets_file_holds_issue_17_targets_and_informational_rows(tmp_path):
    import run_all

    def rt(name, kind, hz, deployable=True, why=""):
        return {"name": name, "kind": kind, "deployable": deployable, "deployable_why": why,
                "batches": {"1": {"hz": hz, "x_pytorch": hz / 10.0}}}

    models = {"models": [{"model": m, "runtimes": [rt("PyTorch eager", "pytorch", 10.0), rt("ORT FP32", "ort-fp32", hz),
                                                    rt("ORT INT8 (uint8 act.)", "ort-int8", 2 * hz, False, "held-out: 0.98")]}
                         for m, hz in (("mobilenet_v3_small", 60.0), ("mobilenet_v2", 40.0), ("resnet18", 30.0))]}
    models["targets"] = bench_models.check_targets(models)
    common.write_json(tmp_path / "models.json", models)
    import sononet_int8

    sono = sononet_int8.target_row(_sononet_measurement(1.9, 71))
    path = run_all.write_targets_file(tmp_path, 0.0, {"id": "t", "quick": False, "load_average_start": 0.5}, "not run",
                                      sononet=sono)
    data = json.loads(path.read_text())
    rows = {r["target"].split(":")[0]: r for r in data["targets"]}
    assert "mobilenet_v3_small" not in rows and {"mobilenet_v2", "resnet18", "sononet16_int8"} <= set(rows)
    (info,) = data["informational"]
    assert info["target"].startswith("mobilenet_v3_small") and "not a target" in info["target"]
    assert info["pass"] is None and info["measured"] == 6.0 and info["run"] == "t"
    mv2 = rows["mobilenet_v2"]
    assert mv2["pass"] is False and mv2["measured"] == 4.0 and mv2["limit"] == 5.0
    assert mv2["note"].startswith("FAIL: 4.00x < 5x") and "ORT FP32 40.0 Hz vs PyTorch eager 10.0 Hz" in mv2["note"]
    assert "not deployable: ORT INT8 (uint8 act.): held-out: 0.98" in mv2["note"]
    assert rows["resnet18"]["pass"] is True and rows["sononet16_int8"]["pass"] is False
    assert data["run"]["quick"] is False and data["run"]["load_average_start"] == 0.5


@pytest.mark.slow  # ~20 s of training and ~75 s of quantize on 2 shared cores
def test_cached_checkpoint_is_exported_and_quantized_not_retrained(tmp_path, monkeypatch):
    """A checkpoint dropped into the cache (trained elsewhere with the recipe) is used as is; where it was trained is stated."""
    pytest.importorskip("torch")
    import torch

    recipe = bench_models.Recipe(patients=12, phantom_width=64, size=32, epochs={"mobilenet_v3_small": 1}, batch_size=8,
                                 calib_size=8, check_images=8)
    ckpt = bench_models.train_model("mobilenet_v3_small", tmp_path, recipe, log=lambda m: None)
    assert ckpt == tmp_path / "mobilenet_v3_small-32px-p12-e1" / "train" / "best.pt"
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)  # as if trained on a GPU box
    raw["model_info"]["extra"]["args"]["device"] = "cuda:0"
    torch.save(raw, ckpt)
    import export.train

    def no_training(*a, **k):
        raise AssertionError("retrained")

    monkeypatch.setattr(export.train, "train", no_training)
    files = bench_models.prepare_model("mobilenet_v3_small", tmp_path, recipe, log=lambda m: None, trained_on="a GPU box")
    assert files.fp32.is_file() and all(p.is_file() for p in files.int8.values())
    rc = files.recipe
    assert rc["trained_on"] == "a GPU box" and rc["trained_in_this_run"] is False
    ck = rc["checkpoint"]
    assert ck["device"] == "cuda:0" and ck["recipe_differences"] == {} and ck["same_phantom_csv"] is True
    assert "a GPU box, device cuda:0" in bench_models.trained_text(rc) and "DIFFERS" not in bench_models.trained_text(rc)
    other = bench_models.checkpoint_facts(ckpt, "mobilenet_v3_small", bench_models.Recipe(size=32), files.data)
    assert other["recipe_differences"]["epochs"] == [1, 15] and "DIFFERS from the recipe: epochs 1 (recipe 15)" in \
        bench_models.trained_text({**rc, "checkpoint": other})


def test_trained_text_states_where_and_any_departure_from_the_recipe():
    rc = {"epochs": 10, "trained_at_px": 224, "phantom_patients": 128, "trained_on": "H200 box", "trained_in_this_run": False,
          "checkpoint": {"device": "cuda", "code_version": "fetalplanes 0.1.0 git abc", "recipe_differences": {},
                         "same_phantom_csv": True}}
    text = bench_models.trained_text(rc)
    assert text.startswith("10 epochs at 224 px on 128 phantom patients (H200 box, device cuda, fetalplanes 0.1.0 git abc")
    assert "cached checkpoint" in text and "DIFFERS" not in text and "ANOTHER" not in text
    rc["checkpoint"].update(recipe_differences={"lr": [0.01, 0.002]}, same_phantom_csv=False)
    text = bench_models.trained_text(rc)
    assert "DIFFERS from the recipe: lr 0.01 (recipe 0.002)" in text and "ANOTHER data set" in text
    assert bench_models.trained_text({}) == "given by --onnx"


@pytest.mark.slow  # quantizes SonoNet-16 on 74 real images and times it (~20 s quiet)
def test_run_all_measures_sononet_int8_on_the_real_images(hc18_dir, sononet_examples_dir, tmp_path):
    import run_all

    row, int8, rc = run_all.sononet_row(hc18_dir.parents[1], tmp_path / "sono", threads=2, quick=True)
    assert rc == 0 and int8 is not None and int8.is_file() and int8.parent == tmp_path / "sono"
    assert row["measured"] == pytest.approx(row["hz_int8"] / row["hz_fp32"], rel=1e-3)
    assert row["heldout_images"] > 50 and 0.0 <= row["agreement_planes"] <= 1.0
    assert row["pass"] == (row["measured"] >= 2.0 and row["agreement_planes"] >= 0.99)
    assert "held-out real images" in row["note"] and "medians of 3 interleaved rounds of 1 s" in row["note"]
