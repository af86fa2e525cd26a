"""Estimate how long each of the study's experiments takes at full scale on one GPU (an estimate, not a run).

Inputs, all measured or counted, none guessed except where said:

- GPU training throughput (forward + backward + Adam, 224 px, batch 32, data loading excluded) of
  MobileNetV3-small, MobileNetV2 and ResNet-18 on an NVIDIA H200: ``benchmarks/results/gpu/train_throughput_gpu.json``.
- The end-to-end epoch time of the same three models with the project's trainer on that machine
  (12 loader workers, 16 cores, 1,562 training + 209 validation images): ``benchmarks/results/gpu/train_log.txt``.
  An epoch took longer than its compute alone (ResNet-18: 1.3 s where its compute rate gives 0.6 s); the
  difference, per image, is the trainer's cost that does not overlap the GPU (loading, augmentation,
  transfer, validation bookkeeping): epoch s = training images / compute rate + validation images /
  (3 x compute rate, forward only) + images x c. c is solved from each logged model; the median is used,
  scaled by the input area (Inception-v3's 299 px).
- The number of training and validation images of every sub-run, counted from the release's CSV with
  the project's own splits (``fetaldata``).
- For networks not measured on the GPU: their compute rate is ResNet-18's measured rate scaled by
  torchvision's GFLOPs (``weights.meta['_ops']``, at each network's own input size) — the optimistic
  end — and half of that — the pessimistic end (deep, narrow networks run below their FLOP rate: the
  measured MobileNetV2 runs 13x below what its GFLOPs predict). MobileNets use MobileNetV2's measured
  rate (not FLOP-bound).

Per sub-run: 15 epochs (the study's maximum; early stopping after 5 epochs without progress may end
sooner) of that epoch model, plus a minute for decoding the images once, building the model and
evaluating the 5,271 test images (a round figure above what was measured: a release PNG decodes in
17 ms on the 2-core development machine, so 7,129 images take about 8 s on 16 threads; the GPU
evaluation of the phantom ran at 399 images/s, so 5,271 test images take about 13 s).
Not included: downloading ImageNet weights, Table 2's ONNX export, INT8 quantization and CPU speed timing (minutes per model on the CPU).

    python benchmarks/paper/estimate_time.py [--data ../shared/data/fetal_planes_db]
        [--out benchmarks/paper/time_estimate]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

GPU = REPO / "benchmarks" / "results" / "gpu"
EPOCHS = 15
OVERHEAD_S = 60.0  # decode the images once, build the model, evaluate the test images (see above)
SLOW_FACTOR = 0.5  # pessimistic end for networks not measured on the GPU


def per_image_overhead(log: Path, measured: dict[str, float]) -> tuple[float, list[dict]]:
    """Seconds per image an epoch costs beyond the GPU compute (median over the logged models), and per model."""
    per_model, current = [], None
    for line in log.read_text(encoding="utf-8").splitlines():
        m = re.match(r"training (\S+) on (\d+) images \((\d+) for validation\)", line)
        if m:
            current = {"arch": m.group(1), "train": int(m.group(2)), "val": int(m.group(3)), "epoch_s": []}
            per_model.append(current)
        m = re.match(r"epoch \d+/\d+: .*\| ([\d.]+) s$", line)
        if m and current is not None:
            current["epoch_s"].append(float(m.group(1)))
    for r in per_model:
        r["median_epoch_s"] = statistics.median(r["epoch_s"])
        rate = measured[r["arch"]]
        compute = r["train"] / rate + r["val"] / (3 * rate)
        r["compute_s"] = compute
        r["overhead_s_per_image"] = (r["median_epoch_s"] - compute) / (r["train"] + r["val"])
    return statistics.median(r["overhead_s_per_image"] for r in per_model), per_model


def epoch_seconds(n_train: int, n_val: int, rate: float, overhead: float) -> float:
    return n_train / rate + n_val / (3 * rate) + (n_train + n_val) * overhead


def gflops(arch: str) -> float:
    from torchvision.models import get_model_weights

    return float(get_model_weights(arch).DEFAULT.meta["_ops"])


def compute_rates(arch: str, measured: dict[str, float]) -> tuple[float, float, str]:
    """(optimistic, pessimistic) training images/s on the measured GPU, and how they were obtained."""
    if arch in measured:
        return measured[arch], measured[arch], "measured"
    if arch.startswith("mobilenet"):
        r = measured["mobilenet_v2"]
        return r, r * SLOW_FACTOR, "MobileNetV2's measured rate (to half of it)"
    r = measured["resnet18"] * gflops("resnet18") / gflops(arch)
    how = f"ResNet-18's rate x GFLOPs ratio ({gflops('resnet18'):.2f}/{gflops(arch):.2f}), to half of it"
    return r, r * SLOW_FACTOR, how


def subrun_images(data: Path) -> dict[str, list[tuple[str, str, int, int]]]:
    """experiment -> [(sub-run, arch, training images, validation images)] with the project's splits."""
    from fetaldata import FetalPlanesDB, SplitConfig, task_samples
    from fetaldata.fetal_planes_db import Record
    from fetaldata.splits import split_patients
    from export.experiments.figures import learning_curve_sizes
    from export.experiments.study import study_arch, table2_default_archs
    from export.experiments.table4 import groups_with_enough_images

    db = FetalPlanesDB.open(data)

    def planes(records: list[Record], max_train_patients: int | None = None) -> tuple[int, int]:
        p = split_patients(records, 0.1, 0)
        train = p["train"][:max_train_patients] if max_train_patients else p["train"]
        t, v = set(train), set(p["val"])
        return sum(r.patient in t for r in records), sum(r.patient in v for r in records)

    full = planes(db.records)
    out: dict[str, list[tuple[str, str, int, int]]] = {}
    out["table2"] = [(a, a, *full) for a in table2_default_archs()]
    inc = study_arch("table3")
    out["table3"] = [(v, inc, *full) for v in ("baseline", "no_pretraining", "last_layers_only", "no_augmentation",
                                              "class_reweighting")]
    groups = groups_with_enough_images(db, quick=False)
    out["table4"] = [("/".join(g), inc, *planes([r for r in db.records if (r.operator, r.machine) == g]))
                     for g in groups] + [("all", inc, *full)]
    n_train = len(split_patients(db.records, 0.1, 0)["train"])
    out["fig5"] = [(f"patients-{n}", inc, *planes(db.records, n)) for n in learning_curve_sizes(n_train, False)]
    brain = SplitConfig(task="brain")
    out["fig4"] = [("brain", study_arch("fig4"), len(task_samples(db, "train", brain)),
                    len(task_samples(db, "val", brain)))]
    out["fig3"] = []  # reuses Table 2's DenseNet-169 run (table2 runs first in 'all')
    return out


