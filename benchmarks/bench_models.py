"""Model-only speed, side by side: every runtime present, same inputs, batch 1 and a larger batch.

    .venv/bin/python benchmarks/bench_models.py                      # MobileNetV3-small, MobileNetV2, ResNet-18
    .venv/bin/python benchmarks/bench_models.py --models resnet18 --rounds 5
    .venv/bin/python benchmarks/bench_models.py --checkpoint runs/x/best.pt --onnx model.onnx --int8 model.int8.onnx

Default models are trained from scratch on a phantom at 224 px, single channel (a few epochs: see
Recipe), exported to ONNX and quantized with `fetalplanes quantize`'s own flow (run_quantize: accuracy
checked on the validation patients, sensitive layers kept in float) for uint8 and int8 activations,
once, into the work folder. An INT8 variant counts as deployable only when the one deployability rule
(edge/deployability.py) accepts it: on quantize's check images (its report's counts) and on the held-out
test patients (argmax agreement >= 0.99, top-1 drop <= 1 point); the targets use deployable variants only.
Results: benchmarks/results/models.{json,md,png}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from calibration import speed  # noqa: E402

DEFAULT_MODELS = ("mobilenet_v3_small", "mobilenet_v2", "resnet18")
#: issue 17's targets (and issue 6's): best deployable runtime / PyTorch eager at batch 1
TARGET_X_PYTORCH = {"mobilenet_v2": 5.0, "resnet18": 2.5}
#: measured and reported, but no target of issue 17 (issue 6 had asked >= 5x of MobileNetV3-small)
INFORMATIONAL_X_PYTORCH = {"mobilenet_v3_small": 5.0}
WORK = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fetalplanes-bench"


@dataclass
class ModelFiles:
    """One model in every form a runtime needs, and the data its INT8 variants are checked on."""

    name: str
    fp32: Path
    checkpoint: Path | None = None
    int8: dict[str, Path] = field(default_factory=dict)  # {"uint8 act.": path, "int8 act.": path}
    data: Path | None = None  # dataset whose TEST patients give the held-out agreement images (None: not checked)
    #: {label: quantize's verdict (edge.deployability.Verdict, or a bool)} for each INT8 variant, when known
    quantize_holds: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)  # how it was trained (stated in the results)


@dataclass
class Recipe:
    """How the default benchmark models are made (the timed models are always 224 px, one channel)."""

    patients: int = 128  # phantom patients (about 7 images each; the first half trains)
    phantom_width: int = 256  # px, phantom images
    size: int = 224  # training AND timing input size
    #: epochs per architecture: enough for the models to be sure of most images, so that their INT8 files are
    #: judged on margins like a trained model's (after 2-4 epochs every uint8 INT8 file flipped 3-4 of the 277
    #: held-out predictions and none counted as deployable; see docs/benchmarks.md for the training times)
    epochs: dict[str, int] = field(default_factory=lambda: {"mobilenet_v3_small": 15, "mobilenet_v2": 10, "resnet18": 10})
    batch_size: int = 16
    lr: float = 2e-3
    calib_size: int = 128
    check_images: int = 200  # label-free training images quantize adds to its agreement check

    def epochs_for(self, arch: str) -> int:
        return self.epochs.get(arch, 2)

    def tag(self, arch: str) -> str:
        return f"{self.size}px-p{self.patients}-e{self.epochs_for(arch)}"


def phantom_data(work: Path, recipe: Recipe, log: Callable[[str], None] = print) -> Path:
    """The phantom dataset the benchmark models are trained, calibrated and checked on (cached)."""
    from fetaldata.phantom.dataset import write_phantom_dataset

    data = work / f"phantom-db-p{recipe.patients}-w{recipe.phantom_width}"
    if not (data / "FETAL_PLANES_DB_data.csv").is_file():
        log(f"  phantom data set for the benchmark models -> {data}")
        write_phantom_dataset(data, patients=recipe.patients, seed=0, size=recipe.phantom_width)
    return data


def train_model(arch: str, work: Path = WORK, recipe: Recipe | None = None, log: Callable[[str], None] = print,
                device: str = "cpu", workers: int = 0) -> Path:
    """Train ``arch`` on the phantom at ``recipe.size`` px from scratch (cached); returns the checkpoint.

    ``device="cuda"`` trains on a GPU (benchmarks/gpu/gpu_session.py); the checkpoint lands where a CPU run
    would put it, so copying it into this machine's cache makes the benchmark use it."""
    import shutil

    from export.train import TrainConfig, train

    recipe = recipe or Recipe()
    data = phantom_data(work, recipe, log)
    d = work / f"{arch}-{recipe.tag(arch)}"
    ckpt = d / "train" / "best.pt"
    if ckpt.is_file():
        return ckpt
    epochs = recipe.epochs_for(arch)
    log(f"  training {arch} at {recipe.size} px, {epochs} epochs on {recipe.patients} phantom patients")
    shutil.rmtree(d / "train", ignore_errors=True)
    train(TrainConfig(data=str(data), out=str(d / "train"), arch=arch, pretrained="none", image_size=recipe.size,
                      epochs=epochs, patience=epochs, batch_size=recipe.batch_size, lr=recipe.lr,
                      workers=workers, progress=False, device=device, bn_batches=10))
    return ckpt


