"""Training with the paper's recipe (Burgos-Artizzu et al. 2020) and its ablations.

Adam, batch 32, at most 15 epochs, early stopping after 5 epochs without a better validation loss,
augmentation (flip, crop 0-20 %, translate 0-10 px, rotate +-15 deg), inputs in [-1, 1] from the
training images' statistics. The run folder gets ``best.pt`` (lowest validation loss), ``last.pt``
(every epoch, atomically, for ``--resume``), ``metrics.csv``/``metrics.json`` and ``config.json``.

BatchNorm: before every validation (and so before every save) the running statistics are recomputed
as a cumulative average (``momentum=None``) over training batches, so that short runs of models with a
small BN momentum (torchvision's MobileNetV3: 0.01) are evaluated with correct statistics.

Data-parallel under ``torchrun`` (DDP; gloo on the CPU, nccl on GPUs): a DistributedSampler shards
the training set, validation is sharded and all-reduced, only rank 0 writes files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable

from fetaldata import FetalPlanesDB, SplitConfig, task_samples
from fetaldata.splits import fingerprint
from edge.errors import EXIT_FAILURE, FetalPlanesError
from edge.interrupts import deferred as interrupts_deferred, pending as interrupt_pending, raise_if_interrupted
from edge.labels import labels_for
from edge.modelinfo import GRAY_MODES, INTERPOLATIONS, NORMALIZATIONS, ModelInfo, parse_input_size, size_text

BEST = "best.pt"
LAST = "last.pt"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
CONFIG_JSON = "config.json"
#: Arguments that must not change when a run is resumed.
RESUME_FIXED = ("data_fingerprint", "arch", "task", "input_size", "channels", "normalization", "gray", "interpolation",
                "freeze_backbone")


@dataclass
class TrainConfig:
    """Every argument of `fetalplanes train` (stored in the checkpoint's ModelInfo.extra["args"])."""

    data: str
    out: str = "runs/train"
    task: str = "planes"
    arch: str = "mobilenet_v3_small"
    pretrained: str = "imagenet"  # "imagenet", "none" or a path to a local weights file
    freeze_backbone: bool = False  # ablation: train the last layers (classifier heads) only
    augment: bool = True
    class_weights: bool = False  # ablation: inverse-frequency class weights in the training loss
    max_train_patients: int | None = None  # learning curve: the first N training patients
    image_size: int | list[int] | str | None = None  # 224, [rows, columns] or "224x288"; None: 224 (299 for inception_v3)
    normalization: str = "dataset"  # "dataset": the training images' mean/std; "per_image": each image standardised
    gray: str = "luma"  # how colour images become gray: "luma" (OpenCV) or "mean" (of the channels)
    interpolation: str = "area"  # resizing: "area" (INTER_AREA when shrinking) or "linear" (always bilinear)
    epochs: int = 15
    patience: int = 5  # early stopping: epochs without a better validation loss
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    workers: int = 2
    max_per_split: int | None = None  # quick runs: at most N images per split
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    resume: bool = False
    val_fraction: float = 0.1
    brain_extra: int = 500
    bn_batches: int = 100  # training batches for the BatchNorm statistics before each validation (0: all)
    cache: bool = True  # decode the images once, keep them in memory
    progress: bool | None = None  # progress bars (None: when stderr is a terminal)

    def validate(self) -> None:
        if self.image_size is not None:
            self.image_size = parse_input_size(self.image_size, "--image-size")
        problems = [
            (self.epochs < 1, "--epochs must be >= 1"),
            (self.batch_size < 1, "--batch-size must be >= 1"),
            (self.lr <= 0, "--lr must be > 0"),
            (self.workers < 0, "--workers must be >= 0"),
            (self.patience < 1, "--patience must be >= 1"),
            (self.image_size is not None and min(self.image_size if isinstance(self.image_size, list) else [self.image_size]) < 16, "--image-size must be >= 16 (each side)"),
            (self.normalization not in NORMALIZATIONS, f"--normalization must be one of {', '.join(NORMALIZATIONS)}"),
            (self.gray not in GRAY_MODES, f"--gray must be one of {', '.join(GRAY_MODES)}"),
            (self.interpolation not in INTERPOLATIONS, f"--interpolation must be one of {', '.join(INTERPOLATIONS)}"),
            (self.max_per_split is not None and self.max_per_split < 2, "--max-per-split must be >= 2"),
            (self.max_train_patients is not None and self.max_train_patients < 1, "--max-train-patients must be >= 1"),
            (self.bn_batches < 0, "--bn-batches must be >= 0"),
        ]
        for bad, message in problems:
            if bad:
                raise FetalPlanesError(message, hint="see `fetalplanes train --help`")
        labels_for(self.task)


# --------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_arg: str) -> tuple[Dist, Any]:
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    d = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = _pick_device(device_arg, d)
    if d.enabled:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        if device.type == "cpu":  # share the cores between the local processes
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_world)))
    return d, device


