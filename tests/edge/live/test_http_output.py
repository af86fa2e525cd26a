"""`--output http://HOST:PORT/` with real HTTP clients while the loop runs."""

import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest

from edge.cli import main
from edge.errors import FetalPlanesError
from edge.live.config import RunConfig
from edge.live.http_output import parse_address
from edge.live.loop import run_loop
from edge.live.outputs import parse_output

from live_fakes import EndlessSource


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopThread:
    """run_loop in a thread (as on the box), stopped by the test."""

    def __init__(self, model, outputs, shape=(240, 320, 3), **kw):
        self.stop = threading.Event()
        self.records = []
        cfg = RunConfig(model=str(model), input="fake", outputs=outputs, log_every_s=0, **kw)
        self.thread = threading.Thread(target=self._run, args=(cfg, shape), daemon=True)
        self.summary = None
        self.error = None
        self.thread.start()

    def _run(self, cfg, shape):
        try:
            self.summary = run_loop(cfg, stop_event=self.stop, source_factory=lambda: EndlessSource(shape), live=True,
                                    on_record=self.records.append)
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.error = exc

    def frames(self):
        return len(self.records)

    def wait_frames(self, n, timeout=20):
        end = time.monotonic() + timeout
        while self.frames() < n and time.monotonic() < end:
            time.sleep(0.02)
        assert self.frames() >= n, self.error

    def finish(self):
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive() and self.error is None, self.error
        return self.summary


def get(port, path, method="GET", timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path)
    resp = conn.getresponse()
    return resp, conn


def read_mjpeg_frames(resp, n):
    """Parse n parts of a multipart JPEG stream; returns the JPEG bytes."""
    boundary = resp.getheader("Content-Type").split("boundary=")[1].encode()
    frames = []
    while len(frames) < n:
        line = resp.fp.readline()
        if not line:
            break
        if line.strip() != b"--" + boundary:
            continue
        headers = {}
        while True:
            h = resp.fp.readline().strip()
            if not h:
                break
            k, _, v = h.decode().partition(":")
            headers[k.lower()] = v.strip()
        frames.append(resp.fp.read(int(headers["content-length"])))
    return frames


def test_uri_and_address_parsing():
    spec = parse_output("http://:8090/?clients=2")
    assert spec.kind == "http" and spec.options == {"clients": "2"}
    assert parse_address(spec.location) == ("127.0.0.1", 8090)  # no host: this machine only
    assert parse_address("localhost:81") == ("127.0.0.1", 81)
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    with pytest.raises(FetalPlanesError, match="not a port"):
        parse_address("127.0.0.1:http")
    # the Output interface (duck-typed: edge.live.outputs opens http_output lazily, no import circle)
    from edge.live.http_output import HttpOutput
    from edge.live.outputs import Output

    public = {n for n in dir(Output) if not n.startswith("_")}
    assert public <= set(dir(HttpOutput)), public - set(dir(HttpOutput))


def test_endpoints_while_the_loop_runs(tiny_onnx, caplog):
    port = free_port()
    loop = LoopThread(tiny_onnx, [f"http://127.0.0.1:{port}/?fps=30"])
    try:
        loop.wait_frames(5)
        assert f"serving http://127.0.0.1:{port}/ (this machine only" in caplog.text
        resp, conn = get(port, "/")
        page = resp.read().decode()
        assert resp.status == 200 and "stream.mjpg" in page and "status.json" in page and 'id="checklist"' in page
        conn.close()
        resp, conn = get(port, "/status.json")
        status = json.loads(resp.read())
        conn.close()
        assert status["state"] == "running" and status["frames"] >= 5 and status["label"]
        assert set(status["exam"]["planes"]) == {"Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix"}
        assert "hz" in status and "latency_ms" in status and status["http"]["max_clients"] == 4
        resp, conn = get(port, "/stream.mjpg")
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        jpegs = read_mjpeg_frames(resp, 3)
        conn.close()
        assert len(jpegs) == 3 and all(j[:2] == b"\xff\xd8" and j[-2:] == b"\xff\xd9" for j in jpegs)
        import cv2

        img = cv2.imdecode(np.frombuffer(jpegs[-1], np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (240, 320, 3)
        resp, conn = get(port, "/snapshot.jpg")
        assert resp.status == 200 and resp.read()[:2] == b"\xff\xd8"
        conn.close()
        first_exam = status["exam"]["exam_id"]
        resp, conn = get(port, "/exam?id=second", method="POST")
        assert resp.status == 200 and json.loads(resp.read())["new_exam"] is True
        conn.close()
        n = loop.frames()
        loop.wait_frames(n + 3)
        resp, conn = get(port, "/status.json")
        assert json.loads(resp.read())["exam"]["exam_id"] == "second" != first_exam
        conn.close()
        resp, conn = get(port, "/nope")
        assert resp.status == 404
        conn.close()
    finally:
        summary = loop.finish()
    assert any(m.startswith(f"http http://127.0.0.1:{port}/:") for m in summary.messages)
    # the port is free again after the run
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_client_bound_vanished_and_never_reading_clients_do_not_slow_the_loop(tiny_onnx):
    port = free_port()
    # big noisy frames (large JPEGs) fill a client's socket buffers quickly
    loop = LoopThread(tiny_onnx, [f"http://127.0.0.1:{port}/?clients=2&fps=30&timeout=1&quality=95&kbps=1000000"],
                      shape=(480, 640, 3))
    try:
        loop.wait_frames(5)
        # a client that never reads: asks for the stream and then sleeps
        stuck = socket.create_connection(("127.0.0.1", port))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        # a client that vanishes: reads one frame, then its socket is closed without a word
        gone = socket.create_connection(("127.0.0.1", port))
        gone.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while got.count(b"--fetalplanesframe") < 2:
            got += gone.recv(65536)
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        gone.close()
        # the bound: while the stuck client holds a slot, 2 more streams -> one of them 503
        time.sleep(0.3)
        r1, c1 = get(port, "/stream.mjpg")
        r2, c2 = get(port, "/stream.mjpg")
        assert sorted([r1.status, r2.status]) == [200, 503]
        c1.close()
        c2.close()
        # the loop kept going all along, and goes on at its pace while the stuck client is dropped
        t0, n0 = time.monotonic(), loop.frames()
        time.sleep(2.5)
        rate_with_stuck = (loop.frames() - n0) / (time.monotonic() - t0)
        assert rate_with_stuck > 5
        end = time.monotonic() + 20  # a loaded machine encodes slowly: the buffers may take a while to fill
        while True:
            resp, conn = get(port, "/status.json")
            http_stats = json.loads(resp.read())["http"]
            conn.close()
            if (http_stats["clients_dropped"] >= 1 and http_stats["clients"] == 0) or time.monotonic() > end:
                break
            time.sleep(0.2)
        assert http_stats["clients_dropped"] >= 1  # the never-reading one, after timeout=1 s of blocked sending
        assert http_stats["clients"] == 0  # the vanished and the dropped slots were freed
        stuck.close()
    finally:
        loop.finish()


def test_port_in_use_exits_2_with_a_message(tiny_onnx, tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        video = tmp_path / "frames"
        video.mkdir()
        import cv2

        cv2.imwrite(str(video / "a.png"), np.zeros((64, 64, 3), np.uint8))
        rc = main(["run", "--model", str(tiny_onnx), "--input", str(video), "--output", f"http://127.0.0.1:{port}/", "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"port {port} is already in use" in err and "Traceback" not in err