def prepare_model(arch: str, work: Path = WORK, recipe: Recipe | None = None,
                  log: Callable[[str], None] = print, trained_on: str = "") -> ModelFiles:
    """Train (see :func:`train_model`), export, and quantize with ``fetalplanes quantize``'s own flow
    (:func:`calibration.quantize_workflow.run_quantize`: calibration on training patients, accuracy checked on
    the validation patients, sensitive layers kept in float) for both activation flavours; cached in ``work``.

    A checkpoint already at ``<work>/<arch>-<recipe.tag>/train/best.pt`` (e.g. trained with this recipe on a GPU
    box and copied in) is used as is: only the export and the INT8 files are made here. What the checkpoint says
    of its training (:func:`checkpoint_facts`) and ``trained_on`` (a note: where it was trained) go into the
    results' recipe."""
    from calibration.quantize_ort import QuantizeConfig
    from calibration.quantize_workflow import QuantizeJob, report_paths, run_quantize
    from export.onnx_export import export_onnx

    recipe = recipe or Recipe()
    data = phantom_data(work, recipe, log)
    d = work / f"{arch}-{recipe.tag(arch)}"
    had_checkpoint = (d / "train" / "best.pt").is_file()
    if had_checkpoint:
        log(f"  {arch}: using the checkpoint in {d / 'train'} (not retrained)")
    ckpt = train_model(arch, work, recipe, log)
    files = ModelFiles(arch, d / "model.onnx", ckpt,
                       {"uint8 act.": d / "model.int8.onnx", "int8 act.": d / "model.int8-s8.onnx"}, data=data,
                       recipe={"trained_at_px": recipe.size, "epochs": recipe.epochs_for(arch),
                               "phantom_patients": recipe.patients, "phantom_width_px": recipe.phantom_width,
                               "pretrained": "none", "quantize": "run_quantize, percentile, search on",
                               "checkpoint": checkpoint_facts(ckpt, arch, recipe, data),
                               "trained_in_this_run": not had_checkpoint,
                               **({"trained_on": trained_on} if trained_on else {})})
    if not files.fp32.is_file():
        log(f"  exporting {arch} to ONNX")
        export_onnx(files.checkpoint, files.fp32, samples=2, check_opencv=False)
    for label, path in files.int8.items():
        report = report_paths(path)[0]
        if not (path.is_file() and report.is_file()):
            act = "int8" if label.startswith("int8") else "uint8"
            log(f"  quantizing {arch} ({act} activations; accuracy checked, sensitive layers kept in float)")
            run_quantize(QuantizeJob(onnx=files.fp32, data=data, out=path,
                                     config=QuantizeConfig(method="percentile", activations=act),
                                     calib_size=recipe.calib_size, agreement_images=recipe.check_images,
                                     sensitivity_images=recipe.check_images, speed_seconds=0.05, speed_rounds=1),
                         lambda m: log(f"    {m}"))
        files.quantize_holds[label] = quantize_verdict(path)
    return files


