"""`fetalplanes evaluate` / export.evaluate: one code path from a model file to the study's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.backends.base import Runner
from edge.cli import main
from edge.errors import FetalPlanesError
from edge.labels import PLANES
from edge.modelinfo import ModelInfo


from tiny_onnx_model import make_tiny_onnx  # noqa: E402

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train \n"


def write_db(root: Path, rows: list[tuple], size=(40, 52), seed: int = 0) -> Path:
    """A FETAL_PLANES_DB folder in the release's layout (';', 'Train ' with trailing spaces).

    rows: (name, patient, plane, brain_plane, operator, machine, train, gray); gray None -> a random texture.
    """
    import cv2

    rng = np.random.default_rng(seed)
    (root / "Images").mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    for name, patient, plane, brain, op, machine, train, gray in rows:
        lines.append(f"{name};{patient};{plane};{brain};{op};{machine};{int(train)} \n")
        if gray is None:
            img = rng.integers(0, 256, size, dtype=np.uint8)
            img = cv2.GaussianBlur(img, (5, 5), 0)
        else:
            img = np.full(size, gray, np.uint8)
        assert cv2.imwrite(str(root / "Images" / f"{name}.png"), img)
    (root / "FETAL_PLANES_DB_data.csv").write_text("".join(lines), encoding="utf-8")
    return root


def texture_rows(train_patients=(1, 2, 3, 4), test_patients=(5, 6, 7)) -> list[tuple]:
    rows = []
    for p in train_patients + test_patients:
        for k, plane in enumerate(PLANES):
            brain = "Trans-thalamic" if plane == "Fetal brain" else "Not A Brain"
            op = "Op. 1" if p % 2 else "Op. 2"
            rows.append((f"Patient{p:05d}_Plane{k + 1}_1_of_1", p, plane, brain, op, "Voluson E6", p in train_patients, None))
    return rows


@pytest.fixture(scope="module")
def texture_db(tmp_path_factory) -> Path:
    return write_db(tmp_path_factory.mktemp("db"), texture_rows())


# --- a hand-made case: a runner whose answer is looked up from the image's gray level ---------------------
# test images (Train = 0): gray level -> (true plane, probabilities the fake model gives)
HAND = {
    10: (0, [0.70, 0.10, 0.10, 0.05, 0.03, 0.02]),  # abdomen, right
    20: (0, [0.20, 0.50, 0.10, 0.10, 0.05, 0.05]),  # abdomen as brain; abdomen 2nd -> top-3 right
    30: (1, [0.10, 0.60, 0.10, 0.10, 0.05, 0.05]),  # brain, right
    40: (2, [0.40, 0.30, 0.05, 0.20, 0.03, 0.02]),  # femur as abdomen; femur 4th -> top-3 wrong
    50: (5, [0.05, 0.05, 0.05, 0.05, 0.10, 0.70]),  # other, right
    60: (5, [0.10, 0.10, 0.10, 0.10, 0.10, 0.50]),  # other, right
}


class LookupRunner(Runner):
    """Returns HAND's probabilities for the constant gray level of each input (mean 0, std 1: input = pixel)."""

    name = "lookup"

    def __init__(self):
        super().__init__(
            "lookup.fake",
            ModelInfo(task="planes", labels=list(PLANES), arch="lookup", input_size=16, mean=0.0, std=1.0,
                      outputs="probabilities"),
        )
        self.batches: list[int] = []

    def activate_impl(self):
        pass

    def infer_impl(self, batch):
        self.batches.append(len(batch))
        return np.asarray([HAND[int(round(float(x.mean())))][1] for x in batch], np.float32)


@pytest.fixture(scope="module")
def hand_db(tmp_path_factory) -> Path:
    rows = [("Patient00001_Plane1_1_of_2", 1, "Fetal abdomen", "Not A Brain", "Op. 1", "Aloka", True, 10),
            ("Patient00002_Plane1_1_of_1", 2, "Other", "Not A Brain", "Op. 1", "Aloka", True, 50)]
    for i, (gray, (target, _)) in enumerate(HAND.items()):
        plane = PLANES[target]
        brain = "Trans-thalamic" if plane == "Fetal brain" else "Not A Brain"
        rows.append((f"Patient{10 + i:05d}_Plane1_1_of_1", 10 + i, plane, brain, "Op. 2", "Voluson E6", False, gray))
    return write_db(tmp_path_factory.mktemp("hand"), rows, size=(24, 30))


