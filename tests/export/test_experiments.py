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
    assert "| network (ran) | study's network | top-1 error % (ours) | (study) | Δ |" in md and "INT8 Hz" in md
    assert "this run: mobilenet_v3_small, resnet18 (chosen with --archs)" in md
    data = json.loads(paths["json"].read_text())
    rec = data["rows"][0]["result"]
    assert rec["seed"] == 0 and rec["dataset"]["split_fingerprint"] == data["split_fingerprint"]
    assert rec["dataset"]["is_release_csv"] is False and len(rec["dataset"]["records_sha256"]) == 64
    speed = data["rows"][0]["speed"]
    assert speed["fp32_hz"] > 0 and speed["params"] > 0
    # table row = the sub-run's own evaluation; the study's number (Table 2: ResNet-18 7.6 %) and the difference beside
    top1 = rec["metrics"]["top1_error"]
    assert f"| mobilenet_v3_small | not in the study | {100 * top1:.1f} | – |  |" in md
    r18 = data["rows"][1]["result"]["metrics"]
    assert data["rows"][1]["study_network"] == "ResNet-18"
    assert (f"| resnet18 | ResNet-18 | {100 * r18['top1_error']:.1f} | 7.6 | {100 * r18['top1_error'] - 7.6:+.1f} | "
            f"{100 * r18['top3_error']:.2f} | 0.47 |") in md
    # the study's whole Table 2 follows, our top-1 beside the row we ran, 'not run' elsewhere
    assert md.count("| not run |") == 20
    assert f"| ResNet-18 | resnet18 | 11 | 73 | 66 | 7.6 | 0.47 | 92.5 ± 5.9 | {100 * r18['top1_error']:.1f} |" in md
    assert "| MobileNet v1 | mobilenet_v2 (closest) | 2 |" in md and "torchvision lacks" in md
    # resume: nothing is retrained, the same table comes out
    run_experiment("table2", cfg, trainer)
    assert trainer.calls == ["mobilenet_v3_small", "resnet18"]
    # fig3 reuses Table 2's run of its architecture (here the first of --archs) instead of training
    fig3 = run_experiment("fig3", cfg, trainer)
    assert trainer.calls == ["mobilenet_v3_small", "resnet18"]
    md3 = fig3["markdown"].read_text()
    assert "(mobilenet_v3_small, Table 2's sub-run, reused)" in md3
    assert "the study used DenseNet-169; this run: **mobilenet_v3_small** (chosen with --archs)" in md3
    assert f"| mobilenet_v3_small (ours) | {100 * top1:.1f} | 6.2 | {100 * top1 - 6.2:+.1f} |" in md3
    assert "| research technician 1 (study) |  | 5.1 |" in md3 and "| research technician 2 (study) |  | 6.5 |" in md3
    assert "in the article's Fig. 3 only" in md3
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
    assert "the study used Inception-v3; this run: **mobilenet_v3_small** (quick mode" in md3
    t3rows = {r["variant"]: r["result"]["metrics"] for r in json.loads(t3["json"].read_text())["rows"]}
    e = 100 * t3rows["no_pretraining"]["top1_error"]
    e0 = 100 * t3rows["baseline"]["top1_error"]
    # ours, the study's (Table 3: 14.1 %), the difference; then both changes against the baselines (study: +7.6)
    assert f"| {e:.1f} | 14.1 | {e - 14.1:+.1f} |" in md3 and md3.count(f"| {e - e0:+.1f} | +7.6 |") == 1
    specs = [json.loads((tmp_path / "study/table3/runs" / n / "run.json").read_text())["spec"] for n in trainer.calls]
    assert [s["last_layers_only"] for s in specs] == [False, False, True, False, False]
    assert [s["augment"] for s in specs] == [True, True, True, False, True]

    t4 = run_experiment("table4", cfg, trainer)
    groups = groups_with_enough_images(FetalPlanesDB.open(phantom), quick=True)
    assert len(groups) >= 1
    md4 = t4["markdown"].read_text()
    assert "| all sources |" in md4 and f"| {groups[0][0]} / {groups[0][1]} |" in md4
    assert "the study used Inception-v3" in md4
    # the phantom's groups carry the release's names, so every cell has the study's number beside ours
    d4 = json.loads(t4["json"].read_text())
    all_row = next(r for r in d4["rows"] if r["trained_on"] == "all sources")
    assert all_row["study_group"] == "all" and all_row["cells"]["all"]["study"] == 0.065
    ours_all = all_row["cells"]["all"]["ours"]
    assert f"| all sources |" in md4 and f"{100 * ours_all:.1f} (6.5; {100 * ours_all - 6.5:+.1f}) |" in md4
    assert "| Op. 1 / Voluson E6 | Operator 1 |" in md4 and "| 1918 |" in md4  # group sizes beside the study's
    # the group's training data holds that group only, with the original images behind a link
    gdir = tmp_path / "study/table4/runs" / trainer.calls[5] / "train_data"
    rows = (gdir / "FETAL_PLANES_DB_data.csv").read_text().splitlines()[1:]
    assert rows and all(f";{groups[0][0]};{groups[0][1]};" in r for r in rows)
    assert (gdir / "Images").is_symlink()

    f4 = run_experiment("fig4", cfg, trainer)
    f4data = json.loads(f4["json"].read_text())
    assert f4data["result"]["metrics"]["labels"] == list(BRAIN)
    md_f4 = f4["markdown"].read_text()
    assert "| true \\ predicted | TT | TC | TV | Not brain | images |" in md_f4
    assert "the study used DenseNet-169" in md_f4 and "| research technician 2 (study) |  | 17.0 |" in md_f4
    sub = f4data["subplanes_only"]
    assert f"| {100 * sub['top1_error']:.1f} | 25.0 | {100 * sub['top1_error'] - 25.0:+.1f} |" in md_f4

    f5 = run_experiment("fig5", cfg, trainer)
    pts = json.loads(f5["json"].read_text())["points"]
    assert len(pts) == 3 and pts[0]["patients"] > pts[1]["patients"] > pts[2]["patients"] >= 1
    assert [p["result"]["spec"]["max_train_patients"] for p in pts] == [p["patients"] for p in pts]
    assert f5["plot"].stat().st_size > 1000
    md5 = f5["markdown"].read_text()
    assert "the study used Inception-v3" in md5 and md5.count("| fig. only |") == 2
    e_all = 100 * pts[0]["top1_error"]
    assert f"| {pts[0]['patients']} | {e_all:.1f} | 6.5 | {e_all - 6.5:+.1f} |" in md5

    f3 = run_experiment("fig3", cfg, trainer)  # no Table 2 run in this folder: trains its own
    assert trainer.calls[-1] == "mobilenet_v3_small" and "trained for this figure" in f3["markdown"].read_text()


