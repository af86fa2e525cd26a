"""`make bench`: model-only speed of every runtime, then the live loop end to end; one targets file.

    .venv/bin/python benchmarks/run_all.py                # the full run (estimated 20 min on 2 quiet cores, once the
                                                          # models are trained and cached; training adds ~15 min once)
    .venv/bin/python benchmarks/run_all.py --quick        # fewer, shorter rounds; 300-frame latency runs
    .venv/bin/python benchmarks/run_all.py --sononet other.int8.onnx   # another SonoNet-16 INT8 file for the live rows
    .venv/bin/python benchmarks/run_all.py --quick --untrained   # no bench_models; live part with random-weight FP32 files
    .venv/bin/python benchmarks/run_all.py --trained-on "H200 GPU box, torch 2.x"   # the cached checkpoints came from there

Three parts, in this order: SonoNet-16 INT8 on the real images of ../shared (sononet_int8.measure_target:
quantize every layer, plane agreement on the held-out half, FP32 and INT8 timed side by side in this process;
its INT8 file is then the SonoNet-16 file of the live rows unless --sononet names another), bench_models
(model-only speed, best deployable file / PyTorch eager), bench_live (the live loop, 1,000-frame latency runs;
300 with --quick). Writes models.{json,md,png}, live.{json,md,png} and targets.json, stamped with the machine
(edge.sysinfo.machine_stamp()) and the load average. targets.json is `{"run": {...}, "targets": [{target,
measured, pass, run, limit, unit, note}], "informational": [...]}`: "targets" holds exactly issue 17's targets,
every row from this one run (ratios measured side by side in it); a part that did not run leaves its rows with
`"pass": null` and a note saying why. "informational" holds figures of the same run that are no target
(MobileNetV3-small's best deployable / PyTorch eager).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_live  # noqa: E402
import bench_models  # noqa: E402
import common  # noqa: E402
import sononet_int8  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


def model_target_rows(models_json: Path | None, why_not: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """bench_models' rows (best deployable file / PyTorch eager, batch 1) in the common form: (issue 17's targets,
    informational rows of models that have no target there)."""
    if models_json is None:
        return ([common.target_row(bench_models.target_label(m, need), None, need, None, "x", why_not)
                 for m, need in bench_models.TARGET_X_PYTORCH.items()], [])
    targets, info = [], []
    data = json.loads(models_json.read_text())
    models = {m["model"]: m for m in data["models"]}
    for t in data["targets"]:
        note = bench_models.target_note(models.get(t["model"]), t)
        row = common.target_row(t["target"], t["value"], t["limit"], t["ok"], "x", note)
        (targets if t.get("is_target", t["limit"] is not None) else info).append(row)
    for m, need in bench_models.TARGET_X_PYTORCH.items():  # a target model bench_models did not measure
        if not any(t["model"] == m for t in data["targets"]):
            targets.append(common.target_row(bench_models.target_label(m, need), None, need, None, "x",
                                             f"not run: {m} not in this run's models.json"))
    return targets, info


def sononet_row(shared: Path, work: Path, threads: int, quick: bool) -> tuple[dict[str, Any], Path | None, int]:
    """Issue 17's SonoNet-16 INT8 row, measured now (sononet_int8.measure_target): (row, its INT8 file, exit code)."""
    if not (shared / "data").is_dir():
        return (common.target_row(sononet_int8.TARGET, None, sononet_int8.TARGET_X_FP32, None, "x",
                                  f"not run: no real data in {shared / 'data'} (the real images of ../shared)"), None, 0)
    try:
        m = sononet_int8.measure_target(shared, work, threads=threads, seconds=1.0 if quick else 2.0,
                                        rounds=3 if quick else 5)
    except Exception as exc:  # noqa: BLE001 - one failed part must not lose the others' rows
        return (common.target_row(sononet_int8.TARGET, None, sononet_int8.TARGET_X_FP32, None, "x",
                                  f"not run: {type(exc).__name__}: {exc}"[:400]), None, 1)
    return sononet_int8.target_row(m), Path(m["int8"]), 0


