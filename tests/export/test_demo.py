"""`fetalplanes demo` at a tiny scale: every step runs, the report holds this run's figures, a re-run reuses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from export.demo import STEPS, DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    lines: list[str] = []
    t0 = time.perf_counter()
    result = run_demo(DemoConfig.quick(out=str(out)), lines.append)
    return out, result, lines, time.perf_counter() - t0


def test_every_step_ran_and_report_files_exist(demo_run):
    out, result, lines, _ = demo_run
    assert result["status"] == {s: "ran" for s in STEPS}
    for name in ("report.md", "report.html", "report.json", "live/frames.png", "live/predictions.jsonl",
                 "evaluate/confusion_counts.png", "compare/int8-evaluate/confusion_counts.png", "model/model.onnx",
                 "model/model.int8.onnx", "model/model.int8-s8.onnx"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert any(line.startswith(f"[{len(STEPS)}/{len(STEPS)}] report") for line in lines)  # progress printed as it goes


def test_report_holds_this_runs_figures(demo_run):
    out, _, _, _ = demo_run
    rep = json.loads((out / "report.json").read_text())
    res = rep["results"]
    # accuracy: the same as the evaluate step's own metrics.json
    ev = json.loads((out / "evaluate" / "metrics.json").read_text())
    top1 = res["evaluate"]["metrics"]["top1_accuracy"]
    assert top1 == pytest.approx(1 - ev["metrics"]["top1_error"])
    assert res["evaluate"]["metrics"]["n"] == len(ev["predictions"]) > 0
    # live: the frames scored are the lines of the predictions file
    n_lines = sum(1 for line in Path(res["live"]["predictions"]).read_text().splitlines() if line.strip())
    assert res["live"]["summary"]["frames"] == n_lines > 0
    assert res["live"]["score"]["frames_scored"] > 0
    assert 0.0 <= res["live"]["score"]["accuracy"] <= 1.0
    # the exam report of the live step, scored for best-frame retrieval
    rv = res["live"]["score"]["retrieval"]
    assert (out / "live" / "exam" / "phantom" / "index.html").is_file()
    assert rv["retrieval_accuracy"] is None or 0.0 <= rv["retrieval_accuracy"] <= 1.0
    # speed: ORT FP32 timed, ratios against the faster PyTorch eager setting of the same run
    rows = {r["name"]: r for r in res["bench"]["runtimes"]}
    fp32 = rows["ORT FP32"]["batches"]["1"]
    assert fp32["hz"] > 0 and fp32["p50_ms"] > 0
    torch_hz = max(r["batches"]["1"]["hz"] for r in rows.values() if r["kind"] == "pytorch" and r["batches"]["1"])
    assert fp32["x_pytorch"] == pytest.approx(fp32["hz"] / torch_hz, rel=1e-2)
    assert {"ORT INT8 (uint8 act.)", "ORT INT8 (int8 act.)", "OpenCV DNN"} <= set(rows)
    # compare: INT8 vs FP32 on the test split
    assert 0.0 <= res["compare"]["agreement"] <= 1.0
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert f"{100 * top1:.1f}%" in md and f"{fp32['hz']:.1f}" in md
    for text in (md, html):
        assert "SYNTHETIC" in text and "fetalplanes train --data" in text and "fetalplanes quantize" in text
    for img in ("live/frames.png", "evaluate/confusion_counts.png", "compare/int8-evaluate/confusion_counts.png"):
        assert f"src='{img}'" in html and f"]({img})" in md


def test_second_run_reuses_every_step(demo_run):
    out, first, _, first_seconds = demo_run
    lines: list[str] = []
    t0 = time.perf_counter()
    again = run_demo(DemoConfig.quick(out=str(out)), lines.append)
    assert time.perf_counter() - t0 < min(10.0, first_seconds / 3)
    assert again["status"] == {s: "reused" for s in STEPS}
    assert sum("reused" in line for line in lines) == len(STEPS)
    assert again["results"]["evaluate"] == first["results"]["evaluate"]


def test_changed_setting_redoes_that_step_and_those_after(demo_run):
    out, _, _, _ = demo_run
    again = run_demo(DemoConfig.quick(out=str(out), bench_rounds=2), lambda m: None)
    ran = {s for s, v in again["status"].items() if v == "ran"}
    assert ran == {"bench", "report"}


def test_steps_option_redoes_only_those(demo_run):
    out, _, _, _ = demo_run
    again = run_demo(DemoConfig.quick(out=str(out), bench_rounds=2, steps=("report",)), lambda m: None)
    assert again["status"]["report"] == "ran"
    assert all(v == "reused" for s, v in again["status"].items() if s != "report")


def test_unknown_step_is_a_usage_error(tmp_path):
    from edge.cli import main

    assert main(["demo", "--out", str(tmp_path / "x"), "--steps", "train,bogus"]) == 2
