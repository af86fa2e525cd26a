"""The exam view: which standard planes were captured in this exam, and the best frame of each.

One :class:`ExamTracker` per stream, fed once per labelled frame (:meth:`ExamTracker.observe`)
with what the loop already decided: the smoothed label, its confidence, the state (``ok``,
``uncertain``, ``frozen``), the frame and the sector box.

- **Checklist**: a plane of the checklist (the model's labels minus ``Other`` / ``Not A Brain`` /
  ``Background``, or ``ExamConfig.planes``) is *seen* once it was shown steady and confident (state ``ok``,
  confidence >= ``min_confidence``) for ``seen_frames`` frames while the label was held (dips of
  at most ``dip_frames`` frames under the threshold do not break the segment; a label change
  does), or frozen (stored on the scanner) with that confidence.
- **Best frame**: per plane, the frame with the highest smoothed confidence inside a steady
  segment (a run of frames with the same confident label that became steady by the rule above),
  once ``settle_frames`` confident frames of the segment followed it (not the last frames before
  the probe moves on). A freeze that does not continue a live segment of its label (classified once,
  unsmoothed) marks its plane stored but does not compete for the best frame.
  The full frame and its sector crop are kept (copied only when a frame beats the current best),
  with the frame index, the source time and the confidence.
- **Exam boundaries**: a new exam starts after ``gap_s`` seconds without any frame (signal lost),
  after ``blank_s`` seconds of a blank sector (mean gray level under ``blank_level``), or when
  asked (:meth:`ExamTracker.request_new_exam`: ``--exam-id`` names the first, a key in the window,
  ``POST /exam`` on the HTTP output).
- **Report**: with ``report_dir`` (``run --exam-report DIR``) the end of each exam writes
  ``DIR/<exam id>/index.html``, ``exam.json`` and the images, and refreshes ``DIR/index.html``
  (the list of exams). The header band is masked as in recordings. Nothing is written without it.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edge.errors import FetalPlanesError
from edge.labels import BRAIN_OTHER, NOT_A_BRAIN, short_name

log = logging.getLogger("fetalplanes.live")

# labels that are no standard plane of an exam (SonoNet's "Background": no standard view on screen)
NOT_IN_CHECKLIST = (BRAIN_OTHER, NOT_A_BRAIN, "Background")
CONFIDENT_STATES = ("ok", "frozen")


@dataclass
class ExamConfig:
    """Settings of the exam checklist and report (config file section ``[exam]``)."""

    planes: list[str] = field(default_factory=list)  # the checklist; [] = the model's labels minus Other / Not A Brain / Background
    seen_frames: int = 10  # confident frames of one held label that make a plane "seen"
    min_confidence: float = 0.6  # smoothed confidence needed for a frame to count
    dip_frames: int = 3  # frames under min_confidence (label held) tolerated inside a steady segment
    settle_frames: int = 3  # a best-frame candidate must be followed by this many confident frames of its segment
    gap_s: float = 60.0  # no frame at all for this long (signal lost) ends the exam
    blank_s: float = 10.0  # a blank sector for this long ends the exam
    blank_level: float = 6.0  # mean gray level (0-255) of the sector under which it is blank
    checklist: bool = True  # draw the checklist on frame outputs
    jpeg_quality: int = 90  # report images

    def validate(self, source: str = "exam settings") -> None:
        problems = []
        if self.seen_frames < 1:
            problems.append(f"seen_frames {self.seen_frames} < 1")
        if self.dip_frames < 0 or self.settle_frames < 0:
            problems.append(f"dip_frames {self.dip_frames} and settle_frames {self.settle_frames} must be >= 0")
        if not 0.0 <= self.min_confidence <= 1.0:
            problems.append(f"min_confidence {self.min_confidence} is not in [0, 1]")
        if self.gap_s <= 0 or self.blank_s <= 0:
            problems.append(f"gap_s {self.gap_s} and blank_s {self.blank_s} must be > 0")
        if not 0 <= self.blank_level <= 255:
            problems.append(f"blank_level {self.blank_level} is not in [0, 255]")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality {self.jpeg_quality} is not in [1, 100]")
        if problems:
            raise FetalPlanesError(f"{source}: {'; '.join(problems)}", hint="fix these values in the config file or flags")


@dataclass
class BestFrame:
    """The best frame of one plane so far."""

    frame: int  # index in the source
    t: float  # wall-clock time (time.time())
    source_s: float | None  # position in the source (frame / fps) when its rate is known
    confidence: float
    state: str
    box: list[int]
    image: np.ndarray | None = None  # full frame (copy), None when images are not kept
    crop: np.ndarray | None = None  # sector crop of ``image``

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "t": round(self.t, 3), "source_s": None if self.source_s is None else round(self.source_s, 3),
                "confidence": round(self.confidence, 4), "state": self.state, "box": self.box}


@dataclass
class PlaneStatus:
    """One line of the checklist."""

    plane: str
    seen: bool = False
    stored: bool = False  # frozen (stored on the scanner) at least once
    first_seen_frame: int | None = None
    steady_frames: int = 0  # frames counted inside steady segments
    best: BestFrame | None = None


@dataclass
class Exam:
    """One exam: its id, when it ran, and its checklist."""

    exam_id: str
    started: float
    planes: dict[str, PlaneStatus]
    ended: float | None = None
    end_reason: str = ""
    frames: int = 0
    first_frame: int | None = None
    last_frame: int | None = None

    @property
    def seen(self) -> list[str]:
        return [p for p, s in self.planes.items() if s.seen]

    @property
    def missing(self) -> list[str]:
        return [p for p, s in self.planes.items() if not s.seen]

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the report (and of /status.json)."""
        return {
            "exam_id": self.exam_id,
            "started": round(self.started, 3),
            "started_text": _time_text(self.started),
            "ended": None if self.ended is None else round(self.ended, 3),
            "end_reason": self.end_reason,
            "frames": self.frames,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "seen": self.seen,
            "missing": self.missing,
            "planes": {
                p: {"seen": s.seen, "stored": s.stored, "first_seen_frame": s.first_seen_frame,
                    "steady_frames": s.steady_frames, "best": s.best.to_dict() if s.best else None}
                for p, s in self.planes.items()
            },
        }


