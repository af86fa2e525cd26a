"""benchmarks/paper/published.json: the study's numbers, each with its source, checked against the transcription."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURE_ONLY = "figure only"


def _transcription() -> Path:
    """The article's tables as transcribed: shared/paper/published_figures.md beside the checkout."""
    env = os.environ.get("FETALPLANES_SHARED_DATA")
    shared = Path(env).parent if env else REPO.parent / "shared"
    path = shared / "paper" / "published_figures.md"
    if not path.is_file():
        pytest.skip(f"the transcription of the article's tables is not there ({path})")
    return path


def _md_tables(text: str) -> dict[str, list[list[str]]]:
    """{section heading: rows of its first markdown table (header and separator dropped)}."""
    out: dict[str, list[list[str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("|") and heading and not set(line) <= set("|-: "):
            out.setdefault(heading, []).append([c.strip() for c in line.strip().strip("|").split("|")])
    return {k: v[1:] for k, v in out.items()}  # drop each header row


def _num(cell: str) -> float | None:
    return None if cell in ("–", "-", "") else float(cell.replace(",", "").replace(" M", ""))


def _frac(cell: str) -> float:
    return round(float(cell) / 100, 6)


def _section(tables: dict, prefix: str) -> list[list[str]]:
    return next(v for k, v in tables.items() if k.startswith(prefix))


@pytest.fixture(scope="module")
def pub():
    from export.experiments.tables import load_published

    return load_published()


def test_every_number_has_a_source_and_none_is_a_stand_in(pub):
    assert pub["source"].startswith("Burgos-Artizzu") and pub["verified_against"]
    assert pub["figure_only"] == FIGURE_ONLY
    for name in ("table2", "table3", "table4", "fig3", "fig4", "fig5"):
        assert pub[name]["source"].startswith(("Table", "text")), name
    for section in ("table2", "table3"):
        assert all(r["source"].startswith("Table") for r in pub[section]["rows"])
    assert len(pub["table2"]["rows"]) == 21 and len(pub["table3"]["rows"]) == 5
    # what the article shows only in a figure is marked as such, never a number
    assert pub["fig3"]["confusion_percent"] == FIGURE_ONLY and pub["fig4"]["confusion_percent"] == FIGURE_ONLY
    assert pub["fig5"]["points"] == FIGURE_ONLY

    def numbers(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from numbers(v)
        elif isinstance(x, list):
            for v in x:
                yield from numbers(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            yield x

    results = {k: pub[k] for k in ("table2", "table3", "table4", "fig3", "fig4", "fig5")}
    assert all(v > 0 for v in numbers(results))  # no zero standing in for a missing value


def test_no_development_path_in_published_json():
    text = (REPO / "benchmarks" / "paper" / "published.json").read_text()
    assert not re.search(r"(^|[\s\"'(])/(work|home|root|Users|tmp)/", text)


def test_table2_matches_the_transcription(pub):
    rows = _section(_md_tables(_transcription().read_text()), "Table 2")
    assert len(rows) == 21
    for md, js in zip(rows, pub["table2"]["rows"]):
        name, params, layers, hz, top1, top3, cls = md
        assert js["paper_name"].split(" ")[0] == name.split(" ")[0], (md, js["paper_name"])
        assert js["params_m"] == _num(params) and js["layers"] == _num(layers) and js["speed_hz"] == _num(hz)
        assert js["top1_error"] == _frac(top1) and js["top3_error"] == _frac(top3)
        mean, std = cls.split("±")
        assert (js["class_accuracy_mean"], js["class_accuracy_std"]) == (_frac(mean), _frac(std))


def test_table3_matches_the_transcription(pub):
    rows = _section(_md_tables(_transcription().read_text()), "Table 3")
    by_name = {r["paper_name"]: r for r in pub["table3"]["rows"]}
    assert len(rows) == len(by_name) == 5
    for name, top1, top3, cls in rows:
        js = by_name[name]
        mean, std = cls.split("±")
        assert (js["top1_error"], js["top3_error"], js["class_accuracy_mean"], js["class_accuracy_std"]) == (
            _frac(top1), _frac(top3), _frac(mean), _frac(std))
    assert pub["table3"]["arch"] == "Inception-v3"


def test_table4_matches_the_transcription(pub):
    text = _transcription().read_text()
    rows = _section(_md_tables(text), "Table 4")
    keys = ["op1", "op2", "op3", "all"]
    header = next(line for line in text.splitlines() if line.startswith("| trained on"))
    test_counts = [int(x.replace(",", "")) for x in re.findall(r"\(([\d,]+)\)", header)]
    groups = pub["table4"]["groups"]
    assert [g["test_images"] for g in groups] == test_counts == [874, 946, 1460, 5271]
    for key, group, (label, *cells) in zip(keys, groups, rows):
        assert group["key"] == key
        assert group["train_images"] == int(re.search(r"\(([\d,]+)\)", label).group(1).replace(",", ""))
        assert [pub["table4"]["top1_error"][key][c] for c in keys] == [_frac(c) for c in cells]
    ops = {g["key"]: (g["operator"], g["machine"]) for g in groups}
    assert ops == {"op1": ("Op. 1", "Voluson E6"), "op2": ("Op. 2", "Voluson E6"), "op3": ("Op. 3", "Aloka"),
                   "all": (None, None)}


def test_figures_text_numbers_match_the_transcription(pub):
    text = _transcription().read_text()
    assert "technicians: top-1 error 5.1 % and 6.5 %; DenseNet-169 6.2 %" in text
    assert pub["fig3"]["technicians_top1_error"] == [0.051, 0.065] and pub["fig3"]["top1_error"] == 0.062
    assert "Technicians needed 3.5 s per image; the CNN 0.14 s" in text
    assert pub["fig3"]["seconds_per_image"] == {"technicians": 3.5, "cnn": 0.14}
    assert "Top-1 error: CNN 25.0 %; technicians 15.9 % and 17.0 %" in text
    assert pub["fig4"]["top1_error"] == 0.25 and pub["fig4"]["technicians_top1_error"] == [0.159, 0.17]
    assert "Train: 592 patients, 1,543 images (+ 500 random images of other planes); test: 536 patients, 1,406" in text
    f4 = pub["fig4"]
    assert (f4["train_patients"], f4["train_images"], f4["train_extra_other_images"], f4["test_patients"],
            f4["test_images"]) == (592, 1543, 500, 536, 1406)
    assert "8 extra training sets, each removing 100 more training patients" in text
    assert (pub["fig5"]["extra_sets"], pub["fig5"]["step_patients"]) == (8, 100)
    # Fig. 5's largest training set is Table 3's baseline
    base = next(r for r in pub["table3"]["rows"] if r["variant"] == "baseline")
    assert pub["fig5"]["all_patients_top1_error"] == base["top1_error"]


def test_time_estimate_is_what_the_script_computes(real_db_dir):
    """benchmarks/paper/time_estimate.md (quoted by README section 7) is the estimator's output on the release's CSV."""
    pytest.importorskip("torchvision")
    import importlib.util

    spec = importlib.util.spec_from_file_location("estimate_time", REPO / "benchmarks" / "paper" / "estimate_time.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    e = mod.estimate(real_db_dir)
    # measured networks use their measured rates; the per-image cost beyond compute is solved from the log
    assert e["rates"]["resnet18"]["how"] == "measured" and e["rates"]["resnet18"]["compute_fast"] == 2857.81
    assert 0.0002 < e["overhead_s_per_image"] < 0.001
    assert e["rates"]["inception_v3"]["input"] == 299
    assert e["experiments"]["table4"]["runs"][-1]["train_images"] + e["experiments"]["table4"]["runs"][-1][
        "val_images"] == 7129
    assert (REPO / "benchmarks" / "paper" / "time_estimate.md").read_text() == mod.markdown(e)
