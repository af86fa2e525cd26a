"""Sub-runs of an experiment: train one model, evaluate it, record everything, resume where stopped.

A sub-run lives in ``OUT/<experiment>/runs/<name>/``: ``run.json`` (settings, seeds, dataset
fingerprint, written when it starts), ``train/`` (the trainer's run folder: checkpoints, per-epoch
metrics; the trainer resumes an interrupted training from there), ``eval*/`` (the evaluation
reports) and ``result.json`` (written last, atomically). A sub-run with a ``result.json`` made
with the same settings is skipped; one made with other settings is an error, never mixed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from fetaldata import FetalPlanesDB, Sample, SplitConfig
from fetaldata.fetal_planes_db import CSV_NAME, IMAGES_DIR
from fetaldata.splits import fingerprint
from edge.errors import EXIT_FAILURE, FetalPlanesError
from export.checkpoint import code_version
from export.experiments.config import ExperimentConfig, RunSpec, check_name

#: (spec, training data folder, trainer's run folder, config) -> the best checkpoint (or any model file).
Trainer = Callable[[RunSpec, Path, Path, ExperimentConfig], Path]
#: evaluation name -> filter on the test split's samples (None: all of them).
Evaluations = dict[str, Callable[[Sample], bool] | None]


def log(message: str) -> None:
    print(f"[experiment] {message}", file=sys.stderr, flush=True)


def dataset_provenance(data_dir: Path, config: SplitConfig) -> dict[str, Any]:
    """What identifies the data behind a number: path, CSV hashes, kind (release/phantom/other), split fingerprint."""
    from export.reports import RELEASE_RECORDS_SHA256, dataset_kind, records_digest

    db = FetalPlanesDB.open(data_dir)
    digest = records_digest(db.records)
    return {
        "path": str(Path(data_dir).resolve()),
        "csv_sha256": db.csv_sha256(),
        "records_sha256": digest,
        "is_release_csv": digest == RELEASE_RECORDS_SHA256,
        "kind": dataset_kind(data_dir),
        "split_config": dataclasses.asdict(config),
        "split_fingerprint": fingerprint(db, config),
        "images": len(db.records),
        "patients": len(db.patients()),
    }


def group_dataset(data_dir: Path, groups: tuple[tuple[str, str], ...], out: Path) -> Path:
    """A dataset folder with only the rows of the given (operator, machine) groups; Images/ links to the original.

    The CSV is written in the release's format, so the split rules (Train column, val patients) apply unchanged.
    """
    db = FetalPlanesDB.open(data_dir)
    keep = {tuple(g) for g in groups}
    rows = [r for r in db.records if (r.operator, r.machine) in keep]
    if not rows:
        raise FetalPlanesError(
            f"{data_dir}: no images of the group(s) {', '.join('/'.join(g) for g in keep)}",
            hint="check the Operator and US_Machine columns of the CSV",
        )
    out.mkdir(parents=True, exist_ok=True)
    lines = ["Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train"]
    lines += [f"{r.image_name};{r.patient};{r.plane};{r.brain_plane};{r.operator};{r.machine};{int(r.train)} " for r in rows]
    tmp = out / (CSV_NAME + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, out / CSV_NAME)
    link = out / IMAGES_DIR
    target = (db.root / IMAGES_DIR).resolve()
    if link.is_symlink() and link.resolve() != target:
        link.unlink()
    if not link.exists():
        try:
            link.symlink_to(target, target_is_directory=True)
        except OSError as exc:
            raise FetalPlanesError(
                f"{link}: cannot link to the dataset's images ({exc})",
                hint="run on a file system that allows symbolic links, or choose another --out",
                exit_code=EXIT_FAILURE,
            ) from None
    return out


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def split_config_for(spec: RunSpec) -> SplitConfig:
    """The evaluation split of a sub-run (same seed and caps as its training)."""
    return SplitConfig(task=spec.task, seed=spec.seed, max_per_split=spec.max_per_split)


def run_subrun(
    experiment: str,
    spec: RunSpec,
    config: ExperimentConfig,
    trainer: Trainer,
    evaluations: Evaluations | None = None,
) -> dict[str, Any]:
    """Train (or resume) and evaluate one sub-run; returns its record (also in result.json)."""
    from export.evaluate import evaluate_model
    from export.reports import write_reports

    run_dir = config.out / experiment / "runs" / check_name(spec.name)
    result_path = run_dir / "result.json"
    if result_path.is_file():
        done = json.loads(result_path.read_text(encoding="utf-8"))
        if done.get("spec_key") == spec.key():
            log(f"{experiment}/{spec.name}: finished earlier, reused ({result_path})")
            return done
        raise FetalPlanesError(
            f"{run_dir}: this sub-run was made with other settings ({done.get('spec')})",
            hint="give another --out for other settings, or delete that folder to redo it",
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    split = split_config_for(spec)
    provenance = dataset_provenance(config.data, split)
    started = {
        "experiment": experiment,
        "spec": spec.to_dict(),
        "spec_key": spec.key(),
        "seed": spec.seed,
        "dataset": provenance,
        "code_version": code_version(),
        "quick": config.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    _write_json(run_dir / "run.json", started)
    train_data = config.data
    if spec.train_group:
        train_data = group_dataset(config.data, spec.train_group, run_dir / "train_data")
    log(f"{experiment}/{spec.name}: training {spec.arch} ({spec.task}) on {train_data}")
    t0 = time.perf_counter()
    model = Path(trainer(spec, train_data, run_dir / "train", config))
    train_s = time.perf_counter() - t0
    evals: dict[str, Any] = {}
    for name, flt in (evaluations or {"test": None}).items():
        log(f"{experiment}/{spec.name}: evaluating on {name}")
        res = evaluate_model(model, config.data, "test", split_config=split, sample_filter=flt)
        folder = run_dir / ("eval" if name == "test" else f"eval-{name}")
        write_reports(res, folder)
        evals[name] = {
            "metrics": res.metrics.to_dict(),
            "reports": str(folder),
            "dataset_fingerprint": res.dataset_fingerprint,
            "images_per_second": res.images_per_second,
        }
    record = dict(started)
    record.update({
        "model": str(model),
        "train_seconds": train_s,
        "evaluations": evals,
        "metrics": evals[next(iter(evals))]["metrics"],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    _write_json(result_path, record)
    return record


# --------------------------------------------------------------------------- the default trainer
#: RunSpec/ExperimentConfig value -> TrainConfig field names it may have (first one present is used).
TRAIN_FIELDS: dict[str, tuple[str, ...]] = {
    "data": ("data", "data_dir"),
    "out": ("out", "out_dir", "run_dir"),
    "task": ("task",),
    "arch": ("arch",),
    "pretrained": ("pretrained",),
    "epochs": ("epochs", "max_epochs"),
    "batch_size": ("batch_size",),
    "input_size": ("input_size", "image_size"),
    "seed": ("seed",),
    "augment": ("augment",),
    "class_weights": ("class_weights", "reweight", "class_reweighting"),
    "last_layers_only": ("last_layers_only", "freeze_backbone", "train_last_layers_only"),
    "max_train_patients": ("max_train_patients", "train_patients"),
    "max_per_split": ("max_per_split",),
    "device": ("device",),
    "workers": ("workers", "num_workers"),
    "resume": ("resume",),
    "progress": ("progress",),
}
#: values that are the trainer's defaults anyway: they may be left out when TrainConfig lacks the field.
NEUTRAL = {"augment": True, "class_weights": False, "last_layers_only": False, "resume": False}


def train_config_kwargs(spec: RunSpec, data_dir: Path, run_dir: Path, config: ExperimentConfig,
                        field_names: set[str], resume: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``export.train.TrainConfig`` for a sub-run (names matched to its fields)."""
    values: dict[str, Any] = {
        "data": str(data_dir), "out": str(run_dir), "task": spec.task, "arch": spec.arch,
        "pretrained": spec.pretrained, "epochs": spec.epochs, "batch_size": spec.batch_size,
        "input_size": spec.input_size, "seed": spec.seed, "augment": spec.augment,
        "class_weights": spec.class_weights, "last_layers_only": spec.last_layers_only,
        "max_train_patients": spec.max_train_patients, "max_per_split": spec.max_per_split,
        "device": config.device, "workers": config.workers, "resume": resume, "progress": None,
    }
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = next((n for n in TRAIN_FIELDS[key] if n in field_names), None)
        if name is None:
            if value is None or NEUTRAL.get(key, object()) == value:
                continue
            raise FetalPlanesError(
                f"the trainer (export.train.TrainConfig) has no option for '{key}', which sub-run '{spec.name}' needs",
                hint="update fetalplanes (training and experiments out of step)",
                exit_code=EXIT_FAILURE,
            )
        if value is None:
            continue  # keep the trainer's default
        kwargs[name] = value
    return kwargs


def default_trainer(spec: RunSpec, data_dir: Path, run_dir: Path, config: ExperimentConfig) -> Path:
    """Train with ``export.train.train(TrainConfig(...))``; returns the best checkpoint."""
    from edge.errors import require

    require("torch", "train", "training the study's models")
    try:
        from export.train import TrainConfig, train
    except ModuleNotFoundError as exc:
        if exc.name != "export.train":
            raise
        raise FetalPlanesError(
            "this install has no training stage (export.train)", hint="pip install 'fetalplanes[train]'",
            exit_code=EXIT_FAILURE,
        ) from None
    import export.train as train_module

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    resume = (run_dir / getattr(train_module, "LAST", "last.pt")).is_file()  # an interrupted earlier attempt
    if resume:
        log(f"{spec.name}: resuming the interrupted training in {run_dir}")
    return Path(train(TrainConfig(**train_config_kwargs(spec, data_dir, run_dir, config, names, resume))))
