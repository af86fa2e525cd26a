"""PyTorch datasets over a task's split of FETAL_PLANES_DB.

- Evaluation path: exactly :func:`edge.preprocess.prepare` (the edge runtime's preprocessing).
  The cache holds ``resize_gray(read_gray(path, gray), (H, W), interpolation)`` at the model's input
  size, and ``prepare`` of an image already at that size is ``normalize`` of it: the same numbers as on
  the box.
- Training path: augmentations on the gray uint8 image (random horizontal flip, crop 0-20 %,
  translate 0-10 px, rotate +-15 deg), then :func:`edge.preprocess.resize_gray` and
  :func:`edge.preprocess.normalize`.
- Normalisation "dataset": ``mean`` = the training images' pixel mean, ``std = max(mean, 255 - mean)``,
  so that every input lies in [-1, 1]; "per_image": each image standardised on its own.
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

from fetaldata.splits import Sample
from edge.modelinfo import ModelInfo
from edge.preprocess import normalize, prepare, read_gray, resize_gray

Size = Union[int, Tuple[int, int], List[int]]


def hw(size: Size) -> tuple[int, int]:
    """An int (square) or (height, width) -> (height, width)."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    return int(size[0]), int(size[1])


@dataclass
class AugmentConfig:
    """The paper's augmentations (all on the gray uint8 image)."""

    flip: bool = True  # random horizontal flip, p = 0.5
    max_crop: float = 0.2  # remove 0..max_crop of each side's length (random position), then resize back
    max_translate_px: float = 10.0  # at the model's input size
    max_rotate_deg: float = 15.0


def normalization_from_mean(mean: float) -> tuple[float, float]:
    """(mean, std) with ``std = max(mean, 255 - mean)``: pixels 0..255 map into [-1, 1]."""
    mean = float(mean)
    return mean, float(max(mean, 255.0 - mean, 1.0))


