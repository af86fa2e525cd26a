"""`make bench`: model-only speed of every runtime, then the live loop end to end; results in benchmarks/results/.

    .venv/bin/python benchmarks/run_all.py            # about 10-15 min on 2 cores
    .venv/bin/python benchmarks/run_all.py --quick    # fewer, shorter rounds

Writes models.{json,md,png} and live.{json,md,png}, stamped with the machine (edge.sysinfo.machine_stamp()).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_live  # noqa: E402
import bench_models  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round of 0.5 s per runtime; paced runs of 2 s")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    common = ["--threads", str(args.threads)] + (["--out", args.out] if args.out else [])
    rounds = ["--rounds", "1", "--seconds", "0.5"] if args.quick else []
    rc = bench_models.main(common + rounds)
    rc = rc or bench_live.main(common + (["--paced-seconds", "2"] if args.quick else []))
    print(f"benchmarks done in {time.perf_counter() - t0:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
