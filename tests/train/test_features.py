"""Classical features: shapes, values, inputs (images or paths), parameter checks, registry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from shotlab.core.errors import BadImageError, InputError
from shotlab.train.features import (CLASSICAL_FEATURES, ColorHistogram, HogFeatures,
                                    PixelFeatures, make_features)


def noise_images(n: int, *, size=(40, 30), seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            for _ in range(n)]


def solid(rgb, size=(20, 10)) -> Image.Image:
    return Image.new("RGB", size, rgb)


@pytest.mark.parametrize("transformer, width", [
    (PixelFeatures(), 32 * 32 * 3),
    (PixelFeatures(size=8, grayscale=True), 64),
    (ColorHistogram(), 512),
    (ColorHistogram(bins=4, hsv=True), 128),
    (HogFeatures(), 7 * 7 * 2 * 2 * 9),
    (HogFeatures(size=32, orientations=6, pixels_per_cell=(8, 4), cells_per_block=1), 4 * 8 * 6),
])
def test_shape_dtype_and_feature_names(transformer, width):
    images = noise_images(3)
    assert transformer.fit(images) is transformer
    out = transformer.transform(images)
    assert out.shape == (3, width) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert len(transformer.get_feature_names_out()) == width
    assert transformer.fit_transform(images).shape == (3, width)


def test_transform_works_unfitted_and_on_an_empty_list():
    assert PixelFeatures().transform(noise_images(1)).shape == (1, 3072)
    assert HogFeatures().transform([]).shape == (0, 1764)
    assert ColorHistogram().transform([]).dtype == np.float32


def test_pixels_are_in_unit_range_and_downscaling_averages():
    # A 1-pixel checkerboard: sampling would give all black or all white; averaging gives grey.
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = PixelFeatures(size=32).transform([Image.fromarray(np.dstack([checker] * 3))])
    assert np.allclose(out, 0.5, atol=0.02)
    white = PixelFeatures(size=4).transform([solid((255, 255, 255))])
    assert np.allclose(white, 1.0)


def test_pixels_layout_is_row_major_channels_last():
    pixels = np.zeros((2, 2, 3), np.uint8)
    pixels[0, 1] = (255, 0, 0)  # top right is red
    out = PixelFeatures(size=2).transform([Image.fromarray(pixels)])[0]
    assert out.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    gray = PixelFeatures(size=2, grayscale=True).transform([Image.fromarray(pixels)])[0]
    assert gray[1] == pytest.approx(76 / 255, abs=1 / 255) and gray[[0, 2, 3]].tolist() == [0, 0, 0]


def test_colour_histogram_is_joint_and_l1_normalised():
    red, yellow = ColorHistogram().transform([solid((255, 0, 0)), solid((255, 255, 0))])
    assert red.sum() == pytest.approx(1) and red[7 * 64 + 0 * 8 + 0] == pytest.approx(1)
    assert yellow[7 * 64 + 7 * 8 + 0] == pytest.approx(1)
    # Half red, half green: a joint histogram has two cells, not a yellow one.
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:2, :, 0] = 255
    pixels[2:, :, 1] = 255
    mixed = ColorHistogram(bins=2).transform([Image.fromarray(pixels)])[0]
    assert mixed.tolist() == [0, 0, 0.5, 0, 0.5, 0, 0, 0]  # cells (0,1,0) and (1,0,0)


def test_colour_histogram_with_hsv_appends_a_second_half():
    out = ColorHistogram(bins=4, hsv=True).transform(noise_images(2))
    assert np.allclose(out[:, :64].sum(axis=1), 0.5) and np.allclose(out[:, 64:].sum(axis=1), 0.5)
    red = ColorHistogram(bins=4, hsv=True).transform([solid((255, 0, 0))])[0]
    assert red[64 + 0 * 16 + 3 * 4 + 3] == pytest.approx(0.5)  # hue 0, full saturation and value


def test_hog_matches_skimage_on_the_grayscale_resize():
    from skimage.feature import hog

    image = noise_images(1, size=(80, 50))[0]
    gray = np.asarray(image.resize((64, 64), Image.Resampling.BILINEAR).convert("L"), np.float32)
    expected = hog(gray / 255, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
                   block_norm="L2-Hys")
    assert np.allclose(HogFeatures().transform([image])[0], expected, atol=1e-6)


def test_paths_and_images_give_the_same_features(tmp_path):
    images = noise_images(3)
    paths = []
    for i, image in enumerate(images):
        image.save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    mixed = [str(paths[0]), paths[1], images[2]]
    for transformer in (PixelFeatures(), ColorHistogram(), HogFeatures()):
        assert np.array_equal(transformer.transform(images), transformer.transform(mixed))
        assert np.array_equal(transformer.transform(np.asarray(mixed, dtype=object)),
                              transformer.transform(images))


def test_any_pil_mode_is_converted_to_rgb():
    rgb = noise_images(1)[0]
    for mode in ("L", "RGBA", "P", "CMYK"):
        out = ColorHistogram().transform([rgb.convert(mode)])
        assert out.shape == (1, 512) and out.sum() == pytest.approx(1)
    # A transparent image is composited on white, as load_rgb does.
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert PixelFeatures(size=2).transform([clear]) == pytest.approx(1.0)


def test_bad_inputs_raise_input_error_naming_the_problem(tmp_path):
    with pytest.raises(InputError, match="single Image; wrap one image in a list"):
        PixelFeatures().transform(noise_images(1)[0])
    with pytest.raises(InputError, match="single str"):
        PixelFeatures().transform("photo.jpg")
    with pytest.raises(InputError, match="uint8 array of shape .*Image.fromarray"):
        PixelFeatures().transform(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="image 1 is a int; expected a PIL image or a path"):
        PixelFeatures().transform([noise_images(1)[0], 3])
    with pytest.raises(BadImageError, match="missing.png: file not found"):
        PixelFeatures().transform([tmp_path / "missing.png"])


@pytest.mark.parametrize("transformer, message", [
    (PixelFeatures(size=0), "The 'size' parameter of PixelFeatures must be an int in the range "
                            "[1, inf). Got 0 instead."),
    (PixelFeatures(grayscale="yes"), "The 'grayscale' parameter of PixelFeatures must be an "
                                     "instance of 'bool'. Got 'yes' instead."),
    (ColorHistogram(bins=65), "The 'bins' parameter of ColorHistogram must be an int in the "
                              "range [1, 64]. Got 65 instead."),
    (ColorHistogram(bins=2.5), "The 'bins' parameter of ColorHistogram must be an int"),
    (HogFeatures(pixels_per_cell=(8, 0)), "The 'pixels_per_cell' parameter of HogFeatures must be"
                                          " an int or a pair of ints >= 1. Got (8, 0) instead."),
    (HogFeatures(size=12), "The 'size' parameter of HogFeatures must be at least pixels_per_cell"
                           " * cells_per_block = 16 (one whole block). Got 12 instead."),
])
def test_bad_parameters_fail_on_fit_in_sklearn_words(transformer, message):
    with pytest.raises(InputError) as caught:
        transformer.fit(noise_images(1))
    assert str(caught.value).startswith(message)


def test_sklearn_estimator_protocol():
    hog = HogFeatures(size=32, cells_per_block=(1, 1))
    assert hog.get_params() == {"size": 32, "orientations": 9, "pixels_per_cell": (8, 8),
                                "cells_per_block": (1, 1)}
    twin = clone(hog)
    assert twin is not hog and twin.get_params() == hog.get_params()
    pipeline = Pipeline([("features", PixelFeatures()), ("passthrough", "passthrough")])
    pipeline.set_params(features__size=4, features__grayscale=True)
    assert pipeline.fit_transform(noise_images(2)).shape == (2, 16)


def test_registry_and_make_features():
    assert set(CLASSICAL_FEATURES) == {"pixels", "color-histogram", "hog"}
    assert isinstance(make_features("hog", size=32), HogFeatures)
    assert make_features("color-histogram", bins=4).bins == 4
    with pytest.raises(InputError, match="unknown features 'sift'; choose one of: pixels, "
                                         "color-histogram, hog"):
        make_features("sift")
    with pytest.raises(InputError, match="PixelFeatures has no parameter colour; its parameters "
                                         "are: grayscale, size"):
        make_features("pixels", colour=True)