def estimate(data: Path) -> dict:
    from export.models import default_input_size

    tp = json.loads((GPU / "train_throughput_gpu.json").read_text(encoding="utf-8"))
    measured = {r["arch"]: float(r["images_per_s"]) for r in tp["results"]}
    overhead, per_model = per_image_overhead(GPU / "train_log.txt", measured)
    runs = subrun_images(data)
    archs = sorted({a for rs in runs.values() for _, a, _, _ in rs} | {"densenet169"})
    rates = {}
    for a in archs:
        fast, slow, how = compute_rates(a, measured)
        size = default_input_size(a)
        rates[a] = {"input": size, "compute_fast": fast, "compute_slow": slow, "how": how,
                    "overhead_s_per_image": overhead * (size / 224) ** 2}
    exps = {}
    for name, rs in runs.items():
        lo = hi = 0.0
        for _, a, n_train, n_val in rs:
            r = rates[a]
            lo += EPOCHS * epoch_seconds(n_train, n_val, r["compute_fast"], r["overhead_s_per_image"]) + OVERHEAD_S
            hi += EPOCHS * epoch_seconds(n_train, n_val, r["compute_slow"], r["overhead_s_per_image"]) + OVERHEAD_S
        exps[name] = {"subruns": len(rs), "low_s": lo, "high_s": hi,
                      "runs": [{"name": n, "arch": a, "train_images": t, "val_images": v} for n, a, t, v in rs]}
    return {"what": "estimated wall time per experiment on one NVIDIA H200 (16 CPU cores), full scale; an estimate "
                    "from measured throughput, see the script's docstring", "epochs": EPOCHS,
            "overhead_s_per_subrun": OVERHEAD_S, "gpu_measured_images_per_s": measured,
            "overhead_s_per_image": overhead, "logged_epochs": per_model, "rates": rates, "experiments": exps}


