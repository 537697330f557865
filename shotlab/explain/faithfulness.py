"""Is a map faithful to the model? Deletion/insertion AUC and the model-randomisation check.

Deletion and insertion (Petsiuk et al. 2018, RISE): take the pixels in order of attribution,
most first. *Deletion* replaces them, `steps` equal slices at a time, with the dataset's mean
colour (zero in normalised space) and records the target probability: a faithful map makes it
fall fast, so **lower deletion AUC is better**. *Insertion* starts from a blurred copy (Gaussian,
sigma = 1/32 of the image side, as RISE) and puts the original pixels back in the same order:
**higher insertion AUC is better**. AUC is the trapezoid area under the probability curve over
the fraction of pixels changed, so both lie in [0, 1]. Ties in a map (LIME and SHAP maps are flat
on regions; scaled maps are zero where the evidence is negative) are broken at random, so a
flat stretch is not deleted in raster order. The reference is the same two scores for random
maps (random regions: noise on a 7 x 7 lattice, upsampled; the mean over `n_random` maps),
computed on the same images.
Both work through any forward callable (an ONNX runner too).

The model-randomisation check (Adebayo et al. 2018, "Sanity checks for saliency maps"):
re-initialise the model's weights, cascading from the head down to the stem, recompute the maps
and compare them with the originals by Spearman rank correlation. A map that stays the same when
the model it explains is destroyed is not explaining the model (it is an edge detector, or a
prior): it **fails** when the mean |rho| over the cascade stays at or above `threshold`. The mean
over the cascade, not the last step alone: one fully random network is a noisy draw (Grad-CAM of
ImageNet lite0 on `chelsea()` gave |rho| 0.29 to 0.67 across four seeds of full randomisation,
while a fixed centre blob gives 1.0 at every step).
"""

from __future__ import annotations

import numpy as np

STEPS = 20  # 5% of the pixels per step: a smooth enough curve for 42 forward passes per map
N_RANDOM = 3  # random maps averaged for the reference score
# Random maps are random *regions*: noise on a 7 x 7 lattice (a Grad-CAM's resolution on a 224 px
# EfficientNet or ResNet), upsampled. Per-pixel noise deletes a sprinkle of pixels everywhere,
# which hurts a CNN faster than deleting any region does, so it rewards noisy maps and penalises
# every region-level map (measured in benchmarks/results/explain_cost.md: both references).
RANDOM_GRID = 7
SANITY_THRESHOLD = 0.5  # |Spearman rho| at or above this after randomisation fails the check


def pixel_order(heatmap: np.ndarray, rng) -> np.ndarray:
    """Pixel indices from most to least attributed, ties in random order."""
    flat = np.asarray(heatmap, dtype=np.float64).ravel()
    return np.lexsort((rng.random(flat.size), -flat))


def blurred(image: np.ndarray) -> np.ndarray:
    from shotlab.explain.inputs import blur_planes

    return blur_planes(image, max(image.shape[-2:]) / 32)


def curve_images(image, order, start, finish, steps: int) -> np.ndarray:
    """`steps + 1` images going from `start` to `finish` one slice of `order` at a time."""
    channels, height, width = image.shape
    counts = np.linspace(0, height * width, steps + 1).round().astype(int)
    out = np.empty((steps + 1, channels, height * width), np.float32)
    start, finish = start.reshape(channels, -1), finish.reshape(channels, -1)
    for k, count in enumerate(counts):
        out[k] = start
        out[k][:, order[:count]] = finish[:, order[:count]]
    return out.reshape(steps + 1, channels, height, width)


def auc(values: np.ndarray) -> float:
    return float(np.trapezoid(values, dx=1.0 / (len(values) - 1)))


def deletion_insertion(forward, images, targets, maps, *, steps: int = STEPS, seed: int = 0):
    """Per map: {"deletion": AUC, "insertion": AUC}, through `forward(batch) -> probabilities`."""
    rng = np.random.default_rng(seed)
    images = np.asarray(images, dtype=np.float32)
    scores = []
    for image, target, heatmap in zip(images, targets, maps):
        order = pixel_order(heatmap, rng)
        deleting = curve_images(image, order, image, np.zeros_like(image), steps)
        inserting = curve_images(image, order, blurred(image), image, steps)
        probs = forward(np.concatenate([deleting, inserting]))[:, int(target)]
        scores.append({"deletion": auc(probs[:steps + 1]), "insertion": auc(probs[steps + 1:])})
    return scores


