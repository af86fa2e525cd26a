"""Does the HTTP output slow the live loop? Loop Hz with 0 and with 3 connected stream clients.

Runs the loop (``edge.live.loop.run_loop``) on a phantom scanner video (640x480, 30 fps) with

- ``none``: no HTTP output (the reference),
- ``http, 0 clients``: ``--output http://127.0.0.1:PORT/`` open, nobody watching,
- ``http, 3 clients``: three clients reading ``/stream.mjpg`` all along (real sockets, http.client),

interleaved round by round (the machine's load drifts), ``--seconds`` per run; the loop's Hz is
counted over each run's last part (after the clients are connected), and the figures are medians
over the rounds. Unpaced (every frame, as fast as possible: the worst case for the extra threads)
and, with ``--paced``, at the video's 30 fps (what a live source does): Hz and capture-to-label p99.

    python benchmarks/bench_http.py                   # tiny random-weight model (the loop's own cost dominates)
    python benchmarks/bench_http.py --model model.onnx --rounds 5 --paced

Writes benchmarks/results/http.md and http.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, SHARED_NOTE, machine_stamp  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamClient(threading.Thread):
    """Reads /stream.mjpg until stopped; counts the JPEG parts it got."""

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.stop, self.frames, self.bytes, self.connected = port, stop, 0, 0, threading.Event()

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/stream.mjpg")
                resp = conn.getresponse()
                break
            except OSError:
                time.sleep(0.05)
        else:
            return
        self.connected.set()
        try:
            while not self.stop.is_set():
                line = resp.fp.readline()
                if not line:
                    break
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
                    resp.fp.readline()
                    self.bytes += len(resp.fp.read(n))
                    self.frames += 1
        except OSError:
            pass
        finally:
            conn.close()


def one_run(model: str, video: Path, condition: str, seconds: float, paced: bool) -> dict:
    from edge.live.config import RunConfig
    from edge.live.loop import run_loop

    port = free_port()
    outputs = [] if condition == "none" else [f"http://127.0.0.1:{port}/"]
    cfg = RunConfig(model=model, input=str(video), outputs=outputs, log_every_s=0, max_seconds=seconds)
    cfg.source.loop = True
    if paced:
        cfg.source.pace = "realtime"
    stamps: list[float] = []
    stop = threading.Event()
    clients = [StreamClient(port, stop) for _ in range(3 if condition.endswith("3 clients") else 0)]
    for c in clients:
        c.start()
    t0 = time.perf_counter()
    summary = run_loop(cfg, on_record=lambda r: stamps.append(time.perf_counter()))
    stop.set()
    for c in clients:
        c.join(5)
    start = t0 + seconds * 0.3  # count the last 70 % (clients connected, caches warm)
    window = [t for t in stamps if t >= start]
    hz = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 2 else 0.0
    return {
        "condition": condition,
        "hz": hz,
        "latency_p99_ms": summary.latency_ms.get("p99_ms"),
        "clients_connected": sum(c.connected.is_set() for c in clients),
        "client_fps": [c.frames / (time.perf_counter() - t0) for c in clients],
        "client_kbps": [c.bytes * 8 / 1000 / (time.perf_counter() - t0) for c in clients],
        "frames": summary.frames,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="ONNX model (default: a tiny random-weight model made here)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--paced", action="store_true", help="also run paced at the video's 30 fps")
    parser.add_argument("--out", default=str(RESULTS / "http.md"))
    args = parser.parse_args(argv)

    from fetaldata.phantom.video import write_phantom_video

    tmp = Path(tempfile.mkdtemp(prefix="bench_http_"))
    model = args.model
    model_note = model
    if not model:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_onnx_model import make_tiny_onnx

        model = str(make_tiny_onnx(tmp / "tiny.onnx"))
        model_note = "tiny random-weight 32 px ONNX classifier (tests/tiny_onnx_model.py): the model costs little, so the loop's own work and the HTTP threads dominate"
    video = write_phantom_video(tmp / "phantom.avi", seconds=20, fps=30, width=640, height=480, seed=0)
    conditions = ["none", "http, 0 clients", "http, 3 clients"]
    modes = [False] + ([True] if args.paced else [])
    results: dict[str, dict[str, list[dict]]] = {}
    for paced in modes:
        mode = "paced 30 fps" if paced else "unpaced"
        results[mode] = {c: [] for c in conditions}
        for r in range(args.rounds):
            order = conditions if r % 2 == 0 else conditions[::-1]
            for c in order:
                res = one_run(model, video, c, args.seconds, paced)
                results[mode][c].append(res)
                print(f"{mode:12s} round {r + 1}: {c:16s} {res['hz']:7.1f} Hz  p99 {res['latency_p99_ms']} ms  "
                      f"clients {res['clients_connected']}  client fps {[round(x, 1) for x in res['client_fps']]}", flush=True)

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    stamp = machine_stamp()
    lines = [
        "# HTTP output: loop Hz with 0 and with 3 stream clients",
        "",
        f"`python benchmarks/bench_http.py{' --paced' if args.paced else ''} --rounds {args.rounds} --seconds {args.seconds:g}`, "
        f"{stamp['when']}. {SHARED_NOTE}.",
        "",
        f"- Model: {model_note}.",
        "- Input: phantom scanner video (SYNTHETIC), 640x480, 30 fps, looped. Output `http://127.0.0.1:PORT/` with its "
        "defaults (stream at most 15 fps, width <= 960, JPEG quality 75, 4 clients); the 3 clients read `/stream.mjpg` "
        "with http.client in this process's threads (they share the 2 cores and the GIL with the loop, which is worse "
        "than browsers on other machines).",
        f"- Each cell: median over {args.rounds} interleaved rounds of the loop's Hz over the last 70 % of a "
        f"{args.seconds:g} s run.",
        "",
        "| mode | condition | loop Hz (median) | ratio to no HTTP | ratio to 0 clients | capture-to-label p99 ms (median) | frames received per client per s | kbit/s per client |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for mode, by_cond in results.items():
        base = med([x["hz"] for x in by_cond["none"]])
        zero = med([x["hz"] for x in by_cond["http, 0 clients"]])
        for c in conditions:
            hz = med([x["hz"] for x in by_cond[c]])
            p99 = med([x["latency_p99_ms"] for x in by_cond[c]])
            fps = med([f for x in by_cond[c] for f in x["client_fps"]]) if c.endswith("3 clients") else None
            kbps = med([f for x in by_cond[c] for f in x["client_kbps"]]) if c.endswith("3 clients") else None
            summary[f"{mode} / {c}"] = {"hz": hz, "p99_ms": p99, "client_fps": fps, "client_kbps": kbps}
            lines.append(
                f"| {mode} | {c} | {hz:.1f} | {hz / base:.2f} | {'-' if c == 'none' else f'{hz / zero:.2f}'} | "
                f"{'-' if p99 is None else f'{p99:.1f}'} | {'-' if fps is None else f'{fps:.1f}'} | {'-' if kbps is None else f'{kbps:.0f}'} |"
            )
    lines += [
        "",
        "Per-round Hz (to judge the noise): "
        + "; ".join(f"{mode} / {c}: " + ", ".join(f"{x['hz']:.0f}" for x in v) for mode, d in results.items() for c, v in d.items()),
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    Path(args.out).with_suffix(".json").write_text(json.dumps({"machine": stamp, "model": model_note, "summary": summary,
                                                               "runs": results}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