class ImageCache:
    """Decoded gray images resized to ``size`` (an int: square; (height, width)), the whole image as the
    edge does, in memory. ``gray`` and ``interpolation`` as in :class:`~edge.modelinfo.ModelInfo`."""

    def __init__(self, size: Size, gray: str = "luma", interpolation: str = "area"):
        self.hw = hw(size)
        self.gray = gray
        self.interpolation = interpolation
        self._images: dict[str, np.ndarray] = {}

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the cached images."""
        return self.hw

    def get(self, path: str | Path) -> np.ndarray:
        key = str(path)
        image = self._images.get(key)
        if image is None:
            image = resize_gray(read_gray(key, self.gray), self.hw, self.interpolation)
            self._images[key] = image
        return image

    def fill(self, paths: Sequence[str | Path], threads: int = 4, progress: bool = False, desc: str = "cache") -> None:
        """Decode ``paths`` up front (threads: OpenCV releases the GIL), so DataLoader workers share them."""
        todo = [str(p) for p in paths if str(p) not in self._images]
        if not todo:
            return
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=desc, unit="img", leave=False)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for _ in pool.map(self.get, todo):
                if bar is not None:
                    bar.update()
        if bar is not None:
            bar.close()

    def __len__(self) -> int:
        return len(self._images)


def pixel_mean(paths: Sequence[str | Path], cache: ImageCache) -> float:
    """Mean pixel value (0-255) of the images, each weighted equally (at the cache's size)."""
    if not paths:
        return 127.5
    return float(np.mean([cache.get(p).mean(dtype=np.float64) for p in paths]))


def augment_gray(gray: np.ndarray, out_size: Size, aug: AugmentConfig, rng: np.random.Generator,
                 interpolation: str = "area") -> np.ndarray:
    """Random flip, crop, resize to ``out_size`` (int or (height, width)), rotate and translate a gray uint8 image."""
    import cv2

    out_h, out_w = hw(out_size)
    img = gray
    if aug.flip and rng.random() < 0.5:
        img = img[:, ::-1]
    if aug.max_crop > 0:
        h, w = img.shape
        frac = rng.uniform(0.0, aug.max_crop)
        ch, cw = max(1, int(round(h * (1 - frac)))), max(1, int(round(w * (1 - frac))))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        img = img[y0 : y0 + ch, x0 : x0 + cw]
    img = resize_gray(np.ascontiguousarray(img), (out_h, out_w), interpolation)
    angle = rng.uniform(-aug.max_rotate_deg, aug.max_rotate_deg) if aug.max_rotate_deg > 0 else 0.0
    tx, ty = (rng.uniform(-aug.max_translate_px, aug.max_translate_px, 2) if aug.max_translate_px > 0 else (0.0, 0.0))
    if angle or tx or ty:
        m = cv2.getRotationMatrix2D(((out_w - 1) / 2.0, (out_h - 1) / 2.0), float(angle), 1.0)
        m[0, 2] += tx
        m[1, 2] += ty
        img = cv2.warpAffine(img, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return img


def train_cache_size(input_size: Size, aug: AugmentConfig | None) -> tuple[int, int]:
    """(height, width) to cache training images at: a bit larger than the input, so a 20 % crop keeps
    full resolution."""
    h, w = hw(input_size)
    if aug is None or aug.max_crop <= 0:
        return h, w
    return int(math.ceil(h / (1.0 - aug.max_crop))), int(math.ceil(w / (1.0 - aug.max_crop)))


class SampleDataset:
    """A torch ``Dataset`` of (float32 tensor (C,H,W), label) over a list of samples.

    ``augment`` None: the evaluation path (:func:`edge.preprocess.prepare`). Otherwise the training
    path. Random numbers come from torch's generator (seeded per DataLoader worker by torch).
    """

    def __init__(self, samples: Sequence[Sample], info: ModelInfo, augment: AugmentConfig | None = None,
                 cache: ImageCache | None = None):
        self.samples = list(samples)
        self.info = info
        self.augment = augment
        size = info.input_hw if augment is None else train_cache_size(info.input_hw, augment)
        if cache is not None and (cache.hw, cache.gray, cache.interpolation) != (size, info.gray, info.interpolation):
            raise ValueError(f"cache holds {cache.hw} {cache.gray}/{cache.interpolation} images, the dataset needs "
                             f"{size} {info.gray}/{info.interpolation}")
        self.cache = cache or ImageCache(size, info.gray, info.interpolation)

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def array(self, index: int) -> np.ndarray:
        """The input tensor of sample ``index`` as numpy (1, C, H, W)."""
        gray = self.cache.get(self.samples[index].path)
        if self.augment is None:
            return prepare(gray, self.info)  # gray is already H x W: identical to prepare(the file's image)
        import torch

        seed = int(torch.randint(0, 2**62, (1,)).item())
        image = augment_gray(gray, self.info.input_hw, self.augment, np.random.default_rng(seed), self.info.interpolation)
        return normalize(image, self.info)

    def __getitem__(self, index: int):
        import torch

        return torch.from_numpy(self.array(index)[0]), int(self.samples[index].label)


def class_weights(labels: Sequence[int], num_classes: int) -> list[float]:
    """Inverse-frequency weights ``n / (k * n_c)`` (classes absent from ``labels`` get weight 0)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(num_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return [float(x) for x in w]


@contextmanager
def opencv_fork_safe(workers: int):
    """While DataLoader workers may be forked: OpenCV single-threaded in this (the parent) process.

    OpenCV's thread pool (pthreads) does not survive ``fork``: a worker that inherits a pool the parent
    had started (decoding an RGBA PNG or resizing a large image starts it) hangs for ever in its first
    OpenCV call that touches the pool (``cv2.setNumThreads`` included). ``setNumThreads(1)`` in the
    parent stops the pool's threads before any worker is forked; the parent's own count is restored on
    exit. Nothing is changed when ``workers`` is 0 (no fork).
    """
    if workers <= 0:
        yield
        return
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


#: the process that imported this module: the trainer, whose forked DataLoader workers inherit the value
_TRAINER_PID = os.getpid()


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (no orphaned workers, even stuck ones).

    A trainer killed between the fork and the ``prctl`` would leave the worker without that signal: a forked
    worker whose parent is no longer the trainer exits at once."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl here
        return
    if os.getpid() != _TRAINER_PID and os.getppid() != _TRAINER_PID:  # the trainer died before the prctl
        os._exit(1)


def worker_init(_worker_id: int) -> None:
    """DataLoader workers: leave Ctrl-C to the trainer, and die with it.

    A terminal's Ctrl-C signals the whole process group: a worker that died of it first made the trainer
    fail with "DataLoader worker exited unexpectedly" and a traceback instead of its clean interruption
    (last.pt kept, exit 130). SIGTERM keeps its default (the DataLoader stops its workers with it; the
    trainer treats a worker lost while it is itself interrupted as the interruption). Should the trainer
    die first, PR_SET_PDEATHSIG ends them (no orphans, even one stuck in a library call).

    OpenCV's thread count is not set here: the trainer forks its workers inside
    :func:`opencv_fork_safe`, so they inherit a single-threaded OpenCV, and ``cv2.setNumThreads`` on a
    pool copied by ``fork`` is exactly the call that hangs.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