def checkpoint_facts(ckpt: Path, arch: str, recipe: Recipe, data: Path) -> dict[str, Any]:
    """What a benchmark checkpoint records of its training: the device and code version it was trained with, its
    best epoch, whether its settings are ``recipe``'s (``recipe_differences``: {setting: [checkpoint, recipe]})
    and whether it was trained on this phantom (``same_phantom_csv``: the dataset fingerprint, CSV and split)."""
    from export.checkpoint import read_checkpoint
    from fetaldata import SplitConfig, open_dataset
    from fetaldata.splits import fingerprint

    raw, info = read_checkpoint(ckpt)
    args = info.extra.get("args", {}) if isinstance(info.extra, dict) else {}
    want = {"arch": arch, "image_size": recipe.size, "epochs": recipe.epochs_for(arch), "batch_size": recipe.batch_size,
            "lr": recipe.lr, "pretrained": "none", "seed": 0}
    diffs = {k: [args.get(k), v] for k, v in want.items()
             if not (args.get(k) == v or (isinstance(v, float) and isinstance(args.get(k), (int, float))
                                           and abs(args[k] - v) <= 1e-12))}
    split = SplitConfig(**{k: args[k] for k in ("task", "seed", "val_fraction", "brain_extra", "max_train_patients",
                                                 "max_per_split") if k in args})
    try:
        local = fingerprint(open_dataset(data), split)
    except Exception:  # noqa: BLE001 - a fact, not a gate
        local = None
    return {"device": args.get("device"), "code_version": info.code_version, "best_epoch": raw.get("best_epoch"),
            "epoch": raw.get("epoch"), "recipe_differences": diffs,
            "same_phantom_csv": None if local is None or not info.dataset_fingerprint else local == info.dataset_fingerprint}


def untrained_fp32(arch: str, work: Path = WORK, size: int = 224) -> Path:
    """FP32 ONNX of ``arch`` at ``size`` px with untrained (seeded random) weights, cached in ``work``.

    For speed-only measurements (the live loop's Hz and latency, quick runs on a box without the trained
    cache): an FP32 network's time does not depend on its weights. Never used for accuracy or INT8 checks.
    """
    import torch

    from edge.labels import labels_for
    from edge.modelinfo import ModelInfo
    from export.checkpoint import save_checkpoint
    from export.models import build_model
    from export.onnx_export import export_onnx

    d = work / f"{arch}-{size}px-untrained"
    onnx = d / "model.onnx"
    if not onnx.is_file():
        labels = list(labels_for("planes"))
        info = ModelInfo(task="planes", labels=labels, arch=arch, input_size=size, mean=128.0, std=64.0,
                         extra={"untrained": "speed-only benchmark file (random weights)"})
        torch.manual_seed(0)
        ckpt = save_checkpoint(d / "untrained.pt", build_model(arch, len(labels), "none").eval(), info)
        export_onnx(ckpt, onnx, samples=2, check_opencv=False)
    return onnx


def heldout_images(m: ModelFiles, info, max_images: int | None = None):
    """Preprocessed images of the TEST patients of ``m.data`` (never used by calibration or quantize's check)."""
    if m.data is None:
        return None
    from calibration.evaluation import load_split

    split = load_split(m.data, info, "test", max_images=max_images)
    return split.x, split.targets


