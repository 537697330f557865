"""The preprocessing contract reproduces timm's eval transform pixel for pixel, and travels intact."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from PIL import Image

from shotlab.runtime.contract import Preprocessing

timm = pytest.importorskip("timm")

# (width, height): portrait, landscape, tiny, large, and odd sizes that round differently.
SIZES = [(300, 500), (500, 300), (20, 30), (1200, 900), (257, 255), (64, 64)]


def random_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def smooth_image(width: int, height: int) -> Image.Image:
    """A photo-like gradient: resampling errors show up as drift, not only as noise."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([255 * x / max(1, width - 1), 255 * y / max(1, height - 1),
                       127 + 100 * np.sin(x / 7.0) * np.cos(y / 5.0)], axis=-1)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


@functools.lru_cache(maxsize=None)
def data_config(timm_name: str) -> dict:
    model = timm.create_model(timm_name, pretrained=False)
    return timm.data.resolve_model_data_config(model)


def timm_config(timm_name: str, input_size: int | None = None) -> dict:
    config = dict(data_config(timm_name))
    if input_size:
        config = {**config, "input_size": (3, input_size, input_size)}
    return config


def assert_matches_timm(config: dict, image: Image.Image) -> None:
    expected = timm.data.create_transform(**config)(image).numpy()
    actual = Preprocessing.from_timm(config).to_array(image)
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape == (3, *config["input_size"][1:])
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("timm_name,input_size", [
    ("tf_efficientnet_lite0", None),  # 224 px, mean/std 0.5, crop_pct 0.875
    ("test_efficientnet", None),  # 160 px, ImageNet mean/std, crop_pct 0.95
    ("test_efficientnet", 64),  # the tiny-test backbone's override
])
@pytest.mark.parametrize("width,height", SIZES)
def test_to_array_equals_timm_eval_transform(timm_name, input_size, width, height):
    config = timm_config(timm_name, input_size)
    assert_matches_timm(config, random_image(width, height, seed=width * 7 + height))
    assert_matches_timm(config, smooth_image(width, height))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_to_array_converts_other_modes_to_rgb_like_timm_on_rgb(mode):
    config = timm_config("test_efficientnet", 64)
    rgb = smooth_image(90, 60)
    other = rgb.convert(mode)
    expected = timm.data.create_transform(**config)(other.convert("RGB")).numpy()
    np.testing.assert_allclose(Preprocessing.from_timm(config).to_array(other), expected, atol=1e-5)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("crop_pct", [1.0, 0.9])
def test_other_interpolations_and_crops_match_timm(interpolation, crop_pct):
    config = {**timm_config("test_efficientnet", 64), "interpolation": interpolation,
              "crop_pct": crop_pct}
    for width, height in [(120, 80), (33, 47)]:
        assert_matches_timm(config, random_image(width, height, seed=width))


@pytest.mark.parametrize("input_size", [(3, 64, 96), (3, 96, 64)])
@pytest.mark.parametrize("width,height", [(300, 500), (500, 300), (33, 47), (257, 255)])
def test_non_square_input_size_matches_timm(input_size, width, height):
    # timm keeps the aspect ratio (ResizeKeepRatio) and fits the tighter side
    config = {**timm_config("test_efficientnet"), "input_size": input_size}
    assert_matches_timm(config, smooth_image(width, height))


@pytest.mark.parametrize("input_size", [(3, 64, 64), (3, 64, 96)])
@pytest.mark.parametrize("crop_pct", [1.0, 0.9])
def test_squash_crop_mode_matches_timm(input_size, crop_pct):
    # squash resizes both sides to size / crop_pct, the aspect ratio not kept
    config = {**timm_config("test_efficientnet"), "input_size": input_size,
              "crop_mode": "squash", "crop_pct": crop_pct}
    for width, height in [(300, 500), (500, 300), (20, 30)]:
        assert_matches_timm(config, smooth_image(width, height))


def test_a_crop_mode_it_cannot_reproduce_is_refused_by_name():
    from shotlab.core.errors import InputError

    with pytest.raises(InputError, match="crop_mode 'border' is not one this shotlab reproduces"):
        Preprocessing.from_timm({**timm_config("test_efficientnet", 64), "crop_mode": "border"})


