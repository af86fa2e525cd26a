"""export.models: any torchvision classifier, gray first conv by averaging, new heads, weight sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from edge.errors import FetalPlanesError  # noqa: E402
from export import models  # noqa: E402


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(FetalPlanesError) as e:
        models.resolve_arch("mobilenet_v4")
    assert "unknown architecture 'mobilenet_v4'" in e.value.message
    assert "mobilenet_v3_small" in e.value.hint and "mobilenet_v2" in e.value.hint


@pytest.mark.parametrize("name,expected", [("MobileNetV2", "mobilenet_v2"), ("resnext", "resnext50_32x4d"),
                                           ("ResNet-18", "resnet18"), ("inception", "inception_v3")])
def test_aliases(name, expected):
    assert models.resolve_arch(name) == expected


def test_inception_is_299_px_and_keeps_its_aux_head():
    assert models.default_input_size("inception_v3") == 299
    assert models.default_input_size("resnet18") == 224
    m = models.build_model("inception_v3", 4)
    assert sorted(models.head_names(m, 4)) == ["AuxLogits.fc", "fc"]
    assert m.Conv2d_1a_3x3.conv.in_channels == 1 and m.transform_input is False


def _imagenet_like_state(arch: str, seed: int = 1) -> dict:
    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, weights=None).state_dict()  # 3 channels, 1000 classes


def test_local_weights_file_first_conv_is_the_mean_of_the_rgb_filters(tmp_path):
    state = _imagenet_like_state("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    m = models.build_model("resnet18", 6, pretrained=str(path))
    assert m.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.allclose(m.conv1.weight, state["conv1.weight"].mean(dim=1, keepdim=True))
    assert torch.equal(m.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])  # backbone loaded as is
    assert m.fc.out_features == 6
    x = torch.randn(2, 1, 32, 32)
    assert m.eval()(x).shape == (2, 6)


def test_imagenet_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """The weights-API path, offline: a file in $TORCH_HOME/hub/checkpoints under torchvision's file name."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    url = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT.url
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    cache.parent.mkdir(parents=True)
    state = _imagenet_like_state("mobilenet_v3_small", seed=3)
    torch.save(state, cache)
    m = models.build_model("mobilenet_v3_small", 6, pretrained="imagenet")
    assert torch.allclose(m.features[0][0].weight, state["features.0.0.weight"].mean(1, keepdim=True))
    assert torch.equal(m.features[5].block[0][0].weight, state["features.5.block.0.0.weight"])


def test_imagenet_offline_without_cache_names_both_alternatives(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.models._api as api

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(FetalPlanesError) as e:
        models.build_model("resnet18", 6, pretrained="imagenet")
    assert "--pretrained none" in e.value.hint and "--pretrained PATH" in e.value.hint
    assert "resnet18" in e.value.message and str(tmp_path) in e.value.message


def test_bad_local_weights(tmp_path):
    with pytest.raises(FetalPlanesError, match="not found"):
        models.build_model("resnet18", 6, pretrained=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "mnv2.pth"
    torch.save(_imagenet_like_state("mobilenet_v2"), wrong)
    with pytest.raises(FetalPlanesError) as e:
        models.build_model("resnet18", 6, pretrained=str(wrong))
    assert str(wrong) in e.value.message and "do not fit" in e.value.message
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(FetalPlanesError, match="not a readable PyTorch weights file"):
        models.build_model("resnet18", 6, pretrained=str(junk))


def test_freeze_backbone_trains_the_heads_only():
    m = models.build_model("mobilenet_v3_small", 6)
    heads = models.freeze_backbone(m, 6)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert heads == ["classifier.3"] and trainable == {"classifier.3.weight", "classifier.3.bias"}
    m.train()
    models.set_frozen_bn_eval(m)
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and not any(b.training for b in bns)
