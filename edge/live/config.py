"""The run configuration: dataclasses, a config file (TOML or YAML), flags on top.

Precedence: built-in defaults < config file < command-line flags. The file
holds the box's settings in one place (see docs/live.md for an example)::

    model = "/opt/fetalplanes/model.int8.onnx"
    input = "v4l2:///dev/video0"
    outputs = ["display://0", "jsonl:///var/lib/fetalplanes/predictions.jsonl"]
    status = "/run/fetalplanes/status.json"
    [source]
    width = 1920
    [temporal]
    uncertain_below = 0.6
    [rotation]
    max_file_mb = 100

Relative paths are relative to the working directory of the process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edge.errors import FetalPlanesError
from edge.live.exam import ExamConfig  # issue 14 (exam view)
from edge.live.rotation import RotationConfig
from edge.live.sources import SourceConfig
from edge.live.temporal import TemporalConfig

Roi = tuple[int, int, int, int]


@dataclass
class RunConfig:
    """Everything `fetalplanes run` needs; :func:`edge.live.loop.run_loop` takes one of these."""

    model: str = ""
    input: str = ""
    outputs: list[str] = field(default_factory=list)
    roi: Roi | None = None  # x, y, w, h of the image sector; None = detect it
    status: str = ""  # heartbeat JSON file; "" = none
    status_interval_s: float = 1.0
    mask_header: float = 0.0  # black out this many top rows (or this fraction if < 1) in frame outputs
    top3: bool = True  # top-3 bars in the overlay
    codec: str = ""  # FourCC for video outputs; "" = by container (mp4v for .mp4, MJPG for .avi)
    max_frames: int = 0  # stop after this many processed frames (0 = until the input ends)
    max_seconds: float = 0.0  # stop after this long (0 = no limit)
    providers: list[str] = field(default_factory=lambda: ["cpu"])  # ONNX Runtime providers, in order
    threads: int = 0  # ONNX Runtime intra-op threads (0 = its default)
    pipeline: bool = True  # prepare frame N+1 (sector, crop, preprocess) in a second thread while frame N is inferred
    output_thread: bool = True  # overlay + frame outputs (recordings, streams) in their own thread; windows stay on the main thread
    spin: bool = False  # let ONNX Runtime's threads spin-wait between runs (takes CPU from capture and prepare)
    log_every_s: float = 10.0  # a progress line in the log this often (0 = never)
    exam_report: str = ""  # issue 14: write an exam report (index.html, images, JSON) here at the end of each exam; "" = never
    exam_id: str = ""  # issue 14: the id of the first exam ("" = exam-<date>-<time>)
    source: SourceConfig = field(default_factory=SourceConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    rotation: RotationConfig = field(default_factory=RotationConfig)
    exam: ExamConfig = field(default_factory=ExamConfig)  # issue 14

    def validate(self) -> None:
        if not self.model:
            raise FetalPlanesError("no model given", hint="pass --model FILE.onnx or set model in the config file")
        if not (self.input or self.source.uri):
            raise FetalPlanesError("no input given", hint="pass --input URI or set input in the config file")
        if self.roi is not None and (len(self.roi) != 4 or self.roi[2] <= 0 or self.roi[3] <= 0 or min(self.roi[:2]) < 0):
            raise FetalPlanesError(f"roi {self.roi}: expected x,y,w,h with w,h > 0", hint="e.g. --roi 120,80,640,480")
        if self.mask_header < 0:
            raise FetalPlanesError(f"mask_header {self.mask_header} < 0", hint="give rows (e.g. 60) or a fraction (e.g. 0.08)")
        self.temporal.validate()
        self.rotation.validate()
        self.exam.validate()  # issue 14

    @property
    def input_uri(self) -> str:
        return self.input or self.source.uri

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {"source": SourceConfig, "temporal": TemporalConfig, "rotation": RotationConfig, "exam": ExamConfig}


def parse_roi(value: Any, where: str = "--roi") -> Roi | None:
    """'x,y,w,h' or a 4-list -> tuple of ints; None/'' -> None."""
    if value is None or value == "" or value == []:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        roi = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        roi = ()
    if len(roi) != 4:
        raise FetalPlanesError(f"{where}: {value!r} is not x,y,w,h (four integers)", hint="e.g. --roi 120,80,640,480")
    return roi  # type: ignore[return-value]


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Check/convert a value from a file to the type of the field's default."""
    def bad(expected: str):
        return FetalPlanesError(f"{where}: {value!r} is not {expected}", hint="fix the value in the config file")

    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad("true or false")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise bad("an integer")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(default, list):
        if isinstance(value, str):
            return [value]
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        return [str(v) for v in value]
    if isinstance(default, str):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad("a string")
        return str(value)
    return value