@pytest.mark.parametrize("change,refusal", [
    ({"interpolation": "cubic"}, r"interpolation 'cubic' is not one this shotlab knows "
                                 r"\(bicubic, bilinear, nearest, lanczos\)"),
    ({"crop_pct": 0}, r"crop_pct 0 must be a number in \(0, 1\]"),
    ({"crop_pct": 1.5}, r"crop_pct 1.5 must be a number in \(0, 1\]"),
    ({"crop_pct": "0.9"}, r"crop_pct '0.9' must be a number"),
    ({"input_size": [0, 0]}, r"input_size \[0, 0\] must be \[height, width\] in positive whole"),
    ({"input_size": [224]}, r"input_size \[224\] must be \[height, width\]"),
    ({"input_size": [64.5, 64]}, r"input_size \[64.5, 64\] must be"),
    ({"mean": [0.5, 0.5]}, r"mean \[0.5, 0.5\] must be 3 numbers, one per channel \(RGB\)"),
    ({"std": [0.5, 0, 0.5]}, r"std \[0.5, 0, 0.5\] must be positive"),
    ({"std": ["a", 1, 1]}, r"std \['a', 1, 1\] must be 3 numbers"),
    ({"channel_order": "RGBA"},
     r"channel_order 'RGBA' is not one this shotlab knows \(RGB, BGR\)"),
], ids=lambda v: str(v)[:30] if isinstance(v, dict) else "")
def test_a_field_the_pipeline_cannot_run_with_is_refused_naming_it(change, refusal):
    """These passed and crashed later in export (KeyError, ZeroDivisionError, an empty crop)."""
    from shotlab.core.errors import InputError

    good = Preprocessing.from_timm(timm_config("test_efficientnet", 64)).to_dict()
    with pytest.raises(InputError, match=refusal):
        Preprocessing.from_dict({**good, **change})


def test_a_text_contract_needs_no_pixel_fields():
    assert Preprocessing(kind="text", tokenizer="tokenizer.json", max_tokens=8).input_size == ()


def test_bgr_channel_order_reverses_the_normalised_channels():
    config = timm_config("tf_efficientnet_lite0")
    rgb = Preprocessing.from_timm(config)
    bgr = Preprocessing.from_dict({**rgb.to_dict(), "channel_order": "BGR"})
    image = smooth_image(100, 70)
    np.testing.assert_array_equal(bgr.to_array(image), rgb.to_array(image)[::-1])
    assert bgr.to_array(image).flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("channel_order", ["RGB", "BGR"])
def test_normalize_equals_the_per_pixel_arithmetic_bit_for_bit(channel_order):
    """normalize looks each uint8 value up in a table of 256: exactly (p / 255 - mean) / std in
    float32, channels in the contract's order, for every value; other dtypes take the formula."""
    pre = Preprocessing.from_dict({**Preprocessing.from_timm(timm_config("test_efficientnet"))
                                   .to_dict(), "channel_order": channel_order})
    pixels = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) * 7 % 256  # every value
    pixels = pixels.astype(np.uint8)
    expected = (pixels.astype(np.float32) / 255.0 - np.asarray(pre.mean, np.float32)
                ) / np.asarray(pre.std, np.float32)
    if channel_order == "BGR":
        expected = expected[..., ::-1]
    expected = expected.transpose(2, 0, 1)
    for actual in (pre.normalize(pixels), pre.normalize(pixels.astype(np.float32))):
        assert actual.dtype == np.float32 and actual.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(actual, expected)


def test_from_timm_reads_every_field():
    config = timm_config("tf_efficientnet_lite0")
    p = Preprocessing.from_timm(config, class_names=["cat", "dog"])
    assert p.input_size == (224, 224)
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.5, 0.5, 0.5)
    assert (p.interpolation, p.crop_pct, p.crop_mode) == ("bicubic", 0.875, "center")
    assert p.channel_order == "RGB" and p.class_names == ("cat", "dog")
    assert Preprocessing.from_timm({**config, "crop_pct": None}).crop_pct == 1.0


def test_dict_round_trip_through_json_is_equal():
    p = Preprocessing.from_timm(timm_config("test_efficientnet", 64), class_names=("a", "b c"))
    data = json.loads(json.dumps(p.to_dict()))  # lists come back, as from a checkpoint or bundle
    again = Preprocessing.from_dict(data)
    assert again == p
    assert isinstance(again.input_size, tuple) and isinstance(again.class_names, tuple)
    assert again.fingerprint() == p.fingerprint()
    assert hash(again) == hash(p)  # frozen and hashable after the round trip


def test_with_classes_changes_only_the_class_names():
    p = Preprocessing.from_timm(timm_config("test_efficientnet", 64))
    q = p.with_classes(["x", "y"])
    assert q.class_names == ("x", "y") and p.class_names == ()
    assert {**q.to_dict(), "class_names": ()} == p.to_dict()


def test_fingerprint_ignores_class_names_but_not_the_pixel_pipeline():
    p = Preprocessing.from_timm(timm_config("test_efficientnet", 64), class_names=("a", "b"))
    assert p.with_classes(("other", "names", "here")).fingerprint() == p.fingerprint()
    changed = [
        {"mean": (0.5, 0.5, 0.5)},
        {"std": (0.5, 0.5, 0.5)},
        {"input_size": (96, 96)},
        {"interpolation": "bilinear"},
        {"crop_pct": 1.0},
        {"channel_order": "BGR"},
    ]
    prints = {Preprocessing.from_dict({**p.to_dict(), **change}).fingerprint() for change in changed}
    assert len(prints) == len(changed) and p.fingerprint() not in prints
    assert p.fingerprint() == Preprocessing.from_dict(p.to_dict()).fingerprint()  # stable


def test_preprocessing_is_frozen():
    p = Preprocessing.from_timm(timm_config("test_efficientnet", 64))
    with pytest.raises(AttributeError):
        p.mean = (0, 0, 0)