def _time_text(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def checklist_planes(labels: Sequence[str], wanted: Sequence[str] = ()) -> list[str]:
    """The planes an exam should capture: ``wanted`` (checked against ``labels``) or the labels minus Other / Not A Brain / Background."""
    if wanted:
        unknown = [p for p in wanted if p not in labels]
        if unknown:
            raise FetalPlanesError(
                f"exam planes {unknown} are not labels of this model",
                hint=f"choose among: {', '.join(labels)}",
            )
        return list(wanted)
    return [lab for lab in labels if lab not in NOT_IN_CHECKLIST]


def safe_exam_id(text: str) -> str:
    """An exam id usable as a folder name (letters, digits, - _ .)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")
    return clean[:80] or "exam"


class ExamTracker:
    """Keeps the checklist and best frames of the current exam; writes a report at each exam's end.

    ``report_dir``: where reports go ("" = nowhere; then no image is ever copied).
    ``fps``: the source's frame rate (0 = unknown); blank time is then measured in source time.
    ``mask_header``: rows (>= 1) or fraction of the height blacked out in report images.
    ``clock``: monotonic time (tests replace it).
    """

    def __init__(self, labels: Sequence[str], config: ExamConfig | None = None, report_dir: str | Path = "",
                 exam_id: str = "", fps: float = 0.0, mask_header: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config or ExamConfig()
        self.config.validate()
        self.labels = list(labels)
        self.planes = checklist_planes(self.labels, self.config.planes)
        self.report_dir = Path(report_dir) if report_dir else None
        if self.report_dir is not None:
            try:
                self.report_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FetalPlanesError(f"exam report folder {self.report_dir}: cannot create it ({exc.strerror or exc})",
                                       hint="choose a writable --exam-report folder") from None
        self.keep_images = self.report_dir is not None
        self.fps = float(fps or 0.0)
        self.mask_header = float(mask_header or 0.0)
        self.clock = clock
        self.finished: list[Exam] = []  # exams ended (their JSON; images dropped after writing)
        self.reports: list[Path] = []
        self.errors: list[str] = []
        self._request: tuple[str, str] | None = None  # (exam id, reason), set from other threads
        self._last_seen_clock: float | None = None
        self._blank_since: float | None = None
        self._blank_ended = False  # the exam was ended by this blank spell
        self._run_label: str | None = None
        self._run_len = 0
        self._run_best: BestFrame | None = None
        self._run_counted = False
        self._run_frozen_only = False
        self._run_dip = 0
        self._run_best_age = 0
        self._version = 0  # bumps when the checklist changes (overlay cache, status)
        self.exam = self._new_exam(exam_id)

    # --- the per-frame hook --------------------------------------------------
    def observe(self, frame: int, t: float, label: str, confidence: float, state: str,
                image: np.ndarray | None = None, box: Sequence[int] | None = None,
                small: np.ndarray | None = None, event: str | None = None) -> None:
        """One labelled frame (call before the overlay is drawn on ``image``: a best frame is copied here)."""
        now = self.clock()
        self._take_request()
        if self._last_seen_clock is not None and now - self._last_seen_clock >= self.config.gap_s:
            self._end_exam(f"no signal for {now - self._last_seen_clock:.0f} s")
        self._last_seen_clock = now
        # blank screen: measured in source time when the rate is known (files run faster than real time)
        if small is not None and float(small.mean()) < self.config.blank_level:
            pos = frame / self.fps if self.fps > 0 else now
            if self._blank_since is None:
                self._blank_since = pos
            if not self._blank_ended and pos - self._blank_since >= self.config.blank_s:
                self._end_exam(f"blank screen for {pos - self._blank_since:.0f} s")
                self._blank_ended = True
            self._reset_run()
            return
        self._blank_since, self._blank_ended = None, False

        exam = self.exam
        exam.frames += 1
        exam.first_frame = frame if exam.first_frame is None else exam.first_frame
        exam.last_frame = frame
        status = exam.planes.get(label)
        if status is None:  # Other / Not A Brain, or a plane outside the checklist
            self._reset_run()
            return
        frozen = state == "frozen"
        if label != self._run_label:
            self._reset_run()
            self._run_label = label
            # a freeze that does not continue a live run of its plane was classified once, unsmoothed:
            # it marks the plane stored, but its frames do not compete for the best frame
            self._run_frozen_only = frozen
        if state not in CONFIDENT_STATES or confidence < self.config.min_confidence:
            # a dip under the threshold with the label held: tolerated for a few frames, not counted
            self._run_dip += 1
            if self._run_dip > self.config.dip_frames:
                self._reset_run()
            return
        self._run_dip = 0
        self._run_len += 1
        best_so_far = max(status.best.confidence if status.best else -1.0,
                          self._run_best.confidence if self._run_best else -1.0)
        if self._run_best is not None:
            self._run_best_age += 1
        if confidence > best_so_far and not self._run_frozen_only:  # the only case that copies pixels
            self._run_best = self._candidate(frame, t, confidence, state, image, box)
            self._run_best_age = 0
        steady = self._run_len >= self.config.seen_frames or frozen
        if not steady:
            return
        changed = False
        if not status.seen:
            status.seen, status.first_seen_frame, changed = True, frame, True
        status.steady_frames += 1 if self._run_counted else self._run_len  # the run's earlier frames were steady too
        self._run_counted = True
        if frozen and not status.stored:
            status.stored, changed = True, True
        # a candidate counts once `settle_frames` confident frames of its segment followed it: the frame
        # just before the probe moves on (or the image fades into the next plane) is not chosen
        settled = self._run_best is not None and (self._run_best_age >= self.config.settle_frames or frozen)
        if settled and (status.best is None or self._run_best.confidence > status.best.confidence):
            status.best = self._run_best
            self._run_best = None
            changed = True
        if changed:
            self._version += 1

    def tick(self) -> None:
        """Call while no frame arrives (the loop's idle path): ends the exam after ``gap_s`` without signal."""
        self._take_request()
        now = self.clock()
        if self._last_seen_clock is not None and now - self._last_seen_clock >= self.config.gap_s:
            if self.exam.frames:
                self._end_exam(f"no signal for {now - self._last_seen_clock:.0f} s")
            self._last_seen_clock = None

    def request_new_exam(self, exam_id: str = "", reason: str = "new exam requested") -> None:
        """Start a new exam at the next frame (thread-safe: a key handler or an HTTP thread may call it)."""
        self._request = (exam_id, reason)

    def close(self, reason: str = "end of run") -> None:
        """End the current exam (writes its report when asked)."""
        self._take_request()
        self._end_exam(reason, start_new=False)

    # --- what the overlay and /status.json show ----------------------------------
    @property
    def version(self) -> int:
        return self._version

    def checklist(self) -> list[tuple[str, bool, bool]]:
        """(plane, seen, stored) for each plane of the checklist, in order."""
        return [(p, s.seen, s.stored) for p, s in self.exam.planes.items()]

    def status(self) -> dict[str, Any]:
        """The current exam as plain data (no images)."""
        d = self.exam.to_dict()
        d["exams_ended"] = len(self.finished)
        d["reports"] = [str(p) for p in self.reports[-10:]]
        return d

    # --- internals -------------------------------------------------------------
    def _new_exam(self, exam_id: str = "") -> Exam:
        t = time.time()
        eid = safe_exam_id(exam_id) if exam_id else time.strftime("exam-%Y%m%d-%H%M%S", time.localtime(t))
        used = {e.exam_id for e in self.finished}
        if self.report_dir is not None:
            used |= {p.name for p in self.report_dir.glob("*") if p.is_dir()} if self.report_dir.is_dir() else set()
        base, k = eid, 1
        while eid in used:
            k += 1
            eid = f"{base}-{k}"
        return Exam(eid, t, {p: PlaneStatus(p) for p in self.planes})

    def _take_request(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            self._end_exam(request[1], new_id=request[0])

    def _reset_run(self) -> None:
        self._run_label, self._run_len, self._run_best, self._run_counted = None, 0, None, False
        self._run_frozen_only, self._run_dip, self._run_best_age = False, 0, 0

    def _candidate(self, frame, t, confidence, state, image, box) -> BestFrame:
        box_list = [int(v) for v in box] if box is not None else []
        best = BestFrame(frame, float(t), frame / self.fps if self.fps > 0 else None, float(confidence), state, box_list)
        if self.keep_images and image is not None:
            full = image.copy()
            if self.mask_header > 0:
                from edge.live.overlay import mask_header

                mask_header(full, self.mask_header)
            best.image = full
            if box_list:
                x, y, w, h = box_list
                best.crop = full[max(0, y): y + h, max(0, x): x + w]
        return best

    def _end_exam(self, reason: str, new_id: str = "", start_new: bool = True) -> None:
        exam = self.exam
        exam.ended, exam.end_reason = time.time(), reason
        self._reset_run()
        if exam.frames:
            self.finished.append(exam)
            log.info("exam %s ended (%s): seen %s; missing %s", exam.exam_id, reason,
                     ", ".join(short_name(p) for p in exam.seen) or "none",
                     ", ".join(short_name(p) for p in exam.missing) or "none")
            if self.report_dir is not None:
                try:
                    self.reports.append(write_exam_report(exam, self.report_dir, self.config.jpeg_quality))
                except OSError as exc:  # a full disk must not end the run; say so
                    message = f"exam report {exam.exam_id}: cannot write ({exc.strerror or exc})"
                    self.errors.append(message)
                    log.warning(message)
            for s in exam.planes.values():  # the pixels are written (or not wanted): free them
                if s.best is not None:
                    s.best.image = s.best.crop = None
        if start_new:
            self.exam = self._new_exam(new_id)
        self._version += 1


# --- the report ---------------------------------------------------------------------
def _slug(plane: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", plane.lower()).strip("-") or "plane"


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    path.write_bytes(data.tobytes())


REPORT_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#111;color:#eee}
a{color:#8cf} h1{font-size:1.4em} .meta{color:#aaa}
.grid{display:flex;flex-wrap:wrap;gap:14px}
.card{background:#1d1d1d;border-radius:8px;padding:10px;width:280px}
.card h2{font-size:1.05em;margin:.2em 0}
.card img{width:100%;border-radius:4px;background:#000}
.seen{border-left:6px solid #4c4} .missing{border-left:6px solid #c44;opacity:.8}
.tag{display:inline-block;font-size:.8em;padding:1px 6px;border-radius:8px;background:#333;margin-left:4px}
table{border-collapse:collapse} td,th{padding:4px 10px;border-bottom:1px solid #333;text-align:left}
"""


def write_exam_report(exam: Exam, directory: str | Path, quality: int = 90) -> Path:
    """``directory/<exam id>/``: index.html, exam.json, ``<plane>.jpg`` (full) and ``<plane>_sector.jpg``; returns the html."""
    root = Path(directory)
    out = root / exam.exam_id
    out.mkdir(parents=True, exist_ok=True)
    data = exam.to_dict()
    cards = []
    for plane, status in exam.planes.items():
        entry = data["planes"][plane]
        best = status.best
        if best is not None and best.image is not None:
            slug = _slug(plane)
            _write_jpeg(out / f"{slug}.jpg", best.image, quality)
            entry["best"]["image"] = f"{slug}.jpg"
            if best.crop is not None and best.crop.size:
                _write_jpeg(out / f"{slug}_sector.jpg", best.crop, quality)
                entry["best"]["sector_image"] = f"{slug}_sector.jpg"
        cards.append(_card(plane, entry))
    (out / "exam.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    seen, total = len(exam.seen), len(exam.planes)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Exam {html.escape(exam.exam_id)}</title>
<style>{REPORT_CSS}</style></head><body>
<p><a href="../index.html">all exams</a></p>
<h1>Exam {html.escape(exam.exam_id)}: {seen} of {total} planes captured</h1>
<p class="meta">{_time_text(exam.started)} to {_time_text(exam.ended or exam.started)} ({html.escape(exam.end_reason)}),
{exam.frames} frames labelled. Missing: {html.escape(", ".join(exam.missing) or "none")}.
Best frame = highest smoothed confidence inside a steady segment. Labels come from a model and
need a sonographer's review.</p>
<div class="grid">
{"".join(cards)}
</div>
<p class="meta"><a href="exam.json">exam.json</a></p>
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
    _write_index(root)
    return out / "index.html"


def _card(plane: str, entry: dict[str, Any]) -> str:
    best = entry.get("best")
    tags = ""
    if entry["stored"]:
        tags += '<span class="tag">stored</span>'
    if not entry["seen"]:
        return f'<div class="card missing"><h2>{html.escape(plane)}</h2><p>not captured</p></div>'
    img = ""
    if best and best.get("sector_image"):
        img = f'<a href="{best["image"]}"><img src="{best["sector_image"]}" alt="{html.escape(plane)}"></a>'
    elif best and best.get("image"):
        img = f'<img src="{best["image"]}" alt="{html.escape(plane)}">'
    when = ""
    if best:
        pos = f"{best['source_s']:.1f} s, " if best.get("source_s") is not None else ""
        when = f"<p>{best['confidence'] * 100:.0f} % &middot; frame {best['frame']} ({pos}{_time_text(best['t'])})</p>"
    return f'<div class="card seen"><h2>{html.escape(plane)}{tags}</h2>{img}{when}</div>'


def _write_index(root: Path) -> None:
    """``root/index.html``: every exam found under ``root``, newest first."""
    rows = []
    for path in sorted(root.glob("*/exam.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows.append(d)
    rows.sort(key=lambda d: d.get("started", 0), reverse=True)
    body = "".join(
        f'<tr><td><a href="{html.escape(d["exam_id"])}/index.html">{html.escape(d["exam_id"])}</a></td>'
        f'<td>{html.escape(d.get("started_text", ""))}</td><td>{len(d.get("seen", []))} of {len(d.get("planes", {}))}</td>'
        f'<td>{html.escape(", ".join(d.get("missing", [])) or "none")}</td></tr>'
        for d in rows
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Exams</title><style>{REPORT_CSS}</style></head><body>
<h1>Exams</h1>
<table><tr><th>exam</th><th>started</th><th>planes captured</th><th>missing</th></tr>{body}</table>
</body></html>
"""
    (root / "index.html").write_text(page, encoding="utf-8")


# --- the overlay ----------------------------------------------------------------------
class ChecklistOverlay:
    """Draws the checklist in the frame's bottom-right corner: a small patch rendered only when it changes."""

    MIN_HEIGHT = 200  # frames smaller than this get no checklist (it would cover the image)

    def __init__(self):
        self._key: tuple | None = None
        self._patch: np.ndarray | None = None

    def draw(self, frame: np.ndarray, tracker: ExamTracker) -> None:
        h, w = frame.shape[:2]
        if h < self.MIN_HEIGHT or frame.ndim != 3:
            return
        key = (tracker.version, tracker.exam.exam_id, h, w)
        if key != self._key:
            self._patch = render_checklist(tracker.checklist(), (h, w))
            self._key = key
        patch = self._patch
        ph, pw = patch.shape[:2]
        if ph + 4 > h or pw + 4 > w:
            return
        frame[h - ph - 4: h - 4, w - pw - 4: w - 4] = patch


def render_checklist(items: Sequence[tuple[str, bool, bool]], frame_shape: Sequence[int]) -> np.ndarray:
    """The checklist as a small BGR patch: a filled green dot for a seen plane, a gray ring for a missing one."""
    import cv2

    from edge.live.overlay import WHITE, font_scale, text_size

    scale, thick = font_scale(frame_shape)
    s = scale * 0.7
    pad = max(2, int(5 * scale))
    (_, th), base = text_size("Abdomen", s, thick)
    line = th + base + pad
    done = sum(1 for _, seen, _ in items if seen)
    title = f"exam {done}/{len(items)}"
    texts = [short_name(p) + (" *" if stored else "") for p, _, stored in items]
    width = max(text_size(t, s, thick)[0][0] for t in texts + [title]) + 3 * pad + th
    height = line * (len(items) + 1) + pad
    patch = np.zeros((height, width, 3), np.uint8)
    y = pad + th
    cv2.putText(patch, title, (pad, y), cv2.FONT_HERSHEY_SIMPLEX, s, WHITE, thick, cv2.LINE_AA)
    r = max(2, th // 2)
    for (plane, seen, _), text in zip(items, texts):
        y += line
        cx, cy = pad + r, y - th // 2
        if seen:
            cv2.circle(patch, (cx, cy), r, (80, 220, 80), -1, cv2.LINE_AA)
        else:
            cv2.circle(patch, (cx, cy), r, (140, 140, 140), max(1, thick // 2), cv2.LINE_AA)
        cv2.putText(patch, text, (pad * 2 + 2 * r, y), cv2.FONT_HERSHEY_SIMPLEX, s,
                    WHITE if seen else (150, 150, 150), thick, cv2.LINE_AA)
    return patch
