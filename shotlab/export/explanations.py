"""The report's explanations: Grad-CAM (PyTorch checkpoint) and LIME (through the ONNX runner)
for one correct and one wrong prediction per class, overlaid on the image the model saw.

Uses `shotlab.explain` (`explain`, `plots.overlay`). The target of each map is the predicted
class (by the bundle's decision rule, thresholds included; multilabel: the highest-scoring class
flagged, else predicted: runtime.decide.explained_classes): for a mistake, what pulled the model
to the wrong answer is what a reviewer needs to see.
"""

from __future__ import annotations

import base64
import io

import numpy as np

PER_CLASS = {"correct": 1, "wrong": 1}  # cheap: a glimpse per class, not an audit
LIME_SAMPLES = 256  # perturbations per image; LIME's default 1000 costs 4x for a report sample


def decisions(y, probs, classes, task: str, thresholds) -> tuple[list, np.ndarray, np.ndarray]:
    """Per row: (true label names, the class to explain, whether the decision is right), under
    the rule `predict` and the report's metrics apply (unsafe-class thresholds included): a card
    must not call wrong what the metrics beside it count as right."""
    from shotlab.runtime.decide import explained_classes, predict_labels

    decided = predict_labels(probs, classes, task=task, thresholds=thresholds or None)
    target = explained_classes(probs, classes, task=task, thresholds=thresholds or None)
    if task == "multiclass":
        return [[classes[int(t)]] for t in y], target, decided == y
    truth = [[classes[i] for i in np.flatnonzero(row)] for row in y]
    return truth, target, np.all(decided == y, axis=1)


def pick(y: np.ndarray, right: np.ndarray, classes) -> list[tuple[int, bool]]:
    """(row, correct) pairs: up to PER_CLASS["correct"/"wrong"] rows per true class (a
    multilabel row counts for its first true class; a row with none, for the first class)."""
    truth = y if y.ndim == 1 else y.argmax(axis=1)
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
    truth, target, right = decisions(y, probs, classes, bundle.task, bundle.thresholds)
    rows = pick(y, right, classes)
    if not rows:
        return {"available": True, "items": []}
    targets = [int(target[r]) for r, _ in rows]
    batch = x[[r for r, _ in rows]]
    gradcam = explain(checkpoint.model, batch, targets, method="gradcam")
    lime = explain(onnx_runner, batch, targets, method="lime", num_samples=LIME_SAMPLES)
    items = []
    for k, (row, correct) in enumerate(rows):
        image = np.asarray(bundle.preprocessing.resize_and_crop(load_rgb(entries[row].filepath)))
        items.append({"path": entries[row].filepath, "true": ", ".join(truth[row]) or "none",
                      "predicted": classes[targets[k]], "correct": correct,
                      "score": float(probs[row, targets[k]]),
                      "_gradcam_png": png_base64(overlay(image, gradcam[k])),
                      "_lime_png": png_base64(overlay(image, lime[k]))})
    return {"available": True, "lime_samples": LIME_SAMPLES,
            "note": "Grad-CAM on the PyTorch checkpoint, LIME through ONNX Runtime; target = the "
                    "predicted class", "items": items}