def test_metrics_on_a_hand_made_case(hand_db):
    from export.evaluate import evaluate_model

    runner = LookupRunner()
    res = evaluate_model("lookup.fake", hand_db, "test", runner=runner, batch_size=4)
    m = res.metrics
    assert m.n == 6 and runner.batches == [4, 2]  # only the Train = 0 patients, in batches of 4
    assert m.top1_error == pytest.approx(2 / 6)
    assert m.top3_error == pytest.approx(1 / 6)
    recalls = [1 / 2, 1, 0, 1]  # abdomen, brain, femur, other (thorax and cervix have no test image)
    assert m.class_accuracy_mean == pytest.approx(np.mean(recalls))
    assert m.class_accuracy_std == pytest.approx(np.std(recalls))
    assert m.per_class[0]["precision"] == pytest.approx(1 / 2)  # abdomen predicted for one abdomen, one femur
    assert m.per_class[1]["precision"] == pytest.approx(1 / 2)
    assert m.confusion.sum() == 6 and m.confusion[2, 0] == 1 and m.confusion[0, 1] == 1
    assert [p.target for p in res.predictions] == [t for t, _ in HAND.values()]
    assert [p.predicted for p in res.predictions] == [int(np.argmax(q)) for _, q in HAND.values()]
    assert res.predictions[3].confidence == pytest.approx(0.40, abs=1e-6)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["metrics"]["n"] == 6 and len(d["predictions"]) == 6 and d["split_config"]["task"] == "planes"


def test_onnx_model_one_code_path(tiny_onnx, texture_db):
    """ORT through evaluate_model gives what ORT gives on edge.preprocess's tensors, for any batch size."""
    import onnxruntime as ort

    from fetaldata import FetalPlanesDB
    from edge.preprocess import preprocess, read_gray
    from export.evaluate import evaluate_model

    res = evaluate_model(tiny_onnx, texture_db, "test", batch_size=4)
    assert res.metrics.n == 3 * len(PLANES) == len(res.predictions)
    assert res.metrics.confusion.sum() == res.metrics.n
    assert res.runner.startswith("onnxruntime")
    assert res.model_info["arch"] == "tiny-test-net"
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    info = ModelInfo.from_dict(res.model_info)
    db = FetalPlanesDB.open(texture_db)
    for p in res.predictions[:5]:
        x = preprocess(read_gray(db.root / "Images" / f"{p.image}.png"), info)
        logits = sess.run(None, {"input": x})[0][0]
        want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        np.testing.assert_allclose(p.probabilities, want, atol=1e-5)
    res1 = evaluate_model(tiny_onnx, texture_db, "test", batch_size=1)
    np.testing.assert_allclose(res1.probabilities, res.probabilities, atol=1e-5)
    assert {p.patient for p in res.predictions} == {5, 6, 7}


def test_val_split_uses_training_patients(tiny_onnx, texture_db):
    from export.evaluate import evaluate_model

    res = evaluate_model(tiny_onnx, texture_db, "val")
    assert {p.patient for p in res.predictions} <= {1, 2, 3, 4} and res.metrics.n == len(PLANES)


