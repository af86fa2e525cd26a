"""SonoNet as an architecture, the importer of the published release, and the reference check on real images."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.errors import FetalPlanesError  # noqa: E402
from export import models  # noqa: E402
from edge.live.sector import Box  # noqa: E402
from edge.preprocess import prepare, read_gray  # noqa: E402
from export.sononet import (  # noqa: E402
    EXAMPLE_ROI, SONONET_LABELS, SONONET_TO_PLANES, new_sononet, resolve_variant, sononet_model_info,
)
from export.sononet_weights import expected_shapes, import_sononet, read_release, release_arrays  # noqa: E402
from fetaldata.metrics import wilson_interval  # noqa: E402


def _randomised(model, seed: int = 0):
    """Random BN statistics too (a fresh model's are 0/1, which would hide a mapping mistake)."""
    g = torch.Generator().manual_seed(seed)
    for _, bn in model.conv_bn_pairs():
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=g))
        bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        bn.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
        bn.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def fake_release(tmp_path_factory) -> tuple[Path, object]:
    """A file in the release's exact layout, written from a random SonoNet-16, and that model."""
    torch.manual_seed(0)
    model = _randomised(new_sononet("sononet16", len(SONONET_LABELS)))
    path = tmp_path_factory.mktemp("release") / "SonoNet16.npz"
    np.savez(path, *release_arrays(model))
    return path, model


# --------------------------------------------------------------------------- architecture
def test_sononet16_layout_and_size():
    m = new_sononet("sononet16", 14)
    convs = [c for c, _ in m.conv_bn_pairs()]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128, 64, 14]
    assert all(c.bias is None for c in convs) and convs[0].in_channels == 1
    assert [c.kernel_size for c in convs[-2:]] == [(1, 1), (1, 1)]
    assert 0.92e6 < sum(p.numel() for p in m.parameters()) < 0.94e6  # "about 0.93 M parameters"
    assert sum(isinstance(x, torch.nn.MaxPool2d) for x in m.modules()) == 4
    with torch.no_grad():  # fully convolutional: SonoNet's 224 x 288, and small square inputs
        assert m.eval()(torch.zeros(2, 1, 224, 288)).shape == (2, 14)
        assert m(torch.zeros(1, 1, 32, 32)).shape == (1, 14)


def test_wider_variants_double_and_quadruple_the_widths():
    for name, w in (("sononet32", 32), ("sononet64", 64)):
        shapes = [s for _, s in expected_shapes(name)]
        assert len(shapes) == 75 and shapes[0] == (w, 1, 3, 3) and shapes[-5] == (14, 4 * w, 1, 1)
    assert [c.out_channels for c, _ in new_sononet("sononet32", 6).conv_bn_pairs()][:3] == [32, 32, 64]


@pytest.mark.parametrize("name", ["sononet16", "SonoNet-16", "SonoNet16", "sononet_16", "sononet"])
def test_arch_names(name):
    assert models.resolve_arch(name) == "sononet16"
    assert {"sononet16", "sononet32", "sononet64"} <= set(models.available_architectures())


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(FetalPlanesError) as e:
        resolve_variant("sononet8")
    assert "sononet8" in e.value.message and "sononet16, sononet32, sononet64" in e.value.hint
    with pytest.raises(FetalPlanesError) as e:  # as --arch
        models.resolve_arch("sononet8")
    assert all(v in e.value.hint for v in ("sononet16", "sononet32", "sononet64"))


def test_build_model_and_new_head_for_a_task(fake_release):
    path, ref = fake_release
    m = models.build_model("sononet16", 6, pretrained=str(path))
    assert m.num_classes == 6 and models.head_names(m, 6) == ["classifier"]
    ref_state = ref.state_dict()
    for k, v in m.state_dict().items():
        if not k.startswith("classifier."):
            # the whole backbone and adaptation layer come from the file (variances through float32 inv_std)
            assert torch.equal(v, ref_state[k]) or (k.endswith("running_var") and torch.allclose(v, ref_state[k], 1e-5)), k
    assert not torch.equal(m.classifier[1].running_mean, ref.classifier[1].running_mean[:6])
    # freezing trains the new classifier (conv + BN) only
    trainable = models.freeze_backbone(m, 6)
    assert trainable == ["classifier"]
    assert {n for n, p in m.named_parameters() if p.requires_grad} == {"classifier.0.weight", "classifier.1.weight",
                                                                     "classifier.1.bias"}