def run_bench(models: list[ModelFiles], batches=(1, 8), threads: int = 2, seconds: float = 1.0, rounds: int = 3,
              log: Callable[[str], None] = print, min_agreement: float = speed.MIN_AGREEMENT,
              heldout_max: int | None = None) -> dict[str, Any]:
    """Measure every model; returns the JSON-ready result with the machine stamp and target checks.

    An INT8 variant counts as deployable only if its accuracy holds against FP32
    (:func:`calibration.speed.judge_deployable`, the rule of :mod:`edge.deployability`): quantize's verdict
    and/or the held-out test-patient images of ``ModelFiles.data`` (agreement >= ``min_agreement``, top-1 drop).
    """
    from edge.backends import read_model_info
    from export.onnx_export import phantom_inputs
    from export.torch_runner import TorchRunner

    t0 = time.perf_counter()
    out: dict[str, Any] = {"kind": "fetalplanes-bench-models", "machine": common.machine_stamp(), "threads": threads,
                           "batches": list(batches), "seconds_per_round": seconds, "rounds": rounds,
                           "min_agreement": min_agreement, "note": common.SHARED_NOTE,
                           "tensorrt": speed.tensorrt_note(), "models": []}
    for m in models:
        info = read_model_info(m.fp32)
        x = phantom_inputs(info, 8, seed=0)
        log(f"{m.name}: {info.input_size} px, {info.channels} channel(s)")
        held_x, held_y = heldout_images(m, info, heldout_max) or (None, None)
        r = speed.measure_model(m.name, m.checkpoint, m.fp32, m.int8, x, batches, threads, seconds, rounds, log=log,
                                torch_runner=TorchRunner, heldout=held_x, heldout_targets=held_y,
                                quantize_holds=m.quantize_holds, min_agreement=min_agreement)
        r["input_size"] = info.input_size
        if m.recipe:
            r["recipe"] = m.recipe
        out["models"].append(r)
    out["targets"] = check_targets(out)
    out["seconds"] = time.perf_counter() - t0
    return out


