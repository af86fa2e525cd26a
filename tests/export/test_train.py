"""export.train: the recipe on the phantom, self-describing checkpoints, BatchNorm statistics, resume, errors."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.cli import main  # noqa: E402
from fetaldata import FetalPlanesDB, SplitConfig  # noqa: E402
from fetaldata.splits import fingerprint  # noqa: E402
from edge.errors import FetalPlanesError  # noqa: E402
from edge.labels import PLANES  # noqa: E402
from export import train as train_mod  # noqa: E402
from export.checkpoint import read_checkpoint  # noqa: E402
from export.models import load_checkpoint  # noqa: E402
from export.train import TrainConfig, recalibrate_batchnorm, train  # noqa: E402


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_checkpoint_describes_itself(trained_run, phantom_db, tiny):
    model, info, ckpt = load_checkpoint(trained_run)
    assert not model.training
    assert info.task == "planes" and info.labels == list(PLANES) and info.arch == "mobilenet_v3_small"
    assert info.input_size == 32 and info.channels == 1
    split = SplitConfig(task="planes", seed=0, max_per_split=tiny["max_per_split"])
    assert info.dataset_fingerprint == fingerprint(FetalPlanesDB.open(phantom_db), split)
    assert info.code_version.startswith("fetalplanes ")
    args = info.extra["args"]
    assert args["pretrained"] == "none" and args["batch_size"] == 8 and args["epochs"] == 1 and args["augment"] is True
    # normalisation from the training images: mean = their pixel mean, std = max(mean, 255 - mean)
    assert info.std == pytest.approx(max(info.mean, 255 - info.mean))
    assert 0 < info.mean < 128  # phantom images are mostly dark
    assert ckpt["epoch"] == 1 and np.isfinite(ckpt["best_val_loss"])
    run = trained_run.parent
    rows = _rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1"]
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["best_epoch"] == 1 and len(summary["history"]) == 1
    assert (run / "last.pt").is_file() and (run / "config.json").is_file()


def test_normalised_training_inputs_lie_in_minus_one_one(phantom_db):
    from edge.modelinfo import ModelInfo
    from export.data_torch import AugmentConfig, ImageCache, SampleDataset, normalization_from_mean, pixel_mean
    from fetaldata import task_samples

    samples = task_samples(FetalPlanesDB.open(phantom_db), "train", SplitConfig(max_per_split=12))
    cache = ImageCache(40)
    mean, std = normalization_from_mean(pixel_mean([s.path for s in samples], cache))
    info = ModelInfo(task="planes", labels=list(PLANES), arch="x", input_size=32, mean=mean, std=std)
    ds = SampleDataset(samples, info, AugmentConfig(), cache)
    xs = torch.stack([ds[i][0] for i in range(len(ds))])
    assert xs.shape == (12, 1, 32, 32)
    assert xs.min() >= -1.0 - 1e-6 and xs.max() <= 1.0 + 1e-6
    assert xs.min() < -0.2  # black background is used, not a degenerate scale


class _Recorder:
    """Inputs' per-channel means of every BatchNorm layer, per forward pass (train mode = batch statistics)."""

    def __init__(self, model):
        self.means: dict[str, list[torch.Tensor]] = {}
        self.handles = [
            m.register_forward_pre_hook(self._hook(name))
            for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        ]

    def _hook(self, name):
        def hook(_module, inputs):
            x = inputs[0]
            dims = [0] + list(range(2, x.dim()))
            self.means.setdefault(name, []).append(x.mean(dim=dims).detach().clone())
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def test_batchnorm_statistics_are_recomputed_as_a_plain_average():
    """MobileNetV3's BN momentum is 0.01: after a short run its running stats lag; recalibration fixes them."""
    from export.models import build_model

    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", 6)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert {m.momentum for m in bns} == {0.01}  # torchvision's choice: the trap
    batches = [(torch.randn(8, 1, 32, 32) * 0.5 + 0.3, torch.zeros(8, dtype=torch.long)) for _ in range(3)]
    model.train()
    with torch.no_grad():  # a "short training": a few batches at momentum 0.01 leave running means near 0
        for x, _ in batches:
            model(x)
    first = dict(model.named_modules())["features.0.1"]
    lagging = first.running_mean.clone()

    rec = _Recorder(model)
    model.train()
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    rec.close()
    # BN inputs in train mode do not depend on running stats: the recorded means are what recalibration sees
    n = recalibrate_batchnorm(model, batches, "cpu", max_batches=0)
    assert n == 3
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            expected = torch.stack(rec.means[name]).mean(0)
            assert torch.allclose(m.running_mean, expected, atol=1e-5, rtol=1e-4), name
            assert m.momentum == 0.01  # restored
            assert int(m.num_batches_tracked) == 3
    assert not torch.allclose(lagging, first.running_mean, atol=1e-3)  # it did lag before
    # max_batches limits the pass
    assert recalibrate_batchnorm(model, batches, "cpu", max_batches=2) == 2