def _hm(s: float) -> str:
    m = int(round(s / 60))
    return f"{m} min" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def markdown(e: dict) -> str:
    lines = ["# Full-scale time of the study's experiments on one GPU: an estimate", "",
             "Computed by `benchmarks/paper/estimate_time.py` (its docstring says how) from the H200 measurements "
             "in `benchmarks/results/gpu/` and the sub-runs' image counts on the release's CSV. Not a measurement: "
             "no experiment has been run at full scale.", "",
             f"Cost per image beyond the GPU compute (224 px; loading, augmentation, transfer): "
             f"{1000 * e['overhead_s_per_image']:.2f} ms, the median of "
             + ", ".join(f"{r['arch']} ({r['train']} + {r['val']} images: {r['median_epoch_s']:.1f} s an epoch, "
                         f"{r['compute_s']:.2f} s of it compute, {1000 * r['overhead_s_per_image']:.2f} ms/image)"
                         for r in e["logged_epochs"]) + ".", "",
             "| network | input px | training images/s (GPU compute) | source | ms per image beyond compute |",
             "|---|---:|---:|---|---:|"]
    for a, r in e["rates"].items():
        comp = (f"{r['compute_fast']:.0f}" if r["compute_fast"] == r["compute_slow"]
                else f"{r['compute_slow']:.0f}-{r['compute_fast']:.0f}")
        lines.append(f"| {a} | {r['input']} | {comp} | {r['how']} | {1000 * r['overhead_s_per_image']:.2f} |")
    lines += ["", f"Per sub-run: {e['epochs']} epochs (training images at the compute rate, validation images at 3x "
              "it, every image plus the cost beyond compute), plus "
              f"{e['overhead_s_per_subrun']:.0f} s to decode, build and evaluate (a round figure above the measured "
              "parts).", "",
              "| experiment | sub-runs | images per epoch (train + val) | estimated time |", "|---|---:|---|---:|"]
    for name, x in e["experiments"].items():
        imgs = sorted({r["train_images"] + r["val_images"] for r in x["runs"]})
        span = "–" if not imgs else (f"{imgs[0]}" if len(imgs) == 1 else f"{imgs[0]}-{imgs[-1]}")
        t = "0 (reuses table2)" if not x["runs"] else (
            _hm(x["low_s"]) if round(x["low_s"] / 60) == round(x["high_s"] / 60)
            else f"{_hm(x['low_s'])} - {_hm(x['high_s'])}")
        lines.append(f"| {name} | {x['subruns']} | {span} | {t} |")
    total_lo = sum(x["low_s"] for x in e["experiments"].values())
    total_hi = sum(x["high_s"] for x in e["experiments"].values())
    lines += [f"| all | {sum(x['subruns'] for x in e['experiments'].values())} | | "
              f"{_hm(total_lo)} - {_hm(total_hi)} |", "",
              "Not included: downloading the ImageNet weights, and Table 2's ONNX export, INT8 quantization and CPU "
              "speed timing (minutes per model on the CPU). On a slower GPU, the compute part grows by the ratio of "
              "its training throughput to the H200's.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "fetal_planes_db"),
                    help="folder with the release's FETAL_PLANES_DB_data.csv (images not needed)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "paper" / "time_estimate"))
    a = ap.parse_args()
    e = estimate(Path(a.data))
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(e, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(e), encoding="utf-8")
    print(markdown(e))


if __name__ == "__main__":
    main()
