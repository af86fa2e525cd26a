"""One GPU session's work, as one prepared script (a lent machine has minutes, not hours).

    python3 benchmarks/gpu/gpu_session.py OUT [--parts models,retrieval,qat,sononet] [--quick] [--real DIR --sononet-ckpt PT]

Parts (each writes under OUT; a failing part does not stop the others; OUT/session.json says what ran):

- ``models``: the three benchmark models of ``benchmarks/bench_models.Recipe`` trained on CUDA
  (``bench_models.train_model(device="cuda")``: the same phantom, seed, epochs, batch and learning rate as the
  CPU run). The checkpoints lose their optimizer state (the benchmark never resumes) and are packed into
  ``OUT/bench_ckpts.tar.part-*`` (files of at most 15 MiB) for the trip back: unpack into
  ``~/.cache/fetalplanes-bench/`` and ``python benchmarks/run_all.py`` exports and quantizes them here.
- ``retrieval``: phantom models trained to convergence for issue 14's retrieval target (MobileNetV3-small and
  ResNet-18 at 224 px on a 500-patient phantom with the study's recipe; the demo's recipe, MobileNetV3-small at
  64 px, for all its 20 epochs), exported, then ``benchmarks/exam_retrieval.py`` on them (ONNX Runtime, CPU).
- ``qat``: a sweep of ``fetalplanes qat --device cuda`` (loss, learning rate, epochs) on the model of the slow
  test ``test_qat_improves_agreement_over_ptq...`` (phantom, 120 patients at 64 px, MobileNetV3-small, 4 epochs),
  for two training seeds: PTQ against QAT by the deployability rule.
- ``sononet``: ``fetalplanes qat --distill`` of SonoNet-16 on a folder of real images (``--real``; the
  ``fetaldata.real_samples`` folder) from a ``fetalplanes import-weights`` checkpoint (``--sononet-ckpt``).

On the lent machine (the command that ran, with ``.gpu/`` holding the real folder and the checkpoint, OUT on its disk)::

    timeout 480 python3 benchmarks/gpu/gpu_session.py OUT --real .gpu/real --sononet-ckpt .gpu/sononet16.pt

SYNTHETIC data in the first three parts: nothing clinical. Paths in the outputs are relative to OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
CLI = [sys.executable, "-m", "edge.cli"]
PARTS = ("models", "retrieval", "qat", "sononet")
DEVICE = "cuda"  # --device cpu: a dry run of the script where there is no GPU


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


SITE: Path | None = None  # a folder that makes the project's commands known where it is not installed


def register_commands(out: Path) -> None:
    """The commands of fetaldata/calibration/export are entry points of the installed package; on a machine where
    the project is only a checkout (a lent GPU box), write that metadata to ``out/.site`` for the subprocesses."""
    global SITE
    import re

    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r'\[project.entry-points."fetalplanes.commands"\]\n(.*?)\n\n', text, re.S)
    if block is None:
        return
    info = out / ".site" / "fetalplanes_checkout-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fetalplanes-checkout\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[fetalplanes.commands]\n" + block.group(1).replace('"', "") + "\n")
    SITE = out / ".site"


def sh(cmd: list[str], out_log: Path, timeout: float) -> int:
    """Run ``cmd`` (output to ``out_log``); return its exit code (124 on timeout)."""
    path = os.pathsep.join([str(ROOT)] + ([str(SITE)] if SITE else []))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    with open(out_log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        try:
            return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            fh.write("TIMEOUT\n")
            return 124


def strip_optimizer(ckpt: Path) -> None:
    import torch

    d = torch.load(str(ckpt), map_location="cpu", weights_only=False)
    d.pop("optimizer", None)
    torch.save(d, str(ckpt))


def part_models(out: Path, quick: bool) -> dict:
    import bench_models

    work = out / "bench_cache"
    recipe = bench_models.Recipe()
    if quick:
        recipe.patients, recipe.epochs = 16, {a: 1 for a in recipe.epochs}
    done = {}
    for arch in ("mobilenet_v3_small", "mobilenet_v2", "resnet18"):
        t0 = time.time()
        ckpt = bench_models.train_model(arch, work, recipe, log, device=DEVICE, workers=8)
        strip_optimizer(ckpt)
        hist = json.loads((ckpt.parent / "metrics.json").read_text())
        done[arch] = {"seconds": round(time.time() - t0, 1), "checkpoint": str(ckpt.relative_to(work)),
                      "best_val_loss": hist.get("best_val_loss"), "epochs": len(hist.get("history", []))}
        log(f"models: {arch} {done[arch]}")
    tar = out / "bench_ckpts.tar"
    with tarfile.open(tar, "w") as t:
        for arch, d in done.items():
            t.add(work / d["checkpoint"], arcname=d["checkpoint"])
            for extra in ("metrics.json", "metrics.csv"):
                p = (work / d["checkpoint"]).parent / extra
                if p.is_file():
                    t.add(p, arcname=str(Path(d["checkpoint"]).parent / extra))
    subprocess.run(["split", "-b", "15M", "-d", str(tar), str(tar) + ".part-"], check=True)
    tar.unlink()
    return done


def part_retrieval(out: Path, quick: bool) -> dict:
    w = out / "retrieval"
    w.mkdir(parents=True, exist_ok=True)
    lg = w / "log.txt"
    res: dict = {}
    big = w / "phantom500"
    demo = w / "phantom320"
    sh(CLI + ["data", "phantom", "--out", str(big), "--patients", "40" if quick else "500", "--size", "320", "--force"], lg, 300)
    sh(CLI + ["data", "phantom", "--out", str(demo), "--patients", "40" if quick else "320", "--size", "128", "--force"], lg, 300)
    runs = [("mnv3s_224", big, ["--arch", "mobilenet_v3_small"]),
            ("resnet18_224", big, ["--arch", "resnet18"]),
            ("demo_mnv3s_64_e20", demo, ["--arch", "mobilenet_v3_small", "--image-size", "64", "--epochs", "20",
                                         "--patience", "20", "--lr", "2e-3"])]
    models = []
    for name, data, extra in runs:
        t0 = time.time()
        if quick:
            extra = extra + ["--epochs", "1", "--image-size", "32"]
        rc = sh(CLI + ["train", "--data", str(data), "--out", str(w / name), "--pretrained", "none", "--device", DEVICE,
                       "--workers", "8", "--no-progress", *extra], lg, 400)
        rc2 = sh(CLI + ["evaluate", "--model", str(w / name / "best.pt"), "--data", str(data), "--out",
                        str(w / name / "eval"), "--quiet"], lg, 300) if rc == 0 else None
        rc3 = sh(CLI + ["export", "--checkpoint", str(w / name / "best.pt"), "--out", str(w / name / "model.onnx")],
                 lg, 300) if rc == 0 else None
        res[name] = {"train_rc": rc, "evaluate_rc": rc2, "export_rc": rc3, "seconds": round(time.time() - t0, 1)}
        m = w / name / "eval" / "metrics.json"
        if m.is_file():
            res[name]["test"] = json.loads(m.read_text()).get("metrics")
        if rc3 == 0:
            models.append(str(w / name / "model.onnx"))
        log(f"retrieval: trained {name}: {res[name].get('seconds')} s, rc {rc}/{rc2}/{rc3}")
    cmd = [sys.executable, "benchmarks/exam_retrieval.py", "--out", str(w / "exam_retrieval.md")]
    if quick:
        cmd += ["--seeds", "1", "--seconds", "8"]
    for m in models:
        cmd += ["--model", m]
    res["exam_retrieval_rc"] = sh(cmd, lg, 300)
    return res


def _qat_one(job: dict) -> dict:
    lg = Path(job["out"]).with_suffix(".log")
    rc = sh(CLI + ["qat", "--checkpoint", job["ckpt"], "--data", job["data"], "--out", job["out"], "--device", DEVICE,
                   "--threads", "3", "--check-images", "400", *job["args"]], lg, 240)
    rep = Path(job["out"]).with_name(Path(job["out"]).name.replace(".qat.onnx", ".qat.json"))
    r = {"name": job["name"], "rc": rc, "args": job["args"]}
    if rep.is_file():
        d = json.loads(rep.read_text())
        keys = ("agreement", "flips", "agreement_images", "drop_points", "kl", "expected_agreement", "deployable")
        r.update({"ptq": {k: d["ptq"].get(k) for k in keys}, "qat": {k: d["qat"].get(k) for k in keys},
                  "seconds": d.get("seconds"), "history": d.get("history")})
    log(f"qat: {job['name']} rc {rc} " + (f"PTQ {r['ptq']['agreement']:.4f}/{r['ptq']['kl']:.4f} QAT "
                                           f"{r['qat']['agreement']:.4f}/{r['qat']['kl']:.4f}" if "qat" in r else ""))
    return r


def part_qat(out: Path, quick: bool) -> dict:
    w = out / "qat"
    w.mkdir(parents=True, exist_ok=True)
    lg = w / "log.txt"
    db = w / "db"
    sh(CLI + ["data", "phantom", "--out", str(db), "--patients", "30" if quick else "120", "--size", "64", "--force"], lg, 200)
    ckpts = {}
    for seed in (0, 1):
        run = w / f"train_s{seed}"
        sh(CLI + ["train", "--data", str(db), "--out", str(run), "--arch", "mobilenet_v3_small", "--pretrained", "none",
                  "--image-size", "64", "--epochs", "1" if quick else "4", "--batch-size", "32", "--lr", "2e-3",
                  "--seed", str(seed), "--device", DEVICE, "--workers", "4", "--no-progress"], lg, 300)
        if (run / "best.pt").is_file():
            ckpts[seed] = str(run / "best.pt")
    grid = [("ce_e2_1e-5", []), ("distill_e2_1e-5", ["--distill"]),
            ("distill_e3_3e-5", ["--distill", "--epochs", "3", "--lr", "3e-5"]),
            ("distill_e3_1e-4", ["--distill", "--epochs", "3", "--lr", "1e-4"]),
            ("distill_e6_1e-4", ["--distill", "--epochs", "6", "--lr", "1e-4"]),
            ("ce_e3_1e-4", ["--epochs", "3", "--lr", "1e-4"])]
    if quick:
        grid = [(n, a + ["--max-train-images", "32", "--calib-size", "32"]) for n, a in grid[:2]]
    jobs = [{"name": f"s{seed}_{n}", "ckpt": ck, "data": str(db), "out": str(w / f"s{seed}_{n}.qat.onnx"), "args": a}
            for seed, ck in ckpts.items() for n, a in grid]
    with ThreadPoolExecutor(max_workers=5) as ex:
        results = list(ex.map(_qat_one, jobs))
    return {"runs": results}


def part_sononet(out: Path, real: Path | None, ckpt: Path | None, quick: bool) -> dict:
    if real is None or ckpt is None or not real.is_dir() or not ckpt.is_file():
        return {"skipped": "give --real (a fetaldata.real_samples folder) and --sononet-ckpt (import-weights .pt)"}
    w = out / "sononet"
    w.mkdir(parents=True, exist_ok=True)
    grid = [("distill_e3_1e-5", ["--distill", "--epochs", "3", "--lr", "1e-5", "--batch-size", "16"]),
            ("distill_e5_3e-5", ["--distill", "--epochs", "5", "--lr", "3e-5", "--batch-size", "16"])]
    if quick:
        grid = [(n, a + ["--max-train-images", "8", "--calib-size", "8"]) for n, a in grid[:1]]
    jobs = [{"name": f"sononet16_{n}", "ckpt": str(ckpt), "data": str(real), "out": str(w / f"sononet16_{n}.qat.onnx"),
             "args": a} for n, a in grid]
    with ThreadPoolExecutor(max_workers=2) as ex:
        return {"runs": list(ex.map(_qat_one, jobs))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--quick", action="store_true", help="tiny sizes: check the script itself (CPU is enough with --cpu)")
    p.add_argument("--device", default="cuda", help="PyTorch device (cpu: a dry run of the script)")
    p.add_argument("--real", type=Path)
    p.add_argument("--sononet-ckpt", type=Path)
    args = p.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    parts = [x for x in args.parts.split(",") if x]
    register_commands(out)
    session: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "parts": {}}
    try:
        import torch

        session["torch"] = torch.__version__
        session["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception as exc:  # noqa: BLE001 - recorded, not fatal
        session["torch"] = f"unavailable: {exc}"
    log(f"session: {session}")

    def run(name, fn):
        t0 = time.time()
        try:
            r = fn()
        except Exception as exc:  # noqa: BLE001 - one part failing must not lose the others
            r = {"error": f"{type(exc).__name__}: {exc}"}
        r = {**r, "part_seconds": round(time.time() - t0, 1)} if isinstance(r, dict) else r
        session["parts"][name] = r
        (out / "session.json").write_text(json.dumps(session, indent=1, default=str).replace(str(out), "OUT"))
        log(f"part {name} done in {time.time() - t0:.0f} s")

    # the CPU-heavy retrieval part runs beside the GPU parts
    with ThreadPoolExecutor(max_workers=2) as ex:
        fut = ex.submit(run, "retrieval", lambda: part_retrieval(out, args.quick)) if "retrieval" in parts else None
        if "models" in parts:
            run("models", lambda: part_models(out, args.quick))
        if "qat" in parts:
            run("qat", lambda: part_qat(out, args.quick))
        if "sononet" in parts:
            run("sononet", lambda: part_sononet(out, args.real, args.sononet_ckpt, args.quick))
        if fut is not None:
            fut.result()
    session["ended"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (out / "session.json").write_text(json.dumps(session, indent=1, default=str).replace(str(out), "OUT"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