def test_learning_curve_follows_the_study():
    from export.experiments.figures import learning_curve_sizes

    assert learning_curve_sizes(806, quick=False) == [806 - 100 * k for k in range(9)]  # all + 8 extra sets
    assert learning_curve_sizes(9, quick=True) == [9, 6, 3]


def test_table4_groups_on_the_real_csv(real_db_dir):
    """The release's CSV gives the study's Table 4 groups and their exact image counts.

    Operators 1 and 2 on the Voluson E6, operator 3 on the Aloka (the only pairs with >= 2,000 images);
    training (Train = 1) 1,918 / 1,489 / 2,100 and test 874 / 946 / 1,460 images, as the study's Table 4.
    """
    from collections import Counter

    from fetaldata import FetalPlanesDB, SplitConfig, task_samples
    from export.experiments.table4 import group_counts, groups_with_enough_images, study_groups
    from export.experiments.tables import load_published

    db = FetalPlanesDB.open(real_db_dir)
    groups = groups_with_enough_images(db, quick=False)
    counts = Counter((r.operator, r.machine) for r in db.records)
    assert groups == [g for g, n in counts.most_common() if n >= 2000]
    assert set(groups) == {("Op. 3", "Aloka"), ("Op. 1", "Voluson E6"), ("Op. 2", "Voluson E6")}
    got = group_counts(db, groups)
    assert got == {("Op. 1", "Voluson E6"): {"train_images": 1918, "test_images": 874},
                   ("Op. 2", "Voluson E6"): {"train_images": 1489, "test_images": 946},
                   ("Op. 3", "Aloka"): {"train_images": 2100, "test_images": 1460}}
    # ... the same numbers as published.json's Table 4 groups, and ALL = 7,129 / 5,271
    study = study_groups(load_published())
    for g in groups:
        assert got[g] == {k: study[g][k] for k in ("train_images", "test_images")}
    assert (sum(r.train for r in db.records), sum(not r.train for r in db.records)) == (7129, 5271)
    assert (study[None]["train_images"], study[None]["test_images"]) == (7129, 5271)
    # the evaluation filter of each column selects exactly the study's test images
    test = task_samples(db, "test", SplitConfig())
    assert Counter((s.record.operator, s.record.machine) for s in test if (s.record.operator, s.record.machine)
                   in got) == {g: c["test_images"] for g, c in got.items()}