def fresh(path: Path, since: float) -> Path | None:
    """``path`` if this run wrote it (not a stale file from an earlier run)."""
    return path if path.is_file() and path.stat().st_mtime >= since else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round of 0.5 s per runtime; 300-frame latency runs; short matrix")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=common.RESULTS, help="results folder (default benchmarks/results)")
    p.add_argument("--sononet", type=Path, help="SonoNet-16 (INT8) ONNX file for the live latency rows (default: the "
                                                  "INT8 file this run's SonoNet-16 part made)")
    p.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (../shared: real images, clips)")
    p.add_argument("--work", type=Path, default=bench_models.WORK,
                   help=f"the benchmark models' cache (default {bench_models.WORK}; trained checkpoints dropped into "
                        "<arch>-224px-p128-e<N>/train/best.pt are exported and quantized, not retrained)")
    p.add_argument("--trained-on", default="", help="where the cached checkpoints were trained (stated in the results)")
    p.add_argument("--untrained", action="store_true",
                   help="skip bench_models (it needs the trained models) and time the live loop with untrained FP32 files")
    args = p.parse_args(argv)
    t0 = time.time()
    run = {"id": time.strftime("%Y-%m-%dT%H:%M:%S") + ("-quick" if args.quick else ""), "quick": args.quick,
           "command": "benchmarks/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "load_average_start": common.load_average()}
    if args.trained_on:
        run["trained_on"] = args.trained_on
    sono, sono_int8, rc = sononet_row(args.shared, args.work / "sononet16-real-int8", args.threads, args.quick)
    print(f"{common.verdict(sono['pass'])}  {sono['target']}: {common.fmt(sono['measured'], 2)} ({sono['note']})")
    shared = ["--threads", str(args.threads), "--out", str(args.out)]
    if not args.untrained:
        rc = bench_models.main(shared + ["--work", str(args.work)] + (["--trained-on", args.trained_on] if args.trained_on else [])
                               + (["--rounds", "1", "--seconds", "0.5"] if args.quick else [])) or rc
    rc = bench_live.main(live_args(args, sono_int8)) or rc
    run["load_average_end"] = common.load_average()
    run["seconds"] = round(time.time() - t0)
    path = write_targets_file(args.out, t0, run, "not run: --untrained (bench_models skipped)" if args.untrained
                              else "not run: bench_models failed", sononet=sono)
    rows = json.loads(path.read_text())["targets"]
    print("\n".join(f"{common.verdict(r['pass']):>4}  {r['target']}: {common.fmt(r['measured'], 2)}" for r in rows))
    print(f"targets: {path}; benchmarks done in {run['seconds']} s")
    return rc


def live_args(args: argparse.Namespace, sononet_int8_file: Path | None) -> list[str]:
    """bench_live's arguments: its own frame counts (1,000 per latency run; 300 with --quick), the SonoNet-16 file
    given by --sononet, else the one this run quantized."""
    out = ["--threads", str(args.threads), "--out", str(args.out), "--work", str(args.work)]
    out += ["--videos", ",".join(str(v) for v in live_videos(args.shared, args.work))] if args.shared != SHARED else []
    out += ["--quick"] if args.quick else []
    out += ["--untrained"] if args.untrained else []
    sononet = args.sononet or sononet_int8_file
    return out + (["--sononet", str(sononet)] if sononet else [])


def live_videos(shared: Path, work: Path) -> list[Path]:
    """With a --shared other than ../shared: its clips (and the phantom), as bench_live takes them by default."""
    d = shared / "data" / "scanner_video"
    videos = sorted(v for v in d.glob("*") if v.suffix.lower() in bench_live.VIDEO_SUFFIXES) if d.is_dir() else []
    return videos + [bench_live.phantom_video(work)]


def write_targets_file(out: Path, since: float, run: dict[str, Any], models_why_not: str,
                       sononet: dict[str, Any] | None = None) -> Path:
    """targets.json in ``out`` from the models.json and live.json this run wrote there (written after ``since``) and
    the SonoNet-16 INT8 row measured in this run (``sononet``; None: a "not run" row)."""
    rows, info = model_target_rows(fresh(out / "models.json", since), models_why_not)
    rows.append(sononet or common.target_row(sononet_int8.TARGET, None, sononet_int8.TARGET_X_FP32, None, "x",
                                             "not run in this run"))
    live_json = fresh(out / "live.json", since)
    if live_json is not None:
        live = json.loads(live_json.read_text())
        rows += live["targets"]
        run["latency_frames"] = live.get("latency_frames")  # frames per latency run (1,000; 300 quick)
    else:
        rows.append(common.target_row("live loop (bench_live)", None, None, None, "", "not run: bench_live failed"))
    loads = [x for x in (run.get("load_average_start"), run.get("load_average_end")) if x is not None]
    run["usable_cpus"] = usable_cpus()
    run["loaded"] = bool(loads) and max(loads) > run["usable_cpus"]
    if run["loaded"]:  # other jobs held the cores: say so on every measured row
        warn = (f"measured on a loaded machine (load average up to {max(loads):.1f} on {run['usable_cpus']} CPUs): "
                "not a reliable verdict")
        rows, info = ([{**r, "note": f"{warn}; {r['note']}" if r["note"] else warn} if r["measured"] is not None else r
                       for r in part] for part in (rows, info))
    return common.write_targets(out / "targets.json", rows, run, info)


def usable_cpus() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
