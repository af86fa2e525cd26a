"""Image -> input tensor: the single preprocessing chain of the project.

``prepare(image, info)`` = ``normalize(model_resize(model_gray(image, info), info), info)``:
gray as the model was trained (``info.gray``), the whole image resized to ``info.input_hw``
(``info.interpolation``), then ``info.normalization``. The live loop, classify, calibration and
training's evaluation path call it (the loop calls its three steps, as it keeps the resized gray image
for freeze detection); training's augmentations act on the gray uint8 image and end with the same
:func:`normalize`. What the steps do is read from a :class:`~edge.modelinfo.ModelInfo`, never
hard-coded by a consumer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.errors import FetalPlanesError
from edge.modelinfo import ModelInfo


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the box
        raise FetalPlanesError(
            f"OpenCV (cv2) is not importable ({exc})",
            hint="pip install 'fetalplanes[opencv]', or on Jetson use JetPack's system OpenCV (see docs/deploy.md)",
        ) from None
    return cv2


#: implausible dynamic range: after scaling to 8 bits, the 1st to 99th percentile spans fewer gray levels than this
MIN_SPREAD_8BIT = 16
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logging.getLogger("fetalplanes.preprocess").warning(message)


def _deep_to_uint8(image: np.ndarray, source: str) -> np.ndarray:
    """An integer image of more than 8 bits -> uint8, scaled by its significant bits.

    The bits are those its largest value needs (at least 8): 0-255 stored as uint16 stays as it is, a
    12-bit image stored in 16 bits (0..4095) is scaled by 255/4095, a full 16-bit one by 255/65535. So one
    scanner's frames keep their relative brightness (no per-image stretch). A warning (once per process
    and kind) when the result has almost no contrast: a few outlier pixels setting the depth, or a flat image.
    """
    cv2 = _cv2()
    if np.issubdtype(image.dtype, np.signedinteger):
        image = np.clip(image, 0, None)
    hi = int(image.max())
    bits = max(8, hi.bit_length())
    if bits > 16:
        image = np.clip(image.astype(np.float64) * (65535.0 / ((1 << bits) - 1)), 0, 65535).astype(np.uint16)
        hi, bits = int(image.max()), 16
    image = image.astype(np.uint16, copy=False)
    out = cv2.convertScaleAbs(image, alpha=255.0 / ((1 << bits) - 1)) if bits > 8 else image.astype(np.uint8)
    sample = out[::4, ::4] if out.ndim == 2 else out[::4, ::4, 0]
    lo, p99 = np.percentile(sample, (1, 99)) if sample.size else (0.0, 0.0)
    if p99 - lo < MIN_SPREAD_8BIT:
        name = f"{source}: " if source else ""
        _warn_once(
            f"spread-{bits}",
            f"{name}{image.dtype.name} image with values up to {hi} (read as {bits}-bit) has almost no contrast "
            f"after scaling to 8 bits (1st-99th percentile {lo:.0f}..{p99:.0f} of 255); predictions on it are "
            "unreliable. Check the export's bit depth (a few bright outlier pixels, or a flat image). "
            "(said once per run)",
        )
    return out


def to_gray(image: np.ndarray, source: str = "") -> np.ndarray:
    """Any 8/16-bit gray, BGR or BGRA image (H,W[,C]) -> 8-bit gray (H,W), contiguous.

    Deeper than 8 bits: scaled by the image's significant bits (see :func:`_deep_to_uint8`); ``source``
    (a file name) only names the image in a warning.
    """
    cv2 = _cv2()
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        raise FetalPlanesError("empty image", hint="check the source: it delivered no pixels")
    if image.dtype == np.uint8:
        pass
    elif np.issubdtype(image.dtype, np.integer) or image.dtype == np.bool_:
        image = _deep_to_uint8(image.astype(np.uint8) if image.dtype == np.bool_ else image, source)
    else:
        if np.issubdtype(image.dtype, np.floating) and float(np.nanmax(image)) <= 1.0:
            image = image * 255.0
        image = np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise FetalPlanesError(f"unsupported image shape {image.shape}", hint="give gray, BGR or BGRA images")


def read_gray(path: str | Path, gray: str = "luma") -> np.ndarray:
    """Read an image file (PNG/JPEG/..., gray, RGB or RGBA, 8 or 16 bit; DICOM) as 8-bit gray (``gray``: see
    :func:`gray_image`)."""
    from edge.images import decode_image

    path = Path(path)
    if not path.is_file():
        raise FetalPlanesError(f"{path}: image file not found", hint="check the path, or the dataset's Images/ folder")
    image = decode_image(path, hint="replace the file with the original from the dataset, or remove its row")
    return gray_image(image, gray, source=str(path))


def gray_image(image: np.ndarray, mode: str = "luma", source: str = "") -> np.ndarray:
    """Any image -> 8-bit gray (H,W): ``mode`` "luma" = :func:`to_gray` (OpenCV's BGR2GRAY), "mean" = the
    mean of the colour channels (alpha ignored; gray images pass through), bit depth as :func:`to_gray`."""
    if mode == "mean" and isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] in (3, 4):
        colour = image[:, :, :3]
        mean = colour.mean(axis=2, dtype=np.float64)
        if np.issubdtype(image.dtype, np.integer):
            mean = np.rint(mean).astype(image.dtype)
        return to_gray(mean, source=source)
    if mode not in ("luma", "mean"):
        raise FetalPlanesError(f"unknown gray conversion {mode!r}", hint="use 'luma' or 'mean'")
    return to_gray(image, source=source)


def resize_gray(gray: np.ndarray, size: int | tuple[int, int], interpolation: str = "area") -> np.ndarray:
    """Resize a gray image, whole (aspect not kept), to ``size``: an int (square) or (height, width).

    ``interpolation`` "area": INTER_AREA when shrinking in both directions, else bilinear; "linear":
    always bilinear.
    """
    cv2 = _cv2()
    h, w = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if gray.shape[0] == h and gray.shape[1] == w:
        return gray
    if interpolation == "area":
        interp = cv2.INTER_AREA if (gray.shape[0] >= h and gray.shape[1] >= w) else cv2.INTER_LINEAR
    elif interpolation == "linear":
        interp = cv2.INTER_LINEAR
    else:
        raise FetalPlanesError(f"unknown interpolation {interpolation!r}", hint="use 'area' or 'linear'")
    return cv2.resize(gray, (w, h), interpolation=interp)


def model_gray(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Step 1 of :func:`prepare`: the image as 8-bit gray, converted as the model was trained."""
    return gray_image(image, info.gray)


def model_resize(gray: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Step 2 of :func:`prepare`: the whole gray image at the model's input size (H, W)."""
    return resize_gray(gray, info.input_hw, info.interpolation)


def normalize(gray_resized: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Step 3 of :func:`prepare`: uint8 (H,W) -> float32 tensor (1,C,H,W) or (1,H,W,C).

    "dataset": ``(pixel - mean) / std``; "per_image": ``(g - g.mean()) / max(g.std(), 1e-6) * scale``.
    """
    g = gray_resized.astype(np.float32)
    if info.normalization == "per_image":
        mu = g.mean(dtype=np.float64)
        sd = max(float(g.std(dtype=np.float64)), 1e-6)
        x = (g - np.float32(mu)) * np.float32(float(info.scale) / sd)
    else:
        x = (g - np.float32(info.mean)) * np.float32(1.0 / info.std)
    if info.channels == 3:
        x = np.repeat(x[..., None], 3, axis=2)
    else:
        x = x[..., None]
    if info.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def prepare(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Any image (gray/BGR/BGRA) -> the model's input tensor of batch 1: the one preprocessing chain."""
    return normalize(model_resize(model_gray(image, info), info), info)


def prepare_batch(images: list[np.ndarray], info: ModelInfo) -> np.ndarray:
    """Several images -> one input tensor of batch len(images)."""
    return np.concatenate([prepare(im, info) for im in images], axis=0)


#: the former names of :func:`prepare` / :func:`prepare_batch`
preprocess = prepare
preprocess_batch = prepare_batch


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def to_probabilities(outputs: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The model's raw output -> class probabilities, per the metadata's ``outputs``."""
    outputs = np.asarray(outputs, dtype=np.float32)
    return outputs if info.outputs == "probabilities" else softmax(outputs)
