"""Script-level glue shared by the benchmark scripts: results folder, machine stamp, formatting, JSON.

The timing and deployability code itself lives in the package, :mod:`calibration.speed`
(one implementation, also used by ``fetalplanes quantize`` and ``fetalplanes demo``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_NOTE = (
    "measured on a 2-core machine SHARED with other engineers' jobs (load varies): absolute Hz are noisy; "
    "ratios are measured in one interleaved run and are the figures to read"
)


def machine_stamp() -> dict[str, Any]:
    """edge.sysinfo.machine_stamp() plus the time."""
    from edge.sysinfo import machine_stamp as stamp

    return {"when": time.strftime("%Y-%m-%d %H:%M:%S"), **stamp()}


def fmt(v: Any, digits: int = 1) -> str:
    """A number for a table ('-' for None)."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def load_average() -> float | None:
    """The 1-minute load average (None where the OS does not tell): how busy the shared machine was."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def target_row(target: str, measured: float | None, limit: float | None, passed: bool | None, unit: str = "",
               note: str = "", **extra: Any) -> dict[str, Any]:
    """One target in the form every benchmark reports and targets.json holds (``pass`` None: not measured)."""
    return {"target": target, "measured": None if measured is None else round(float(measured), 4), "limit": limit,
            "unit": unit, "pass": passed, "note": note, **extra}


def write_targets(path: str | Path, rows: list[dict[str, Any]], run: dict[str, Any],
                  informational: list[dict[str, Any]] | None = None) -> Path:
    """``{"run": run, "targets": [{target, measured, pass, run, ...}], "informational": [...]}``: every row stamped
    with the run's id; ``informational``: figures of the same run that are no target (never counted as one)."""
    return write_json(path, {"run": run, "targets": [{**r, "run": run["id"]} for r in rows],
                             "informational": [{**r, "run": run["id"]} for r in informational or []]})


def models_markdown_table(model_result: dict[str, Any]) -> list[str]:
    """One markdown table for one model: runtime x batch, Hz, p50/p90/p99, the two ratios, deployable or not."""
    lines = [
        f"**{model_result['model']}** ({model_result['threads']} threads; reference for agreement: {model_result['reference']}; "
        f"INT8 held-out agreement on {model_result.get('heldout_images', 0)} test-patient images, "
        f"deployable needs >= {model_result.get('min_agreement', 0.99)})",
        "",
        "| runtime | batch | Hz | p50 ms | p90 ms | p99 ms | x PyTorch (best) | x ORT FP32 | deployable | agreement / note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in model_result["runtimes"]:
        agree = r.get("agreement") or {}
        a = "reference" if agree.get("reference") else (
            f"argmax {agree['argmax_agreement']:.2f}, max diff {agree['max_abs_diff']:.3g}" if "argmax_agreement" in agree else "")
        if "heldout_agreement" in agree:
            a += f"; held-out agreement {agree['heldout_agreement']:.4f} ({agree['heldout_images']} images)"
        if r.get("quantize_holds") is not None:
            a += f"; quantize check: {'holds' if r['quantize_holds'] else 'FAILS'}"
        note = "; ".join(x for x in (a, r.get("note", "")) if x)
        dep = "baseline" if r["kind"] == "pytorch" else ("yes" if r.get("deployable") else f"NO ({r.get('deployable_why', '')})")
        for b in model_result["batches"]:
            t = r["batches"].get(str(b))
            if t is None:
                lines.append(f"| {r['name']} | {b} | - | - | - | - | - | - | {dep} | {note or 'not timed'} |")
            else:
                lines.append(f"| {r['name']} | {b} | {t['hz']:.1f} | {t['p50_ms']:.2f} | {t['p90_ms']:.2f} | "
                             f"{t['p99_ms']:.2f} | {fmt(t['x_pytorch'], 2)} | {fmt(t['x_ort_fp32'], 2)} | {dep} | {note} |")
            note, dep = "", ""  # once per runtime
    return lines


def portable_paths(text: str) -> str:
    """Machine paths in a result as a reader can follow them: the repository's own relative, the shared data
    as ``../shared``, the user's cache as ``~``, temporary work folders as ``TMP``."""
    repo = Path(__file__).resolve().parents[1]
    for prefix, short in ((str(repo.parent / "shared"), "../shared"), (str(repo) + "/", ""),
                          (str(Path.home()), "~"), (tempfile.gettempdir(), "TMP")):
        text = text.replace(prefix, short)
    return text


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON (parents created; machine paths made portable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(portable_paths(json.dumps(data, indent=1, default=float)) + "\n", encoding="utf-8")
    return path


def write_results(result: dict[str, Any], out_dir: Path, stem: str, markdown, plot) -> dict[str, Path]:
    """``stem``.json, .md (``markdown(result)``) and .png (``plot(result, path)``) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(out_dir / f"{stem}.json", result), "md": out_dir / f"{stem}.md",
             "png": out_dir / f"{stem}.png"}
    paths["md"].write_text(portable_paths(markdown(result)), encoding="utf-8")
    plot(result, paths["png"])
    return paths
