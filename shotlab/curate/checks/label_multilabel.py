"""Label issues of multilabel sets: cleanlab.multilabel_classification on out-of-fold
one-vs-rest probabilities. A class needs `MIN_CLASS_SIZE` samples with it and as many without it
to be judged; the others are reported as too small and left out of the scores."""

from __future__ import annotations

import numpy as np

from shotlab.core.folds import repeated_folds
from shotlab.core.groups import grouped_count
from shotlab.curate.checks.base import empty_result
from shotlab.curate.checks.label import (DEFAULT_ALPHA, MAX_FOLDS, MIN_CLASS_SIZE, NAME, REPEATS,
                                         judged_result, make_classifier, one_blas_thread)


def out_of_fold_multilabel_probs(features: np.ndarray, targets: np.ndarray, *, folds: int,
                                 repeats: int = REPEATS, alpha: float = DEFAULT_ALPHA,
                                 seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """(n, k) per-class probabilities from one-vs-rest models that did not see the sample (nor,
    with `groups`, any sample of its group)."""
    from sklearn.multiclass import OneVsRestClassifier

    probs = np.zeros(targets.shape)
    with one_blas_thread():
        for train, test in repeated_folds(targets, folds=folds, repeats=repeats, seed=seed,
                                          groups=groups, stratified=False):
            model = OneVsRestClassifier(make_classifier(alpha, len(train)))
            model.fit(features[train], targets[train])
            probs[test] += model.predict_proba(features[test])
    return probs / repeats


def one_sided_note(small: dict[str, int], n: int) -> list[str]:
    """Why a class is not judged: it needs MIN_CLASS_SIZE samples with it and as many without."""
    return [f"class '{c}' is on {p} of {n} samples: too few with it or without it to judge its "
            f"labels (needs {MIN_CLASS_SIZE} of each); add more images"
            for c, p in sorted(small.items())]


def sides(targets: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per class, how many samples carry it and how many do not; with `groups`, how many groups
    (copies of one image count once: held out together, they cannot vouch for each other)."""
    if groups is None:
        return targets.sum(0), len(targets) - targets.sum(0)
    count = [[len(np.unique(groups[targets[:, k] == side])) for k in range(targets.shape[1])]
             for side in (1, 0)]
    return np.array(count[0], int), np.array(count[1], int)


def find_multilabel_issues(labels: list[tuple[str, ...]], features: np.ndarray, *,
                           repeats: int = REPEATS, alpha: float = DEFAULT_ALPHA, seed: int = 0,
                           groups: np.ndarray | None = None):
    """Label issues of a multilabel set: `labels[i]` is sample i's set of classes (may be empty);
    samples of one of `groups` are held out together (label.py's module docstring).

    Same fields as `find_label_issues`; the suggestion is the classes scored >= 0.5, joined by
    ';', and its confidence the least certain of those per-class decisions.
    """
    from cleanlab.multilabel_classification import filter as ml_filter
    from cleanlab.multilabel_classification import rank as ml_rank

    n = len(labels)
    names = sorted({c for ls in labels for c in ls})
    targets = np.array([[c in ls for c in names] for ls in labels], int).reshape(n, len(names))
    with_it, without_it = sides(targets, groups)
    keep = (with_it >= MIN_CLASS_SIZE) & (without_it >= MIN_CLASS_SIZE)
    small = {c: int(p) for c, p, k in zip(names, targets.sum(0), keep) if not k}
    classes = [c for c, k in zip(names, keep) if k]
    notes = one_sided_note(small, n)
    if len(classes) < 2 or n < 2 * MIN_CLASS_SIZE:
        result = empty_result(NAME, n, "fewer than 2 classes with enough samples (or groups of "
                                       "samples that belong together): label issues not judged")
        result.notes += notes
        return result
    targets = targets[:, keep]
    folds = max(2, min(MAX_FOLDS, int(min(targets.sum(0).min(), (n - targets.sum(0)).min()))))
    if groups is not None:  # each fold holds at least one group
        folds = max(2, min(folds, len(np.unique(groups))))
    probs = out_of_fold_multilabel_probs(features, targets, folds=folds, repeats=repeats,
                                         alpha=alpha, seed=seed, groups=groups)
    given = [np.flatnonzero(row).tolist() for row in targets]
    flagged = ml_filter.find_label_issues(given, probs)
    quality = ml_rank.get_label_quality_scores(given, probs)
    suggested = [";".join(c for c, p in zip(classes, row) if p >= 0.5) for row in probs]
    confidence = np.maximum(probs, 1 - probs).min(1)
    return judged_result(n, np.ones(n, bool), flagged, 1.0 - quality, suggested, confidence,
                         classes, notes=notes,
                         details={"folds": folds, "repeats": repeats, "alpha": alpha,
                                  "classes_judged": classes, "too_small": small,
                                  "grouped": grouped_count(groups)})
