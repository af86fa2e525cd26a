"""Model-only speed, side by side: every runtime present, same inputs, batch 1 and a larger batch.

    .venv/bin/python benchmarks/bench_models.py                      # MobileNetV3-small, MobileNetV2, ResNet-18
    .venv/bin/python benchmarks/bench_models.py --models resnet18 --rounds 5
    .venv/bin/python benchmarks/bench_models.py --checkpoint runs/x/best.pt --onnx model.onnx --int8 model.int8.onnx

Default models are trained briefly on the phantom (speed does not depend on accuracy) at 224 px,
single channel, exported to ONNX and quantized with `fetalplanes quantize`'s code (uint8 and int8
activations), once, into the work folder. Results: benchmarks/results/models.{json,md,png}.
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

DEFAULT_MODELS = ("mobilenet_v3_small", "mobilenet_v2", "resnet18")
#: issue 6's targets: best deployable runtime / PyTorch eager at batch 1
TARGET_X_PYTORCH = {"mobilenet_v3_small": 5.0, "mobilenet_v2": 5.0, "resnet18": 2.5}
WORK = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fetalplanes-bench"


@dataclass
class ModelFiles:
    """One model in every form a runtime needs."""

    name: str
    fp32: Path
    checkpoint: Path | None = None
    int8: dict[str, Path] = field(default_factory=dict)  # {"uint8 act.": path, "int8 act.": path}


def prepare_model(arch: str, work: Path = WORK, size: int = 224, log: Callable[[str], None] = print) -> ModelFiles:
    """Train ``arch`` for one tiny epoch on a phantom, export, quantize (uint8 + int8 activations); cached in ``work``."""
    d = work / f"{arch}-{size}"
    files = ModelFiles(arch, d / "model.onnx", d / "train" / "best.pt",
                       {"uint8 act.": d / "model.int8.onnx", "int8 act.": d / "model.int8-s8.onnx"})
    if files.fp32.is_file() and files.checkpoint.is_file() and all(p.is_file() for p in files.int8.values()):
        return files
    from calibration.quantize_ort import QuantizeConfig
    from calibration.quantize_workflow import QuantizeJob, run_quantize
    from edge.phantom.dataset import write_phantom_dataset
    from export.onnx_export import export_onnx
    from export.train import TrainConfig, train

    data = work / "phantom-db"
    if not (data / "FETAL_PLANES_DB_data.csv").is_file():
        log(f"  phantom data set for the benchmark models -> {data}")
        write_phantom_dataset(data, patients=16, seed=0, size=256)
    if not files.checkpoint.is_file():
        log(f"  training {arch} briefly at {size} px (speed does not depend on accuracy)")
        import shutil

        shutil.rmtree(d / "train", ignore_errors=True)
        train(TrainConfig(data=str(data), out=str(d / "train"), arch=arch, pretrained="none", image_size=size, epochs=1,
                          batch_size=8, workers=0, max_per_split=16, progress=False, device="cpu", bn_batches=2))
    log(f"  exporting {arch} to ONNX")
    export_onnx(files.checkpoint, files.fp32, samples=2, check_opencv=False)
    for label, path in files.int8.items():
        act = "int8" if label.startswith("int8") else "uint8"
        log(f"  quantizing {arch} ({act} activations)")
        run_quantize(QuantizeJob(onnx=files.fp32, data=data, out=path,
                                 config=QuantizeConfig(method="percentile", activations=act), calib_size=16,
                                 search=False, val_max_images=8, speed_seconds=0.05, speed_rounds=1), lambda m: None)
    return files


def run_bench(models: list[ModelFiles], batches=(1, 8), threads: int = 2, seconds: float = 1.0, rounds: int = 3,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every model; returns the JSON-ready result with the machine stamp and target checks."""
    from edge.backends import read_model_info
    from export.onnx_export import phantom_inputs

    t0 = time.perf_counter()
    out: dict[str, Any] = {"kind": "fetalplanes-bench-models", "machine": common.machine_stamp(), "threads": threads,
                           "batches": list(batches), "seconds_per_round": seconds, "rounds": rounds,
                           "note": common.SHARED_NOTE, "tensorrt": common.tensorrt_note(), "models": []}
    for m in models:
        info = read_model_info(m.fp32)
        x = phantom_inputs(info, 8, seed=0)
        log(f"{m.name}: {info.input_size} px, {info.channels} channel(s)")
        r = common.measure_model(m.name, m.checkpoint, m.fp32, m.int8, x, batches, threads, seconds, rounds, log=log)
        r["input_size"] = info.input_size
        out["models"].append(r)
    out["targets"] = check_targets(out)
    out["seconds"] = time.perf_counter() - t0
    return out


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Best deployable runtime / PyTorch eager at batch 1, against issue 6's ratio per model."""
    checks = []
    for m in result["models"]:
        need = TARGET_X_PYTORCH.get(m["model"])
        best = common.best_deployable(m, 1)
        t = best["batches"]["1"] if best else None
        value = t.get("x_pytorch") if t else None
        checks.append({"target": f"{m['model']}: best deployable >= {need or '-'}x PyTorch eager (batch 1; faster of its 2- and 1-thread runs)",
                       "model": m["model"], "best": best["name"] if best else None, "value": value, "limit": need,
                       "ok": None if (need is None or value is None) else bool(value >= need)})
    return checks


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
    lines += ["## Targets (ratios from this run)", "", "| target | best deployable | measured | result |", "|---|---|---|---|"]
    for t in result["targets"]:
        res = "n/a" if t["ok"] is None else ("PASS" if t["ok"] else "FAIL")
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
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": common.write_json(out_dir / f"{stem}.json", result), "md": out_dir / f"{stem}.md",
             "png": out_dir / f"{stem}.png"}
    paths["md"].write_text(markdown(result), encoding="utf-8")
    plot(result, paths["png"])
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="architectures to train briefly and measure")
    p.add_argument("--checkpoint", type=Path, help="your own model: its checkpoint (PyTorch eager)")
    p.add_argument("--onnx", type=Path, help="your own model: its FP32 ONNX (instead of --models)")
    p.add_argument("--int8", type=Path, action="append", default=[], help="INT8 ONNX file(s) of --onnx")
    p.add_argument("--size", type=int, default=224, help="input size of the default models (224)")
    p.add_argument("--batches", default="1,8", help="batch sizes (1,8)")
    p.add_argument("--threads", type=int, default=2, help="threads for every runtime (2)")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per round (1.0)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3); Hz is their median")
    p.add_argument("--work", type=Path, default=WORK, help=f"where trained/exported models are cached ({WORK})")
    p.add_argument("--out", type=Path, default=common.RESULTS, help="results folder (benchmarks/results)")
    args = p.parse_args(argv)
    batches = tuple(int(b) for b in args.batches.split(","))
    if args.onnx:
        models = [ModelFiles(args.onnx.stem, args.onnx, args.checkpoint, {p.stem: p for p in args.int8})]
    else:
        models = [prepare_model(a.strip(), args.work, args.size) for a in args.models.split(",") if a.strip()]
    result = run_bench(models, batches, args.threads, args.seconds, args.rounds)
    paths = write_results(result, args.out)
    print(paths["md"].read_text())
    print("results: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
