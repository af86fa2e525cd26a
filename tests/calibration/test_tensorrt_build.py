"""Engine builder logic: route choice per TensorRT version, calibrator batching and cache, sidecar content.

Builds run against the STAND-IN tensorrt/pycuda in tests/fakes (never real TensorRT).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration.tensorrt_build import (
    CalibrationFeeder,
    EngineBuildConfig,
    build_engine,
    iter_calibration_batches,
    make_entropy_calibrator,
    plan_build,
)
from edge.backends import open_runner
from edge.backends.engine_sidecar import load_sidecar
from edge.files import sha256_file
from edge.backends.onnxruntime_runner import OnnxRuntimeRunner
from edge.cli import main
from edge.errors import FetalPlanesError
from tests.fakes import hide_tensorrt, install_fake_tensorrt


# --- route choice ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "precision, version, qdq, calib, mode, flags",
    [
        ("fp32", "8.6.1", False, False, "fp32", []),
        ("fp16", "8.6.1", False, False, "fp16-flag", ["FP16"]),
        ("int8", "8.6.1", True, False, "int8-explicit-qdq", ["INT8", "FP16"]),
        ("int8", "8.6.1", False, True, "int8-implicit-calibrator", ["INT8", "FP16"]),
        ("int8", "8.5.2", False, True, "int8-implicit-calibrator", ["INT8", "FP16"]),
        ("int8", "10.3.0", False, True, "int8-implicit-calibrator", ["INT8", "FP16"]),
        ("int8", "10.3.0", True, False, "int8-explicit-qdq", ["INT8", "FP16"]),
        ("int8", "11.0.0", True, False, "strongly-typed-int8-qdq", []),
        ("fp32", "11.0.0", False, False, "strongly-typed-fp32", []),
    ],
)
def test_plan_build_routes(precision, version, qdq, calib, mode, flags):
    plan = plan_build(precision, version, has_qdq=qdq, has_fp16_types=False, have_calibration=calib)
    assert (plan.mode, plan.flags, plan.calibrator) == (mode, flags, mode == "int8-implicit-calibrator")
    assert plan.network_flags == (["EXPLICIT_BATCH"] if version.startswith("8.") else [])


@pytest.mark.parametrize(
    "precision, version, qdq, calib, message, hint",
    [
        ("int8", "11.0.0", False, True, "removed implicit INT8", "fetalplanes quantize"),
        ("fp16", "11.1.0", False, False, "removed the FP16 builder flag", "modelopt.onnx.autocast"),
        ("int8", "8.6.1", False, False, "needs calibration images", "--data"),
        ("fp16", "10.3.0", True, False, "already quantized", "--precision int8"),
        ("int8", "8.5.2.2", True, False, "from TensorRT 8.6 on", "JetPack 5.1.x ships TensorRT 8.5.2.2"),
    ],
)
def test_plan_build_refusals(precision, version, qdq, calib, message, hint):
    with pytest.raises(FetalPlanesError) as err:
        plan_build(precision, version, has_qdq=qdq, has_fp16_types=False, have_calibration=calib)
    assert message in err.value.message and hint in err.value.hint
    assert "5.1.2" not in err.value.hint  # JetPack 5.1.2 still ships TensorRT 8.5: never the way to Q/DQ


# --- calibration batches and cache ---------------------------------------------------------------
def test_batches_complete_the_last_partial_batch_from_the_start():
    data = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    batches = list(iter_calibration_batches(data, 4))
    assert [b.shape for b in batches] == [(4, 1, 1, 1)] * 3
    assert batches[2].ravel().tolist() == [8, 9, 0, 1]
    assert [b.ravel().tolist() for b in iter_calibration_batches(data[:8], 4)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [b.ravel().tolist() for b in iter_calibration_batches(data[:2], 4)] == [[0, 1, 0, 1]]
    assert list(iter_calibration_batches(data[:0], 4)) == []


def test_feeder_ends_with_none_and_keeps_the_cache(tmp_path):
    data = np.ones((5, 1, 2, 2), np.float32)
    cache = tmp_path / "sub" / "model.calib"
    feeder = CalibrationFeeder(iter_calibration_batches(data, 2), 2, cache, source_sha256="a" * 64)
    assert feeder.read_cache() is None
    got = [feeder.next_batch() for _ in range(4)]
    assert [g is None for g in got] == [False, False, False, True] and feeder.delivered == 3
    feeder.write_cache(b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n")
    assert feeder.read_cache().startswith(b"TRT-8601")
    cache.write_bytes(b"")
    assert feeder.read_cache() is None  # an empty file is no cache
    feeder.write_cache(b"x")
    other_model = CalibrationFeeder(None, 2, cache, source_sha256="b" * 64)
    with pytest.raises(FetalPlanesError, match="made for another model"):
        other_model.read_cache()
    assert CalibrationFeeder(None, 2, None).read_cache() is None


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0"])
def test_entropy_calibrator_puts_batches_on_the_device(monkeypatch, version):
    trt, cuda = install_fake_tensorrt(monkeypatch, version)
    data = np.random.default_rng(0).normal(size=(3, 1, 4, 4)).astype(np.float32)
    feeder = CalibrationFeeder(iter_calibration_batches(data, 2), 2)
    cuda.init()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    calib = make_entropy_calibrator(trt, cuda, feeder, (2, 1, 4, 4))
    assert isinstance(calib, trt.IInt8EntropyCalibrator2) and calib.get_batch_size() == 2
    first = calib.get_batch(["input"])
    np.testing.assert_array_equal(cuda._read(first[0], (2, 1, 4, 4), np.float32), data[:2])
    second = calib.get_batch(["input"])
    np.testing.assert_array_equal(cuda._read(second[0], (2, 1, 4, 4), np.float32), np.concatenate([data[2:], data[:1]]))
    assert calib.get_batch(["input"]) is None and calib.error is None
    ctx.pop()


def test_no_calibrator_class_on_tensorrt_11(monkeypatch):
    trt, cuda = install_fake_tensorrt(monkeypatch, "11.0.0")
    with pytest.raises(FetalPlanesError, match="no IInt8EntropyCalibrator2"):
        make_entropy_calibrator(trt, cuda, CalibrationFeeder(None, 1), (1, 1, 4, 4))


# --- whole builds against the stand-in ---------------------------------------------------------
def _calib(n=10, size=32):
    return np.random.default_rng(1).normal(0, 0.6, (n, 1, size, size)).astype(np.float32)


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0"])
def test_implicit_int8_calibrates_then_reuses_the_cache(monkeypatch, tmp_path, tiny_onnx, version):
    trt, _ = install_fake_tensorrt(monkeypatch, version)
    cache = tmp_path / "model.calib"
    cfg = EngineBuildConfig(str(tiny_onnx), str(tmp_path / "a.engine"), "int8", max_batch=4, calib_batch=4, calib_cache=str(cache))
    sc = build_engine(cfg, calibration_data=_calib())
    assert trt.build_log[-1]["calibration"] == "from-data" and trt.build_log[-1]["calibration_batches"] == 3
    assert cache.is_file() and sc.build_options["calibration_batches"] == 3
    cfg2 = EngineBuildConfig(str(tiny_onnx), str(tmp_path / "b.engine"), "int8", max_batch=4, calib_cache=str(cache))
    sc2 = build_engine(cfg2)  # no data: the cache is enough
    assert trt.build_log[-1]["calibration"] == "from-cache" and sc2.mode == "int8-implicit-calibrator"


def test_sidecar_records_what_the_build_used(monkeypatch, tmp_path, tiny_onnx):
    trt, _ = install_fake_tensorrt(monkeypatch, "10.3.0", gpu_name="Orin", compute_capability=(8, 7))
    out = tmp_path / "m.engine"
    build_engine(EngineBuildConfig(str(tiny_onnx), str(out), "fp16", max_batch=16, opt_batch=2, workspace_mb=256))
    sc = load_sidecar(out)
    assert (sc.precision, sc.mode, sc.tensorrt_version, sc.gpu_name, sc.compute_capability) == ("fp16", "fp16-flag", "10.3.0", "Orin", "8.7")
    assert sc.onnx_sha256 == sha256_file(tiny_onnx) and sc.engine_sha256 == sha256_file(out)
    assert sc.profile["input"] == {"min": [1, 1, 32, 32], "opt": [2, 1, 32, 32], "max": [16, 1, 32, 32]}
    assert sc.build_options["workspace_mb"] == 256 and sc.build_options["flags"] == ["FP16"]
    assert sc.info().labels[0] == "Fetal abdomen"


def test_qdq_onnx_builds_explicit_int8_on_8_10_and_11(monkeypatch, tmp_path, tiny_onnx):
    from calibration.quantize_ort import quantize_for_tensorrt

    qdq = quantize_for_tensorrt(tiny_onnx, tmp_path / "m.qdq.onnx", _calib(8))
    for version, mode in (("8.6.1.6", "int8-explicit-qdq"), ("10.3.0", "int8-explicit-qdq"), ("11.0.0", "strongly-typed-int8-qdq")):
        trt, _ = install_fake_tensorrt(monkeypatch, version)
        out = tmp_path / f"m{version}.engine"
        assert build_engine(EngineBuildConfig(str(qdq), str(out), "int8")).mode == mode
        assert ("FP16" in trt.build_log[-1]["flags"]) == (version != "11.0.0")  # unquantized layers may run FP16 (< 11)
        x = _calib(5)
        with open_runner(out) as r, OnnxRuntimeRunner(str(qdq)) as o:
            np.testing.assert_allclose(r.infer(x), o.infer(x), atol=1e-5)


@pytest.fixture()
def ort_default_qdq(tiny_onnx, tmp_path):
    """The Q/DQ file quantize and selftest wrote before issue 16: ORT's defaults, INT32 biases into DequantizeLinear."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    data = _calib(4)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": data[i : i + 1]} for i in range(len(data))])

        def get_next(self):
            return next(self.items, None)

    out = tmp_path / "old.qdq.onnx"
    quantize_static(str(tiny_onnx), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return out


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0", "11.0.0"])
def test_old_qdq_files_are_refused_by_the_parser_and_named_before_it(monkeypatch, tmp_path, ort_default_qdq, version):
    trt, _ = install_fake_tensorrt(monkeypatch, version)
    builder = trt.Builder(trt.Logger())
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if version.startswith("8.") else 0
    parser = trt.OnnxParser(builder.create_network(flags), None)
    assert not parser.parse(ort_default_qdq.read_bytes())
    assert "only activation types allowed as input to this layer" in parser.get_error(0)
    with pytest.raises(FetalPlanesError) as err:  # build-engine names the problem and the fix before parsing
        build_engine(EngineBuildConfig(str(ort_default_qdq), str(tmp_path / "m.engine"), "int8"))
    assert "INT32 bias" in err.value.message and "--target tensorrt" in err.value.hint
    assert trt.build_log == [] and not (tmp_path / "m.engine").exists()


def _static_batch_onnx(make_tiny_onnx, path, batch):
    import onnx

    src = make_tiny_onnx(path)
    model = onnx.load(str(src))
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.type.tensor_type.shape.dim[0].ClearField("dim_param")
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(src))
    return src


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0"])
def test_implicit_int8_of_a_static_batch_onnx_calibrates_at_that_batch(monkeypatch, tmp_path, make_tiny_onnx, version):
    trt, _ = install_fake_tensorrt(monkeypatch, version)
    onnx_path = _static_batch_onnx(make_tiny_onnx, tmp_path / "static.onnx", 2)
    sc = build_engine(EngineBuildConfig(str(onnx_path), str(tmp_path / "m.engine"), "int8", calib_batch=8), calibration_data=_calib(7))
    log = trt.build_log[-1]
    assert "error" not in log and log["calibrator_batch_size"] == 2 and log["calibration_batches"] == 4  # 7 -> 4 x 2
    assert sc.profile["input"] == {"min": [2, 1, 32, 32], "opt": [2, 1, 32, 32], "max": [2, 1, 32, 32]}


