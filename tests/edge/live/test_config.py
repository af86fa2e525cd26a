"""Config files (TOML / YAML) and command-line flags on top."""

import pytest

from edge.cli import build_parser
from edge.errors import FetalPlanesError
from edge.commands.run import overrides_from_args
from edge.live.config import load_run_config

BOX_TOML = """
model = "/opt/fp/model.int8.onnx"
input = "v4l2:///dev/video0"
outputs = ["display://0", "jsonl:///var/lib/fp/p.jsonl"]
roi = [10, 20, 300, 200]
status = "/run/fp/status.json"
mask_header = 0.08

[source]
width = 1920
height = 1080
fps = 60

[temporal]
uncertain_below = 0.7
hold_frames = 5

[rotation]
max_file_mb = 100
max_total_mb = 2000
"""


def args_for(*argv):
    return build_parser().parse_args(["run", *argv])


def test_toml_file_drives_the_run(tmp_path):
    f = tmp_path / "box.toml"
    f.write_text(BOX_TOML)
    cfg = load_run_config(f, overrides_from_args(args_for("--config", str(f))))
    assert cfg.model == "/opt/fp/model.int8.onnx" and cfg.source.uri == "v4l2:///dev/video0"
    assert cfg.outputs == ["display://0", "jsonl:///var/lib/fp/p.jsonl"]
    assert cfg.roi == (10, 20, 300, 200) and cfg.mask_header == 0.08
    assert (cfg.source.width, cfg.source.height, cfg.source.fps) == (1920, 1080, 60.0)
    assert cfg.temporal.uncertain_below == 0.7 and cfg.temporal.hold_frames == 5
    assert cfg.rotation.max_file_mb == 100 and cfg.status == "/run/fp/status.json"
    cfg.validate()


def test_flags_override_the_file(tmp_path):
    f = tmp_path / "box.toml"
    f.write_text(BOX_TOML)
    a = args_for("--config", str(f), "--input", "clip.mp4", "--output", "out.mp4", "--roi", "1,2,3,4",
                 "--uncertain-below", "0.4", "--width", "1280", "--rotate-mb", "5", "--no-top3")
    cfg = load_run_config(f, overrides_from_args(a))
    assert cfg.input == cfg.source.uri == "clip.mp4"
    assert cfg.outputs == ["out.mp4"]  # replaces the file's list
    assert cfg.roi == (1, 2, 3, 4)
    assert cfg.temporal.uncertain_below == 0.4 and cfg.temporal.hold_frames == 5  # untouched keys kept
    assert cfg.source.width == 1280 and cfg.source.height == 1080
    assert cfg.rotation.max_file_mb == 5 and cfg.rotation.max_total_mb == 2000
    assert cfg.top3 is False and cfg.model == "/opt/fp/model.int8.onnx"


def test_yaml_file(tmp_path):
    pytest.importorskip("yaml")
    f = tmp_path / "box.yaml"
    f.write_text("model: m.onnx\ninput: clip.mp4\noutput: jsonl://p.jsonl\ntemporal:\n  ema_alpha: 0.5\n")
    cfg = load_run_config(f)
    assert cfg.outputs == ["jsonl://p.jsonl"] and cfg.temporal.ema_alpha == 0.5


@pytest.mark.parametrize(
    "text,match",
    [
        ("modle = 'x'", "unknown setting 'modle'"),
        ("[temporal]\nhold_frames = 'many'", "temporal.hold_frames"),
        ("roi = [1, 2, 3]", "x,y,w,h"),
        ("model = [", "not valid TOML"),
        ("[source]\nwidht = 3", "source.widht"),
    ],
)
def test_bad_config_names_the_setting(tmp_path, text, match):
    f = tmp_path / "box.toml"
    f.write_text(text)
    with pytest.raises(FetalPlanesError, match=match) as err:
        load_run_config(f)
    assert str(f) in err.value.message


def test_missing_model_or_input_is_a_usage_error():
    with pytest.raises(FetalPlanesError, match="no model") as err:
        load_run_config(None, {"input": "x.mp4"}).validate()
    assert err.value.exit_code == 2
