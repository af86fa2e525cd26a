"""The study's experiments in --quick mode on a small dataset: tables, figures, resume, provenance."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest



from tiny_onnx_model import make_tiny_onnx  # noqa: E402


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    """A 24-patient phantom (48 px) in the release's layout; a hand-made texture set if the phantom is absent."""
    out = tmp_path_factory.mktemp("phantom")
    try:
        from fetaldata.phantom.dataset import write_phantom_dataset
    except ImportError:
        from test_evaluate import texture_rows, write_db

        return write_db(out, texture_rows())
    return write_phantom_dataset(out, patients=24, seed=0, size=48)


class OnnxTrainer:
    """Stands in for training (seconds, no torch): writes a tiny random ONNX model of the run's task, counts calls."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, spec, data_dir, run_dir, config):
        self.calls.append(spec.name)
        assert (Path(data_dir) / "FETAL_PLANES_DB_data.csv").is_file()
        return make_tiny_onnx(Path(run_dir) / "model.onnx", task=spec.task, input_size=32, seed=len(self.calls))


def _config(phantom, out, **kw):
    from export.experiments import ExperimentConfig

    return ExperimentConfig(data=phantom, out=out, quick=True, **kw)


def test_table2_then_fig3_resume_and_provenance(phantom, tmp_path):
    from export.experiments import run_experiment

    trainer = OnnxTrainer()
    cfg = _config(phantom, tmp_path / "study", archs=["mobilenet_v3_small", "resnet18"])
    paths = run_experiment("table2", cfg, trainer)
    assert trainer.calls == ["mobilenet_v3_small", "resnet18"]
    md = paths["markdown"].read_text()
    assert "Not the published FETAL_PLANES_DB" in md and "quick mode" in md
    assert "| network | top-1 error % (ours) | (paper) |" in md and "INT8 Hz" in md
    data = json.loads(paths["json"].read_text())
    rec = data["rows"][0]["result"]
    assert rec["seed"] == 0 and rec["dataset"]["split_fingerprint"] == data["split_fingerprint"]
    assert rec["dataset"]["is_release_csv"] is False and len(rec["dataset"]["records_sha256"]) == 64
    speed = data["rows"][0]["speed"]
    assert speed["fp32_hz"] > 0 and speed["params"] > 0
    # table row = the sub-run's own evaluation
    top1 = rec["metrics"]["top1_error"]
    assert f"| mobilenet_v3_small | {100 * top1:.1f} | n/r |" in md
    # resume: nothing is retrained, the same table comes out
    run_experiment("table2", cfg, trainer)
    assert trainer.calls == ["mobilenet_v3_small", "resnet18"]
    # fig3 takes the best finished Table 2 model instead of training
    fig3 = run_experiment("fig3", cfg, trainer)
    assert trainer.calls == ["mobilenet_v3_small", "resnet18"]
    best = min(data["rows"], key=lambda r: r["result"]["metrics"]["top1_error"])["arch"]
    assert f"best model ({best}" in fig3["markdown"].read_text()
    assert fig3["confusion_percent"].stat().st_size > 1000
    # other settings into the same folder: refused, not mixed
    from edge.errors import FetalPlanesError

    with pytest.raises(FetalPlanesError, match="other settings"):
        run_experiment("table2", dataclasses.replace(cfg, seed=1), trainer)


def test_table3_table4_fig4_fig5_quick(phantom, tmp_path):
    from fetaldata import FetalPlanesDB
    from edge.labels import BRAIN
    from export.experiments import run_experiment
    from export.experiments.table4 import groups_with_enough_images

    trainer = OnnxTrainer()
    cfg = _config(phantom, tmp_path / "study", speed=False)
    t3 = run_experiment("table3", cfg, trainer)
    assert trainer.calls == ["baseline", "no_pretraining", "last_layers_only", "no_augmentation", "class_reweighting"]
    md3 = t3["markdown"].read_text()
    assert "last layers only" in md3 and "+0.0" in md3  # baseline's delta to itself
    specs = [json.loads((tmp_path / "study/table3/runs" / n / "run.json").read_text())["spec"] for n in trainer.calls]
    assert [s["last_layers_only"] for s in specs] == [False, False, True, False, False]
    assert [s["augment"] for s in specs] == [True, True, True, False, True]

    t4 = run_experiment("table4", cfg, trainer)
    groups = groups_with_enough_images(FetalPlanesDB.open(phantom), quick=True)
    assert len(groups) >= 1
    md4 = t4["markdown"].read_text()
    assert "| all sources |" in md4 and f"| {groups[0][0]} / {groups[0][1]} |" in md4
    # the group's training data holds that group only, with the original images behind a link
    gdir = tmp_path / "study/table4/runs" / trainer.calls[5] / "train_data"
    rows = (gdir / "FETAL_PLANES_DB_data.csv").read_text().splitlines()[1:]
    assert rows and all(f";{groups[0][0]};{groups[0][1]};" in r for r in rows)
    assert (gdir / "Images").is_symlink()

    f4 = run_experiment("fig4", cfg, trainer)
    f4data = json.loads(f4["json"].read_text())
    assert f4data["result"]["metrics"]["labels"] == list(BRAIN)
    assert "| true \\ predicted | TT | TC | TV | Not brain | images |" in f4["markdown"].read_text()

    f5 = run_experiment("fig5", cfg, trainer)
    pts = json.loads(f5["json"].read_text())["points"]
    assert len(pts) == 3 and pts[0]["patients"] > pts[1]["patients"] > pts[2]["patients"] >= 1
    assert [p["result"]["spec"]["max_train_patients"] for p in pts] == [p["patients"] for p in pts]
    assert f5["plot"].stat().st_size > 1000


def test_learning_curve_follows_the_study():
    from export.experiments.figures import learning_curve_sizes

    assert learning_curve_sizes(806, quick=False) == [806 - 100 * k for k in range(9)]  # all + 8 extra sets
    assert learning_curve_sizes(9, quick=True) == [9, 6, 3]


def test_table4_groups_on_the_real_csv(real_db_dir):
    """On the release, the operator/machine pairs with >= 2000 images are Op. 3/Aloka, Op. 1/E6, Op. 2/E6."""
    from collections import Counter

    from fetaldata import FetalPlanesDB
    from export.experiments.table4 import groups_with_enough_images

    db = FetalPlanesDB.open(real_db_dir)
    groups = groups_with_enough_images(db, quick=False)
    counts = Counter((r.operator, r.machine) for r in db.records)
    assert groups == [g for g, n in counts.most_common() if n >= 2000]
    assert set(groups) == {("Op. 3", "Aloka"), ("Op. 1", "Voluson E6"), ("Op. 2", "Voluson E6")}


def test_published_numbers_file_is_honest():
    """Every published number is either null (not retrieved) or comes with a verification source."""
    from export.experiments.tables import load_published

    pub = load_published()
    assert pub["source"].startswith("Burgos-Artizzu")
    values = [v for r in pub["table2"]["rows"] for k, v in r.items() if k not in ("arch", "paper_name", "note")]
    assert all(v is None for v in values) or pub["verified_against"]


def test_train_config_mapping_matches_the_trainer(tmp_path):
    pytest.importorskip("torch")
    train = pytest.importorskip("export.train")
    from export.experiments import ExperimentConfig
    from export.experiments.runs import train_config_kwargs

    cfg = ExperimentConfig(data=tmp_path, out=tmp_path / "o", quick=True)
    spec = cfg.spec("x", "resnet18", last_layers_only=True, augment=False, class_weights=True, max_train_patients=7)
    names = {f.name for f in dataclasses.fields(train.TrainConfig)}
    tc = train.TrainConfig(**train_config_kwargs(spec, tmp_path, tmp_path / "run", cfg, names))
    d = dataclasses.asdict(tc)
    assert d["arch"] == "resnet18" and d["epochs"] == 1 and d["pretrained"] == "none"
    assert [d.get(k) for k in ("augment", "class_weights", "max_train_patients", "max_per_split")] == [False, True, 7, 48]
    assert d.get("freeze_backbone", d.get("last_layers_only")) is True
    assert d.get("image_size", d.get("input_size")) == 32


@pytest.mark.slow
def test_real_training_quick_fig4_and_cli(phantom, tmp_path):
    """The real trainer (torch) and checkpoint evaluation (TorchRunner) end to end, from the command line."""
    pytest.importorskip("torch")
    pytest.importorskip("export.train")
    pytest.importorskip("export.torch_runner")
    from edge.cli import main

    out = tmp_path / "study"
    argv = ["experiment", "fig4", "--data", str(phantom), "--out", str(out), "--quick", "--workers", "0", "--device", "cpu"]
    assert main(argv) == 0
    rec = json.loads(next((out / "fig4" / "runs").glob("*/result.json")).read_text())
    assert rec["model"].endswith(".pt") and rec["metrics"]["n"] > 0
    assert main(argv) == 0  # resumed: reused
