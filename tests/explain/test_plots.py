"""Overlays, the side-by-side figure, LIME's superpixels and inline PNGs."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from shotlab.core.errors import InputError
from shotlab.explain.plots import (data_uri, img_tag, lime_superpixels, methods_figure,
                                   overlay)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def grey(height=40, width=60):
    return np.full((height, width, 3), 100, np.uint8)


def test_overlay_blends_the_heatmap_over_the_image():
    heat = np.zeros((40, 60), np.float32)
    heat[:, 30:] = 1.0
    out = overlay(grey(), heat, alpha=0.5)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert out[0, 50, 0] > out[0, 10, 0]  # jet: hot is red, cold is blue
    assert out[0, 10, 2] > out[0, 50, 2]
    assert np.array_equal(overlay(grey(), heat, alpha=0.0), grey())


def test_overlay_resizes_a_smaller_heatmap_and_checks_its_inputs():
    assert overlay(grey(), np.ones((7, 7), np.float32)).shape == (40, 60, 3)
    with pytest.raises(InputError, match=r"RGB image \(H, W, 3\)"):
        overlay(np.zeros((40, 60), np.uint8), np.ones((40, 60)))
    with pytest.raises(InputError, match="alpha"):
        overlay(grey(), np.ones((40, 60)), alpha=2)


def test_methods_figure_is_a_png_with_one_panel_per_method(tmp_path):
    maps = {"gradcam": np.random.default_rng(0).uniform(size=(40, 60)),
            "lime": np.zeros((40, 60))}
    png = methods_figure(grey(), maps, tmp_path / "fig.png", title="why",
                         captions={"gradcam": "deletion 0.12"})
    assert png.startswith(PNG_MAGIC) and (tmp_path / "fig.png").read_bytes() == png
    wide = Image.open(io.BytesIO(png)).size
    narrow = Image.open(io.BytesIO(methods_figure(grey(), {"lime": maps["lime"]}))).size
    assert wide[0] > narrow[0] * 1.3


def test_lime_superpixels_keeps_only_the_top_regions():
    lime_map = np.zeros((40, 60), np.float32)
    lime_map[:, :20], lime_map[:, 20:40], lime_map[:, 40:] = 0.9, 0.5, -0.2
    out = lime_superpixels(grey(), lime_map, top=1)
    assert out[20, 5].tolist() == [100, 100, 100]  # kept as it is
    assert out[20, 30].max() < 100 and out[20, 50].max() < 100  # dimmed


def test_data_uri_and_img_tag_inline_the_png():
    png = methods_figure(grey(), {"x": np.ones((40, 60))})
    uri = data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png
    assert img_tag(png, alt='a "cat"').startswith('<img src="data:image/png;base64,')
    assert 'alt="a &quot;cat&quot;"' in img_tag(png, alt='a "cat"')


def test_file_and_class_names_with_dollar_signs_are_drawn_as_written(tmp_path):
    """A file named `x$\\foo$y.png` crashed `explain` (matplotlib read it as mathtext) and the
    images after it were never explained."""
    rgb = np.zeros((32, 32, 3), np.uint8)
    png = methods_figure(rgb, {"gradcam (a$\\foo$b)": np.ones((32, 32), np.float32)},
                         tmp_path / "f.png", title="x$\\foo$y.png")
    assert png.startswith(b"\x89PNG") and (tmp_path / "f.png").read_bytes() == png
