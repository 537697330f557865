"""Class activation maps: Grad-CAM and Grad-CAM++ on one template (pytorch-grad-cam's shape).

`CAM.__call__` does the work every CAM method shares: one forward pass with a hook on the target
layer, one backward pass from the target logits to that layer (`torch.autograd.grad`, nothing
else is differentiated), the weighted sum of the layer's channels, ReLU, and bilinear upsampling
to the input size. A subclass implements only `channel_weights`.

Cost: one forward and one backward per batch of `batch_size` images (the benchmark counts them).
"""

from __future__ import annotations

import numpy as np

from shotlab.explain.guard import capture, preserved
from shotlab.explain.inputs import check_targets
from shotlab.explain.layers import as_feature_map, find_target_layer

DEFAULT_BATCH = 16  # images per forward/backward: the activations of 16 images fit in ~1 GB


class CAM:
    """Template: subclasses give `channel_weights(activations, gradients) -> (N, C)`."""

    def __init__(self, model, *, target_layer=None, batch_size: int = DEFAULT_BATCH):
        self.model = model
        self.layer = find_target_layer(model, target_layer)
        self.batch_size = batch_size

    def channel_weights(self, activations, gradients):
        raise NotImplementedError

    def __call__(self, batch, targets: list[int], *, raw: bool = False) -> np.ndarray:
        parts = [self.chunk(batch[i:i + self.batch_size], targets[i:i + self.batch_size], raw)
                 for i in range(0, len(batch), self.batch_size)]
        height, width = batch.shape[-2:]
        return np.concatenate(parts) if parts else np.zeros((0, height, width), np.float32)

    def chunk(self, images, targets: list[int], raw: bool) -> np.ndarray:
        import torch

        with preserved(self.model), capture(self.layer.module) as seen:
            # The input asks for gradients so the layer's output is in the graph even when every
            # parameter is frozen; autograd.grad stops at the layer, so nothing earlier runs.
            logits = self.model(images.clone().requires_grad_(True))
            check_targets(targets, logits.shape[1])
            score = logits[torch.arange(len(targets)), torch.as_tensor(targets)].sum()
            (gradients,) = torch.autograd.grad(score, seen.activation)
        activations = as_feature_map(seen.activation.detach(), self.layer)
        gradients = as_feature_map(gradients, self.layer)
        weights = self.channel_weights(activations, gradients)
        cam = (weights[:, :, None, None] * activations).sum(dim=1, keepdim=True)
        cam = cam if raw else torch.relu(cam)
        cam = torch.nn.functional.interpolate(cam, size=tuple(images.shape[-2:]),
                                              mode="bilinear", align_corners=False)
        return cam[:, 0].numpy().astype(np.float32)


class GradCAM(CAM):
    """Selvaraju et al. 2017: channel weights are the spatially averaged gradients."""

    def channel_weights(self, activations, gradients):
        return gradients.mean(dim=(2, 3))


class GradCAMPlusPlus(CAM):
    """Chattopadhay et al. 2018: positive gradients weighted by the closed-form alphas, which
    let several instances of the class each count, not only the largest."""

    def channel_weights(self, activations, gradients):
        import torch

        g2, g3 = gradients ** 2, gradients ** 3
        total = activations.sum(dim=(2, 3), keepdim=True)
        denominator = 2 * g2 + total * g3
        alpha = g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        return (alpha * torch.relu(gradients)).sum(dim=(2, 3))


def gradcam(model, batch, targets, *, target_layer=None, batch_size=DEFAULT_BATCH, raw=False):
    return GradCAM(model, target_layer=target_layer, batch_size=batch_size)(batch, targets, raw=raw)


def gradcampp(model, batch, targets, *, target_layer=None, batch_size=DEFAULT_BATCH, raw=False):
    return GradCAMPlusPlus(model, target_layer=target_layer,
                           batch_size=batch_size)(batch, targets, raw=raw)
