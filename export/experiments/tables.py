"""Writing the study's tables: markdown (with the published numbers beside ours), CSV and JSON.

Every table opens with a line that says what data its numbers come from (the published
release, or a phantom / subset that is not comparable with the study) and the dataset fingerprint.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

PUBLISHED_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "paper" / "published.json"
FIGURE_ONLY = "figure only"  # published.json's mark for a value the article shows only in a figure
FIGURE_ONLY_CELL = "fig. only"
NOT_GIVEN = "–"  # the article gives no such number (or published.json is missing)


def load_published(path: Path | None = None) -> dict[str, Any]:
    """The study's published numbers (benchmarks/paper/published.json); {} when the file is not there."""
    path = path or PUBLISHED_PATH
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def published_rows(section: str, key: str, published: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Rows of a published table, by ``key`` (e.g. 'paper_name' for Table 2, 'variant' for Table 3)."""
    published = load_published() if published is None else published
    rows = published.get(section, {}).get("rows", [])
    return {r[key]: r for r in rows if r.get(key) is not None}


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _mark(x: Any) -> str:
    return FIGURE_ONLY_CELL if x == FIGURE_ONLY else NOT_GIVEN


def pct(x: Any, digits: int = 1) -> str:
    """A fraction as a percentage string; 'fig. only' / '–' for a published value that is not a number."""
    return f"{100.0 * float(x):.{digits}f}" if is_number(x) else _mark(x)


def pct_pm(mean: Any, std: Any) -> str:
    if not is_number(mean):
        return _mark(mean)
    return f"{100.0 * mean:.1f} ± {100.0 * std:.1f}" if is_number(std) else f"{100.0 * mean:.1f}"


def num(x: Any, fmt: str = "{:.1f}") -> str:
    return fmt.format(x) if is_number(x) else _mark(x)


def delta(ours: Any, theirs: Any, digits: int = 1) -> str:
    """ours - theirs in percentage points ('+1.2'); empty when either is not a number."""
    if not (is_number(ours) and is_number(theirs)):
        return ""
    return f"{100.0 * (ours - theirs):+.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def header_lines(title: str, notice: str, config: Any, published: dict[str, Any],
                 architecture: str | None = None) -> list[str]:
    """Title, what data, the run's scale, the architectures (study's and ours), where the study's numbers come from."""
    scale = ("**quick mode** (few images, tiny inputs, one epoch, no pre-training, a small model: exercises the "
             "code, not the study's numbers)" if config.quick else "full scale (the study's recipe)")
    source = published.get("source", "published numbers file (benchmarks/paper/published.json) not found")
    lines = [f"# {title}", "", notice, "", f"Scale: {scale}; seed {config.seed}.", ""]
    if architecture:
        lines += [architecture, ""]
    lines += [f"'study' columns: {source} (benchmarks/paper/published.json). Δ = ours − study, in percentage "
              f"points. {FIGURE_ONLY_CELL} = the article shows it only in a figure; {NOT_GIVEN} = the article gives "
              "no such number.", ""]
    return lines


def write_table(
    out_dir: Path,
    stem: str,
    markdown: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    data: dict[str, Any],
) -> dict[str, Path]:
    """Write ``stem``.md (the whole report), ``stem``.csv (the table) and ``stem``.json (everything)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / f"{stem}.md", "csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.json"}
    paths["markdown"].write_text(markdown.rstrip() + "\n", encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)
    paths["json"].write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return paths


def study_notice(config: Any) -> tuple[str, str]:
    """(notice line, split fingerprint) for the experiment's data (see export.reports.data_notice)."""
    from fetaldata import FetalPlanesDB, SplitConfig
    from fetaldata.splits import fingerprint
    from export.reports import data_notice

    split = SplitConfig(seed=config.seed, max_per_split=config.default_max_per_split)
    fp = fingerprint(FetalPlanesDB.open(config.data), split)
    return data_notice(config.data, fp), fp


def metric_cells(metrics: dict[str, Any], paper: dict[str, Any] | None) -> list[str]:
    """top-1 / top-3 error and class accuracy: ours, the study's and the difference, as table cells."""
    paper = paper or {}
    return [
        pct(metrics["top1_error"]), pct(paper.get("top1_error")), delta(metrics["top1_error"], paper.get("top1_error")),
        pct(metrics["top3_error"], 2), pct(paper.get("top3_error"), 2),
        delta(metrics["top3_error"], paper.get("top3_error"), 2),
        pct_pm(metrics["class_accuracy_mean"], metrics["class_accuracy_std"]),
        pct_pm(paper.get("class_accuracy_mean"), paper.get("class_accuracy_std")),
        delta(metrics["class_accuracy_mean"], paper.get("class_accuracy_mean")),
    ]


METRIC_HEADERS = ["top-1 error % (ours)", "(study)", "Δ", "top-3 error % (ours)", "(study)", "Δ",
                  "class accuracy % (ours)", "(study)", "Δ"]
