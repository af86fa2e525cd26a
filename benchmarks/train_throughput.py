"""Training throughput (images/s) of the default edge models on this machine.

Forward + backward + Adam step at 224 px, batch 32, single-channel input, synthetic batches (data
loading excluded): a few timed batches after warm-up, the median reported. Writes
benchmarks/results/train_throughput.json and .md.

    .venv/bin/python benchmarks/train_throughput.py [--archs mobilenet_v3_small,mobilenet_v2,resnet18]
        [--batches 3] [--size 224] [--batch-size 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def measure(arch: str, size: int, batch: int, batches: int, device: str) -> dict:
    import torch

    from export.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, 6).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, size, size, device=device)
    y = torch.randint(0, 6, (batch,), device=device)
    times = []
    for i in range(batches + 1):  # the first batch warms up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"arch": arch, "images_per_s": round(batch / med, 2), "median_batch_s": round(med, 3),
            "batch_s": [round(t, 3) for t in times]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="mobilenet_v3_small,mobilenet_v2,resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(RESULTS / "train_throughput"))
    a = ap.parse_args()
    import torch

    rows = [measure(arch, a.size, a.batch_size, a.batches, a.device) for arch in a.archs.split(",")]
    meta = {
        "what": "training images/s: forward+backward+Adam step, synthetic 1-channel batches, median of timed batches "
                "after one warm-up batch; data loading excluded",
        "size": a.size, "batch_size": a.batch_size, "timed_batches": a.batches, "device": a.device,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": rows}, indent=2))
    lines = [f"# Training throughput ({a.device}, {a.size} px, batch {a.batch_size})", "",
             f"{meta['what']}. torch {meta['torch']}, {meta['torch_threads']} threads, {meta['cpu_count']} CPUs, "
             f"1-min load average {meta['load_average_1min']} (a shared machine: numbers vary), {meta['date']}.", "",
             "| arch | images/s | median s/batch | timed batches (s) |", "|---|---|---|---|"]
    lines += [f"| {r['arch']} | {r['images_per_s']} | {r['median_batch_s']} | {', '.join(map(str, r['batch_s']))} |"
              for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