def test_cli_writes_reports(tiny_onnx, texture_db, tmp_path, capsys):
    import cv2

    out = tmp_path / "rep"
    rc = main(["evaluate", "--model", str(tiny_onnx), "--data", str(texture_db), "--out", str(out),
               "--batch-size", "5", "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "top-1 error" in printed and str(out / "metrics.json") in printed
    data = json.loads((out / "metrics.json").read_text())
    assert data["metrics"]["n"] == 3 * len(PLANES) and data["split"] == "test"
    assert np.asarray(data["metrics"]["confusion"]).sum() == data["metrics"]["n"]
    md = (out / "metrics.md").read_text()
    assert f"{100 * data['metrics']['top1_error']:.1f}" in md and "Fetal femur" in md
    assert len((out / "predictions.csv").read_text().splitlines()) == 1 + data["metrics"]["n"]
    for name in ("confusion_counts.png", "confusion_percent.png"):
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 200


def test_cli_default_out_is_beside_the_model(tmp_path, texture_db):
    model = make_tiny_onnx(tmp_path / "m" / "model.onnx")
    assert main(["evaluate", "--model", str(model), "--data", str(texture_db), "--split", "val", "--quiet"]) == 0
    assert (tmp_path / "m" / "model-eval-val" / "metrics.json").is_file()


def test_task_mismatch_is_a_usage_error(tmp_path, texture_db, capsys):
    brain = make_tiny_onnx(tmp_path / "brain.onnx", task="brain")
    rc = main(["evaluate", "--model", str(brain), "--data", str(texture_db), "--task", "planes", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "trained for task 'brain'" in err and "fix:" in err


def test_brain_model_evaluates_the_brain_task(tmp_path, texture_db):
    from edge.labels import BRAIN
    from export.evaluate import evaluate_model

    brain = make_tiny_onnx(tmp_path / "brain.onnx", task="brain")
    res = evaluate_model(brain, texture_db, "test")
    assert res.task == "brain" and res.labels == list(BRAIN)
    # test patients 5-7: one trans-thalamic image each, and every non-brain image as "Not A Brain"
    assert sorted(p.target for p in res.predictions) == [0] * 3 + [3] * 15


def _relabel(src: Path, dst: Path, labels: list[str]) -> Path:
    import onnx

    from edge.modelinfo import METADATA_KEY

    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            d = json.loads(prop.value)
            d["labels"] = labels
            prop.value = json.dumps(d)
    onnx.save(model, str(dst))
    return dst


def test_labels_in_another_order_are_refused(tiny_onnx, texture_db, tmp_path):
    from export.evaluate import evaluate_model

    swapped = _relabel(tiny_onnx, tmp_path / "swapped.onnx", list(reversed(PLANES)))
    with pytest.raises(FetalPlanesError, match="another order") as exc:
        evaluate_model(swapped, texture_db)
    assert exc.value.exit_code == 2 and "Fetal abdomen, Fetal brain" in exc.value.hint
    foreign = _relabel(tiny_onnx, tmp_path / "foreign.onnx", list(PLANES[:5]) + ["Fetal heart"])
    with pytest.raises(FetalPlanesError, match="not in the dataset: Fetal heart"):
        evaluate_model(foreign, texture_db)


def test_missing_images_error_or_skip(tiny_onnx, tmp_path):
    from export.evaluate import evaluate_model

    db = write_db(tmp_path / "db", texture_rows(test_patients=(5, 6)))
    (db / "Images" / "Patient00005_Plane3_1_of_1.png").unlink()
    with pytest.raises(FetalPlanesError, match="1 of the split's 12 images are missing") as exc:
        evaluate_model(tiny_onnx, db)
    assert "--skip-missing" in exc.value.hint
    res = evaluate_model(tiny_onnx, db, skip_missing=True)
    assert res.metrics.n == 11 and res.skipped_images[0].endswith("Patient00005_Plane3_1_of_1.png")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--model", "{tmp}/nothing.onnx", "--data", "{db}"], "model file not found"),
        (["--model", "{tmp}/notes.txt", "--data", "{db}"], "unknown model file type"),
        (["--model", "{tiny}", "--data", "{tmp}/no_such_db"], "dataset folder not found"),
        (["--model", "{tiny}", "--data", "{db}", "--batch-size", "0"], "--batch-size 0"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, expected, tiny_onnx, texture_db, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    argv = [a.format(tmp=tmp_path, db=texture_db, tiny=tiny_onnx) for a in argv]
    assert main(["evaluate", *argv, "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert expected in capsys.readouterr().err


def test_real_images_with_skip_missing(tiny_onnx, real_db_dir):
    """The real CSV (12,400 rows) with the 12 real PNGs present (one RGBA): the test split's present ones."""
    from export.evaluate import evaluate_model

    res = evaluate_model(tiny_onnx, real_db_dir, "test", skip_missing=True)
    assert res.metrics.n == len(res.predictions) > 0
    assert all(Path(real_db_dir, "Images", f"{p.image}.png").is_file() for p in res.predictions)
    assert res.metrics.n + len(res.skipped_images) == sum(
        1 for line in (real_db_dir / "FETAL_PLANES_DB_data.csv").read_text().splitlines()[1:] if line.rstrip().endswith(";0")
    )


def test_command_module_imports_light():
    import subprocess
    import sys

    code = ("import sys, export.commands.evaluate, export.evaluate, export.reports; "
            "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_checkpoint_and_its_onnx_export_give_the_same_metrics(trained_run, phantom_db, tmp_path):
    """A `fetalplanes train` checkpoint (TorchRunner) and its ONNX export (ONNX Runtime) through the same path."""
    pytest.importorskip("torch")
    pytest.importorskip("export.torch_runner")
    from export.evaluate import evaluate_model
    from export.onnx_export import export_onnx

    pt = evaluate_model(trained_run, phantom_db, "test", batch_size=8)
    assert pt.runner.startswith("torch") and pt.metrics.n == len(pt.predictions) > 0
    onnx_path = tmp_path / "m.onnx"
    export_onnx(trained_run, onnx_path)
    ox = evaluate_model(onnx_path, phantom_db, "test", batch_size=8)
    assert ox.runner.startswith("onnxruntime")
    np.testing.assert_allclose(ox.probabilities, pt.probabilities, atol=1e-3)  # float32 kernels differ slightly
    agree = np.mean([a.predicted == b.predicted for a, b in zip(ox.predictions, pt.predictions)])
    assert agree >= 0.98 and abs(ox.metrics.top1_error - pt.metrics.top1_error) <= 0.02
    assert main(["evaluate", "--model", str(trained_run), "--data", str(phantom_db), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["model_info"]["arch"] == "mobilenet_v3_small"
