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


def test_demo_and_sononet_real_read_hc18_alike(hc18_dir, sononet_examples_dir, tmp_path):
    """The demo's real step and benchmarks/sononet_real.py count the same HC18 heads as Fetal brain (they once read
    103 and 104: one took each head's top SonoNet label, the other the most probable plane)."""
    import sys

    import numpy as np

    from edge.backends import read_model_info
    from edge.default_model import DEFAULT_MODEL
    from export.demo_real import _by_source, read_real_folder
    from fetaldata.real_samples import write_real_folder

    sys.path.insert(0, str(DEFAULT_MODEL.parents[2] / "benchmarks"))
    import sononet_real

    bench = sononet_real.hc18_reading(hc18_dir.parent, DEFAULT_MODEL, tmp_path / "bench")
    folder = write_real_folder(hc18_dir.parent, tmp_path / "demo").root  # the demo's folder: every real source
    result, native = read_real_folder(DEFAULT_MODEL, folder)
    assert _by_source(result.predictions)["hc18_sample"]["correct"] == bench["fetal_brain"]
    # the plane is the most probable plane of the model's own probabilities, for every image
    info = read_model_info(DEFAULT_MODEL)
    np.testing.assert_allclose(info.map_probabilities(native), result.probabilities, atol=1e-6)
    assert [p.predicted for p in result.predictions] == list(info.map_probabilities(native).argmax(1))
    # the heads listed as "own label's plane differs" are exactly those where the two readings part
    own_plane = [info.task_label(i) for i in native.argmax(1)]
    parted = {p.image for p, o in zip(result.predictions, own_plane) if o != result.labels[p.predicted]}
    assert {d["file"] for d in bench["own_label_plane_differs"]} == {x for x in parted if x.startswith("hc18_")}
