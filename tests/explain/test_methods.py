"""explain(): every method on a toy model whose right answer is known, shapes, targets, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shotlab.core.errors import InputError
from shotlab.explain import METHODS, explain
from tests.explain.toys import SIZE, LeftHalfNet, left_share, positive_images

FAST = {"gradcam": {}, "gradcampp": {}, "ig": {"n_steps": 16},
        "lime": {"num_samples": 100, "n_segments": 16}, "shap": {"max_evals": 100}}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_puts_the_evidence_where_the_model_looks(method):
    maps = explain(LeftHalfNet(), positive_images(2), [0, 0], method=method, **FAST[method])
    assert maps.shape == (2, SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1.0)
    assert (left_share(maps) > 0.9).all(), left_share(maps)


@pytest.mark.parametrize("method", ["lime", "shap"])
def test_forward_only_methods_take_any_probability_callable(method):
    model = LeftHalfNet().eval()

    def runner(batch):  # what an ONNX runner looks like from here: numpy in, probabilities out
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(batch)), dim=1).numpy()

    maps = explain(runner, positive_images(1), [0], method=method, **FAST[method])
    assert maps.shape == (1, SIZE, SIZE) and left_share(maps)[0] > 0.9


def test_integrated_gradients_completeness():
    model = LeftHalfNet().eval()
    images = positive_images(2)
    maps, deltas = explain(model, images, [0, 1], method="ig", n_steps=64, raw=True,
                           return_delta=True)
    with torch.no_grad():
        logits = model(torch.from_numpy(images))
        base = model(torch.zeros_like(torch.from_numpy(images)))
    expected = (logits - base)[[0, 1], [0, 1]].numpy()
    assert np.allclose(maps.sum(axis=(1, 2)), expected, rtol=0.02, atol=1e-3)
    assert np.abs(deltas).max() < 0.02 * np.abs(expected).max() + 1e-3


def test_integrated_gradients_smoothing_keeps_the_sum_and_can_be_switched_off():
    model, images = LeftHalfNet().eval(), positive_images(2)
    captum = explain(model, images, [0, 1], method="ig", n_steps=16, raw=True, smooth=0)
    smooth = explain(model, images, [0, 1], method="ig", n_steps=16, raw=True, smooth=2)
    assert np.allclose(smooth.sum(axis=(1, 2)), captum.sum(axis=(1, 2)), rtol=1e-4, atol=1e-5)

    def roughness(maps):  # mean absolute difference between horizontal neighbours
        return np.abs(np.diff(maps, axis=2)).mean()

    assert roughness(smooth) < 0.5 * roughness(captum)
    with pytest.raises(InputError, match="smooth must be 0 .off. or a sigma in pixels, not -1"):
        explain(model, images, [0, 1], method="ig", n_steps=4, smooth=-1)


def test_lime_switches_superpixels_off_to_the_mean_colour():
    """A model that sees only the mean brightness: filling a superpixel with its own mean colour
    (lime's default) changes nothing it sees, so that LIME finds no evidence; filling with the
    mean colour (zero) removes brightness, and the evidence shows up everywhere."""

    def brightness(batch):
        logit = batch.mean(axis=(1, 2, 3))
        return torch.softmax(torch.from_numpy(np.stack([logit, -logit], axis=1)), dim=1).numpy()

    options = {"num_samples": 60, "n_segments": 16, "raw": True}
    blind = explain(brightness, positive_images(1), [0], method="lime", fill="superpixel",
                    **options)
    seeing = explain(brightness, positive_images(1), [0], method="lime", **options)
    assert np.abs(blind).max() < 1e-6 < seeing.min()


def test_the_default_ig_smoothing_follows_the_longer_side():
    from shotlab.explain.integrated import smoothing_sigma

    assert smoothing_sigma(None, (224, 224)) == 4.0
    assert smoothing_sigma(None, (224, 448)) == 8.0
    assert smoothing_sigma(0, (224, 224)) == 0.0


def test_a_list_of_targets_gives_one_map_per_image_and_target():
    maps = explain(LeftHalfNet(), positive_images(2), [[0, 1], 0], method="gradcam", raw=True)
    assert maps.shape == (3, SIZE, SIZE)
    single = explain(LeftHalfNet(), positive_images(2)[:1], [1], method="gradcam", raw=True)
    assert np.allclose(maps[1], single[0], atol=1e-6)


def test_gradcam_accepts_a_torch_tensor_and_matches_numpy():
    images = positive_images(2)
    from_numpy = explain(LeftHalfNet(), images, [0, 0])
    from_tensor = explain(LeftHalfNet(), torch.from_numpy(images), [0, 0])
    assert np.allclose(from_numpy, from_tensor)


def test_unknown_method_and_option_and_bad_shapes_are_named():
    with pytest.raises(InputError, match="unknown explanation method 'nope'.*gradcam, gradcampp"):
        explain(LeftHalfNet(), positive_images(1), [0], method="nope")
    with pytest.raises(InputError, match="fill 'nope' is not known; use one of: mean, superpixel"):
        explain(LeftHalfNet(), positive_images(1), [0], method="lime", fill="nope")
    with pytest.raises(InputError, match="no option n_steps"):
        explain(LeftHalfNet(), positive_images(1), [0], method="gradcam", n_steps=3)
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        explain(LeftHalfNet(), positive_images(1)[0], [0])
    with pytest.raises(InputError, match="2 images but 1 targets"):
        explain(LeftHalfNet(), positive_images(2), [0])
    with pytest.raises(InputError, match="target class 5 is out of range"):
        explain(LeftHalfNet(), positive_images(1), [5], method="ig", n_steps=4)