def random_maps(shape, n: int, seed: int = 0, grid: int | None = RANDOM_GRID) -> np.ndarray:
    """`n` random maps: uniform noise on a `grid` x `grid` lattice, bilinearly upsampled (random
    regions), or per pixel when `grid` is None."""
    rng = np.random.default_rng(seed)
    if grid is None:
        return rng.random((n, *shape)).astype(np.float32)
    import torch

    coarse = torch.from_numpy(rng.random((n, 1, grid, grid)).astype(np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=tuple(shape), mode="bilinear",
                                           align_corners=False)
    return fine[:, 0].numpy()


def random_reference(forward, images, targets, *, n_random: int = N_RANDOM, steps: int = STEPS,
                     seed: int = 0, grid: int | None = RANDOM_GRID):
    """Per image: deletion and insertion AUC of random maps, averaged over `n_random` maps."""
    images = np.asarray(images, dtype=np.float32)
    out = []
    for index, (image, target) in enumerate(zip(images, targets)):
        maps = random_maps(image.shape[1:], n_random, seed + index, grid)
        runs = deletion_insertion(forward, [image] * n_random, [target] * n_random, maps,
                                  steps=steps, seed=seed + index)
        out.append({key: float(np.mean([r[key] for r in runs])) for key in runs[0]})
    return out


def faithfulness(model, images, targets, maps, *, steps: int = STEPS, n_random: int = N_RANDOM,
                 multilabel: bool = False, batch_size: int = 32, seed: int = 0,
                 reference=None) -> list[dict]:
    """Per map: deletion and insertion AUC, the random reference's, and whether each beats it.

    `model` is a torch module (softmax, or sigmoid when `multilabel`) or a probability callable.
    Pass `reference` (from `random_reference`) to reuse it across methods on the same images."""
    from shotlab.explain.inputs import forward_probabilities

    forward = forward_probabilities(model, multilabel=multilabel, batch_size=batch_size)
    ours = deletion_insertion(forward, images, targets, maps, steps=steps, seed=seed)
    reference = reference or random_reference(forward, images, targets, n_random=n_random,
                                              steps=steps, seed=seed)
    return [{"deletion_auc": o["deletion"], "insertion_auc": o["insertion"],
             "random_deletion_auc": r["deletion"], "random_insertion_auc": r["insertion"],
             "beats_random_deletion": o["deletion"] < r["deletion"],
             "beats_random_insertion": o["insertion"] > r["insertion"]}
            for o, r in zip(ours, reference)]


def beats_random(scores: dict) -> str:
    """The "beats random" cell of a map's scores: 'yes' only when it beats random regions on
    both deletion and insertion (as a comment's words must on both comprehensiveness and
    sufficiency), else which one it beats, or 'NO'."""
    deletion, insertion = scores["beats_random_deletion"], scores["beats_random_insertion"]
    if deletion and insertion:
        return "yes"
    return "deletion only" if deletion else "insertion only" if insertion else "NO"


# ------------------------------------------------------------------------------------------------
# Model randomisation
# ------------------------------------------------------------------------------------------------
def cascade_stages(model) -> list[str]:
    """Top-level children holding parameters, from the head down to the stem."""
    return [name for name, child in reversed(list(model.named_children()))
            if any(True for _ in child.parameters())]


def reinitialise(module) -> None:
    """Fresh random weights: each submodule's own `reset_parameters`, else N(0, 0.02)."""
    import torch

    with torch.no_grad():
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
            elif hasattr(sub, "reset_running_stats"):
                sub.reset_running_stats()
            else:
                for param in sub.parameters(recurse=False):
                    param.normal_(0.0, 0.02)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps; 0 when either is constant (no ranking to share)."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def sanity_check(model, images, targets, method="gradcam", *, cascading: bool = True,
                 threshold: float = SANITY_THRESHOLD, seed: int = 0, **options) -> dict:
    """Model-randomisation check. `method` is an `explain` method name or a callable
    `f(model, images, targets) -> maps`. The caller's model is copied, never changed.

    Returns {"steps": [{"randomised": stage names so far, "spearman": mean |rho| over images}],
    "spearman": the mean over the steps, "passed": spearman < threshold, "threshold"}."""
    import copy

    from shotlab.core.seeding import seeded_torch
    from shotlab.explain import explain

    def maps_of(net):
        if callable(method) and not isinstance(method, str):
            return np.asarray(method(net, images, targets), dtype=np.float32)
        return explain(net, images, targets, method=method, raw=True, **options)

    original = maps_of(model)
    randomised = copy.deepcopy(model)
    stages = cascade_stages(randomised) if cascading else []
    steps, done = [], []
    with seeded_torch(seed):
        for stage in stages or [""]:
            reinitialise(randomised.get_submodule(stage) if stage else randomised)
            done.append(stage or "all")
            after = maps_of(randomised)
            rho = float(np.mean([abs(spearman(a, b)) for a, b in zip(original, after)]))
            steps.append({"randomised": list(done), "spearman": rho})
    overall = float(np.mean([step["spearman"] for step in steps]))
    return {"steps": steps, "spearman": overall, "passed": overall < threshold,
            "threshold": threshold}