def _pick_device(device_arg: str, d: Dist):
    from export.torch_device import pick_device

    return pick_device(device_arg, cuda_index=d.local_rank if d.enabled else None)


def _all_reduce_sum(values: list[float], d: Dist, device) -> list[float]:
    if not d.enabled:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# --------------------------------------------------------------------------- BatchNorm
def batchnorm_layers(model) -> list:
    import torch.nn as nn

    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batchnorm(model, batches: Iterable, device, max_batches: int = 0) -> int:
    """Recompute BatchNorm running statistics as the plain average over training batches.

    Each BN layer in training mode is reset and given ``momentum=None`` (cumulative moving average),
    the model runs forward (no gradients) on up to ``max_batches`` batches (0: all), then the layers'
    momenta are restored. Frozen BN layers (``--freeze-backbone``) keep their statistics. Returns the
    number of batches used.
    """
    import torch

    from export.models import set_frozen_bn_eval

    was_training = model.training
    model.train()
    set_frozen_bn_eval(model)
    layers = [m for m in batchnorm_layers(model) if m.training and m.track_running_stats]
    if not layers:
        model.train(was_training)
        return 0
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    n = 0
    try:
        with interrupts_deferred():
            batches = iter(batches)
        with torch.no_grad():
            for x, _ in batches:
                raise_if_interrupted()
                if max_batches and n >= max_batches:
                    break
                model(x.to(device, non_blocking=True))
                n += 1
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    if n == 0:
        raise FetalPlanesError("no training batch to compute BatchNorm statistics from", hint="use more training data")
    return n


def _average_batchnorm_across_ranks(model, d: Dist) -> None:
    if not d.enabled:
        return
    import torch.distributed as dist

    for m in batchnorm_layers(model):
        if m.running_mean is not None:
            dist.all_reduce(m.running_mean)
            m.running_mean /= d.world
            dist.all_reduce(m.running_var)
            m.running_var /= d.world


# --------------------------------------------------------------------------- run folder
def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_metrics(run_dir: Path, history: list[dict], summary: dict) -> None:
    """metrics.csv (one row per epoch) and metrics.json (history + summary), rewritten atomically."""
    if history:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(history[0].keys()))
        writer.writeheader()
        writer.writerows(history)
        _atomic_write_text(run_dir / METRICS_CSV, buf.getvalue())
    _atomic_write_text(run_dir / METRICS_JSON, json.dumps({**summary, "history": history}, indent=2))


def _say(d: Dist, message: str) -> None:
    if d.main:
        print(message, flush=True)


def _progress_enabled(config: TrainConfig, d: Dist) -> bool:
    if not d.main:
        return False
    return config.progress if config.progress is not None else sys.stderr.isatty()


