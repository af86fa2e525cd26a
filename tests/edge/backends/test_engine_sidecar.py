"""Engine sidecar rules: what is recorded, and every mismatch that refuses an engine (no TensorRT needed)."""

from __future__ import annotations

import json
import shutil

import pytest

from edge.backends import read_model_info
from edge.files import sha256_file
from edge.backends.engine_sidecar import (
    EngineSidecar,
    load_sidecar,
    read_sidecar_info,
    sidecar_mismatches,
    sidecar_path,
    verify_sidecar,
    write_sidecar,
)
from edge.errors import FetalPlanesError
from edge.modelinfo import read_onnx_metadata


@pytest.fixture()
def engine(tmp_path, make_onnx):
    onnx = make_onnx(tmp_path / "model.onnx")
    path = tmp_path / "model.engine"
    path.write_bytes(b"serialized engine bytes")
    info = read_onnx_metadata(str(onnx))
    sidecar = EngineSidecar(
        model_info=info.__dict__.copy(),
        precision="int8",
        mode="int8-implicit-calibrator",
        tensorrt_version="8.6.1.6",
        gpu_name="Orin",
        compute_capability="8.7",
        onnx_path=str(onnx),
        onnx_sha256=sha256_file(onnx),
        build_options={"max_batch": 8, "data_dir": "/data/db", "calib_cache": "model.calib"},
        profile={"input": {"min": [1, 1, 32, 32], "opt": [1, 1, 32, 32], "max": [8, 1, 32, 32]}},
    )
    write_sidecar(path, sidecar)
    return path, onnx, info


@pytest.fixture()
def make_onnx(make_tiny_onnx):
    return make_tiny_onnx


def test_roundtrip_gives_model_info_and_loader_uses_it(engine):
    path, _onnx, info = engine
    assert sidecar_path(path).name == "model.engine.json"
    assert read_sidecar_info(path) == info
    assert read_model_info(path) == info  # edge.backends.loader routes .engine to the sidecar
    sc = load_sidecar(path)
    assert sc.engine_sha256 == sha256_file(path)
    assert sc.profile["input"]["max"][0] == 8


def test_matching_machine_and_onnx_pass(engine):
    path, onnx, _ = engine
    sc = load_sidecar(path)
    assert sidecar_mismatches(sc, "8.6.1.6", "Orin", "8.7", onnx) == []
    verify_sidecar(path, sc, "8.6.1.6", "Orin", "8.7", onnx)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"tensorrt_version": "10.3.0"}, "built with TensorRT 8.6.1.6, this machine has TensorRT 10.3.0"),
        ({"gpu_name": "RTX 4090", "compute_capability": "8.9"}, "compute capability 8.7"),
        ({"gpu_name": "Jetson AGX Orin 64GB", "compute_capability": "8.7"}, "built on GPU 'Orin'"),
    ],
)
def test_each_machine_mismatch_is_refused_with_rebuild_command(engine, kwargs, expected):
    path, _onnx, _ = engine
    sc = load_sidecar(path)
    with pytest.raises(FetalPlanesError) as err:
        verify_sidecar(path, sc, **kwargs)
    assert expected in err.value.message
    assert str(path) in err.value.message
    assert "fetalplanes build-engine --onnx" in err.value.hint and "--precision int8" in err.value.hint
    assert "--data /data/db" in err.value.hint and "--calib-cache model.calib" in err.value.hint
    assert err.value.exit_code == 2


def test_all_mismatches_are_named_at_once(engine):
    path, _onnx, _ = engine
    problems = sidecar_mismatches(load_sidecar(path), "10.0.0", "T4", "7.5")
    assert len(problems) == 2 and "TensorRT" in problems[0] and "T4" in problems[1]


def test_stale_engine_after_retraining_is_refused(engine, make_onnx):
    path, onnx, _ = engine
    make_onnx(onnx, seed=1)  # "retrained": new weights written over the same path
    with pytest.raises(FetalPlanesError, match="stale engine"):
        verify_sidecar(path, load_sidecar(path), "8.6.1.6", "Orin", "8.7")


def test_given_onnx_with_other_hash_is_refused(engine, make_onnx, tmp_path):
    path, _onnx, _ = engine
    other = make_onnx(tmp_path / "other.onnx", seed=2)
    with pytest.raises(FetalPlanesError, match="is not the one the engine was built from"):
        verify_sidecar(path, load_sidecar(path), onnx_path=other)
    with pytest.raises(FetalPlanesError, match="does not exist"):
        verify_sidecar(path, load_sidecar(path), onnx_path=tmp_path / "missing.onnx")


def test_recorded_onnx_absent_on_the_box_is_not_an_error(engine, tmp_path):
    path, onnx, _ = engine
    shipped = tmp_path / "box"
    shipped.mkdir()
    shutil.copy(path, shipped / path.name)
    shutil.copy(sidecar_path(path), shipped / sidecar_path(path).name)
    onnx.unlink()  # only the engine and its sidecar were copied to the edge box
    assert sidecar_mismatches(load_sidecar(shipped / path.name), "8.6.1.6", "Orin", "8.7") == []


def test_missing_broken_and_foreign_sidecars(engine):
    path, _onnx, _ = engine
    side = sidecar_path(path)
    data = json.loads(side.read_text())

    path.write_bytes(b"another engine")  # engine replaced, sidecar kept
    with pytest.raises(FetalPlanesError, match="does not match its sidecar"):
        load_sidecar(path)

    side.write_text("{not json")
    with pytest.raises(FetalPlanesError, match="not valid JSON"):
        read_sidecar_info(path)

    del data["tensorrt_version"]
    side.write_text(json.dumps(data))
    with pytest.raises(FetalPlanesError, match="lacks tensorrt_version"):
        load_sidecar(path, check_engine_hash=False)

    side.unlink()
    with pytest.raises(FetalPlanesError) as err:
        read_model_info(path)
    assert "no sidecar" in err.value.message and "build-engine" in err.value.hint


def test_sidecar_model_info_is_validated(engine):
    path, _onnx, _ = engine
    side = sidecar_path(path)
    data = json.loads(side.read_text())
    data["model_info"]["std"] = 0
    side.write_text(json.dumps(data))
    with pytest.raises(FetalPlanesError, match="std 0"):
        load_sidecar(path).info()