def test_imagenet_is_refused_with_the_alternatives():
    with pytest.raises(FetalPlanesError) as e:
        models.check_pretrained("sononet16", "imagenet")
    assert e.value.exit_code == 2 and "no ImageNet weights" in e.value.message
    assert "SonoNet16.npz" in e.value.hint and "none" in e.value.hint
    with pytest.raises(FetalPlanesError):
        models.build_model("sononet16", 6, pretrained="imagenet")


# --------------------------------------------------------------------------- importer
def test_import_round_trip_reproduces_the_model(fake_release):
    """inv_std -> running_var and the array order: the imported model computes what the written one did."""
    path, ref = fake_release
    m = import_sononet(path)
    x = torch.randn(2, 1, 64, 96) * 100
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x), rtol=1e-4, atol=1e-4)
    bn = m.features[1]
    assert bn.eps == 1e-4 and torch.allclose(bn.running_var, ref.features[1].running_var, rtol=1e-5)


def test_imported_model_exports_to_onnx_at_224x288(fake_release, tmp_path):
    """The importer's model through the project's exporter at SonoNet's own non-square input: ORT agrees."""
    import onnxruntime as ort

    from export.onnx_export import _run_exporter

    path, _ = fake_release
    m = import_sononet(path)
    x = torch.randn(3, 1, 224, 288) * 255
    _run_exporter(m, x[:1], tmp_path / "s.onnx", 17, "auto")
    sess = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = m(x).numpy()
    assert got.shape == (3, 14) and np.abs(got - want).max() < 1e-3 * max(1.0, np.abs(want).max())


def _expect_error(path, *parts, variant="sononet16"):
    with pytest.raises(FetalPlanesError) as e:
        read_release(path, variant)
    assert e.value.exit_code == 2
    text = e.value.message + " " + e.value.hint
    for part in parts:
        assert part in text, (part, text)
    return e.value


def test_bad_release_files_are_named(fake_release, tmp_path):
    path, ref = fake_release
    arrays = release_arrays(ref)
    _expect_error(tmp_path / "nope.npz", "not found", "75 float32 arrays")
    few = tmp_path / "few.npz"
    np.savez(few, *arrays[:74])
    _expect_error(few, "74 arrays", "75 float32 arrays arr_0..arr_74")
    bad = list(arrays)
    bad[35] = np.zeros((64, 64, 3, 3), np.float32)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, *bad)
    _expect_error(wrong, "arr_35 (conv 8 weight) has shape (64, 64, 3, 3), expected (128, 64, 3, 3)")
    pth = tmp_path / "model.npz"  # a PyTorch checkpoint renamed .npz: a zip with data.pkl
    torch.save(ref.state_dict(), pth)
    _expect_error(pth, "data.pkl", "PyTorch checkpoint", "expected the SonoNet release file")
    legacy = tmp_path / "legacy.npz"  # the old pickle format
    torch.save(ref.state_dict(), legacy, _use_new_zipfile_serialization=False)
    _expect_error(legacy, "a pickle")
    plain = tmp_path / "plain.npz"
    plain.write_bytes(pickle.dumps({"a": 1}))
    _expect_error(plain, "a pickle")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _expect_error(cut, "truncated or corrupt")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _expect_error(empty, "empty")


def test_weights_of_another_variant_say_which(tmp_path):
    m32 = new_sononet("sononet32", 14)
    p = tmp_path / "SonoNet32.npz"
    np.savez(p, *release_arrays(m32))
    err = _expect_error(p, "these are the sononet32 weights")
    assert "import it as sononet32" in err.hint
    assert import_sononet(p, "sononet32").num_classes == 14


def test_train_refuses_bad_weights_before_reading_data(tmp_path, capsys):
    """Through the CLI: imagenet for SonoNet, or a .pth named .npz, fail first with exit 2 and no traceback."""
    from edge.cli import main

    pth = tmp_path / "x.npz"
    torch.save({"w": torch.zeros(1)}, pth)
    for pretrained, says in (("imagenet", "no ImageNet weights"), (str(pth), "PyTorch checkpoint")):
        code = main(["train", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "run"), "--arch",
                     "sononet16", "--pretrained", pretrained])
        err = capsys.readouterr().err
        assert code == 2 and says in err and "Traceback" not in err, err