def test_profile_return_values_are_checked(monkeypatch, tmp_path, tiny_onnx):
    trt, _ = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    config_cls = type(trt.Builder(trt.Logger()).create_builder_config())
    monkeypatch.setattr(config_cls, "add_optimization_profile", lambda self, profile: -1)
    with pytest.raises(FetalPlanesError, match="refused the optimization profile"):
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.engine"), "fp16"))
    monkeypatch.undo()
    trt, _ = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    config_cls = type(trt.Builder(trt.Logger()).create_builder_config())
    monkeypatch.setattr(config_cls, "set_calibration_profile", lambda self, profile: False)
    with pytest.raises(FetalPlanesError, match="refused the calibration profile"):
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.engine"), "int8"), calibration_data=_calib())


def test_a_calibration_cache_from_another_tensorrt_is_refused(monkeypatch, tmp_path, tiny_onnx):
    cache = tmp_path / "model.calib"
    install_fake_tensorrt(monkeypatch, "8.6.1.6")
    build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "a.engine"), "int8", calib_cache=str(cache)), calibration_data=_calib())
    assert (tmp_path / "model.calib.source").read_text().split()[1:] == ["tensorrt", "8.6.1.6"]
    install_fake_tensorrt(monkeypatch, "10.3.0")  # JetPack 6.0 -> 6.1
    with pytest.raises(FetalPlanesError) as err:
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "b.engine"), "int8", calib_cache=str(cache)))
    assert "written by TensorRT 8.6.1.6, this is TensorRT 10.3.0" in err.value.message and "--data" in err.value.hint