def _set(obj: Any, key: str, value: Any, where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    if key not in names:
        raise FetalPlanesError(
            f"{where}: unknown setting '{key}'",
            hint=f"known settings here: {', '.join(sorted(n for n in names if n not in SECTIONS))}",
        )
    if key == "roi":
        setattr(obj, key, parse_roi(value, where))
        return
    default = getattr(obj, key)
    setattr(obj, key, _coerce(value, default, where) if default is not None else value)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML (.toml) or YAML (.yaml/.yml, needs PyYAML) file -> dict."""
    path = Path(path)
    if not path.is_file():
        raise FetalPlanesError(f"config file {path} not found", hint="check the --config path")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise FetalPlanesError(
                f"{path}: reading YAML needs PyYAML, which is not installed",
                hint="pip install pyyaml, or write the same settings as TOML (box.toml)",
            ) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise FetalPlanesError(f"{path}: not valid YAML ({exc})", hint="fix the syntax at the line shown") from None
    elif suffix == ".toml":
        try:
            import tomllib  # Python 3.11+
        except ImportError:
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise FetalPlanesError(
                    f"{path}: reading TOML on Python < 3.11 needs tomli",
                    hint="pip install tomli, or use a YAML config file with PyYAML",
                ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FetalPlanesError(f"{path}: not valid TOML ({exc})", hint="fix the syntax at the line shown") from None
    else:
        raise FetalPlanesError(f"{path}: unknown config file type '{suffix}'", hint="use a .toml or .yaml file")
    if not isinstance(data, dict):
        raise FetalPlanesError(f"{path}: the top level must be a table of settings", hint="see docs/live.md for an example")
    return data


def apply_settings(config: RunConfig, data: Mapping[str, Any], where: str) -> RunConfig:
    """Apply nested settings ({key: value, section: {key: value}}) onto ``config``."""
    for key, value in data.items():
        key = str(key).replace("-", "_")
        if key == "output":  # singular accepted for one output
            key, value = "outputs", value
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise FetalPlanesError(f"{where}: [{key}] must be a table of settings", hint="see docs/live.md")
            section = getattr(config, key)
            for sub, subvalue in value.items():
                _set(section, str(sub).replace("-", "_"), subvalue, f"{where}: {key}.{sub}")
        else:
            _set(config, key, value, f"{where}: {key}")
    return config


def apply_overrides(config: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    """Apply flat, dotted overrides ({"model": ..., "source.width": 1280}); None values are skipped."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        target: Any = config
        *sections, key = dotted.split(".")
        for s in sections:
            target = getattr(target, s)
        if key == "roi":
            value = parse_roi(value)
        setattr(target, key, value)
    return config


def load_run_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults, then the config file (if any), then the overrides (command-line flags)."""
    config = RunConfig()
    if path:
        apply_settings(config, read_config_file(path), str(path))
    if overrides:
        apply_overrides(config, overrides)
    if config.input:  # `input` (top level or --input) wins over [source] uri
        config.source.uri = config.input
    else:
        config.input = config.source.uri
    return config
