"""Predictions written back to the FiftyOne dataset, with a saved view of the mistakes.

Annotators open `shotlab curate app NAME` and pick the `mistakes` view: the samples whose
predicted labels differ from their ground truth, most confident mistakes first.
"""

from __future__ import annotations

import numpy as np

from shotlab.core import store
from shotlab.runtime.decide import predict_labels

PREDICTION_FIELD = "predictions"
MISTAKES_VIEW = "mistakes"


def prediction_label(row: np.ndarray, predicted, classes, task: str, run: str):
    fo = store.fiftyone()
    if task == "multilabel":
        return fo.Classifications(classifications=[
            fo.Classification(label=classes[k], confidence=float(row[k]), run=run)
            for k in np.flatnonzero(predicted)])
    return fo.Classification(label=classes[int(predicted)], confidence=float(row[int(predicted)]),
                             scores=[float(v) for v in row], run=run)


def write_predictions(name: str, sample_ids: list[str], true_labels: list[tuple[str, ...]],
                      probs: np.ndarray, classes, *, task: str, run: str,
                      thresholds=None) -> int:
    """Store each sample's prediction in `predictions`; save the `mistakes` view; its size."""
    dataset = store.load(name)
    predicted = predict_labels(probs, list(classes), task=task, thresholds=thresholds)
    values = {sid: prediction_label(row, p, classes, task, run)
              for sid, row, p in zip(sample_ids, probs, predicted)}
    dataset.set_values(PREDICTION_FIELD, values, key_field="id")
    wrong = [sid for sid, truth, p in zip(sample_ids, true_labels, predicted)
             if set(truth) != predicted_names(p, classes, task)]
    view = dataset.select(wrong)
    if task == "multiclass":
        view = view.sort_by(f"{PREDICTION_FIELD}.confidence", reverse=True)
    dataset.save_view(MISTAKES_VIEW, view, overwrite=True)
    return len(wrong)


def predicted_names(predicted, classes, task: str) -> set[str]:
    if task == "multilabel":
        return {classes[k] for k in np.flatnonzero(predicted)}
    return {classes[int(predicted)]}
