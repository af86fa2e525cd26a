"""`fetalplanes demo`: the whole chain on the embedded phantom, one step after another, ending in a report.

Steps (each calls the stage's own Python API, nothing is re-implemented here):
phantom dataset -> phantom scanner video -> train -> evaluate -> export ONNX -> quantize INT8
-> compare INT8 with FP32 -> live loop on the video -> model-only speed -> real (the vendored SonoNet-16 on
the real images in ../shared/data and one real clip, FP32 vs INT8: export.demo_real) -> report.

The live step deploys the file the one deployability rule picks (:func:`deploy_choice`:
:mod:`edge.deployability` on quantize's check images AND on compare's test split), never
a file it rejects.

Every finished step leaves ``OUT/.steps/<step>.json`` holding the hash of its inputs
(its settings and the hashes of the steps it depends on); a re-run reuses a step whose
hash still matches and whose files are still there, unless ``force``.

The phantom figures are measured on SYNTHETIC images: they exercise the software and
prove nothing clinical. The real step's figures are on real ultrasound, labelled REAL in the report,
but few images from other cohorts: not clinical accuracy either.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge.errors import EXIT_FAILURE, FetalPlanesError

STEPS = ("phantom", "video", "train", "evaluate", "export", "quantize", "compare", "live", "bench", "real", "report")
DEPENDS: dict[str, tuple[str, ...]] = {
    "phantom": (),
    "video": (),
    "train": ("phantom",),
    "evaluate": ("train", "phantom"),
    "export": ("train",),
    "quantize": ("export", "phantom"),
    "compare": ("quantize", "export", "phantom"),
    "live": ("quantize", "compare", "video"),
    "bench": ("train", "export", "quantize"),
    "real": (),
    "report": ("phantom", "video", "train", "evaluate", "export", "quantize", "compare", "live", "bench", "real"),
}
SYNTHETIC = "SYNTHETIC phantom data - these figures exercise the software and prove nothing clinical"

MARKERS = ".steps"


@dataclass
class DemoConfig:
    """Settings of one demo run (the defaults are the README's first command: <= 10 min on 2 CPU cores)."""

    out: str = "demo_run"
    force: bool = False
    steps: tuple[str, ...] = ()  # () = all; else these (and whatever they need that is not done yet)
    seed: int = 0
    # phantom dataset
    patients: int = 320
    image_width: int = 128  # px, phantom images (height by the machine's aspect)
    # phantom video
    video_seconds: float = 60.0  # long enough to sweep through a dozen planes
    video_fps: int = 30
    video_width: int = 640
    video_height: int = 480
    # training
    arch: str = "mobilenet_v3_small"
    input_size: int = 64
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    class_weights: bool = False  # weighting the loss by class cost 20 points of top-1 here (57 % vs 79 %)
    # quantize / compare
    calib_size: int = 200
    quant_method: str = "percentile"  # histogram percentile: much faster to calibrate than entropy's KL search
    quant_search: bool = True
    val_max_images: int | None = None
    # speed
    threads: int = 2
    bench_seconds: float = 1.0
    bench_rounds: int = 3
    # the real step: the vendored SonoNet-16 on the real images in ../shared/data (skipped when absent)
    real: bool = True
    real_data: str = ""  # "" = $FETALPLANES_SHARED_DATA or ../shared/data beside the checkout
    real_max_per_source: int | None = None  # cap images per source (quick runs)
    real_clip_frames: int = 0  # 0 = the whole clip

    @classmethod
    def quick(cls, **overrides: Any) -> "DemoConfig":
        """The tiny scale the tests use (a few seconds): few patients, 32 px, 1 epoch, a 2 s video."""
        base = dict(patients=14, image_width=64, video_seconds=2.0, video_fps=10, video_width=320, video_height=240,
                    input_size=32, epochs=1, batch_size=16, calib_size=16, quant_search=False, val_max_images=40,
                    bench_seconds=0.05, bench_rounds=1, real=False)
        base.update(overrides)
        return cls(**base)

    def params_for(self, step: str) -> dict[str, Any]:
        """The settings a step's result depends on (part of its inputs' hash)."""
        keys = {
            "phantom": ("patients", "image_width", "seed"),
            "video": ("video_seconds", "video_fps", "video_width", "video_height", "image_width", "seed"),
            "train": ("arch", "input_size", "epochs", "batch_size", "lr", "class_weights", "seed"),
            "evaluate": (),
            "export": (),
            "quantize": ("calib_size", "quant_method", "quant_search", "val_max_images", "seed", "threads"),
            "compare": ("val_max_images",),
            "live": ("threads",),
            "bench": ("threads", "bench_seconds", "bench_rounds"),
            "real": ("real", "real_data", "real_max_per_source", "real_clip_frames", "threads", "seed"),
            "report": (),
        }[step]
        d = asdict(self)
        return {k: d[k] for k in keys}


class Demo:
    """Runs the steps of one demo folder; ``run()`` returns the report's figures (also in report.json)."""

    def __init__(self, config: DemoConfig, log: Callable[[str], None] = print):
        self.c = config
        self.log = log
        self.out = Path(config.out).resolve()
        self.results: dict[str, dict[str, Any]] = {}
        self.hashes: dict[str, str] = {}
        self.status: dict[str, str] = {}  # step -> "ran" | "reused"
        self.seconds: dict[str, float] = {}
        for s in config.steps:
            if s not in STEPS:
                raise FetalPlanesError(f"--steps: unknown step '{s}'", hint=f"use some of: {', '.join(STEPS)}")

    # ------------------------------------------------------------------ paths
    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    @property
    def video_path(self) -> Path:
        return self.out / "video" / "phantom_scan.mp4"

    @property
    def run_dir(self) -> Path:
        return self.out / "train"

    @property
    def fp32(self) -> Path:
        return self.out / "model" / "model.onnx"

    @property
    def int8(self) -> Path:
        return self.out / "model" / "model.int8.onnx"

    @property
    def int8_s8(self) -> Path:
        return self.out / "model" / "model.int8-s8.onnx"

    # ------------------------------------------------------------------ markers
    def _marker(self, step: str) -> Path:
        return self.out / MARKERS / f"{step}.json"

    def _hash(self, step: str) -> str:
        from edge import __version__

        payload = {"step": step, "params": self.c.params_for(step), "deps": [self.hashes[d] for d in DEPENDS[step]],
                   "version": __version__}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def _reusable(self, step: str, h: str) -> dict[str, Any] | None:
        m = self._marker(step)
        if self.c.force or not m.is_file():
            return None
        try:
            saved = json.loads(m.read_text())
        except (OSError, ValueError):
            return None
        if saved.get("hash") != h or not all((self.out / p).exists() for p in saved.get("files", [])):
            return None
        return saved

    def _wanted(self) -> list[str]:
        if not self.c.steps:
            return list(STEPS)
        want: set[str] = set()

        def add(s: str) -> None:
            want.add(s)
            for d in DEPENDS[s]:
                add(d)

        for s in self.c.steps:
            add(s)
        return [s for s in STEPS if s in want]

    # ------------------------------------------------------------------ driver
    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        wanted = self._wanted()
        t_all = time.perf_counter()
        self.log(f"fetalplanes demo -> {self.out}  ({SYNTHETIC})")
        for i, step in enumerate(wanted, 1):
            h = self._hash(step)
            chosen = not self.c.steps or step in self.c.steps
            saved = None if (chosen and self.c.steps) else self._reusable(step, h)
            if saved is not None:
                self.results[step], self.status[step] = saved["result"], "reused"
                self.hashes[step] = f"{h}@{saved.get('finished', '')}"  # what later steps' hashes depend on
                self.seconds[step] = float(saved.get("seconds", 0.0))
                self.log(f"[{i}/{len(wanted)}] {step}: reused (inputs unchanged; --force to redo)")
                continue
            self.log(f"[{i}/{len(wanted)}] {step} ...")
            t0 = time.perf_counter()
            result, files = getattr(self, f"step_{step}")()
            dt = time.perf_counter() - t0
            self.results[step], self.status[step], self.seconds[step] = result, "ran", dt
            finished = time.strftime("%Y-%m-%d %H:%M:%S") + f".{time.time_ns() % 10**9:09d}"
            self.hashes[step] = f"{h}@{finished}"
            m = self._marker(step)
            m.parent.mkdir(parents=True, exist_ok=True)
            rel = [str(Path(f).resolve().relative_to(self.out)) for f in files]
            m.write_text(json.dumps({"step": step, "hash": h, "seconds": dt, "files": rel, "result": result,
                                     "finished": finished}, indent=1, default=float))
            self.log(f"    {step} done in {dt:.1f} s")
        total = time.perf_counter() - t_all
        self.log(f"demo finished in {total:.1f} s" + (f"; report: {self.out / 'report.html'}" if "report" in wanted else ""))
        return {"results": self.results, "status": self.status, "seconds": self.seconds, "total_seconds": total}

    # ------------------------------------------------------------------ steps
    def step_phantom(self):
        from fetaldata.fetal_planes_db import FetalPlanesDB
        from fetaldata.phantom.dataset import write_phantom_dataset

        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        write_phantom_dataset(self.data_dir, patients=self.c.patients, seed=self.c.seed, size=self.c.image_width)
        db = FetalPlanesDB.open(self.data_dir)
        n = len(list(db.records)) if hasattr(db, "records") else None
        self.log(f"    phantom dataset: {self.c.patients} patients, {n} images in {self.data_dir}")
        return {"images": n, "patients": self.c.patients, "dir": str(self.data_dir)}, [self.data_dir / "FETAL_PLANES_DB_data.csv"]

    def step_video(self):
        self.video_path.parent.mkdir(parents=True, exist_ok=True)
        path = Path(write_video(self.video_path, self.c.video_seconds, self.c.video_fps, self.c.video_width,
                                self.c.video_height, self.c.seed, scan_width=self.c.image_width))
        truth = path.with_suffix(".truth.csv")
        frames = max(0, len(truth.read_text().splitlines()) - 1)
        self.log(f"    phantom scanner video: {frames} frames, {self.c.video_width}x{self.c.video_height} at {self.c.video_fps:g} fps")
        return {"video": str(path), "truth": str(truth), "frames": frames, "fps": self.c.video_fps}, [path, truth]

    def step_train(self):
        from export.train import TrainConfig, train

        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        cfg = TrainConfig(data=str(self.data_dir), out=str(self.run_dir), arch=self.c.arch, pretrained="none",
                          image_size=self.c.input_size, epochs=self.c.epochs, patience=max(3, self.c.epochs),
                          batch_size=self.c.batch_size, lr=self.c.lr, workers=0, seed=self.c.seed, device="cpu",
                          progress=False, bn_batches=20, class_weights=self.c.class_weights)
        best = train(cfg)
        metrics = json.loads((self.run_dir / "metrics.json").read_text()) if (self.run_dir / "metrics.json").is_file() else {}
        return {"checkpoint": str(best), "summary": metrics.get("summary", {})}, [best]

    def step_evaluate(self):
        from export.evaluate import evaluate_model
        from export.reports import write_reports

        res = evaluate_model(self.results["train"]["checkpoint"], self.data_dir, "test")
        paths = write_reports(res, self.out / "evaluate")
        m = res.metrics
        self.log(f"    test split ({m.n} images): top-1 accuracy {100 * m.top1_accuracy:.1f}% (synthetic)")
        return {"metrics": _metrics_dict(m), "labels": list(res.labels),
                "confusion_png": str(paths["confusion_counts"]), "json": str(paths["json"])}, [paths["json"]]

    def step_export(self):
        from export.onnx_export import export_onnx, write_report

        rep = export_onnx(self.results["train"]["checkpoint"], self.fp32, data=self.data_dir, samples=16)
        report_path = write_report(rep, self.fp32.with_suffix(".export.json"))
        d = rep.to_dict()
        ok = d.get("passed")
        self.log(f"    ONNX {'matches' if ok else 'DOES NOT match'} PyTorch on {d.get('samples')} images ({d.get('exporter')})")
        return {"onnx": str(self.fp32), "report": str(report_path), "passed": ok,
                "onnxruntime": d.get("onnxruntime"), "opencv": d.get("opencv")}, [self.fp32]

    def step_quantize(self):
        from calibration.quantize_ort import QuantizeConfig
        from calibration.quantize_workflow import QuantizeJob, run_quantize

        def say(msg: str) -> None:
            self.log(f"    {msg}")

        common = dict(onnx=self.fp32, data=self.data_dir, calib_size=self.c.calib_size, seed=self.c.seed,
                      threads=self.c.threads, val_max_images=self.c.val_max_images,
                      speed_seconds=max(0.05, self.c.bench_seconds / 2), speed_rounds=self.c.bench_rounds)
        main = run_quantize(QuantizeJob(out=self.int8, config=QuantizeConfig(method=self.c.quant_method), search=self.c.quant_search, **common), say)
        say("second variant: symmetric int8 activations (the TensorRT flavour), no layer search")
        s8 = run_quantize(QuantizeJob(out=self.int8_s8, config=QuantizeConfig(method=self.c.quant_method, activations="int8"), search=False, **common), say)
        rec = main["recommendation"]
        say(f"deploy here: {rec['name']} ({rec['reason']})")
        return {"int8": main["int8_model"], "int8_s8": s8["int8_model"], "accuracy_holds": main["accuracy_holds"],
                "validation": main["validation"], "recommendation": rec,
                "speed": main["speed"], "s8_accuracy_holds": s8["accuracy_holds"]}, [self.int8, self.int8_s8]

    def step_compare(self):
        from calibration.compare import CompareJob, compare_models
        from export.evaluate import evaluate_model
        from export.reports import write_reports

        out = self.out / "compare"
        r = compare_models(CompareJob(reference=self.fp32, candidate=self.int8, data=self.data_dir, out=out,
                                      threads=self.c.threads, max_images=self.c.val_max_images))
        res = evaluate_model(self.int8, self.data_dir, "test")
        paths = write_reports(res, out / "int8-evaluate")
        fp = self.out / "compare" / "fp32-evaluate"
        res32 = evaluate_model(self.fp32, self.data_dir, "test")
        p32 = write_reports(res32, fp)
        self.log(f"    INT8 vs FP32 on {r['images']} test images: agreement {100 * r['agreement']:.1f}%, "
                 f"top-1 change {r['delta'].get('top1_accuracy_points', 0):+.1f} points -> {'PASS' if r['passed'] else 'FAIL'}")
        return {"candidate": str(self.int8), "verdict": r["verdict"],
                "images": r["images"], "agreement": r["agreement"], "delta": r["delta"], "passed": r["passed"],
                "checks": r["checks"], "prob_abs_diff": r["prob_abs_diff"], "changed": r["changed"]["count"],
                "per_class": r["per_class"], "sizes": r["sizes"],
                "int8_metrics": _metrics_dict(res.metrics), "fp32_onnx_metrics": _metrics_dict(res32.metrics),
                "int8_confusion_png": str(paths["confusion_counts"]), "fp32_onnx_confusion_png": str(p32["confusion_counts"]),
                "report": str(out / "compare.md")}, [out / "compare.json", paths["confusion_counts"]]

    def step_live(self):
        from edge.live.config import RunConfig
        from edge.live.loop import run_loop
        from fetaldata.scoring import score_against_truth, score_retrieval

        live = self.out / "live"
        if live.exists():
            shutil.rmtree(live)
        live.mkdir(parents=True)
        from edge.quantize_report import QuantizeReport, report_paths

        model, why = deploy_choice(QuantizeReport.read(report_paths(self.int8)[0]), self.results.get("compare"))
        self.log(f"    deploying {Path(model).name}: {why}")
        annotated, jsonl = live / "annotated.mp4", live / "predictions.jsonl"
        cfg = RunConfig(model=str(model), input=str(self.video_path), outputs=[str(annotated), str(jsonl)],
                        threads=self.c.threads, log_every_s=0.0, exam_report=str(live / "exam"), exam_id="phantom")
        summary = run_loop(cfg)
        if summary.exit_code:
            raise FetalPlanesError(f"{self.video_path}: the live loop failed ({summary.end_reason}: {summary.last_error})",
                                   hint="run `fetalplanes run` on it to see the error", exit_code=EXIT_FAILURE)
        jsonl_real = _newest(live, "*.jsonl") or jsonl
        video_real = _newest(live, "*.mp4") or annotated
        score = score_against_truth(jsonl_real, self.video_path.with_suffix(".truth.csv"))
        score["retrieval"] = score_retrieval(live / "exam" / "phantom", self.video_path.with_suffix(".truth.csv"))
        strip = frame_strip(video_real, live / "frames.png")
        self.log(f"    live loop: {summary.frames} frames at {summary.hz:.0f} Hz; smoothed-label accuracy "
                 f"{100 * (score['accuracy'] or 0):.1f}%, flicker {score['flicker']} (synthetic)")
        s = summary.to_dict()
        return {"model": str(model), "deployed_why": why, "annotated": str(video_real), "predictions": str(jsonl_real), "strip": str(strip),
                "summary": {k: s[k] for k in ("frames", "seconds", "hz", "dropped", "skipped", "label_changes",
                                               "stages_ms", "latency_ms", "end_reason", "sector")},
                "score": score}, [video_real, jsonl_real, strip]

    def step_bench(self):
        from calibration.evaluation import load_split
        from calibration.speed import measure_model, tensorrt_note
        from edge.backends import read_model_info
        from edge.sysinfo import machine_stamp
        from export.onnx_export import phantom_inputs
        from export.torch_runner import TorchRunner

        from edge.quantize_report import QuantizeReport, report_paths

        info = read_model_info(self.fp32)
        x = phantom_inputs(info, 8, seed=self.c.seed)
        held = load_split(self.data_dir, info, "test", max_images=self.c.val_max_images, seed=self.c.seed)
        variants = {"uint8 act.": self.int8, "int8 act.": self.int8_s8}
        verdicts = {k: QuantizeReport.read(report_paths(p)[0]).verdict_for(p) for k, p in variants.items()}
        r = measure_model(self.c.arch, self.results["train"]["checkpoint"], self.fp32, variants, x, batches=(1,),
                          threads=self.c.threads, seconds=self.c.bench_seconds, rounds=self.c.bench_rounds,
                          log=lambda m: self.log(f"  {m}"), torch_runner=TorchRunner, heldout=held.x,
                          heldout_targets=held.targets, quantize_holds=verdicts)
        r["input_size"] = info.input_size
        r["tensorrt"] = tensorrt_note()
        r["machine"] = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), **machine_stamp()}
        path = self.out / "bench" / "bench.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=1, default=float) + "\n", encoding="utf-8")
        for row in r["runtimes"]:
            t = row["batches"].get("1")
            dep = "" if row["kind"] == "pytorch" else ("  deployable" if row["deployable"] else f"  NOT deployable: {row['deployable_why']}")
            self.log(f"    {row['name']:<24} " + (f"{t['hz']:8.1f} Hz{dep}" if t else f"not timed: {row['note']}"))
        return r, [path]

    def step_real(self):
        """SonoNet-16 (the vendored default model) on the real images and one real clip, FP32 and INT8."""
        from export.demo_real import real_step

        return real_step(self)

    def step_report(self):
        paths = write_report(self)
        return {k: str(v) for k, v in paths.items()}, list(paths.values())


