"""Integrated Gradients (Sundararajan et al. 2017) through Captum.

The path integral from a baseline to the image is approximated with `n_steps` points; Captum
evaluates them `internal_batch_size` at a time, so memory stays flat whatever `n_steps` is.
Attributions are summed over the colour channels into one signed map per image: by completeness,
a map sums to f(image) - f(baseline) for the target logit (Captum's convergence delta is the gap).
"""

from __future__ import annotations

import numpy as np

from shotlab.core.errors import InputError
from shotlab.explain.guard import preserved

N_STEPS = 50  # Captum's default; the paper reports 20-300 steps keep the completeness gap small
INTERNAL_BATCH = 16  # path points per forward/backward: bounds memory at 16 images' activations


def baseline_for(batch, baseline):
    """The reference image: "zero" is the dataset's mean colour in normalised space."""
    import torch

    if isinstance(baseline, str):
        if baseline != "zero":
            raise InputError(f"baseline '{baseline}' is not known; use 'zero' or an array")
        return torch.zeros_like(batch)
    return torch.as_tensor(np.asarray(baseline, np.float32)).expand_as(batch).contiguous()


def integrated_gradients(model, batch, targets, *, n_steps: int = N_STEPS,
                         internal_batch_size: int = INTERNAL_BATCH, baseline="zero",
                         batch_size: int = 8, return_delta: bool = False, raw: bool = False):
    """Signed IG maps (N, H, W); `batch_size` images per Captum call (memory is bounded by
    `internal_batch_size` path points either way)."""
    import torch
    from captum.attr import IntegratedGradients

    from shotlab.explain.inputs import check_targets

    maps, deltas = [], []
    with preserved(model):
        method = IntegratedGradients(model)
        with torch.no_grad():  # one image's forward pass, to name a bad target before the work
            check_targets(targets, model(batch[:1]).shape[1])
        for start in range(0, len(batch), batch_size):
            images = batch[start:start + batch_size]
            chunk_targets = targets[start:start + batch_size]
            attributions, delta = method.attribute(
                images, baselines=baseline_for(images, baseline), target=chunk_targets,
                n_steps=n_steps, internal_batch_size=internal_batch_size,
                return_convergence_delta=True)
            maps.append(attributions.detach().sum(dim=1).numpy().astype(np.float32))
            deltas.append(delta.detach().numpy())
    maps = np.concatenate(maps)
    return (maps, np.concatenate(deltas)) if return_delta else maps