def test_fig4_sets_on_the_real_csv(real_db_dir):
    """The study's brain sub-plane sets: 1,543 training and 1,406 test images, 536 test patients, from the CSV.

    The study says its 1,543 training images came from 592 patients; in the release they come from 524
    (the CSV's Train = 1 patients with a trans-thalamic, trans-cerebellum or trans-ventricular image; 536
    counting the brain images of sub-plane 'Other' too). The image counts match exactly, the patient count
    cannot be reproduced from the release's columns.
    """
    from fetaldata import FetalPlanesDB, SplitConfig, task_samples
    from export.experiments.figures import brain_counts
    from export.experiments.tables import load_published

    db = FetalPlanesDB.open(real_db_dir)
    counts = brain_counts(db)
    pub = load_published()["fig4"]
    assert (counts["train_images"], counts["test_images"], counts["test_patients"]) == (
        pub["train_images"], pub["test_images"], pub["test_patients"]) == (1543, 1406, 536)
    assert counts["train_patients"] == 524 and pub["train_patients"] == 592  # the documented difference
    # our brain task's test split holds exactly those 1,406 sub-plane images (plus 'Not A Brain' ones)
    test = task_samples(db, "test", SplitConfig(task="brain"))
    assert sum(s.label < 3 for s in test) == 1406


def test_fig4_study_metrics_from_the_confusion_matrix():
    """Sub-plane images predicted 'Not A Brain' are errors; 'Not A Brain' rows are left out."""
    import numpy as np

    from export.experiments.figures import brain_subplane_metrics

    cm = np.array([[8, 1, 0, 1], [0, 4, 0, 1], [1, 0, 4, 0], [50, 0, 0, 950]])
    m = brain_subplane_metrics(cm)
    assert m["n"] == 20 and m["top1_error"] == pytest.approx(4 / 20)
    assert m["class_accuracy_mean"] == pytest.approx(np.mean([0.8, 0.8, 0.8]))


def test_study_architectures():
    """Each single-model experiment defaults to the study's architecture; Table 2's MobileNet v1 -> the closest."""
    from export.experiments import ExperimentConfig
    from export.experiments.study import STUDY_NETS, study_arch, study_net_for, table2_default_archs
    from export.experiments.tables import load_published, published_rows

    assert [study_arch(n) for n in ("table3", "table4", "fig5", "fig3", "fig4")] == [
        "inception_v3", "inception_v3", "inception_v3", "densenet169", "densenet169"]
    full = ExperimentConfig(data=".", out=".")
    assert full.main_arch(study_arch("table3")) == "inception_v3"
    assert ExperimentConfig(data=".", out=".", quick=True).main_arch(study_arch("fig3")) == "mobilenet_v3_small"
    mob = study_net_for("mobilenet_v2")
    assert mob.paper_name == "MobileNet v1" and mob.match == "closest" and "torchvision lacks" in mob.note
    # every published Table 2 row has a mapping, and every mapped network a published row
    assert set(published_rows("table2", "paper_name", load_published())) == set(STUDY_NETS)
    archs = table2_default_archs()
    assert "densenet169" in archs and "inception_v3" in archs and archs[-2:] == ["mobilenet_v3_small",
                                                                                  "mobilenet_v3_large"]
    assert len(archs) == len(set(archs))


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
