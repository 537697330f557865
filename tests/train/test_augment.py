"""Augmentation presets: shapes, reproducibility, and what the strong rotation puts in corners."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shotlab.core.errors import InputError
from shotlab.runtime.contract import Preprocessing
from shotlab.train.augment import PRESETS, TrainTransform, build_preset

CONTRACT = Preprocessing(input_size=(48, 64), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def striped(height=80, width=100) -> Image.Image:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, ::7] = (200, 40, 40)
    pixels[::5] += np.uint8(30)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_gives_the_contract_size(preset):
    out = TrainTransform(CONTRACT, preset)(striped())
    assert out.shape == (3, 48, 64) and out.dtype == np.float32


def test_no_augmentation_is_exactly_the_evaluation_input():
    image = striped()
    assert np.array_equal(TrainTransform(CONTRACT, "none")(image), CONTRACT.to_array(image))


def test_the_same_seed_gives_the_same_augmentation():
    image = np.asarray(striped())
    first = build_preset("strong", 48, 64, seed=3)(image=image)["image"]
    again = build_preset("strong", 48, 64, seed=3)(image=image)["image"]
    other = build_preset("strong", 48, 64, seed=4)(image=image)["image"]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_strong_rotation_reflects_into_the_corners_instead_of_painting_them_black():
    import albumentations as A

    white = np.full((64, 64, 3), 255, np.uint8)
    pipeline = build_preset("strong", 64, 64, seed=0)
    rotate = next(t for t in pipeline.transforms if isinstance(t, A.Affine))
    rotate.p = 1.0
    for seed in range(5):
        rotate.set_random_seed(seed)
        out = rotate(image=white)["image"]
        assert out.min() >= 250, f"seed {seed}: corner pixels {out[[0, 0, -1, -1], [0, -1, 0, -1]]}"


def test_an_unknown_preset_is_named():
    with pytest.raises(InputError, match="unknown augmentation preset 'wild'.*none, light"):
        TrainTransform(CONTRACT, "wild")
