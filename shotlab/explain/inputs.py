"""What every method shares: input checks, target expansion, map scaling, and forward callables.

`forward_probabilities` turns a torch module or any callable into one numpy function,
`f(batch (N, 3, H, W)) -> probabilities (N, K)`, that LIME, SHAP and the faithfulness scores call
in batches of bounded size, so memory stays flat however many perturbations a method asks for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shotlab.core.errors import InputError
from shotlab.runtime.decide import probabilities
from shotlab.runtime.runners import batches


def to_tensor(images):
    """float32 torch tensor (N, C, H, W) from a numpy array or tensor, checked."""
    import torch

    batch = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    batch = batch.detach().to("cpu", torch.float32)
    if batch.ndim != 4:
        raise InputError(f"images must be preprocessed float32 (N, C, H, W); got shape "
                         f"{tuple(batch.shape)} (use Preprocessing.to_array per image and stack)")
    return batch.contiguous()


def expand_targets(batch, targets):
    """(images, targets) with one row per (image, target) pair; a list entry means several."""
    if isinstance(targets, (int, np.integer)) or not isinstance(targets, (Sequence, np.ndarray)):
        raise InputError(f"targets must be one class index per image (a list); got {targets!r}")
    if len(targets) != len(batch):
        raise InputError(f"{len(batch)} images but {len(targets)} targets; give one class index "
                         f"(or a list of them, for multilabel) per image")
    rows, flat = [], []
    for index, target in enumerate(targets):
        for one in (target if isinstance(target, (Sequence, np.ndarray)) else [target]):
            rows.append(index)
            flat.append(int(one))
    return batch[rows], flat


def check_targets(targets: list[int], num_classes: int) -> None:
    bad = [t for t in targets if not 0 <= t < num_classes]
    if bad:
        raise InputError(f"target class {bad[0]} is out of range: the model has {num_classes} "
                         f"classes (0..{num_classes - 1})")


def scale01(maps) -> np.ndarray:
    """Each map's positive part divided by its maximum: float32 in [0, 1]; zero maps stay zero."""
    maps = np.clip(np.asarray(maps, dtype=np.float32), 0, None)
    peak = maps.reshape(len(maps), -1).max(axis=1) if len(maps) else np.zeros(0, np.float32)
    peak = np.where(peak > 0, peak, 1.0).astype(np.float32)
    return (maps / peak[:, None, None]).astype(np.float32)


def blur_planes(stack: np.ndarray, sigma: float) -> np.ndarray:
    """Each (H, W) plane of a (N, H, W) stack blurred by a Gaussian of `sigma` pixels, borders
    reflected (which keeps each plane's sum); float32."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(stack, (0, sigma, sigma), mode="reflect").astype(np.float32)


def is_torch_module(model) -> bool:
    import torch

    return isinstance(model, torch.nn.Module)


def forward_probabilities(model, *, multilabel: bool = False, batch_size: int = 32,
                          dtype=np.float32):
    """`f(numpy (N, 3, H, W)) -> numpy probabilities (N, K)`, called in chunks of `batch_size`.
    `dtype` is the model input's (int64 token ids for a text model, runtime/kinds.py).

    A torch module's logits go through softmax (sigmoid when `multilabel`), in eval mode under
    `no_grad`, with the module restored afterwards; any other callable is taken to return
    probabilities already (an ONNX runner does).
    """
    if is_torch_module(model):
        from shotlab.explain.guard import preserved

        def call(chunk):
            import torch

            with preserved(model), torch.no_grad():
                logits = model(torch.from_numpy(np.ascontiguousarray(chunk, dtype)))
            return probabilities(logits, "multilabel" if multilabel else "multiclass").numpy()
    else:
        def call(chunk):
            return np.asarray(model(np.ascontiguousarray(chunk, dtype)), dtype=np.float32)

    def forward(batch) -> np.ndarray:
        batch = np.asarray(batch, dtype=dtype)
        parts = [call(chunk) for chunk in batches(batch, batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    return forward
