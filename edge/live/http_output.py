"""``--output http://HOST:PORT/``: the box seen from a browser (standard library only).

Serves

- ``/``: a page with the annotated live stream, the current label, the exam checklist, Hz and latency
  (it polls ``/status.json`` twice a second);
- ``/stream.mjpg``: the annotated frames as multipart JPEG (``multipart/x-mixed-replace``);
- ``/snapshot.jpg``: the latest annotated frame;
- ``/status.json``: the status file's content (the loop's snapshot, exam checklist included);
- ``POST /exam`` (optional ``?id=NAME``): start a new exam.

The loop never waits for a client: :meth:`HttpOutput.write` only hands over a reference to the
newest frame. One encoder thread turns it into JPEG, at most ``fps`` times a second and only while
someone watches (so at most once per frame); each client's thread sends the newest JPEG when it is
ready and skips the ones it missed. A client that stops reading is dropped after ``timeout``
seconds of blocked sending; one that vanishes ends its thread at the next write. Bounds: ``clients``
streams at once (more get 503), ``fps`` and ``kbps`` per stream, frames scaled to ``width`` pixels
at most. Options ride on the URI: ``http://0.0.0.0:8080/?clients=4&fps=15&kbps=8000&width=960&quality=75``.

It binds to 127.0.0.1 (this machine only) unless a host is named (``0.0.0.0`` = every network
interface: the stream shows what the scanner shows, so only on a trusted network), and says so at start.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from edge.errors import FetalPlanesError

# edge.live.outputs opens this module lazily (open_output); importing it back would make an import circle,
# so the spec is typed loosely and HttpOutput has the interface of edge.live.outputs.Output without the base class.
OutputSpec = Any

log = logging.getLogger("fetalplanes.live")

DEFAULTS = {"clients": 4, "fps": 15.0, "kbps": 8000.0, "width": 960, "quality": 75, "timeout": 5.0}
BOUNDARY = "fetalplanesframe"


def parse_address(location: str) -> tuple[str, int]:
    """``HOST:PORT`` (``:PORT``, ``localhost:PORT``, ``[::1]:PORT``) -> (host to bind, port); no host = 127.0.0.1."""
    text = location.strip().rstrip("/")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "8080"
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise FetalPlanesError(f"http://{location}: {port_text!r} is not a port number", hint="e.g. --output http://127.0.0.1:8080/")
    return host, port


def _option(spec: OutputSpec, name: str) -> float:
    value = spec.options.get(name, "")
    if value == "":
        return float(DEFAULTS[name])
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number <= 0:
        raise FetalPlanesError(f"http://{spec.location}: {name}={value!r} must be a positive number",
                               hint=f"e.g. ?{name}={DEFAULTS[name]}")
    return number


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds the process at exit
    allow_reuse_address = True  # a restart right after a stop can bind again (TIME_WAIT), but not beside a live server

    def __init__(self, address, handler, output: "HttpOutput"):
        self.output = output
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


class HttpOutput:
    """Serves the page, the MJPEG stream and the status; never blocks the loop (see the module's docstring).

    The interface of :class:`edge.live.outputs.Output` (write, show_status, flush, close, describe,
    attach, messages, wants_frames, stop_requested).
    """

    wants_frames = True
    main_thread = False  # write() only hands a frame reference to the encoder thread: any thread may call it
    stop_requested = False

    def __init__(self, spec: OutputSpec):
        self.spec = spec
        self.messages: list[str] = []
        self.host, port = parse_address(spec.location)
        self.max_clients = int(_option(spec, "clients"))
        self.fps = _option(spec, "fps")
        self.kbps = _option(spec, "kbps")
        self.max_width = int(_option(spec, "width"))
        self.quality = int(min(100, _option(spec, "quality")))
        self.send_timeout = _option(spec, "timeout")
        self.snapshot = None
        self.exam = None
        self._pending: tuple[np.ndarray, dict[str, Any]] | None = None  # newest frame, handed over by reference
        self._record: dict[str, Any] = {}
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._jpeg: bytes = b""
        self._seq = 0  # encoded frames so far
        self._want_until = 0.0  # encode without stream clients until then (a /snapshot.jpg or page load asked)
        self._clients = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closing = False
        self.frames_in = 0
        self.stats = {"clients_served": 0, "clients_refused": 0, "clients_dropped": 0, "frames_sent": 0, "bytes_sent": 0}
        try:
            self.server = _Server((self.host, port), _handler_class(self), self)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise FetalPlanesError(
                    f"http://{self.host}:{port}/: port {port} is already in use",
                    hint="choose another port (--output http://127.0.0.1:8081/) or stop what serves on it",
                ) from None
            raise FetalPlanesError(
                f"http://{self.host}:{port}/: cannot listen there ({exc.strerror or exc})",
                hint="ports under 1024 need root; the host must be an address of this machine (127.0.0.1, 0.0.0.0)",
            ) from None
        self.port = int(self.server.server_address[1])
        self.url = f"http://{'[' + self.host + ']' if ':' in self.host else self.host}:{self.port}/"
        self._threads = [
            threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-serve", daemon=True),
            threading.Thread(target=self._encode_loop, name="http-encode", daemon=True),
        ]
        for t in self._threads:
            t.start()
        where = ("this machine only; name a host, e.g. http://0.0.0.0:%d/, to serve the network" % self.port
                 if self.host in ("127.0.0.1", "::1") else "reachable from the network: the stream shows the scanner's screen")
        log.warning("http output: serving %s (%s)", self.url, where)

    # --- the loop's side: never blocks -------------------------------------------
    def write(self, frame: np.ndarray | None, record: dict[str, Any]) -> None:
        self._record = record
        if frame is not None:
            self._pending = (frame, record)
            self.frames_in += 1
            self._wake.set()

    def show_status(self, frame: np.ndarray) -> None:
        self._pending = (frame, self._record)
        self._wake.set()

    def attach(self, snapshot: Any = None, exam: Any = None) -> None:
        """The loop's status snapshot (served as /status.json) and exam tracker (POST /exam)."""
        self.snapshot, self.exam = snapshot, exam

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        with self._lock:
            for sock in list(self._sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # unblocks a send stuck on a client that does not read
                except OSError:
                    pass
        self.server.shutdown()
        self.server.server_close()
        s = self.stats
        self.messages.append(
            f"http {self.url}: {s['clients_served']} streams served ({s['clients_refused']} refused, "
            f"{s['clients_dropped']} dropped as stuck), {self._seq} frames encoded, {s['frames_sent']} sent"
        )

    def describe(self) -> str:
        return f"http:{self.url}"

    # --- encoder thread --------------------------------------------------------------
    def _watched(self) -> bool:
        return self._clients > 0 or time.monotonic() < self._want_until

    def _encode_loop(self) -> None:
        import cv2

        last_frame = None
        next_due = 0.0
        while not self._closing:
            self._wake.wait(0.5)
            self._wake.clear()
            if self._closing:
                break
            item = self._pending
            if item is None or item[0] is last_frame or not self._watched():
                continue
            now = time.monotonic()
            if now < next_due:  # at most `fps` encodes a second; then the newest frame is taken
                time.sleep(next_due - now)
                item = self._pending or item
            frame = item[0]
            last_frame = frame
            next_due = time.monotonic() + 1.0 / self.fps
            try:
                h, w = frame.shape[:2]
                if w > self.max_width:
                    frame = cv2.resize(frame, (self.max_width, max(1, int(h * self.max_width / w))), interpolation=cv2.INTER_AREA)
                ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            except cv2.error as exc:  # pragma: no cover - a frame OpenCV cannot encode
                log.warning("http output: cannot encode a frame (%s)", str(exc).strip().splitlines()[-1][:200])
                continue
            if not ok:
                continue
            with self._cond:
                self._jpeg = data.tobytes()
                self._seq += 1
                self._cond.notify_all()

    def wait_jpeg(self, after: int, timeout: float) -> tuple[bytes, int]:
        """The newest JPEG once it is newer than ``after`` (or the current one after ``timeout``)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._closing, timeout)
            return self._jpeg, self._seq

    # --- what the handlers read ----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.snapshot is not None:
            try:
                data = dict(self.snapshot())
            except Exception as exc:  # pragma: no cover - the snapshot reads counters the loop is updating
                data = {"error": f"status unavailable: {exc}"}
        else:
            r = self._record
            data = {"label": r.get("label", ""), "confidence": r.get("confidence"), "label_state": r.get("state", ""),
                    "latency_ms": r.get("latency_ms"), "frames": self.frames_in}
            if self.exam is not None:
                data["exam"] = self.exam.status()
        data["timestamp"] = round(time.time(), 3)
        data["http"] = {"clients": self._clients, "max_clients": self.max_clients, "fps": self.fps,
                        "frames_encoded": self._seq, **self.stats}
        return data

    def client_enter(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._clients >= self.max_clients:
                self.stats["clients_refused"] += 1
                return False
            self._clients += 1
            self.stats["clients_served"] += 1
            self._sockets.add(sock)
        self._wake.set()
        return True

    def client_leave(self, sock: socket.socket) -> None:
        with self._lock:
            self._clients -= 1
            self._sockets.discard(sock)

    def want_frames_for(self, seconds: float) -> None:
        self._want_until = max(self._want_until, time.monotonic() + seconds)
        self._wake.set()


def _handler_class(output: HttpOutput) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.output = output
    Handler.timeout = output.send_timeout  # socket timeout: a client that stops reading is dropped after this
    return Handler


class _Handler(BaseHTTPRequestHandler):
    output: HttpOutput
    server_version = "fetalplanes"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("http %s: %s", self.address_string(), format % args)

    def _send(self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                self.output.want_frames_for(5.0)
                self._send(200, PAGE.encode("utf-8"), "text/html; charset=utf-8")
            elif path == "/status.json":
                body = json.dumps(self.output.status(), separators=(",", ":")).encode("utf-8")
                self._send(200, body, "application/json")
            elif path == "/snapshot.jpg":
                self.output.want_frames_for(5.0)
                jpeg, _ = self.output.wait_jpeg(0, 2.0)
                if jpeg:
                    self._send(200, jpeg, "image/jpeg")
                else:
                    self._send(503, b"no frame yet\n", "text/plain", {"Retry-After": "1"})
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(404, b"not found: try / /stream.mjpg /snapshot.jpg /status.json\n", "text/plain")
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            pass  # the client went away

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        try:
            if parts.path not in ("/exam", "/exam/new"):
                self._send(404, b"not found: POST /exam starts a new exam\n", "text/plain")
                return
            if self.output.exam is None:
                self._send(409, b"exam tracking is not running\n", "text/plain")
                return
            exam_id = (parse_qs(parts.query).get("id") or [""])[0]
            self.output.exam.request_new_exam(exam_id, reason="new exam (HTTP)")
            self._send(200, json.dumps({"new_exam": True, "exam_id": exam_id or None}).encode(), "application/json")
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            pass

    def _stream(self) -> None:
        out = self.output
        sock = self.connection
        if not out.client_enter(sock):
            self._send(503, f"too many viewers (at most {out.max_clients})\n".encode(), "text/plain", {"Retry-After": "5"})
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            seq = 0
            byte_s = out.kbps * 1000.0 / 8.0
            while not out._closing:
                jpeg, new_seq = out.wait_jpeg(seq, 1.0)
                if new_seq == seq or not jpeg:
                    continue
                seq = new_seq
                t0 = time.monotonic()
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n"
                )
                out.stats["frames_sent"] += 1
                out.stats["bytes_sent"] += len(jpeg)
                pause = len(jpeg) / byte_s - (time.monotonic() - t0)  # the bandwidth bound
                if pause > 0:
                    time.sleep(pause)
        except socket.timeout:
            out.stats["clients_dropped"] += 1  # it stopped reading: sending blocked for `timeout` seconds
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # it went away
        finally:
            out.client_leave(sock)
            self.close_connection = True


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fetalplanes live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}
header{padding:8px 14px;background:#222;display:flex;gap:16px;align-items:baseline}
header b{font-size:1.1em} #state{color:#aaa}
main{display:flex;flex-wrap:wrap;gap:14px;padding:14px}
#stream{max-width:min(100%,960px);background:#000;border-radius:6px;min-width:320px;min-height:240px}
aside{min-width:240px}
#label{font-size:1.6em;font-weight:600} .ok{color:#5d5} .uncertain{color:#fc3} .frozen{color:#4cf}
#rate{color:#aaa;margin:.3em 0 1em}
ul{list-style:none;padding:0;margin:.3em 0} li{padding:3px 0}
li.seen::before{content:"\\25CF ";color:#5d5} li.missing::before{content:"\\25CB ";color:#888} li.missing{color:#aaa}
button{background:#345;color:#eee;border:0;border-radius:4px;padding:6px 12px;cursor:pointer}
.note{color:#888;font-size:.85em;max-width:320px}
</style></head><body>
<header><b>fetalplanes live</b><span id="state">connecting ...</span></header>
<main>
<img id="stream" alt="annotated live stream">
<aside>
<div id="label">&nbsp;</div>
<div id="rate">&nbsp;</div>
<div>Exam <b id="exam">-</b> <span id="count"></span></div>
<ul id="checklist"></ul>
<button id="newexam" type="button">New exam</button>
<p class="note">Labels come from a model and need a sonographer's review.</p>
</aside>
</main>
<script>
const $ = (id) => document.getElementById(id);
function esc(s){return String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
async function poll(){
  try {
    const r = await fetch('status.json', {cache: 'no-store'});
    const s = await r.json();
    $('state').textContent = (s.state || '') + ' \\u00b7 ' + (s.source || '');
    const pct = s.confidence == null ? '' : ' ' + Math.round(s.confidence * 100) + ' %';
    $('label').textContent = (s.label || '-') + pct + (s.label_state && s.label_state !== 'ok' ? ' (' + s.label_state + ')' : '');
    $('label').className = s.label_state || '';
    $('rate').textContent = (s.hz != null ? s.hz.toFixed(1) + ' Hz' : '') + (s.latency_ms != null ? ' \\u00b7 ' + s.latency_ms.toFixed(1) + ' ms latency' : '');
    const e = s.exam;
    if (e) {
      $('exam').textContent = e.exam_id;
      $('count').textContent = e.seen.length + ' of ' + Object.keys(e.planes).length + ' planes';
      $('checklist').innerHTML = Object.entries(e.planes).map(([p, v]) =>
        '<li class="' + (v.seen ? 'seen' : 'missing') + '">' + esc(p) +
        (v.best ? ' <small>' + Math.round(v.best.confidence * 100) + ' %</small>' : '') + (v.stored ? ' <small>stored</small>' : '') + '</li>').join('');
    }
  } catch (err) { $('state').textContent = 'no connection to the box'; }
}
$('newexam').onclick = async () => { await fetch('exam', {method: 'POST'}); poll(); };
window.addEventListener('load', () => { $('stream').src = 'stream.mjpg'; });
poll(); setInterval(poll, 500);
</script>
</body></html>
"""
