"""The scores a run's unsafe-class thresholds are chosen on: train folds + validation, pooled.

    labels, scores, record = pooled_scores(features, y, probs, task=..., seed=...)
    choose_thresholds(labels, scores, classes, unsafe=...)   # about twice the positives

With 5-20 images a class, the validation split holds a handful of each unsafe class, and a
threshold read off 5-10 positives lands wherever the lowest of them happens to fall. Where the
model's features are frozen (an image run in linear mode, a text run in logreg mode: the head is
all that learnt from the train split), every TRAIN sample can get an honest score too: the run's
head recipe (`finetune.logistic_head` on embeddings centred and scaled as the probe's) is fitted
on k-1 folds of the train split and scores the held-out fold, and those out-of-fold scores are
calibrated by a temperature of their own (`train.calibration`; left raw, as the run's own, when
the run had too few val samples to calibrate). Validation samples keep the run's own scores.
The thresholds and review bands are chosen on the two pooled. The caller
(`runs.unsafe_thresholds`) leaves pseudo-labels out of the train split here: they are the
model's own confident calls.

Fold models learn from (k-1)/k of the train split, a little less than the run's model, so their
scores on positives run a little lower and the threshold errs toward flagging. Measured on
Fashion-MNIST (benchmarks/oof_thresholds.py: 10 + 10 images a class, 20 draws, target recall
0.95, the conformal rule of `train.thresholds`): held-out recall 0.924 (Shirt) and 0.954
(Sneaker) against 0.886 and 0.894 from validation alone, at a flag rate of 0.49 and 0.13 against
0.43 and 0.12.

Runs whose features learnt from the train split (partial and full fine-tuning, SetFit, posts)
would need k fine-tunings to score it out of fold; they choose on validation alone, and the
record says so. So do runs on a clip dataset's frames (folds would split a clip, and a frame's
neighbours would score it) and runs whose train split has a class with a single sample. Samples
that belong together (the manifest's groups: near duplicates `shotlab curate check` found, byte
copies, a comment set's `group` column such as one thread or author) are held out together, so
a twin in the other folds does not lift a sample's score (and the threshold with it); the
record counts them (`grouped`).
"""

from __future__ import annotations

import numpy as np

VALIDATION = "val"
POOLED = "train folds + val"


def standardised(fit: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """`fit` and `others` scaled as the probe scales its features (`finetune.probe_scaling`,
    fitted on `fit`)."""
    from shotlab.train.finetune import probe_scaling

    mu, scale = probe_scaling(fit)
    return [(x - mu) / scale for x in (fit, *others)]


def fold_scores(features: np.ndarray, y: np.ndarray, task: str, classes: int, folds: int,
                seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """(n, classes) out-of-fold probabilities of the probe recipe over `features` (the train
    split), in seeded, stratified folds (`core.folds.splitter`), each of `groups` held out
    whole."""
    from scipy.special import expit, softmax

    from shotlab.core.folds import splitter
    from shotlab.train.finetune import logistic_head

    scores = np.zeros((len(y), classes))
    folding = splitter(folds, seed, stratified=task != "multilabel", grouped=groups is not None)
    for fit, held in folding.split(features, y, groups):
        x_fit, x_held = standardised(features[fit], features[held])
        weight, bias = logistic_head(x_fit, y[fit], task, classes)
        logits = x_held @ weight.T + bias
        scores[held] = expit(logits) if task == "multilabel" else softmax(logits, axis=1)
    return scores


def pooled_scores(features: np.ndarray | None, y: dict, probs: dict, *, task: str, seed: int,
                  calibrated: bool = True, why_not: str = "",
                  groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels, scores, record) to choose thresholds on. `features`: the train split's frozen
    embeddings (None: validation alone, for the reason `why_not`); `y` and `probs`: the run's
    labels and scores per split; `calibrated`: whether the run's scores are (a run with too few
    val samples keeps its raw scores, and then so do the folds); `groups`: the train samples'
    groups (`Manifest.groups`), each held out whole."""
    from shotlab.core.groups import grouped_count
    from shotlab.train.auto_choice import fold_count
    from shotlab.train.calibration import apply, fit_calibration

    alone = {"scored_on": VALIDATION, "validation": len(y["val"])}
    if features is None:
        return y["val"], probs["val"], {**alone, "reason": why_not}
    folds = fold_count(y["train"], task, groups)
    if folds < 2:
        return y["val"], probs["val"], {**alone, "reason": "a class has a single train sample "
                                        "(or group of samples that belong together), so the "
                                        "train split cannot be cross-validated"}
    raw = fold_scores(features, y["train"], task, probs["val"].shape[1], folds, seed, groups)
    calibration = fit_calibration(y["train"], raw, task=task) if calibrated else None
    labels = np.concatenate([y["train"], y["val"]])
    scores = np.concatenate([apply(raw, calibration, task), probs["val"]])
    return labels, scores, {"scored_on": POOLED, "train": len(y["train"]), "folds": folds,
                            "grouped": grouped_count(groups), "validation": len(y["val"]),
                            "fold_calibration": calibration}