def target_label(model: str, need: float | None) -> str:
    """The row's name: a target of issue 17 (``need``), or an informational figure of a model without one."""
    if model in TARGET_X_PYTORCH:
        return f"{model}: best deployable >= {need:g}x PyTorch eager (batch 1; faster of its 2- and 1-thread runs)"
    asked = INFORMATIONAL_X_PYTORCH.get(model)
    return (f"{model}: best deployable / PyTorch eager (batch 1; faster of its 2- and 1-thread runs) - informational, "
            "not a target of issue 17" + (f" (issue 6 had asked >= {asked:g}x)" if asked else ""))


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Best deployable runtime / PyTorch eager at batch 1, against issue 17's ratio per model (``is_target``);
    models without a target there get the same figure as an informational row (``limit`` and ``ok`` None)."""
    checks = []
    for m in result["models"]:
        need = TARGET_X_PYTORCH.get(m["model"])
        best = speed.best_deployable(m, 1)
        t = best["batches"]["1"] if best else None
        value = t.get("x_pytorch") if t else None
        checks.append({"target": target_label(m["model"], need), "model": m["model"], "is_target": need is not None,
                       "best": best["name"] if best else None, "value": value, "limit": need,
                       "ok": None if (need is None or value is None) else bool(value >= need)})
    return checks


def target_note(model_result: dict[str, Any] | None, check: dict[str, Any]) -> str:
    """The figures behind a model row: the best deployable file's Hz against PyTorch's, every other runtime's
    ratio, and why each INT8 file is not deployable (with its held-out agreement)."""
    if model_result is None:
        return f"best deployable: {check.get('best') or 'none'}"
    rts = model_result["runtimes"]
    base = max((r["batches"]["1"]["hz"] for r in rts if r["kind"] == "pytorch" and r["batches"].get("1")), default=None)
    best = next((r for r in rts if r["name"] == check.get("best")), None)
    parts = []
    if check.get("ok") is False:
        parts.append(f"FAIL: {check['value']:.2f}x < {check['limit']:g}x")
    if best is not None and base:
        parts.append(f"best deployable {best['name']} {best['batches']['1']['hz']:.1f} Hz vs PyTorch eager {base:.1f} Hz")
    elif best is None:
        parts.append("no deployable file was timed")
    others = [f"{r['name']} {r['batches']['1']['x_pytorch']:.2f}x" + ("" if r.get("deployable") else " (not deployable)")
              for r in rts if r["kind"] != "pytorch" and r is not best and r["batches"].get("1")
              and r["batches"]["1"].get("x_pytorch") is not None]
    if others:
        parts.append("others: " + ", ".join(others))
    why = [f"{r['name']}: {r.get('deployable_why', '')}" for r in rts if r["kind"] == "ort-int8" and not r.get("deployable")]
    if why:
        parts.append("not deployable: " + "; ".join(why))
    rc = model_result.get("recipe") or {}
    if rc.get("trained_on"):
        parts.append(f"trained on {rc['trained_on']}")
    return "; ".join(parts)


def trained_text(rc: dict[str, Any]) -> str:
    """The "trained" cell of a model: the recipe, where and with what it was trained, and any departure from it."""
    if not rc:
        return "given by --onnx"
    text = f"{rc['epochs']} epochs at {rc['trained_at_px']} px on {rc['phantom_patients']} phantom patients"
    ck = rc.get("checkpoint") or {}
    where = [rc["trained_on"]] if rc.get("trained_on") else []
    where += [f"device {ck['device']}"] if ck.get("device") else []
    where += [ck["code_version"]] if ck.get("code_version") else []
    if where:
        text += " (" + ", ".join(where) + ("; in this run" if rc.get("trained_in_this_run") else "; cached checkpoint") + ")"
    if ck.get("recipe_differences"):
        text += "; DIFFERS from the recipe: " + ", ".join(f"{k} {a} (recipe {b})" for k, (a, b) in ck["recipe_differences"].items())
    if ck.get("same_phantom_csv") is False:
        text += "; trained on ANOTHER data set than this phantom (fingerprint differs)"
    return text


def markdown(result: dict[str, Any]) -> str:
    mc = result["machine"]
    cpu = mc["cpu"]
    libs = ", ".join(f"{k} {v}" for k, v in mc.get("libraries", {}).items() if v)
    lines = [
        "# Model-only speed (batch 1 and batch " + ", ".join(str(b) for b in result["batches"] if b != 1) + ")",
        "",
        f"Machine: {cpu['model']} ({cpu['usable_cpus']} usable CPUs), INT8 ISAs {', '.join(k for k, v in cpu['isa'].items() if v) or 'none'}"
        f" (INT8 dot product: {cpu['int8_dot_product']}); {mc['os']}; Python {mc['python']}; {libs}. Measured {mc['when']}.",
        "",
        f"{result['threads']} threads for every runtime; Hz = images/s, median of {result['rounds']} interleaved rounds "
        f"of {result['seconds_per_round']:g} s after warm-up; latency = one call (one batch). "
        f"Inputs: the same preprocessed phantom images for every runtime. {result['note']}.",
        f"TensorRT FP16/INT8: {result['tensorrt']}.",
        "",
    ]
    for m in result["models"]:
        lines += common.models_markdown_table(m) + [""]
    lines += ["## Deployable variants per model", "",
              "A variant is deployable only when the deployability rule (edge/deployability.py) accepts it: an INT8 file "
              "needs `fetalplanes quantize`'s verdict on its check images (not failed) and, on the held-out "
              f"test-patient images, argmax agreement with ORT FP32 >= {result.get('min_agreement', 0.99)} and a top-1 "
              "drop of at most 1 point (never less than one image); PyTorch eager is the baseline. "
              "Only deployable variants enter the targets below.", "",
              "| model | trained | deployable (batch 1 Hz) | not deployable (why) |", "|---|---|---|---|"]
    for m in result["models"]:
        rc = m.get("recipe") or {}
        trained = trained_text(rc)
        dep = ", ".join(f"{r['name']} ({r['batches']['1']['hz']:.0f})" for r in m["runtimes"]
                        if r.get("deployable") and r["batches"].get("1"))
        nodep = "; ".join(f"{r['name']}: {r.get('deployable_why', '')}" for r in m["runtimes"]
                          if r["kind"] != "pytorch" and not r.get("deployable"))
        lines.append(f"| {m['model']} | {trained} | {dep or '-'} | {nodep or '-'} |")
    lines += ["", "## Targets (ratios from this run, deployable variants only)", "",
              "| target | best deployable | measured | result |", "|---|---|---|---|"]
    for t in result["targets"]:
        res = ("informational" if not t.get("is_target", t["limit"] is not None)
               else "n/a" if t["ok"] is None else ("PASS" if t["ok"] else "FAIL"))
        lines.append(f"| {t['target']} | {t['best'] or '-'} | {common.fmt(t['value'], 2)}x | {res} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = result["models"]
    names = sorted({r["name"] for m in models for r in m["runtimes"]}, key=lambda n: [r["name"] for m in models for r in m["runtimes"]].index(n))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    w = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        vals = []
        for m in models:
            r = next((r for r in m["runtimes"] if r["name"] == n), None)
            t = r["batches"].get("1") if r else None
            vals.append(t["hz"] if t else 0.0)
        ax.bar(np.arange(len(models)) + i * w, vals, w, label=n)
    ax.set_xticks(np.arange(len(models)) + w * (len(names) - 1) / 2, [m["model"] for m in models])
    ax.set_ylabel("images/s (batch 1)")
    ax.set_yscale("log")
    ax.set_title(f"Model-only Hz, batch 1, {result['threads']} threads ({result['machine']['cpu']['model'][:40]})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_results(result: dict[str, Any], out_dir: Path, stem: str = "models") -> dict[str, Path]:
    return common.write_results(result, out_dir, stem, markdown, plot)


def quantize_verdict(int8_file: Path):
    """The deployability rule's verdict on ``int8_file`` from the quantize report beside it (None: no report)."""
    from edge.quantize_report import QuantizeReport, report_paths

    report = report_paths(int8_file)[0]
    if not report.is_file():
        return None
    return QuantizeReport.read(report).verdict_for(int8_file)


