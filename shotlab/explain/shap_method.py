"""SHAP (Lundberg and Lee 2017) through the `shap` package's Partition explainer.

`shap.maskers.Image` hides regions by blurring them (kernel half the image side by default, as in
shap's ImageNet examples: the colour layout stays, the detail goes) and the Partition explainer
recursively splits the image into halves, so `max_evals` model calls give Owens values of a
hierarchy of rectangles: coarse blocks at 100 evaluations, finer at 500+. The masked images go
through the model `batch_size` at a time. Values are summed over the colour channels.

Cost: about `max_evals` forward passes per image.
"""

from __future__ import annotations

import numpy as np

MAX_EVALS = 500  # shap's default for Partition
BATCH = 50  # masked images per model call


def shap(model, batch, targets, *, max_evals: int = MAX_EVALS, blur: int | None = None,
         batch_size: int = BATCH, multilabel: bool = False, raw: bool = False):
    """Signed Owens-value maps (N, H, W)."""
    import shap as shap_package

    from shotlab.explain.inputs import check_targets, forward_probabilities

    forward = forward_probabilities(model, multilabel=multilabel, batch_size=batch_size)

    def predict(images_hwc):
        return forward(np.ascontiguousarray(np.asarray(images_hwc).transpose(0, 3, 1, 2)))

    images = batch.numpy().transpose(0, 2, 3, 1)
    height, width = images.shape[1:3]
    kernel = blur or max(1, min(height, width) // 2)
    masker = shap_package.maskers.Image(f"blur({kernel},{kernel})", shape=images.shape[1:])
    explainer = shap_package.explainers.Partition(predict, masker)
    check_targets(list(targets), predict(images[:1]).shape[1])
    maps = []
    for image, target in zip(images, targets):
        values = explainer(image[None], max_evals=max_evals, batch_size=batch_size,
                           outputs=np.array([target]), silent=True).values
        maps.append(np.asarray(values)[0, ..., 0].sum(axis=-1))
    return np.stack(maps).astype(np.float32)