# --------------------------------------------------------------------------- real images
def _read_labels(d: Path) -> list[dict]:
    with open(d / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("interpolation", ["area", "linear"])
def test_published_sononet16_reads_the_13_examples(sononet16_npz, sononet_examples_dir, interpolation):
    """The reference check: 13 of 13 full screen grabs (known image area) read as labels.csv says."""
    m = import_sononet(sononet16_npz)
    rows = _read_labels(sononet_examples_dir)
    assert len(rows) == 13
    info = sononet_model_info()
    info.interpolation = interpolation
    box = Box.parse(EXAMPLE_ROI)
    x = np.concatenate([prepare(box.crop(read_gray(sononet_examples_dir / r["file"], info.gray)), info) for r in rows])
    with torch.no_grad():
        probs = torch.softmax(m(torch.from_numpy(x)), 1).numpy()
    got = [SONONET_LABELS[i] for i in probs.argmax(1)]
    assert got == [r["sononet_label"] for r in rows]
    assert [SONONET_TO_PLANES[g] for g in got] == [r["plane"] for r in rows]


@pytest.mark.slow
def test_published_sononet16_reads_hc18_heads_as_brain(sononet16_npz, hc18_dir):
    """Target >= 85 % of hc18_sample read as Fetal brain (measured: 104/120 with 'area', 102/120 'linear')."""
    m = import_sononet(sononet16_npz)
    rows = _read_labels(hc18_dir)
    info = sononet_model_info()
    brain = 0
    with torch.no_grad():
        for i in range(0, len(rows), 20):
            x = np.concatenate([prepare(read_gray(hc18_dir / r["file"], info.gray), info) for r in rows[i:i + 20]])
            pred = m(torch.from_numpy(x)).argmax(1).numpy()
            brain += sum(SONONET_TO_PLANES[SONONET_LABELS[j]] == "Fetal brain" for j in pred)
    lo, hi = wilson_interval(brain, len(rows))
    print(f"hc18_sample: {brain}/{len(rows)} Fetal brain ({100 * brain / len(rows):.1f} %, 95 % CI "
          f"{100 * lo:.1f}-{100 * hi:.1f} %)")
    assert brain / len(rows) >= 0.85


# --------------------------------------------------------------------------- fine-tuning
def test_fine_tune_from_the_release_on_the_phantom_then_export(fake_release, phantom_db, tiny, tmp_path):
    """train --arch sononet16 --pretrained SonoNet16.npz: a new head for the task, the backbone from the file;
    the checkpoint exports to ONNX and passes the PyTorch-vs-ONNX-Runtime parity check."""
    from export.models import load_checkpoint
    from export.onnx_export import export_onnx
    from export.train import TrainConfig, train

    path, ref = fake_release
    tiny.update(arch="sononet16", pretrained=str(path), image_size=32)
    best = train(TrainConfig(data=str(phantom_db), out=str(tmp_path / "run"), epochs=1, **tiny))
    model, info, ckpt = load_checkpoint(best)
    assert info.arch == "sononet16" and info.num_classes == 6 and info.input_size == 32
    assert model.num_classes == 6 and ckpt["model_info"]["extra"]["args"]["pretrained"] == str(path)
    # one tiny epoch moves the weights a little: they started from the file, not from a random init
    w, w0 = model.features[0].weight, ref.features[0].weight
    assert torch.allclose(w, w0, atol=0.05) and not torch.allclose(w, new_sononet("sononet16").features[0].weight, atol=0.05)
    report = export_onnx(best, tmp_path / "s.onnx", samples=4, check_opencv=False)
    assert report.passed, report


def test_the_real_release_fits_the_training_builder(sononet16_npz):
    m = models.build_model("sononet16", 4, pretrained=str(sononet16_npz))  # the brain task: 4 classes
    ref = import_sononet(sononet16_npz)
    assert m.num_classes == 4 and torch.equal(m.adaptation[0].weight, ref.adaptation[0].weight)
    assert torch.equal(m.features[0].weight, ref.features[0].weight)
