"""Grad-CAM's layer choice, its cost, and the caller's model left exactly as it was."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import timm
import torch

from shotlab.core.errors import InputError
from shotlab.explain import explain
from shotlab.explain.layers import find_target_layer
from tests.explain.toys import LeftHalfNet, positive_images

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


@pytest.mark.parametrize(("name", "layer"), [("test_efficientnet", "bn2"),
                                              ("test_resnet", "layer4"),
                                              ("test_convnext", "stages"),
                                              ("test_vit", "blocks.5.norm1")])
def test_target_layer_is_the_last_stage_before_pooling(name, layer):
    assert find_target_layer(timm.create_model(name)).name == layer


def test_plain_modules_fall_back_to_their_last_conv_and_accept_a_named_layer():
    assert find_target_layer(LeftHalfNet()).name == "conv2"
    assert find_target_layer(LeftHalfNet(), "conv1").name == "conv1"
    with pytest.raises(InputError, match="'conv9' is not a module"):
        find_target_layer(LeftHalfNet(), "conv9")


@pytest.mark.parametrize("method", ["gradcam", "gradcampp"])
def test_vit_tokens_are_reshaped_to_the_patch_grid(method):
    torch.manual_seed(0)
    model = timm.create_model("test_vit", num_classes=3, img_size=64)
    images = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    raw = explain(model, images, [0, 2], method=method, raw=True)
    assert raw.shape == (2, 64, 64) and np.abs(raw).max() > 0
    # the map is constant on no grid larger than a 16 px patch: it varies across patches
    assert np.unique(np.round(raw[0, 8::16, 8::16], 6)).size > 1


def test_gradcam_costs_one_forward_per_batch():
    model = LeftHalfNet()
    explain(model, positive_images(5), [0] * 5, method="gradcam", batch_size=16)
    assert model.calls == 1
    explain(model, positive_images(5), [0] * 5, method="gradcam", batch_size=2)
    assert model.calls == 1 + 3


def snapshot(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            copy.deepcopy(model.state_dict()))


def assert_unchanged(model, before):
    modes, flags, state = before
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    for module in model.modules():
        for name in HOOK_DICTS:
            assert not getattr(module, name), (module, name)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "ig", "lime", "shap"])
def test_the_callers_model_is_left_as_it_was(method):
    model = LeftHalfNet()
    model.train()  # a model mid-training: dropout and batch-norm statistics updates on
    model.conv1.requires_grad_(False)  # partly frozen
    before = snapshot(model)
    options = {"ig": {"n_steps": 4}, "lime": {"num_samples": 20},
               "shap": {"max_evals": 40}}.get(method, {})
    explain(model, positive_images(2), [0, 1], method=method, **options)
    assert_unchanged(model, before)


@pytest.mark.parametrize("method", ["gradcam", "ig"])
def test_hooks_and_modes_are_restored_when_the_method_raises(method):
    model = LeftHalfNet()
    model.train()
    before = snapshot(model)
    with pytest.raises(InputError, match="out of range"):
        explain(model, positive_images(1), [7], method=method)
    assert_unchanged(model, before)


def test_a_frozen_model_still_gets_a_map():
    model = LeftHalfNet().requires_grad_(False)
    maps = explain(model, positive_images(1), [0])
    assert maps.max() == 1.0
    assert not any(p.requires_grad for p in model.parameters())
