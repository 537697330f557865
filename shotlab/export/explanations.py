"""The report's explanations: Grad-CAM (PyTorch checkpoint) and LIME (through the ONNX runner)
for one correct and one wrong prediction per class, overlaid on the image the model saw.

Uses `shotlab.explain` (`explain`, `plots.overlay`). The target of each map is the predicted
class: for a mistake, what pulled the model to the wrong answer is what a reviewer needs to see.
"""

from __future__ import annotations

import base64
import io

import numpy as np

PER_CLASS = {"correct": 1, "wrong": 1}  # cheap: a glimpse per class, not an audit
LIME_SAMPLES = 256  # perturbations per image; LIME's default 1000 costs 4x for a report sample


def pick(y: np.ndarray, predicted: np.ndarray, classes) -> list[tuple[int, bool]]:
    """(row, correct) pairs: up to PER_CLASS["correct"/"wrong"] rows per true class."""
    truth = y if y.ndim == 1 else y.argmax(axis=1)
    right = predicted == truth
    rows = []
    for c in range(len(classes)):
        for correct, limit in ((True, PER_CLASS["correct"]), (False, PER_CLASS["wrong"])):
            found = np.flatnonzero((truth == c) & (right == correct))[:limit]
            rows += [(int(r), correct) for r in found]
    return rows


def png_base64(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def explain_sample(bundle, checkpoint, entries, x, y, probs, onnx_runner, *,
                   progress=None) -> dict:
    """{"available", "method_notes", "items": [{path, true, predicted, correct, score,
    _gradcam_png, _lime_png}]} or {"available": False, "reason"} without shotlab.explain."""
    try:
        from shotlab.explain import explain
        from shotlab.explain.plots import overlay
    except ImportError as exc:
        return {"available": False, "reason": f"shotlab.explain is not importable ({exc})"}
    from shotlab.core.images import load_rgb

    classes = bundle.classes
    predicted = probs.argmax(axis=1)
    rows = pick(y, predicted, classes)
    if not rows:
        return {"available": True, "items": []}
    targets = [int(predicted[r]) for r, _ in rows]
    batch = x[[r for r, _ in rows]]
    gradcam = explain(checkpoint.model, batch, targets, method="gradcam")
    lime = explain(onnx_runner, batch, targets, method="lime", num_samples=LIME_SAMPLES)
    items = []
    for k, (row, correct) in enumerate(rows):
        image = np.asarray(bundle.preprocessing.resize_and_crop(load_rgb(entries[row].filepath)))
        truth = y[row] if y.ndim == 1 else int(np.argmax(y[row]))
        items.append({"path": entries[row].filepath, "true": classes[int(truth)],
                      "predicted": classes[targets[k]], "correct": correct,
                      "score": float(probs[row, targets[k]]),
                      "_gradcam_png": png_base64(overlay(image, gradcam[k])),
                      "_lime_png": png_base64(overlay(image, lime[k]))})
    return {"available": True, "lime_samples": LIME_SAMPLES,
            "note": "Grad-CAM on the PyTorch checkpoint, LIME through ONNX Runtime; target = the "
                    "predicted class", "items": items}