# --------------------------------------------------------------------------- one epoch
def train_one_epoch(model, loader, criterion, optimizer, device, epoch: int, show: bool) -> dict[str, float]:
    """One pass over the training loader; returns this rank's sums (loss, correct, count)."""
    import torch
    from tqdm import tqdm

    from export.models import AUX_LOSS_WEIGHT, set_frozen_bn_eval, split_outputs

    model.train()
    set_frozen_bn_eval(getattr(model, "module", model))
    loss_sum, correct, count = 0.0, 0, 0
    with interrupts_deferred():  # a half-built DataLoader iterator fails in __del__ with a traceback
        batches = iter(loader)
    bar = tqdm(batches, desc=f"epoch {epoch} train", unit="batch", total=len(loader), disable=not show, leave=False,
               dynamic_ncols=True)
    for x, y in bar:
        raise_if_interrupted()  # a Ctrl-C/SIGTERM whose exception Python swallowed in a fork hook
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        main, aux = split_outputs(model(x))
        loss = criterion(main, y) + sum(AUX_LOSS_WEIGHT * criterion(a, y) for a in aux)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise FetalPlanesError(
                f"training diverged at epoch {epoch}: the loss is {loss.item()}",
                hint="lower --lr, or check the data", exit_code=EXIT_FAILURE,
            )
        n = y.shape[0]
        loss_sum += float(loss.item()) * n
        correct += int((main.argmax(1) == y).sum().item())
        count += n
        bar.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}")
    bar.close()
    return {"loss_sum": loss_sum, "correct": correct, "count": count}


