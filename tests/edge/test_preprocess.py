"""edge.preprocess: the one chain prepare(image, info) — gray modes, sizes, interpolations, normalisations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import FetalPlanesError
from edge.labels import PLANES
from edge.modelinfo import ModelInfo
from edge.preprocess import gray_image, model_gray, model_resize, normalize, prepare, prepare_batch, read_gray, resize_gray


def info(**kw) -> ModelInfo:
    base = dict(task="planes", labels=list(PLANES), arch="x", input_size=[24, 32], mean=100.0, std=50.0)
    return ModelInfo(**{**base, **kw})


def colour(h=60, w=80, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 200  # blue
    img[..., 1] = rng.integers(0, 256, (h, w))
    img[..., 2] = 10  # red
    return img


def test_gray_modes_luma_and_mean():
    img = colour()
    luma = gray_image(img, "luma")
    mean = gray_image(img, "mean")
    assert np.array_equal(luma, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    expected = np.rint(img.astype(np.float64).mean(axis=2)).astype(np.uint8)
    assert np.array_equal(mean, expected)
    assert not np.array_equal(luma, mean)  # blue and red weigh differently in luma
    bgra = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
    assert np.array_equal(gray_image(bgra, "mean"), expected)  # alpha ignored
    gray = img[..., 1].copy()
    assert np.array_equal(gray_image(gray, "mean"), gray) and np.array_equal(gray_image(gray, "luma"), gray)
    with pytest.raises(FetalPlanesError, match="unknown gray conversion 'red'"):
        gray_image(img, "red")


def test_read_gray_with_mean_mode(tmp_path):
    img = colour()
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), img)
    assert np.array_equal(read_gray(path, "mean"), gray_image(img, "mean"))
    assert np.array_equal(read_gray(path), gray_image(img, "luma"))


def test_resize_gray_takes_a_size_rows_by_columns():
    g = np.random.default_rng(1).integers(0, 256, (90, 120)).astype(np.uint8)
    assert resize_gray(g, 32).shape == (32, 32)
    assert resize_gray(g, (24, 40)).shape == (24, 40)
    assert resize_gray(g, (90, 120)) is g  # already there
    # area when shrinking (the default), bilinear always for "linear", bilinear when enlarging
    assert np.array_equal(resize_gray(g, (24, 40)), cv2.resize(g, (40, 24), interpolation=cv2.INTER_AREA))
    assert np.array_equal(resize_gray(g, (24, 40), "linear"), cv2.resize(g, (40, 24), interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(resize_gray(g, (100, 200)), cv2.resize(g, (200, 100), interpolation=cv2.INTER_LINEAR))
    assert not np.array_equal(resize_gray(g, (24, 40)), resize_gray(g, (24, 40), "linear"))
    with pytest.raises(FetalPlanesError, match="unknown interpolation 'cubic'"):
        resize_gray(g, 16, "cubic")


def test_dataset_normalisation():
    g = np.random.default_rng(2).integers(0, 256, (24, 32)).astype(np.uint8)
    x = normalize(g, info())
    assert x.shape == (1, 1, 24, 32) and x.dtype == np.float32
    assert np.allclose(x[0, 0], (g.astype(np.float32) - 100.0) / 50.0, atol=1e-6)


def test_per_image_normalisation():
    g = np.random.default_rng(3).integers(0, 200, (24, 32)).astype(np.uint8)
    x = normalize(g, info(normalization="per_image", scale=255.0))[0, 0]
    f = g.astype(np.float64)
    assert np.allclose(x, (f - f.mean()) / f.std() * 255.0, rtol=1e-5, atol=1e-3)
    assert abs(float(x.mean())) < 1e-2 and float(x.std()) == pytest.approx(255.0, rel=1e-4)
    # mean/std of the description play no part; a brighter copy of the image gives the same input
    y = normalize(g + np.uint8(40), info(normalization="per_image", mean=3, std=9))
    assert np.allclose(y[0, 0] * 255.0, x, rtol=1e-5, atol=1e-3)
    # a flat image is not a division by zero
    flat = normalize(np.full((24, 32), 90, np.uint8), info(normalization="per_image", scale=255.0))
    assert np.all(np.isfinite(flat)) and np.all(flat == 0)


def test_channels_and_layout():
    g = np.random.default_rng(4).integers(0, 256, (24, 32)).astype(np.uint8)
    x3 = normalize(g, info(channels=3))
    assert x3.shape == (1, 3, 24, 32) and np.array_equal(x3[0, 0], x3[0, 2])
    assert normalize(g, info(layout="NHWC")).shape == (1, 24, 32, 1)


@pytest.mark.parametrize("gray", ["luma", "mean"])
@pytest.mark.parametrize("normalization", ["dataset", "per_image"])
@pytest.mark.parametrize("interpolation", ["area", "linear"])
def test_prepare_is_the_three_steps(gray, normalization, interpolation):
    img = colour(seed=5)
    i = info(gray=gray, normalization=normalization, interpolation=interpolation, scale=2.0)
    x = prepare(img, i)
    assert x.shape == i.input_shape(1) == (1, 1, 24, 32)
    assert np.array_equal(x, normalize(model_resize(model_gray(img, i), i), i))
    step_by_step = normalize(resize_gray(gray_image(img, gray), (24, 32), interpolation), i)
    assert np.array_equal(x, step_by_step)
    assert np.array_equal(prepare_batch([img, img], i), np.concatenate([x, x]))


def test_each_setting_changes_the_input():
    img = colour(seed=6)
    base = prepare(img, info())
    for change in ({"gray": "mean"}, {"interpolation": "linear"}, {"normalization": "per_image"}):
        assert not np.allclose(prepare(img, info(**change)), base), change