def test_tensorrt_11_refuses_implicit_int8_before_building(monkeypatch, tmp_path, tiny_onnx):
    trt, _ = install_fake_tensorrt(monkeypatch, "11.0.0")
    with pytest.raises(FetalPlanesError) as err:
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.engine"), "int8"), calibration_data=_calib())
    assert "Q/DQ" in err.value.message and "fetalplanes quantize" in err.value.hint
    assert trt.build_log == [] and not (tmp_path / "m.engine").exists()


def test_bad_inputs_give_clear_errors(monkeypatch, tmp_path, tiny_onnx):
    install_fake_tensorrt(monkeypatch, "8.6.1.6")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_onnx.read_bytes()[:200])
    with pytest.raises(FetalPlanesError, match="cannot load"):
        build_engine(EngineBuildConfig(str(corrupt), str(tmp_path / "m.engine"), "fp16"))
    with pytest.raises(FetalPlanesError, match="calibration set is empty"):
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.engine"), "int8"), calibration_data=_calib(0))
    with pytest.raises(FetalPlanesError, match="calibration data has shape"):
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.engine"), "int8"), calibration_data=_calib(4, 16))
    with pytest.raises(FetalPlanesError, match=r"\.engine, \.plan or \.trt"):
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.onnx"), "fp16"))
    with pytest.raises(FetalPlanesError, match="opt <= max"):
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.engine"), "fp16", max_batch=2, opt_batch=4))