def evaluate_loss(model, loader, device, show: bool = False, desc: str = "val") -> dict[str, float]:
    """This rank's (unweighted) cross-entropy sum, correct count and count over ``loader`` in eval mode."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with interrupts_deferred():
        batches = iter(loader)
    with torch.no_grad():
        for x, y in tqdm(batches, desc=desc, unit="batch", total=len(loader), disable=not show, leave=False,
                         dynamic_ncols=True):
            raise_if_interrupted()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum").item())
            correct += int((logits.argmax(1) == y).sum().item())
            count += int(y.shape[0])
    return {"loss_sum": loss_sum, "correct": correct, "count": count}


# --------------------------------------------------------------------------- the run
def _open_data(config: TrainConfig):
    db = FetalPlanesDB.open(config.data)
    split = SplitConfig(
        task=config.task, seed=config.seed, val_fraction=config.val_fraction, brain_extra=config.brain_extra,
        max_train_patients=config.max_train_patients, max_per_split=config.max_per_split,
    )
    train_s = task_samples(db, "train", split)
    val_s = task_samples(db, "val", split)
    for name, samples in (("training", train_s), ("validation", val_s)):
        if not samples:
            raise FetalPlanesError(
                f"{config.data}: the {name} split of task '{config.task}' is empty",
                hint="use a dataset with more Train=1 patients (or raise --max-train-patients / --max-per-split)",
            )
    missing = db.find_image_problems([s.record for s in train_s + val_s], decode=False)["missing"]
    if missing:
        raise FetalPlanesError(
            f"{config.data}: {len(missing)} image(s) of the training/validation split are missing, e.g. {missing[0]}",
            hint="download the complete dataset (Images/ holds 12,400 PNGs), or make a phantom with "
            "`fetalplanes data phantom --out DIR`",
        )
    return db, split, train_s, val_s


def _check_resume(ckpt: dict, info: ModelInfo, fixed: dict, run_dir: Path) -> None:
    before = {
        "data_fingerprint": info.dataset_fingerprint, "arch": info.arch, "task": info.task,
        "input_size": info.input_size, "channels": info.channels,
        "normalization": info.normalization, "gray": info.gray, "interpolation": info.interpolation,
        "freeze_backbone": bool(info.extra.get("args", {}).get("freeze_backbone", False)),
    }
    changed = [f"{k}: {before[k]!r} -> {fixed[k]!r}" for k in RESUME_FIXED if before[k] != fixed[k]]
    if changed:
        raise FetalPlanesError(
            f"--resume: {run_dir / LAST} was trained with other settings ({'; '.join(changed)})",
            hint="resume with the original --data/--task/--arch/--image-size, or train into a new --out folder",
        )


def _read_resume_checkpoint(last_path: Path, best_path: Path, run_dir: Path):
    """last.pt for --resume; when it is damaged, the error says how to go on cleanly (best.pt or a fresh start)."""
    from export.checkpoint import read_checkpoint

    try:
        return read_checkpoint(last_path)
    except FetalPlanesError as exc:
        fresh = (f"or start over: remove the run folder (`rm -r {run_dir}`) or give a new --out, "
                 "and run the same command without --resume")
        try:
            best_epoch = int(read_checkpoint(best_path)[0].get("epoch", 0))
        except FetalPlanesError:
            hint = f"{best_path} is not readable either: {fresh}"
        else:
            hint = (f"continue from the best epoch instead: `cp {best_path} {last_path}` and re-run with --resume "
                    f"(training goes on after epoch {best_epoch}; later epochs are trained again), {fresh}")
        raise FetalPlanesError(f"--resume: {exc.message}; this last.pt is damaged", hint=hint) from None


def train(config: TrainConfig) -> Path:
    """Train one model; returns the path of the best checkpoint (lowest validation loss)."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler, Subset
    from torch.utils.data.distributed import DistributedSampler

    from export.checkpoint import code_version, read_checkpoint, save_checkpoint
    from export.data_torch import (
        AugmentConfig, ImageCache, SampleDataset, class_weights, normalization_from_mean, pixel_mean,
        opencv_fork_safe, train_cache_size, worker_init,
    )
    from export.models import build_model, check_pretrained, default_input_size, freeze_backbone, resolve_arch

    config.validate()
    arch = resolve_arch(config.arch)
    check_pretrained(arch, config.pretrained)
    input_size = config.image_size or default_input_size(arch)
    run_dir = Path(config.out)
    last_path, best_path = run_dir / LAST, run_dir / BEST
    if config.resume and not last_path.is_file():
        raise FetalPlanesError(
            f"--resume: {last_path} not found (nothing to resume)",
            hint="give the --out folder of an interrupted run, or drop --resume to start a new run",
        )
    if not config.resume and last_path.is_file():
        raise FetalPlanesError(
            f"--out {run_dir}: this folder already holds a run ({last_path})",
            hint="add --resume to continue it, or choose a new --out folder",
        )
    if str(config.pretrained).lower() not in ("none", "imagenet") and not Path(config.pretrained).is_file():
        raise FetalPlanesError(
            f"--pretrained: weights file {config.pretrained} not found",
            hint="give 'imagenet', 'none', or the path of an existing .pth/.pt weights file",
        )

    d, device = _setup_distributed(config.device)
    guards = ExitStack()
    try:
        db, split, train_s, val_s = _open_data(config)
        labels = list(labels_for(config.task))
        show = _progress_enabled(config, d)
        augment = AugmentConfig() if config.augment else None
        data_fp = fingerprint(db, split)
        resumed = None
        if config.resume:
            ckpt, old_info = _read_resume_checkpoint(last_path, best_path, run_dir)
            _check_resume(ckpt, old_info, {
                "data_fingerprint": data_fp, "arch": arch, "task": config.task, "input_size": input_size,
                "channels": 1, "normalization": config.normalization, "gray": config.gray,
                "interpolation": config.interpolation, "freeze_backbone": config.freeze_backbone,
            }, run_dir)
            resumed = (ckpt, old_info)

        train_cache = ImageCache(train_cache_size(input_size, augment), config.gray, config.interpolation)
        val_cache = ImageCache(input_size, config.gray, config.interpolation)
        if config.cache:
            threads = max(1, min(8, os.cpu_count() or 1))
            train_cache.fill([s.path for s in train_s], threads, show, "decode train")
            val_cache.fill([s.path for s in val_s], threads, show, "decode val")
        if resumed:
            mean, std = resumed[1].mean, resumed[1].std
        else:
            mean, std = normalization_from_mean(pixel_mean([s.path for s in train_s], train_cache))
        info = ModelInfo(
            task=config.task, labels=labels, arch=arch, input_size=input_size, mean=mean, std=std,
            normalization=config.normalization, gray=config.gray, interpolation=config.interpolation,
            dataset_fingerprint=data_fp, code_version=code_version(),
            extra={"args": {**asdict(config), "arch": arch, "image_size": input_size},
                   "train_images": len(train_s), "val_images": len(val_s)},
        )

        torch.manual_seed(config.seed)
        model = build_model(arch, len(labels), "none" if resumed else config.pretrained)
        if config.freeze_backbone:
            freeze_backbone(model, len(labels))
        if resumed:
            model.load_state_dict(resumed[0]["state_dict"])
        model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        if resumed:
            optimizer.load_state_dict(resumed[0]["optimizer"])

        weight = None
        if config.class_weights:
            weight = torch.tensor(class_weights([s.label for s in train_s], len(labels)), dtype=torch.float32, device=device)
        criterion = torch.nn.CrossEntropyLoss(weight=weight)

        train_ds = SampleDataset(train_s, info, augment, train_cache)
        val_ds = SampleDataset(val_s, info, None, val_cache)
        core = model
        if d.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(core, device_ids=[device.index] if device.type == "cuda" else None)
            train_sampler = DistributedSampler(train_ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=config.seed)
            val_part = Subset(val_ds, list(range(d.rank, len(val_ds), d.world)))
            per_rank = math.ceil(len(train_ds) / d.world)
        else:
            train_sampler = None
            val_part = val_ds
            per_rank = len(train_ds)
        loader_opts = dict(
            batch_size=config.batch_size, num_workers=config.workers, pin_memory=device.type == "cuda",
            worker_init_fn=worker_init, persistent_workers=config.workers > 0,
        )
        drop_last = per_rank % config.batch_size == 1 and per_rank > 1  # a batch of 1 breaks BatchNorm
        val_loader = DataLoader(val_part, shuffle=False, **loader_opts)

        history: list[dict] = []
        start_epoch, best_loss, best_epoch, stale = 1, math.inf, 0, 0
        if resumed:
            ck = resumed[0]
            history = list(ck.get("history", []))
            start_epoch = int(ck["epoch"]) + 1
            best_loss = float(ck.get("best_val_loss", math.inf))
            best_epoch = int(ck.get("best_epoch", 0))
            stale = int(ck.get("epochs_without_improvement", 0))
            _say(d, f"resuming {run_dir} after epoch {start_epoch - 1} (best val loss {best_loss:.4f} at epoch {best_epoch})")
        if d.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write_text(run_dir / CONFIG_JSON, json.dumps(info.to_dict(), indent=2))
            _say(d, f"training {arch} on {len(train_s)} images ({len(val_s)} for validation), {size_text(input_size)} px, "
                    f"task {config.task}, device {device}" + (f" x {d.world} processes" if d.enabled else "")
                    + f"; mean {mean:.2f}, std {std:.2f}")

        guards.enter_context(opencv_fork_safe(config.workers))  # before any DataLoader worker is forked
        stopped = "max_epochs"
        if stale >= config.patience:
            stopped = "early"
        epoch = start_epoch - 1
        try:
            for epoch in range(start_epoch, config.epochs + 1):
                if stopped == "early":
                    break
                raise_if_interrupted()
                # the epoch's randomness depends on (seed, epoch) only: a resumed run repeats an uninterrupted one
                torch.manual_seed(config.seed * 100003 + epoch)
                if train_sampler is not None:
                    train_sampler.set_epoch(epoch)
                    sampler = train_sampler
                else:
                    g = torch.Generator()
                    g.manual_seed(config.seed * 100003 + epoch)
                    sampler = RandomSampler(train_ds, generator=g)
                train_loader = DataLoader(train_ds, sampler=sampler, drop_last=drop_last, **{
                    **loader_opts, "persistent_workers": False})
                t0 = time.perf_counter()
                tr = train_one_epoch(model, train_loader, criterion, optimizer, device, epoch, show)
                train_s_time = time.perf_counter() - t0
                n_bn = recalibrate_batchnorm(core, train_loader, device, config.bn_batches)
                _average_batchnorm_across_ranks(core, d)
                va = evaluate_loss(core, val_loader, device, show, desc=f"epoch {epoch} val")
                tr_loss, tr_correct, tr_count, va_loss, va_correct, va_count = _all_reduce_sum(
                    [tr["loss_sum"], tr["correct"], tr["count"], va["loss_sum"], va["correct"], va["count"]], d, device)
                row = {
                    "epoch": epoch,
                    "train_loss": round(tr_loss / max(tr_count, 1), 6),
                    "train_acc": round(tr_correct / max(tr_count, 1), 6),
                    "val_loss": round(va_loss / max(va_count, 1), 6),
                    "val_acc": round(va_correct / max(va_count, 1), 6),
                    "lr": optimizer.param_groups[0]["lr"],
                    "train_images_per_s": round(tr_count / max(train_s_time, 1e-9), 2),
                    "epoch_s": round(time.perf_counter() - t0, 2),
                    "bn_batches": n_bn,
                    "best": False,
                }
                val_loss = va_loss / max(va_count, 1)
                if val_loss < best_loss:
                    best_loss, best_epoch, stale = val_loss, epoch, 0
                    row["best"] = True
                else:
                    stale += 1
                history.append(row)
                if stale >= config.patience:
                    stopped = "early"
                state = {
                    "epoch": epoch, "optimizer": optimizer.state_dict(), "best_val_loss": best_loss,
                    "best_epoch": best_epoch, "epochs_without_improvement": stale, "history": history,
                    "val_loss": val_loss, "val_acc": row["val_acc"],
                }
                if d.main:
                    if row["best"]:
                        save_checkpoint(best_path, core, info, **state)
                    save_checkpoint(last_path, core, info, **state)
                    write_metrics(run_dir, history, _summary(best_loss, best_epoch, stopped, epoch, config))
                _say(d, f"epoch {epoch}/{config.epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f} | "
                        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}" + (" *best*" if row["best"] else "")
                        + f" | {row['epoch_s']:.1f} s")
                if d.enabled:
                    import torch.distributed as dist

                    dist.barrier()
        except (KeyboardInterrupt, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and not interrupt_pending():
                raise
            _say(d, f"\ninterrupted during epoch {epoch}; {last_path} holds the last finished epoch: "
                    f"continue with the same command plus --resume")
            if isinstance(exc, RuntimeError):  # a DataLoader worker stopped by the same signal (process group)
                raise KeyboardInterrupt(interrupt_pending()) from None
            raise
        if stopped == "early":
            _say(d, f"early stop: no better validation loss for {config.patience} epochs")
        if d.main:
            write_metrics(run_dir, history, _summary(best_loss, best_epoch, stopped, epoch, config))
            _say(d, f"best checkpoint: {best_path} (epoch {best_epoch}, val loss {best_loss:.4f})")
        return best_path
    finally:
        guards.close()
        if d.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _summary(best_loss: float, best_epoch: int, stopped: str, epoch: int, config: TrainConfig) -> dict:
    return {
        "best_val_loss": best_loss if math.isfinite(best_loss) else None,
        "best_epoch": best_epoch, "last_epoch": epoch, "stopped": stopped,
        "checkpoint": BEST, "config": asdict(config),
    }


def config_from_args(args) -> TrainConfig:
    """A TrainConfig from an argparse namespace (fields of the same names)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
