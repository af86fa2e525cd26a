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
NOT_REPORTED = "n/r"  # published value not retrieved (see benchmarks/paper/published.json)


def load_published(path: Path | None = None) -> dict[str, Any]:
    """The study's published numbers (benchmarks/paper/published.json); {} when the file is not there."""
    path = path or PUBLISHED_PATH
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def published_rows(section: str, key: str, published: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Rows of a published table, by ``key`` (e.g. 'arch' for Table 2)."""
    published = load_published() if published is None else published
    rows = published.get(section, {}).get("rows", [])
    return {r[key]: r for r in rows if key in r}


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage string; the 'not reported' mark for None."""
    return NOT_REPORTED if x is None else f"{100.0 * float(x):.{digits}f}"


def pct_pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return NOT_REPORTED
    return f"{100.0 * mean:.1f} ± {100.0 * std:.1f}" if std is not None else f"{100.0 * mean:.1f}"


def num(x: float | None, fmt: str = "{:.1f}") -> str:
    return NOT_REPORTED if x is None else fmt.format(x)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def header_lines(title: str, notice: str, config: Any, published: dict[str, Any]) -> list[str]:
    """Title, what data, the run's scale, and where the published numbers come from."""
    scale = ("**quick mode** (few images, tiny inputs, one epoch, no pre-training: exercises the code, "
             "not the study's numbers)" if config.quick else "full scale (the study's recipe)")
    status = published.get("status", "published numbers file not found")
    return [
        f"# {title}",
        "",
        notice,
        "",
        f"Scale: {scale}; seed {config.seed}.",
        "",
        f"'paper' columns: {published.get('source', 'the study')}. {NOT_REPORTED} = not retrieved. {status}",
        "",
    ]


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
    """top-1 / top-3 error and class accuracy, ours then the paper's, as table cells."""
    paper = paper or {}
    return [
        pct(metrics["top1_error"]), pct(paper.get("top1_error")),
        pct(metrics["top3_error"], 2), pct(paper.get("top3_error"), 2),
        pct_pm(metrics["class_accuracy_mean"], metrics["class_accuracy_std"]),
        pct_pm(paper.get("class_accuracy_mean"), paper.get("class_accuracy_std")),
    ]


METRIC_HEADERS = ["top-1 error % (ours)", "(paper)", "top-3 error % (ours)", "(paper)",
                  "class accuracy % (ours)", "(paper)"]
