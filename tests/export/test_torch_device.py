"""export/torch_device.py: the one device-name rule of train, evaluate (torch runner) and qat."""

from __future__ import annotations

import pytest
import torch

from edge.errors import FetalPlanesError
from export.torch_device import pick_device


def test_cpu_and_auto_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("AUTO") == torch.device("cpu")
    assert pick_device(None) == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FetalPlanesError) as err:
        pick_device(name, what="qat --device")
    assert err.value.exit_code == 2 and "no CUDA device" in str(err.value) and name in str(err.value)


def test_cuda_picks_the_given_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert pick_device("cuda") == torch.device("cuda", 0)
    assert pick_device("cuda", cuda_index=3) == torch.device("cuda", 3)
    assert pick_device("auto") == torch.device("cuda", 0)


def test_unknown_name():
    with pytest.raises(FetalPlanesError, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_qat_with_a_missing_gpu_stops_before_any_work(monkeypatch, tmp_path, capsys):
    from edge.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "frames").mkdir()
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"not read: the device is checked first")
    rc = main(["qat", "--checkpoint", str(ckpt), "--data", str(tmp_path / "frames"), "--out",
               str(tmp_path / "m.qat.onnx"), "--distill", "--device", "cuda"])
    assert rc == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "m.qat.onnx").exists()
