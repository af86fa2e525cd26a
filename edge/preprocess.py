"""Image -> input tensor: the single preprocessing path of the project.

Training's evaluation path, calibration and the live loop all call
:func:`preprocess`; training's augmentations act on the gray uint8 image
before the same :func:`normalize`. What the steps are is read from a
:class:`~edge.modelinfo.ModelInfo`, never hard-coded by a consumer.
"""

from __future__ import annotations

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


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any 8/16-bit gray, BGR or BGRA image (H,W[,C]) -> 8-bit gray (H,W), contiguous."""
    cv2 = _cv2()
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        raise FetalPlanesError("empty image", hint="check the source: it delivered no pixels")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and float(np.nanmax(image)) <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise FetalPlanesError(f"unsupported image shape {image.shape}", hint="give gray, BGR or BGRA images")


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file (PNG/JPEG/..., gray, RGB or RGBA, 8 or 16 bit) as 8-bit gray."""
    cv2 = _cv2()
    path = Path(path)
    if not path.is_file():
        raise FetalPlanesError(f"{path}: image file not found", hint="check the path, or the dataset's Images/ folder")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise FetalPlanesError(
            f"{path}: not a readable image (corrupt or unsupported format)",
            hint="replace the file with the original from the dataset, or remove its row",
        )
    return to_gray(image)


def resize_gray(gray: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Resize an 8-bit gray image to the model's square input (the whole image, INTER_AREA)."""
    cv2 = _cv2()
    s = info.input_size
    if gray.shape[0] == s and gray.shape[1] == s:
        return gray
    interp = cv2.INTER_AREA if (gray.shape[0] >= s and gray.shape[1] >= s) else cv2.INTER_LINEAR
    return cv2.resize(gray, (s, s), interpolation=interp)


def normalize(gray_resized: np.ndarray, info: ModelInfo) -> np.ndarray:
    """uint8 (S,S) -> float32 tensor (1,C,S,S) or (1,S,S,C), ``(pixel - mean) / std``."""
    x = (gray_resized.astype(np.float32) - np.float32(info.mean)) * np.float32(1.0 / info.std)
    if info.channels == 3:
        x = np.repeat(x[..., None], 3, axis=2)
    else:
        x = x[..., None]
    if info.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def preprocess(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Any image (gray/BGR/BGRA) -> the model's input tensor of batch 1."""
    return normalize(resize_gray(to_gray(image), info), info)


def preprocess_batch(images: list[np.ndarray], info: ModelInfo) -> np.ndarray:
    """Several images -> one input tensor of batch len(images)."""
    return np.concatenate([preprocess(im, info) for im in images], axis=0)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def to_probabilities(outputs: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The model's raw output -> class probabilities, per the metadata's ``outputs``."""
    outputs = np.asarray(outputs, dtype=np.float32)
    return outputs if info.outputs == "probabilities" else softmax(outputs)