def quantize_verdicts(int8_files: list[Path]) -> dict[str, Any]:
    """{file stem: verdict} from the ``.quantize.json`` reports `fetalplanes quantize` left beside the files."""
    out = {}
    for p in int8_files:
        v = quantize_verdict(p)
        if v is not None:
            out[p.stem] = v
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="architectures to train briefly and measure")
    p.add_argument("--checkpoint", type=Path, help="your own model: its checkpoint (PyTorch eager)")
    p.add_argument("--onnx", type=Path, help="your own model: its FP32 ONNX (instead of --models)")
    p.add_argument("--int8", type=Path, action="append", default=[], help="INT8 ONNX file(s) of --onnx")
    p.add_argument("--size", type=int, default=224, help="input size of the default models (224; also their training size)")
    p.add_argument("--min-agreement", type=float, default=speed.MIN_AGREEMENT,
                   help="INT8 deployable only with argmax agreement >= this on held-out images (0.99)")
    p.add_argument("--data", type=Path, help="with --onnx: the dataset whose test patients check INT8 agreement")
    p.add_argument("--batches", default="1,8", help="batch sizes (1,8)")
    p.add_argument("--threads", type=int, default=2, help="threads for every runtime (2)")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per round (1.0)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3); Hz is their median")
    p.add_argument("--work", type=Path, default=WORK, help=f"where trained/exported models are cached ({WORK})")
    p.add_argument("--out", type=Path, default=common.RESULTS, help="results folder (benchmarks/results)")
    p.add_argument("--trained-on", default="", help="where the cached checkpoints were trained (a note in the results, "
                                                    "e.g. 'H200 GPU box'); the checkpoint's own device is read from it")
    args = p.parse_args(argv)
    batches = tuple(int(b) for b in args.batches.split(","))
    if args.onnx:
        models = [ModelFiles(args.onnx.stem, args.onnx, args.checkpoint, {p.stem: p for p in args.int8}, data=args.data,
                             quantize_holds=quantize_verdicts(args.int8))]
    else:
        recipe = Recipe(size=args.size)
        models = [prepare_model(a.strip(), args.work, recipe, trained_on=args.trained_on)
                  for a in args.models.split(",") if a.strip()]
    result = run_bench(models, batches, args.threads, args.seconds, args.rounds, min_agreement=args.min_agreement)
    paths = write_results(result, args.out)
    print(paths["md"].read_text())
    print("results: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
