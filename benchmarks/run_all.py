"""`make bench`: model-only speed of every runtime, then the live loop end to end; one targets file.

    .venv/bin/python benchmarks/run_all.py                # the full run (estimated 20 min on 2 quiet cores, once the
                                                          # models are trained and cached; training adds ~15 min once)
    .venv/bin/python benchmarks/run_all.py --quick        # fewer, shorter rounds; 300-frame latency runs
    .venv/bin/python benchmarks/run_all.py --sononet sononet16.int8.onnx   # with the SonoNet-16 latency rows
    .venv/bin/python benchmarks/run_all.py --quick --untrained   # live part only, FP32 files with random weights

Writes models.{json,md,png}, live.{json,md,png} and targets.json, stamped with the machine
(edge.sysinfo.machine_stamp()) and the load average. targets.json is `{"run": {...}, "targets": [{target,
measured, pass, run, limit, unit, note}]}`, every row from this one run (ratios measured side by side in it);
a part that did not run leaves its rows with `"pass": null` and a note saying why.
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


def model_target_rows(models_json: Path | None, why_not: str) -> list[dict[str, Any]]:
    """bench_models' targets (best deployable file / PyTorch eager, batch 1) in the common form."""
    if models_json is None:
        return [common.target_row(f"{m}: best deployable >= {need}x PyTorch eager (batch 1)", None, need, None, "x", why_not)
                for m, need in bench_models.TARGET_X_PYTORCH.items()]
    rows = []
    for t in json.loads(models_json.read_text())["targets"]:
        note = f"best deployable: {t['best']}" if t.get("best") else "no deployable file"
        rows.append(common.target_row(t["target"], t["value"], t["limit"], t["ok"], "x", note))
    return rows


def fresh(path: Path, since: float) -> Path | None:
    """``path`` if this run wrote it (not a stale file from an earlier run)."""
    return path if path.is_file() and path.stat().st_mtime >= since else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round of 0.5 s per runtime; 300-frame latency runs; short matrix")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=common.RESULTS, help="results folder (default benchmarks/results)")
    p.add_argument("--sononet", type=Path, help="SonoNet-16 (INT8) ONNX file for the live latency rows")
    p.add_argument("--untrained", action="store_true",
                   help="skip bench_models (it needs the trained models) and time the live loop with untrained FP32 files")
    args = p.parse_args(argv)
    t0 = time.time()
    run = {"id": time.strftime("%Y-%m-%dT%H:%M:%S") + ("-quick" if args.quick else ""), "quick": args.quick,
           "command": "benchmarks/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "load_average_start": common.load_average()}
    shared = ["--threads", str(args.threads), "--out", str(args.out)]
    rc = 0
    if not args.untrained:
        rc = bench_models.main(shared + (["--rounds", "1", "--seconds", "0.5"] if args.quick else []))
    live_args = shared + (["--quick"] if args.quick else []) + (["--untrained"] if args.untrained else [])
    live_args += ["--sononet", str(args.sononet)] if args.sononet else []
    rc = bench_live.main(live_args) or rc
    run["load_average_end"] = common.load_average()
    run["seconds"] = round(time.time() - t0)
    path = write_targets_file(args.out, t0, run, "not run: --untrained (bench_models skipped)" if args.untrained
                              else "not run: bench_models failed")
    rows = json.loads(path.read_text())["targets"]
    print("\n".join(f"{common.verdict(r['pass']):>4}  {r['target']}: {common.fmt(r['measured'], 2)}" for r in rows))
    print(f"targets: {path}; benchmarks done in {run['seconds']} s")
    return rc


def write_targets_file(out: Path, since: float, run: dict[str, Any], models_why_not: str) -> Path:
    """targets.json in ``out`` from the models.json and live.json this run wrote there (written after ``since``)."""
    rows = model_target_rows(fresh(out / "models.json", since), models_why_not)
    live_json = fresh(out / "live.json", since)
    if live_json is not None:
        rows += json.loads(live_json.read_text())["targets"]
    else:
        rows.append(common.target_row("live loop (bench_live)", None, None, None, "", "not run: bench_live failed"))
    loads = [x for x in (run.get("load_average_start"), run.get("load_average_end")) if x is not None]
    run["usable_cpus"] = usable_cpus()
    run["loaded"] = bool(loads) and max(loads) > run["usable_cpus"]
    if run["loaded"]:  # other jobs held the cores: say so on every measured row
        warn = (f"measured on a loaded machine (load average up to {max(loads):.1f} on {run['usable_cpus']} CPUs): "
                "not a reliable verdict")
        rows = [{**r, "note": f"{warn}; {r['note']}" if r["note"] else warn} if r["measured"] is not None else r for r in rows]
    return common.write_targets(out / "targets.json", rows, run)


def usable_cpus() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