# ---------------------------------------------------------------------- helpers
def _metrics_dict(m) -> dict[str, Any]:
    d = m.to_dict()
    d.pop("confusion", None)
    d["top1_accuracy"] = m.top1_accuracy
    d["confusion"] = m.confusion.tolist()
    return d


def deploy_choice(report, compare_result: dict[str, Any] | None = None) -> tuple[str, str]:
    """(file to deploy, why): :func:`edge.deployability.choose` over the files ``fetalplanes quantize`` timed.

    Each file is judged by the one rule on the counts of quantize's check images (``report``, an
    :class:`edge.quantize_report.QuantizeReport`) and, for the file ``compare`` checked on the test split,
    on compare's verdict too (:func:`edge.deployability.combine`: every check made must pass). The FP32
    reference always may be deployed; an INT8 file only when it is also clearly faster (the speed margin).
    """
    from edge.deployability import Verdict, choose, combine

    compared = Path(compare_result["candidate"]).resolve() if compare_result and compare_result.get("candidate") else None
    verdicts = {}
    for c in report.candidates:
        checks = [("quantize", c.verdict(report.gate))]
        if compared is not None and not c.is_reference and Path(c.path).resolve() == compared:
            v = compare_result.get("verdict") or {}
            checks.append(("compare", Verdict(bool(compare_result["passed"]), v.get("why", "compare's checks"))))
        verdicts[c.path] = combine(checks)
    ref = next((c for c in report.candidates if c.is_reference), None)
    choice, why = choose(report.candidates, lambda c: c.hz, lambda c: verdicts[c.path].deployable, reference=ref)
    if choice is None:
        return report.fp32_model, "no file was timed: the FP32 reference"
    rejected = [f"{Path(c.path).name}: {verdicts[c.path].why}" for c in report.candidates
                if not verdicts[c.path].deployable]
    return choice.path, why + (f" (rejected by the deployability rule: {'; '.join(rejected)})" if rejected else "")


