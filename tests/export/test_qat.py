"""`fetalplanes qat` (issue 17): fake quantization of the Q/DQ file's own scales, fine-tuning, a Q/DQ file that
ONNX Runtime runs with the model description, judged against FP32 by the deployability rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.deployability import Evidence, Gate, judge

QUICK = dict(epochs=1, batch_size=8, calib_size=16, check_images=16, val_max_images=16, max_train_images=16,
             lr=1e-4)


def test_module_paths_from_torchscript_names():
    from export.qat import module_path

    assert module_path("/features/features.1/block/block.0/block.0.0/Conv") == "features.1.block.0.0"
    assert module_path("/features/features.0/features.0.2/HardSwish_output_0") == "features.0.2"
    assert module_path("/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"
    assert module_path("/classifier/classifier.3/Gemm") == "classifier.3"
    assert module_path("_inlfunc_HardSwish_HS_X") is None


def test_qat_writes_a_qdq_file_ort_runs_with_the_model_description(trained_run, phantom_db, tmp_path):
    import onnxruntime as ort

    from calibration.quantize_ort import count_qdq
    from edge.backends import read_model_info
    from export.qat import QatConfig, report_paths, run_qat

    out = tmp_path / "m.qat.onnx"
    report = run_qat(QatConfig(checkpoint=trained_run, data=phantom_db, out=out, **QUICK), log=lambda m: None)
    assert count_qdq(out)["QuantizeLinear"] > 10
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.zeros((2, 1, 32, 32), np.float32)
    assert sess.run(None, {sess.get_inputs()[0].name: x})[0].shape == (2, 6)
    fp32_info, info = read_model_info(report["fp32_model"]), read_model_info(out)
    assert info.labels == fp32_info.labels and info.task == fp32_info.task and info.mean == fp32_info.mean
    q = info.extra["quantization"]
    assert q["activations"] == "uint8" and q["qat"]["epochs"] == 1 and q["qat"]["trained_layers"] > 10
    # the report's counts are the gate's evidence, and its verdict is the gate's
    saved = json.loads(report_paths(out)[0].read_text())
    for name in ("ptq", "qat"):
        ev = Evidence(**{k: v for k, v in saved[name]["evidence"].items() if k in Evidence.__dataclass_fields__})
        assert ev.images == saved["data"]["check_labelled"] + saved["data"]["check_unlabelled"]
        assert judge(ev, Gate(saved["gate"]["min_agreement"], saved["gate"]["max_drop_points"])).deployable \
            == saved[name]["deployable"]
    assert saved["deployable"] == saved["qat"]["deployable"]
    assert saved["fake_quant_vs_ptq_file"]["images"] == saved["qat"]["agreement_images"]


def test_a_small_data_set_still_holds_out_training_images_for_the_check(trained_run, phantom_db):
    """Calibration asking for more images than there are must not eat the held-out check (measured on a GPU run:
    500 calibration images of 419 left the check with the 17 validation images alone)."""
    from edge.backends import read_model_info
    from export.onnx_export import export_onnx
    from export.qat import QatConfig, load_data
    from fetaldata import FetalPlanesDB, task_samples

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        onnx = export_onnx(trained_run, Path(d) / "m.onnx", check_opencv=False, samples=1).onnx_path
        info = read_model_info(onnx)
    n_train = len(task_samples(FetalPlanesDB.open(phantom_db), "train"))
    cfg = QatConfig(checkpoint=trained_run, data=phantom_db, out=Path("unused.onnx"), calib_size=10 * n_train,
                    check_images=10 * n_train)
    data = load_data(cfg, info)
    assert data.counts["check_unlabelled"] == n_train // 4 > 0
    assert data.counts["calibration"] == n_train - n_train // 4
    assert data.counts["train"] == n_train - n_train // 4


def test_qat_for_tensorrt_from_unlabelled_images_passes_the_parser_check(trained_run, phantom_db, tmp_path):
    from calibration.trt_qdq_check import tensorrt_qdq_problems
    from edge.backends import read_model_info
    from export.qat import QatConfig, run_qat

    frames = tmp_path / "frames"
    frames.mkdir()
    for p in sorted((Path(phantom_db) / "Images").glob("*.png"))[:40]:
        (frames / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "m.qat.onnx"
    report = run_qat(QatConfig(checkpoint=trained_run, data=frames, out=out, target="tensorrt", distill=True,
                               **{**QUICK, "check_images": 8}), log=lambda m: None)
    assert tensorrt_qdq_problems(out) == []
    assert read_model_info(out).extra["quantization"]["activations"] == "int8"
    assert report["history"][0]["loss_kind"] == "distillation KL"
    assert report["qat"]["labelled_images"] == 0 and report["qat"]["agreement_images"] == 8


def test_qat_command_errors_are_clear(trained_run, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    assert main(["qat", "--checkpoint", str(trained_run), "--data", str(frames), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "--distill" in capsys.readouterr().err  # a folder without labels needs the teacher
    assert main(["qat", "--checkpoint", str(trained_run), "--data", str(frames), "--out", str(tmp_path / "m.txt")]) == 2
    assert ".onnx" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.xfail(reason="measured on phantom models (benchmarks/results/qat_phantom.md, incl. a GPU sweep): QAT "
                   "with the labels' cross-entropy did not beat PTQ, with --distill only on one of two models; kept as "
                   "the goal to reach", strict=False)
def test_qat_improves_agreement_over_ptq_on_a_phantom_trained_mobilenet_v3_small(tmp_path):
    """Trains MobileNetV3-small on a phantom (64 px), then QAT for 2 epochs: the QAT file is closer to FP32 than
    the post-training file with the same ranges (mean KL), and does not lose agreement. Synthetic data."""
    from export.qat import QatConfig, run_qat
    from export.train import TrainConfig, train
    from fetaldata.phantom.dataset import write_phantom_dataset

    db = write_phantom_dataset(tmp_path / "db", patients=120, seed=0, size=64)
    ckpt = train(TrainConfig(data=str(db), out=str(tmp_path / "run"), arch="mobilenet_v3_small", pretrained="none",
                             image_size=64, epochs=4, batch_size=32, workers=0, progress=False, lr=2e-3))
    report = run_qat(QatConfig(checkpoint=ckpt, data=db, out=tmp_path / "m.qat.onnx", epochs=2, lr=1e-5,
                               check_images=400))
    assert report["qat"]["kl"] < report["ptq"]["kl"], (report["qat"]["kl"], report["ptq"]["kl"])
    assert report["qat"]["agreement"] >= report["ptq"]["agreement"]