def test_missing_tensorrt_is_a_clear_error(monkeypatch, tmp_path, tiny_onnx):
    hide_tensorrt(monkeypatch)
    with pytest.raises(FetalPlanesError) as err:
        build_engine(EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.engine"), "fp16"))
    assert "pip install 'fetalplanes[tensorrt]'" in err.value.hint and "JetPack" in err.value.hint


def test_build_engine_command(monkeypatch, tmp_path, tiny_onnx, capsys):
    install_fake_tensorrt(monkeypatch, "10.3.0")
    out = tmp_path / "m.engine"
    assert main(["build-engine", "--onnx", str(tiny_onnx), "--precision", "fp16", "--out", str(out), "--max-batch", "4"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "batch min/opt/max input: 1/1/4" in text
    assert json.loads((tmp_path / "m.engine.json").read_text())["precision"] == "fp16"
    assert main(["build-engine", "--onnx", str(tiny_onnx), "--precision", "int8", "--out", str(out)]) == 2
    assert "needs calibration images" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["build-engine", "--onnx", str(tiny_onnx), "--precision", "int4", "--out", str(out)])
    assert exit_.value.code == 2


def test_implicit_int8_from_a_dataset_folder_uses_the_calibration_set(monkeypatch, tmp_path, tiny_onnx):
    from fetaldata.phantom.dataset import write_phantom_dataset

    trt, _ = install_fake_tensorrt(monkeypatch, "8.6.1.6")
    db = write_phantom_dataset(tmp_path / "db", patients=12, seed=0, size=64)
    cfg = EngineBuildConfig(str(tiny_onnx), str(tmp_path / "m.engine"), "int8", data_dir=str(db), calib_size=16, calib_batch=4)
    sc = build_engine(cfg)
    assert trt.build_log[-1]["calibration_batches"] == 4 and sc.build_options["data_dir"] == str(db)
    small = write_phantom_dataset(tmp_path / "small", patients=4, seed=0, size=64)
    cfg.data_dir = str(small)
    with pytest.raises(FetalPlanesError, match="too few for a calibration set"):
        build_engine(cfg)
