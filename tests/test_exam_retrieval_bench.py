"""benchmarks/exam_retrieval.py's --real mode: its mechanics without the real run (that one takes minutes)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import exam_retrieval  # noqa: E402


def test_real_without_the_shared_data_says_so_and_exits_2(tmp_path, capsys):
    out = tmp_path / "er.md"
    assert exam_retrieval.main(["--real", "--shared", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "sononet_examples" in err and "shared" in err and not out.exists()


def test_the_real_section_replaces_itself_and_keeps_the_phantom_part(tmp_path):
    out = tmp_path / "er.md"
    out.write_text("# Exam report: phantom\n\n| table |\n\n## The models\n\nnotes\n")
    exam_retrieval.replace_real_section(out, exam_retrieval.REAL_HEADING + "\n\nfirst run\n")
    exam_retrieval.replace_real_section(out, exam_retrieval.REAL_HEADING + "\n\nsecond run\n")
    text = out.read_text()
    assert text.startswith("# Exam report: phantom") and "## The models\n\nnotes\n\n## Real model" in text
    assert text.count(exam_retrieval.REAL_HEADING) == 1 and "second run" in text and "first run" not in text