def test_resume_after_an_interruption_repeats_the_uninterrupted_run(phantom_db, tmp_path, monkeypatch, tiny):
    tiny["max_per_split"] = 8
    base = TrainConfig(data=str(phantom_db), out=str(tmp_path / "full"), epochs=2, patience=5, **tiny)
    train(base)
    full = _rows(tmp_path / "full" / "metrics.csv")
    assert [r["epoch"] for r in full] == ["1", "2"]

    real_epoch = train_mod.train_one_epoch
    calls = []

    def interrupted(*args, **kwargs):  # Ctrl-C in the middle of epoch 2
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_one_epoch", interrupted)
    cut = replace(base, out=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        train(cut)
    ckpt, _ = read_checkpoint(tmp_path / "cut" / "last.pt")
    assert ckpt["epoch"] == 1  # the interrupted epoch is lost, nothing more
    assert len(_rows(tmp_path / "cut" / "metrics.csv")) == 1
    with pytest.raises(FetalPlanesError, match="already holds a run"):
        train(cut)  # without --resume a run is never overwritten
    monkeypatch.setattr(train_mod, "train_one_epoch", real_epoch)
    best = train(replace(cut, resume=True))
    resumed = _rows(tmp_path / "cut" / "metrics.csv")
    assert [r["epoch"] for r in resumed] == ["1", "2"]
    for a, b in zip(full, resumed):
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), abs=1e-5)
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), abs=1e-5)
    assert best.is_file() and read_checkpoint(tmp_path / "cut" / "last.pt")[0]["epoch"] == 2


def test_resume_refuses_other_settings(trained_run, phantom_db, tiny):
    run = trained_run.parent
    cfg = TrainConfig(data=str(phantom_db), out=str(run), epochs=2, resume=True, **{**tiny, "image_size": 40})
    with pytest.raises(FetalPlanesError) as e:
        train(cfg)
    assert "input_size: 32 -> 40" in e.value.message


def test_early_stopping_and_class_weights(phantom_db, tmp_path, tiny):
    cfg = TrainConfig(data=str(phantom_db), out=str(tmp_path / "es"), epochs=4, patience=1, class_weights=True,
                      augment=False, **{**tiny, "lr": 0.5})  # a huge step size: validation loss gets worse
    train(cfg)
    summary = json.loads((tmp_path / "es" / "metrics.json").read_text())
    epochs = [h["epoch"] for h in summary["history"]]
    if summary["stopped"] == "early":
        assert len(epochs) < 4 and epochs[-1] == summary["best_epoch"] + 1
    else:  # validation improved every epoch (possible): then all epochs ran
        assert epochs == [1, 2, 3, 4]
    assert summary["config"]["class_weights"] is True


@pytest.mark.parametrize("argv,expected", [
    (["--arch", "mobilenet_v9"], "unknown architecture 'mobilenet_v9'"),
    (["--pretrained", "/nonexistent/w.pth"], "weights file /nonexistent/w.pth not found"),
    (["--resume"], "nothing to resume"),
])
def test_bad_arguments_exit_2_with_a_message(argv, expected, phantom_db, tmp_path, capsys):
    code = main(["train", "--data", str(phantom_db), "--out", str(tmp_path / "r"), "--image-size", "32",
                 "--epochs", "1", "--workers", "0", "--pretrained", "none", *argv])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "fix:" in err


def test_missing_data_exits_2(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--pretrained", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "dataset folder not found" in err


def test_missing_images_are_named(phantom_db, tmp_path, capsys):
    import shutil

    db = tmp_path / "db"
    shutil.copytree(phantom_db, db)
    victim = sorted((db / "Images").glob("*.png"))[0]
    victim.unlink()
    code = main(["train", "--data", str(db), "--out", str(tmp_path / "r"), "--pretrained", "none", "--image-size", "32"])
    err = capsys.readouterr().err
    assert code == 2 and "missing" in err and victim.name in err


def test_command_modules_import_light():
    import subprocess
    import sys

    code = ("import sys, export.commands.train, export.commands.export_onnx, export.torch_runner, export.data_torch; "
            "print(sorted(m for m in ('torch', 'torchvision', 'onnx', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