def _newest(folder: Path, pattern: str) -> Path | None:
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def _deployable_text(row: dict[str, Any]) -> str:
    """'deployable' / 'NOT deployable: why' for a speed row (older bench.json files carry no verdict)."""
    if row.get("kind") == "pytorch" or "deployable" not in row:
        return ""
    return "deployable" if row["deployable"] else f"NOT deployable: {row.get('deployable_why', '')}"


def write_video(path: Path, seconds: float, fps: float, width: int, height: int, seed: int, scan_width: int = 128) -> Path:
    """The phantom scanner video (fetaldata.phantom.video.write_phantom_video) with its .truth.csv sidecar.

    ``scan_width``: the video's planes are formed at the phantom dataset's image width, so the model
    sees in the sector what it was trained on."""
    from fetaldata.phantom.video import write_phantom_video

    return Path(write_phantom_video(path, seconds=seconds, fps=int(fps), width=width, height=height, seed=seed,
                                    scan_width=scan_width))


def frame_strip(video: Path, out_png: Path, count: int = 6, height: int = 180) -> Path:
    """``count`` evenly spaced frames of the annotated video side by side, one PNG."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if not frames:
        raise FetalPlanesError(f"{video}: no frames could be read back", hint="check OpenCV's video I/O (fetalplanes doctor)",
                               exit_code=EXIT_FAILURE)
    idx = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    tiles = [cv2.resize(frames[i], (int(frames[i].shape[1] * height / frames[i].shape[0]), height),
                        interpolation=cv2.INTER_AREA) for i in idx]
    cv2.imwrite(str(out_png), cv2.hconcat(tiles))
    return out_png


# ---------------------------------------------------------------------- report
def _commands(demo: Demo) -> list[tuple[str, str, str]]:
    """(step, the command this demo step corresponds to with your own data, what it does)."""
    c = demo.c
    return [
        ("phantom", "fetalplanes data check ~/FETAL_PLANES_DB",
         f"the demo made a phantom (`fetalplanes data phantom --out data --patients {c.patients} --size {c.image_width}`); "
         "with the real release, check it instead"),
        ("video", "fetalplanes data phantom-video --out scan.mp4",
         "or record your scanner's video-out / use a capture device (v4l2:///dev/video0)"),
        ("train", f"fetalplanes train --data ~/FETAL_PLANES_DB --out runs/{c.arch} --arch {c.arch}",
         f"the demo used --pretrained none --image-size {c.input_size} --epochs {c.epochs}; the defaults are the study's recipe"),
        ("evaluate", f"fetalplanes evaluate --model runs/{c.arch}/best.pt --data ~/FETAL_PLANES_DB --split test", "test-split metrics"),
        ("export", f"fetalplanes export --checkpoint runs/{c.arch}/best.pt --out model.onnx --data ~/FETAL_PLANES_DB", "ONNX, checked against PyTorch"),
        ("quantize", "fetalplanes quantize --onnx model.onnx --data ~/FETAL_PLANES_DB --out model.int8.onnx",
         f"INT8 (the demo used --method {c.quant_method} --calib-size {c.calib_size}; add --activations int8 for the symmetric variant)"),
        ("compare", "fetalplanes compare --reference model.onnx --candidate model.int8.onnx --data ~/FETAL_PLANES_DB", "INT8 vs FP32"),
        ("live", "fetalplanes run --model model.int8.onnx --input v4l2:///dev/video0 --output display://0 --output predictions.jsonl",
         "the live loop on your scanner (or --input recording.mp4)"),
        ("bench", ".venv/bin/python benchmarks/bench_models.py --checkpoint runs/X/best.pt --onnx model.onnx --int8 model.int8.onnx",
         "model-only Hz of every runtime present (benchmarks/run_all.py: the full set)"),
    ]


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}%"


def report_sections(demo: Demo) -> list[tuple[str, list[Any]]]:
    """The report as (title, blocks); a block is a str (paragraph), ("table", header, rows) or ("img", path, alt)."""
    R, out = demo.results, demo.out

    def rel(p: str | Path) -> str:
        p = Path(p)
        return str(p.relative_to(out)) if p.is_absolute() and out in p.parents else str(p)

    secs: list[tuple[str, list[Any]]] = []
    ph, tr = R.get("phantom", {}), R.get("train", {})
    secs.append(("About these numbers", [
        f"**{SYNTHETIC}.** The data set is a synthetic phantom of FETAL_PLANES_DB ({ph.get('images')} images, "
        f"{ph.get('patients')} patients); the model is a {demo.c.arch} trained from scratch on the CPU at "
        f"{demo.c.input_size} px for {demo.c.epochs} epochs. Redo any step with the real data using the commands at the end. "
        "The section **REAL ultrasound** is the exception: a published model on real images (labelled REAL there).",
        ("table", ["step", "status", "seconds"],
         [[s, demo.status.get(s, "-"), f"{demo.seconds.get(s, 0.0):.1f}"] for s in STEPS if s in demo.status]),
    ]))
    ev, cmp_ = R.get("evaluate"), R.get("compare")
    if ev:
        rows = [["PyTorch checkpoint (FP32)", _pct(ev["metrics"]["top1_accuracy"]), _pct(1 - ev["metrics"]["top3_error"]) if "top3_error" in ev["metrics"] else "-",
                 _pct(ev["metrics"]["class_accuracy_mean"]), str(ev["metrics"]["n"])]]
        if cmp_:
            for name, m in (("ONNX FP32", cmp_["fp32_onnx_metrics"]), ("ONNX INT8", cmp_["int8_metrics"])):
                rows.append([name, _pct(m["top1_accuracy"]), _pct(1 - m["top3_error"]) if "top3_error" in m else "-",
                             _pct(m["class_accuracy_mean"]), str(m["n"])])
        blocks: list[Any] = [f"Test split of the phantom ({SYNTHETIC}).",
                             ("table", ["model", "top-1 accuracy", "top-3 accuracy", "class accuracy (mean)", "images"], rows)]
        per = [[p.get("label", ""), str(p.get("support", "")), _pct(p.get("precision")), _pct(p.get("recall")), _pct(p.get("f1"))]
               for p in ev["metrics"].get("per_class", [])]
        if per:
            blocks += ["Per class (PyTorch checkpoint):", ("table", ["class", "images", "precision", "recall", "F1"], per)]
        secs.append(("Accuracy (synthetic)", blocks))
        imgs: list[Any] = [("img", rel(ev["confusion_png"]), "confusion matrix FP32")]
        if cmp_:
            imgs.append(("img", rel(cmp_["int8_confusion_png"]), "confusion matrix INT8"))
        secs.append(("Confusion matrices: FP32 (checkpoint) and INT8 (synthetic)", imgs))
    if cmp_:
        d = cmp_["delta"]
        rows = [["argmax agreement", _pct(cmp_["agreement"])],
                ["top-1 change (points)", f"{d.get('top1_accuracy_points', 0):+.2f}"],
                ["class accuracy change (points)", f"{d.get('class_accuracy_mean_points', 0):+.2f}"],
                ["max / mean absolute probability difference", f"{cmp_['prob_abs_diff']['max']:.4f} / {cmp_['prob_abs_diff']['mean']:.4f}"],
                ["images whose label changed", str(cmp_["changed"])],
                ["INT8 size / FP32 size", f"{cmp_['sizes']['candidate_over_reference']:.2f}"],
                ["checks", "PASS" if cmp_["passed"] else "FAIL"]]
        q = R.get("quantize", {})
        blocks = [f"`compare` on {cmp_['images']} test images (synthetic).", ("table", ["FP32 vs INT8", "value"], rows)]
        if q:
            blocks.append(f"`quantize` recommends for this machine: **{q['recommendation']['name']}** - {q['recommendation']['reason']}.")
        secs.append(("FP32 vs INT8", blocks))
    b = R.get("bench")
    if b:
        rows = []
        for r in b["runtimes"]:
            t = r["batches"].get("1")
            agree = r.get("agreement") or {}
            a = "reference" if agree.get("reference") else (f"{_pct(agree.get('argmax_agreement'))}" if "argmax_agreement" in agree else "-")
            rows.append([r["name"], f"{t['hz']:.1f}" if t else "-", f"{t['p50_ms']:.2f}" if t else "-", f"{t['p99_ms']:.2f}" if t else "-",
                         (f"{t['x_pytorch']:.2f}" if t and t.get("x_pytorch") else "-"),
                         (f"{t['x_ort_fp32']:.2f}" if t and t.get("x_ort_fp32") else "-"), a,
                         "; ".join(x for x in (_deployable_text(r), r.get("note") or "") if x)])
        rows.append(["TensorRT FP16/INT8", "-", "-", "-", "-", "-", "-", b.get("tensorrt", "")])
        cpu = b.get("machine", {}).get("cpu", {})
        secs.append(("Speed: model only, batch 1", [
            f"{demo.c.arch} at {b.get('input_size')} px, {b['threads']} threads, median of {demo.c.bench_rounds} interleaved rounds; "
            f"CPU: {cpu.get('model')} ({cpu.get('usable_cpus')} usable), INT8 dot-product instructions: {cpu.get('int8_dot_product')}. "
            "Speed does not depend on the data being synthetic. On a shared machine absolute Hz vary; ratios are measured in one run; "
            "x PyTorch is against the faster of PyTorch's 2- and 1-thread runs.",
            ("table", ["runtime", "Hz", "p50 ms", "p99 ms", "x PyTorch", "x ORT FP32", "agreement", "note"], rows)]))
    lv = R.get("live")
    if lv:
        s, sc = lv["summary"], lv["score"]
        rows = [["frames", str(s["frames"])], ["Hz (unpaced)", f"{s['hz']:.1f}"],
                ["capture-to-label p50 / p99 ms", f"{s['latency_ms'].get('p50_ms', 0):.2f} / {s['latency_ms'].get('p99_ms', 0):.2f}" if s["latency_ms"] else "-"],
                ["smoothed-label accuracy (synthetic)", _pct(sc.get("accuracy"))],
                ["accuracy where not uncertain / coverage", f"{_pct(sc.get('accuracy_confident'))} / {_pct(sc.get('coverage'))}"],
                ["flicker (label changes beyond the truth's)", str(sc.get("flicker"))],
                ["steady frames only (no cross-fade): accuracy / flicker",
                 f"{_pct(sc.get('accuracy_steady'))} / {sc.get('flicker_steady', '-')}"],
                ["label changes (predicted / true)", f"{sc.get('label_changes')} / {sc.get('label_changes_truth')}"]]
        rv = sc.get("retrieval")
        if rv:
            rows.append(["exam report: planes whose best frame lies in their segment (retrieval)",
                         f"{_pct(rv.get('retrieval_accuracy'))} ({len(rv['planes_retrieved'])} of {len(rv['planes_present'])} planes"
                         + (f"; missed {', '.join(rv['missed'])}" if rv["missed"] else "") + ")"])
        if "sector_iou_mean" in sc:
            rows.append(["sector box IoU (mean)", f"{sc['sector_iou_mean']:.3f}"])
        secs.append(("Live loop on the phantom scanner video", [
            f"Model: `{Path(lv['model']).name}`"
            + (f" (the deployability rule's pick: {lv['deployed_why']})" if lv.get("deployed_why") else "")
            + f"; annotated video `{rel(lv['annotated'])}`, predictions `{rel(lv['predictions'])}`, "
            "exam report `live/exam/phantom/index.html` "
            f"scored against the video's truth sidecar ({SYNTHETIC}).",
            ("table", ["live loop", "value"], rows),
            ("table", ["stage", "p50 ms", "p99 ms"], [[k, f"{v['p50_ms']:.2f}", f"{v['p99_ms']:.2f}"] for k, v in s["stages_ms"].items()]),
            ("img", rel(lv["strip"]), "annotated frames"),
        ]))
    from export.demo_real import real_section

    real = real_section(demo)
    if real is not None:
        secs.append(real)
    secs.append(("Redo each step with your own data", [
        "Point `--data` at the real FETAL_PLANES_DB (Zenodo record 3904280).",
        ("table", ["step", "command", "what"], [[s, f"`{cmd}`", what] for s, cmd, what in _commands(demo)]),
    ]))
    return secs


def _md_inline(text: str) -> str:
    """`code` and **bold** of the markdown text, escaped for HTML."""
    import re

    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)


def write_report(demo: Demo) -> dict[str, Path]:
    """report.md, report.html (images as files beside them) and report.json (the figures) in the demo folder."""
    secs = report_sections(demo)
    title = "fetalplanes demo report (SYNTHETIC phantom data, plus a REAL-image step; not clinical)"
    md = [f"# {title}", "", f"Made {time.strftime('%Y-%m-%d %H:%M:%S')} by `fetalplanes demo --out {demo.c.out}`.", ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p class='warn'>{html.escape(SYNTHETIC)}.</p>"]
    for name, blocks in secs:
        md += [f"## {name}", ""]
        body.append(f"<h2>{html.escape(name)}</h2>")
        for b in blocks:
            if isinstance(b, str):
                md += [b, ""]
                body.append(f"<p>{_md_inline(b)}</p>")
            elif b[0] == "table":
                _, head, rows = b
                md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                md += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows] + [""]
                body.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
                            + "".join("<tr>" + "".join(f"<td>{_md_inline(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                            + "</table>")
            elif b[0] == "img":
                _, src, alt = b
                md += [f"![{alt}]({src})", ""]
                body.append(f"<figure><img src='{html.escape(src)}' alt='{html.escape(alt)}'><figcaption>{html.escape(alt)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}img{max-width:100%}figure{display:inline-block;margin:.5em}"
             ".warn{background:#fff3cd;border:1px solid #e0c060;padding:.5em}code{background:#f3f3f3}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
    paths = {"markdown": demo.out / "report.md", "html": demo.out / "report.html", "json": demo.out / "report.json"}
    paths["markdown"].write_text("\n".join(md), encoding="utf-8")
    paths["html"].write_text(page, encoding="utf-8")
    figures = {"notice": SYNTHETIC, "config": asdict(demo.c), "status": demo.status, "seconds": demo.seconds,
               "results": {k: v for k, v in demo.results.items() if k != "report"}}
    paths["json"].write_text(json.dumps(figures, indent=1, default=float), encoding="utf-8")
    return paths


def run_demo(config: DemoConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the demo in ``config.out``; returns figures, status ("ran"/"reused") and seconds per step."""
    return Demo(config, log).run()
