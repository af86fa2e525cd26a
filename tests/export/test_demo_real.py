"""The demo's real step: the vendored SonoNet-16 on (a capped subset of) the real images and a real clip."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from export.demo import DemoConfig, run_demo  # noqa: E402


def test_quick_demo_leaves_the_real_step_out(tmp_path):
    from export.demo import Demo

    demo = Demo(DemoConfig.quick(out=str(tmp_path / "d")), lambda m: None)
    from export.demo_real import real_step

    assert real_step(demo)[0] == {"skipped": "turned off for this run (quick demo)"}


def test_real_step_skips_with_its_reason_without_shared_data(tmp_path):
    from export.demo import Demo
    from export.demo_real import real_section, real_step

    demo = Demo(DemoConfig.quick(out=str(tmp_path / "d"), real=True, real_data=str(tmp_path / "none")), lambda m: None)
    result, files = real_step(demo)
    assert "no hc18_sample" in result["skipped"] and files == []
    demo.results["real"] = result
    title, blocks = real_section(demo)
    assert "REAL" in title and "Skipped" in blocks[0]


@pytest.mark.slow
def test_real_step_on_the_shared_images(hc18_dir, sononet_examples_dir, real_videos, tmp_path):
    out = tmp_path / "demo"
    r = run_demo(DemoConfig.quick(out=str(out), real=True, real_data=str(hc18_dir.parent), real_max_per_source=40, real_clip_frames=10,
                                  steps=("real", "report")), lambda m: None)
    real = r["results"]["real"]
    assert real["per_source"]["sononet_examples"]["correct"] == 13  # the known image area: 13 of 13
    assert real["int8"]["heldout_images"] > 0 and 0.0 <= real["int8"]["agreement"] <= 1.0
    assert real["clip"]["frames"] == 10
    text = (out / "report.md").read_text()
    assert "REAL ultrasound" in text and "SYNTHETIC" in text
