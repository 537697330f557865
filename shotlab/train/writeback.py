"""Predictions written back to the FiftyOne dataset, with a saved view of the mistakes.

Annotators open `shotlab curate app NAME` and pick the `mistakes` view: the samples whose
predicted labels differ from their ground truth, most confident mistakes first. The field holds
one run's predictions: samples that run left out (excluded, without a split, unlabeled) have
an older run's cleared (a bundle's decisions written by `predict --dataset` stay).

The predictions are first saved in the run folder (`predictions.json`), so when the database is
unreachable at the end of a run nothing is lost: `shotlab train writeback RUN` writes them back
later without recomputing anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shotlab.core import database, store, workspace
from shotlab.core.errors import InputError
from shotlab.core.files import write_json_atomic
from shotlab.runtime.decide import predict_labels

PREDICTION_FIELD = "predictions"
MISTAKES_VIEW = "mistakes"
PREDICTIONS_FILE = "predictions.json"


def prediction_label(row: np.ndarray, predicted, classes, task: str, run: str):
    fo = store.fiftyone()
    if task == "multilabel":
        return fo.Classifications(classifications=[
            fo.Classification(label=classes[k], confidence=float(row[k]), run=run)
            for k in np.flatnonzero(predicted)], run=run)  # run: even with no label predicted
    return fo.Classification(label=classes[int(predicted)], confidence=float(row[int(predicted)]),
                             scores=[float(v) for v in row], run=run)


def write_predictions(name: str, sample_ids: list[str], true_labels: list[tuple[str, ...]],
                      probs: np.ndarray, classes, *, task: str, run: str,
                      thresholds=None, run_dir: Path | None = None) -> int:
    """Store each sample's prediction in `predictions`; save the `mistakes` view; its size.

    The inputs are saved first in `run_dir` (default: the workspace's run folder named `run`,
    if there is one); if the database then cannot be reached, the DatabaseError says so and
    names the command that finishes the job."""
    run_dir = Path(run_dir) if run_dir else workspace.current().runs_dir / run
    if run_dir.is_dir():
        write_json_atomic(run_dir / PREDICTIONS_FILE, {
            "dataset": name, "run": run, "task": task, "classes": list(classes),
            "thresholds": thresholds, "sample_ids": list(sample_ids),
            "true_labels": [list(t) for t in true_labels], "probs": np.asarray(probs).tolist()})
    try:
        return _write(name, sample_ids, true_labels, probs, classes, task, run, thresholds)
    except Exception as exc:
        error = database.lost(exc)
        if error is None or not run_dir.is_dir():
            raise
        raise database.DatabaseError(
            f"the run folder {run_dir} is complete, but its predictions were not written back to "
            f"dataset '{name}' ({error}); once the database answers, run `shotlab train "
            f"writeback {run_dir}`") from exc


def write_saved(run_dir: Path) -> tuple[str, int]:
    """Write back the predictions saved in `run_dir`; (dataset name, mistakes)."""
    path = Path(run_dir) / PREDICTIONS_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: no saved predictions to write back ({exc}); give a run folder "
                         f"that `shotlab train run` finished (see `shotlab train runs`)") from None
    mistakes = _write(saved["dataset"], saved["sample_ids"],
                      [tuple(t) for t in saved["true_labels"]], np.asarray(saved["probs"]),
                      saved["classes"], saved["task"], saved["run"], saved["thresholds"])
    return saved["dataset"], mistakes


def _write(name, sample_ids, true_labels, probs, classes, task, run, thresholds) -> int:
    dataset = store.load(name)
    predicted = predict_labels(probs, list(classes), task=task, thresholds=thresholds)
    values = {sid: prediction_label(row, p, classes, task, run)
              for sid, row, p in zip(sample_ids, probs, predicted)}
    dataset.set_values(PREDICTION_FIELD, values, key_field="id")
    # left out of this run: no earlier run's prediction (`predict --dataset` writes the same
    # field without `run`, with the bundle's name: those are a bundle's decisions, kept)
    others = dataset.exclude(list(values)).exists(f"{PREDICTION_FIELD}.run")
    if len(others):
        others.set_values(PREDICTION_FIELD, [None] * len(others))
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
