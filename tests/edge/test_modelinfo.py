"""edge.modelinfo: schema 1 and 2 round trips through every store (ONNX metadata, checkpoint dict,
engine sidecar), validation errors, and the label-map helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.backends import read_model_info
from edge.backends.engine_sidecar import EngineSidecar, read_sidecar_info, write_sidecar
from edge.cli import main
from edge.errors import FetalPlanesError
from edge.labels import PLANES
from edge.modelinfo import (
    CHECKPOINT_KEY, METADATA_KEY, ModelInfo, copy_onnx_info, info_from_checkpoint, info_from_onnx_model,
    parse_input_size, read_onnx_metadata, set_onnx_model_info, write_onnx_info,
)
from tiny_onnx_model import SONONET, SONONET_MAP


def schema1() -> ModelInfo:
    return ModelInfo(task="planes", labels=list(PLANES), arch="mobilenet_v3_small", input_size=32, mean=40.0, std=215.0,
                     dataset_fingerprint="abc", extra={"args": {"epochs": 1}})


def schema2() -> ModelInfo:
    return ModelInfo(task="planes", labels=list(SONONET), arch="sononet16", input_size=[224, 288], mean=0.0, std=1.0,
                     normalization="per_image", scale=255.0, gray="mean", interpolation="linear",
                     label_map=dict(SONONET_MAP), outputs="probabilities")


def sononet_like() -> ModelInfo:
    return schema2()


# --- the dict/JSON form and its schema number ---------------------------------------------------
def test_plain_description_is_written_as_schema_1_with_its_old_fields():
    d = schema1().to_dict()
    assert d["schema"] == 1 and d["input_size"] == 32
    assert ModelInfo.from_dict(d) == schema1()


def test_any_new_feature_makes_schema_2():
    assert schema2().to_dict()["schema"] == 2
    for change in ({"input_size": [32, 40]}, {"normalization": "per_image"}, {"gray": "mean"},
                   {"interpolation": "linear"}, {"label_map": {p: p for p in PLANES}}):
        info = ModelInfo(**{**schema1().__dict__, **change})
        assert info.to_dict()["schema"] == 2, change


def test_a_schema_1_file_from_before_still_loads():
    old = {"task": "brain", "labels": ["Trans-thalamic", "Trans-cerebellum", "Trans-ventricular", "Not A Brain"],
           "arch": "resnet18", "input_size": 224, "mean": 30.0, "std": 225.0, "channels": 1, "layout": "NCHW",
           "resize": "stretch", "input_name": "input", "output_name": "logits", "outputs": "logits",
           "dataset_fingerprint": "", "checkpoint_sha256": "", "code_version": "", "extra": {}, "schema": 1}
    info = ModelInfo.from_json(json.dumps(old))
    assert (info.normalization, info.gray, info.interpolation, info.label_map) == ("dataset", "luma", "area", {})
    assert info.input_hw == (224, 224) and info.task_labels == old["labels"] and info.schema == 1


def test_newer_schema_is_refused():
    d = {**schema1().to_dict(), "schema": 3}
    with pytest.raises(FetalPlanesError, match="schema 3 is newer"):
        ModelInfo.from_dict(d, source="m.onnx")


def test_geometry_of_a_non_square_input():
    info = schema2()
    assert (info.height, info.width, info.input_hw) == (224, 288, (224, 288))
    assert info.input_shape(3) == (3, 1, 224, 288) and info.size_text == "224x288"
    nhwc = ModelInfo(**{**info.__dict__, "layout": "NHWC"})
    assert nhwc.input_shape(2) == (2, 224, 288, 1)
    assert ModelInfo(**{**info.__dict__, "input_size": (64, 64)}).input_size == 64  # a square pair is the int


@pytest.mark.parametrize("text, expected", [("224", 224), (224, 224), ("224x288", [224, 288]), ("32X40", [32, 40]),
                                            ((40, 32), [40, 32]), ("64x64", 64)])
def test_parse_input_size(text, expected):
    assert parse_input_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "224x", "1x2x3", "4x224", "7", True, 22.5])
def test_parse_input_size_refuses_with_the_argument_named(text):
    with pytest.raises(FetalPlanesError) as err:
        parse_input_size(text, "--image-size")
    assert err.value.message.startswith("--image-size") and err.value.exit_code == 2


# --- the stores ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [schema1, schema2], ids=["schema1", "schema2"])
def test_onnx_metadata_round_trip(make, make_tiny_onnx, tmp_path):
    onnx = pytest.importorskip("onnx")
    info = make()
    fields = {k: v for k, v in info.__dict__.items() if k not in ("schema",)}
    path = make_tiny_onnx(tmp_path / "m.onnx", **fields)
    assert read_onnx_metadata(path) == info  # ONNX Runtime's reader (the box)
    assert read_model_info(path) == info
    assert info_from_onnx_model(onnx.load(str(path))) == info  # the onnx package's (quantize)
    # rewriting replaces, never duplicates, and keeps other metadata
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"other": "kept", METADATA_KEY: model.metadata_props[0].value})
    onnx.save(model, str(path))
    changed = ModelInfo(**{**fields, "arch": "renamed"})
    write_onnx_info(path, changed)
    props = [(p.key, p.value) for p in onnx.load(str(path)).metadata_props]
    assert [k for k, _ in props].count(METADATA_KEY) == 1 and ("other", "kept") in props
    assert read_onnx_metadata(path).arch == "renamed"
    other = make_tiny_onnx(tmp_path / "o.onnx")
    assert copy_onnx_info(path, other) == changed and read_onnx_metadata(other) == changed


def test_onnx_without_description_is_a_clear_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], []))
    with pytest.raises(FetalPlanesError, match="carries no 'fetalplanes' metadata"):
        info_from_onnx_model(model, source="x.onnx")


def test_an_invalid_description_is_never_written(make_tiny_onnx, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(make_tiny_onnx(tmp_path / "m.onnx")))
    bad = ModelInfo(**{**schema1().__dict__, "std": 0.0})
    with pytest.raises(FetalPlanesError, match="std 0.0 <= 0"):
        set_onnx_model_info(model, bad)


@pytest.mark.parametrize("make", [schema1, schema2], ids=["schema1", "schema2"])
def test_checkpoint_dict_round_trip(make):
    info = make()
    ckpt = {"format": "fetalplanes-checkpoint", CHECKPOINT_KEY: info.to_dict(), "state_dict": {}}
    again = info_from_checkpoint(json.loads(json.dumps(ckpt)), source="best.pt")
    assert again == info and again.label_map == info.label_map
    with pytest.raises(FetalPlanesError, match="best.pt: the checkpoint carries no model_info"):
        info_from_checkpoint({"state_dict": {}}, source="best.pt")


@pytest.mark.parametrize("make", [schema1, schema2], ids=["schema1", "schema2"])
def test_engine_sidecar_round_trip(make, tmp_path):
    info = make()
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"serialized engine")
    write_sidecar(engine, EngineSidecar(model_info=info.to_dict(), precision="fp16", mode="fp16-flag",
                                        tensorrt_version="8.5.2", gpu_name="Orin", compute_capability="8.7"))
    assert read_sidecar_info(engine) == info
    assert read_model_info(engine) == info


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("change, expected", [
    ({"input_size": [32, 4]}, "input_size [32, 4]: each side must be at least 8 px"),
    ({"input_size": "big"}, "input_size 'big': not an input size"),
    ({"input_size": [1, 2, 3]}, "not an input size"),
    ({"normalization": "imagenet"}, "normalization 'imagenet' is not one of dataset, per_image"),
    ({"scale": 0}, "scale 0 <= 0"),
    ({"scale": "x"}, "scale 'x' is not a finite number"),
    ({"gray": "red"}, "gray 'red' is not one of luma, mean"),
    ({"interpolation": "cubic"}, "interpolation 'cubic' is not one of area, linear"),
    ({"mean": float("nan")}, "mean nan is not a finite number"),
    ({"labels": ["a", "a"]}, "labels repeat a name"),
    ({"labels": "abc"}, "labels 'abc' is not a list of names"),
    ({"outputs": "scores"}, "outputs 'scores' is not logits or probabilities"),
    ({"label_map": ["x"]}, "label_map ['x'] is not a mapping"),
    ({"label_map": {"3VV": "Fetal thorax"}}, "label_map does not map the label(s) '4CH'"),
    ({"label_map": {**SONONET_MAP, "Heart": "Fetal thorax"}}, "maps 'Heart', which are not among the labels"),
    ({"label_map": {**SONONET_MAP, "Lips": "Face"}}, "maps onto 'Face', not labels of task 'planes'"),
    ({"task": "hearts"}, "label_map given for task 'hearts'"),
])
def test_bad_fields_are_refused_with_a_clear_message(change, expected):
    data = {**schema2().to_dict(), **change}
    with pytest.raises(FetalPlanesError) as err:
        ModelInfo.from_dict(data, source="model.onnx")
    assert err.value.exit_code == 2
    assert err.value.message.startswith("model.onnx: invalid fetalplanes metadata")
    assert expected in err.value.message
    assert "fetalplanes export" in err.value.hint


def test_every_problem_is_named_at_once():
    data = {**schema1().to_dict(), "std": -1, "gray": "red", "layout": "CHW"}
    with pytest.raises(FetalPlanesError) as err:
        ModelInfo.from_dict(data)
    assert all(s in err.value.message for s in ("std -1 <= 0", "gray 'red'", "layout 'CHW'"))


def test_missing_fields_and_non_objects():
    with pytest.raises(FetalPlanesError, match="lacks input_size, std"):
        ModelInfo.from_dict({"task": "planes", "labels": ["a"], "arch": "x", "mean": 0})
    with pytest.raises(FetalPlanesError, match="not a JSON object"):
        ModelInfo.from_json("[1, 2]")
    with pytest.raises(FetalPlanesError, match="not valid JSON"):
        ModelInfo.from_json("{")


def test_a_bad_description_in_a_model_file_exits_2_without_traceback(make_tiny_onnx, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    path = make_tiny_onnx(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    data = json.loads(model.metadata_props[0].value)
    data.update(input_size=[32, 40], normalization="zscore", schema=2)
    model.metadata_props[0].value = json.dumps(data)
    onnx.save(model, str(path))
    image = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((40, 50), np.uint8))
    code = main(["classify", "--model", str(path), str(image), "--out", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "normalization 'zscore'" in err and "Traceback" not in err


# --- labels and the label map -------------------------------------------------------------------
def test_without_a_map_the_labels_are_the_tasks():
    info = schema1()
    p = np.array([[0.1, 0.2, 0.3, 0.1, 0.2, 0.1]], np.float32)
    assert info.task_labels == list(PLANES) and info.missing_task_labels == []
    assert info.map_probabilities(p) is not None and np.array_equal(info.map_probabilities(p), p)
    assert info.display_label(1) == "Fetal brain" and info.task_label(1) == "Fetal brain"


def test_sononet_map_onto_the_six_planes():
    info = sononet_like()
    assert info.task_labels == list(PLANES)
    assert info.missing_task_labels == ["Maternal cervix"]
    assert info.display_label(1) == "4CH · Fetal thorax" and info.task_label(4) == "Fetal brain"
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(14), size=5).astype(np.float32)
    q = info.map_probabilities(p)
    assert q.shape == (5, 6)
    assert np.allclose(q.sum(1), 1.0, atol=1e-6)  # probability mass is kept
    col = {t: j for j, t in enumerate(PLANES)}
    thorax = [SONONET.index(x) for x in ("3VV", "4CH", "LVOT", "RVOT")]
    assert np.allclose(q[:, col["Fetal thorax"]], p[:, thorax].sum(1), atol=1e-6)
    assert np.allclose(q[:, col["Fetal femur"]], p[:, SONONET.index("Femur")])
    assert np.all(q[:, col["Maternal cervix"]] == 0)
    assert np.allclose(info.map_probabilities(p[0]), q[0], atol=1e-6)  # one vector works too
    with pytest.raises(FetalPlanesError, match="6 columns, the model has 14 labels"):
        info.map_probabilities(q)


def test_a_prediction_counts_as_its_most_probable_plane_not_its_top_view():
    """One rule for evaluate, classify and the live loop (they disagreed on one HC18 head: 104 vs 103)."""
    info = sononet_like()
    p = np.zeros(14, np.float32)
    p[SONONET.index("Brain (Tv.)")] = 0.35  # the top view...
    for view in ("Lips", "Profile", "Kidneys"):
        p[SONONET.index(view)] = 0.15  # ...but Other's views add up to 0.45
    p[SONONET.index("4CH")] = 0.20
    index, label, conf = info.task_decision(p)
    assert (label, index) == ("Other", list(PLANES).index("Other")) and conf == pytest.approx(0.45)
    assert info.task_label(int(np.argmax(p))) == "Fetal brain"
    plain = schema1()
    assert plain.task_decision(np.array([0.1, 0.5, 0.1, 0.1, 0.1, 0.1]))[1:] == ("Fetal brain", pytest.approx(0.5))


def test_preprocessing_key_tells_apart_what_changes_the_input():
    a, b = schema1(), schema1()
    b.extra = {"other": 1}
    b.arch = "resnet18"
    assert a.preprocessing_key() == b.preprocessing_key()
    for change in ({"input_size": [32, 40]}, {"gray": "mean"}, {"interpolation": "linear"}, {"mean": 41.0},
                   {"normalization": "per_image"}):
        assert ModelInfo(**{**a.__dict__, **change}).preprocessing_key() != a.preprocessing_key(), change
