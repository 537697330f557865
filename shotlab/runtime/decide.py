"""The decision rule: probabilities -> labels, flagged categories and `needs_review`.

    labels = predict_labels(probs, classes, task="multiclass", thresholds=policy_thresholds)
    review = apply_review_band(probs, policy_thresholds, classes)
    rows = decide(probs, classes, task=task, thresholds=policy_thresholds)  # one dict per row

The one rule that `predict`, the export report, the evaluation metrics and the service all use.
Multiclass: argmax, except that when `thresholds` names some classes (the unsafe ones), a sample
whose score for such a class is >= its threshold is predicted as that class; when several are
over their thresholds the highest score among them wins; a sample with none over its threshold
gets the argmax. Multilabel: score >= threshold, 0.5 for classes without one. `thresholds` maps
class name -> float, or -> the dict `shotlab.train.thresholds.choose_thresholds` returns
(threshold, review_band, ...). A category is flagged when its score is at or over its threshold;
a row needs review when any unsafe class's score lies inside that class's review band.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.tasks import TASKS, check_task

# float16/float32 softmax rows drift from 1 by ~1e-4; logits or sigmoid scores drift by far more.
SUM_TOLERANCE = 1e-3


def probabilities(logits, task: str):
    """Scores from a torch tensor of logits: softmax over classes, or sigmoid for multilabel."""
    return logits.sigmoid() if check_task(task) == "multilabel" else logits.softmax(dim=-1)


# --- input checks --------------------------------------------------------------------------------

def check_names(class_names, *, task) -> list[str]:
    if task not in TASKS:
        raise InputError(f"task must be 'multiclass' or 'multilabel'; got {task!r}")
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__iter__") \
            or not all(isinstance(n, str) for n in class_names):
        raise InputError(f"class_names must be a list of strings; got {class_names!r}")
    names = list(class_names)
    if len(set(names)) != len(names):
        raise InputError(f"class_names must be unique; got {names}")
    if len(names) < (2 if task == "multiclass" else 1):
        raise InputError(f"a {task} task needs at least 2 class names; got {names}")
    return names


def check_probs(probs, k: int, *, task) -> np.ndarray:
    try:
        P = np.asarray(probs, dtype=float)
    except (TypeError, ValueError):
        raise InputError("probs must be a numeric (n_samples, n_classes) array") from None
    if P.ndim != 2 or P.shape[0] == 0:
        raise InputError(f"probs must be a non-empty 2-D array (n_samples, n_classes); "
                         f"got shape {P.shape}")
    if P.shape[1] != k:
        raise InputError(f"probs has {P.shape[1]} columns but class_names has {k} names; "
                         f"pass one name per column")
    bad = np.argwhere(~np.isfinite(P))
    if len(bad):
        raise InputError(f"probs has {len(bad)} non-finite values (NaN or inf), first at row "
                         f"{bad[0][0]}; fix the model outputs before scoring")
    if P.min() < 0 or P.max() > 1:
        raise InputError(f"probs must lie in [0, 1]; got values in [{P.min():.3g}, "
                         f"{P.max():.3g}]: apply softmax or sigmoid to logits first")
    sums = P.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > SUM_TOLERANCE)
    if task == "multiclass" and len(off):
        raise InputError(f"probs rows must sum to 1 for task='multiclass' (row {off[0]} sums to "
                         f"{sums[off[0]]:.4g}); apply softmax, or use task='multilabel'")
    return P


# --- labels --------------------------------------------------------------------------------------

def predict_labels(probs, class_names, *, task="multiclass", thresholds=None,
                   pooled: bool = False) -> np.ndarray:
    """Predicted class indices (n,) for multiclass, a 0/1 array (n, k) for multilabel.
    `pooled`: rows are scores pooled over a clip's frames (runtime/clip_scores.py), which need
    not sum to 1 under `max` pooling; the rule is the same."""
    names = check_names(class_names, task=task)
    P = check_probs(probs, len(names), task="multilabel" if pooled else task)
    pred = predict_indicator(P, resolve_thresholds(thresholds, names, task=task), task=task)
    return pred.argmax(axis=1) if task == "multiclass" else pred


def resolve_thresholds(thresholds, class_names, *, task="multiclass") -> np.ndarray:
    """One threshold per class, NaN where none applies (multiclass); multilabel defaults to 0.5."""
    cut = np.full(len(class_names), np.nan if task == "multiclass" else 0.5)
    if thresholds is not None and not isinstance(thresholds, Mapping):
        raise InputError(f"thresholds must map class names to numbers, e.g. {{'nsfw': 0.3}}; "
                         f"got {type(thresholds).__name__}")
    for name, value in (thresholds or {}).items():
        if name not in class_names:
            raise InputError(f"thresholds name an unknown class '{name}'; "
                             f"classes: {', '.join(class_names)}")
        value = value["threshold"] if isinstance(value, Mapping) else value
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = np.nan
        if not 0.0 <= value <= 1.0:
            raise InputError(f"threshold for '{name}' must be a number in [0, 1]; got {value!r}")
        cut[class_names.index(name)] = value
    return cut


def predict_indicator(P: np.ndarray, cut: np.ndarray, *, task: str) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        over = P >= cut  # NaN thresholds (no threshold) are never met
    if task == "multilabel":
        return over.astype(int)
    winner = np.where(over, P, -np.inf).argmax(axis=1)
    index = np.where(over.any(axis=1), winner, P.argmax(axis=1))
    return np.eye(P.shape[1], dtype=int)[index]


# --- review band and flags -----------------------------------------------------------------------

def apply_review_band(probs, thresholds, class_names) -> np.ndarray:
    """Boolean (n,): rows with any unsafe-class score inside that class's review band.

    Each entry of `thresholds` needs "review_band": [low, high], bounds included. Scores above
    the band are confident flags and below it confident passes; neither goes to review.
    """
    names = check_names(class_names, task="multilabel")  # any score array works: no sum check
    P = check_probs(probs, len(names), task="multilabel")
    review = np.zeros(P.shape[0], dtype=bool)
    for name, (low, high) in review_bands(thresholds, names).items():
        review |= inside_band(P[:, names.index(name)], low, high)
    return review


def inside_band(scores, low: float, high: float) -> np.ndarray:
    """Boolean: which `scores` lie inside the review band [low, high], bounds included. The one
    home of the rule: training's review rate (`train.thresholds`) counts what this sends."""
    scores = np.asarray(scores)
    return (scores >= low) & (scores <= high)


def review_bands(thresholds, names) -> dict[str, tuple[float, float]]:
    """{unsafe class: (low, high)} of `thresholds`; InputError for a class not in `names` or an
    entry without a usable band."""
    if not isinstance(thresholds, Mapping):
        raise InputError(f"thresholds must be the dict choose_thresholds returns; "
                         f"got {type(thresholds).__name__}")
    for name in thresholds:
        if name not in names:
            raise InputError(f"thresholds name an unknown class '{name}'; "
                             f"classes: {', '.join(names)}")
    return {name: review_band(name, entry) for name, entry in thresholds.items()}


def review_band(name, entry) -> tuple[float, float]:
    band = entry.get("review_band") if isinstance(entry, Mapping) else None
    try:
        low, high = (float(b) for b in band)
    except (TypeError, ValueError):
        raise InputError(f"thresholds['{name}'] needs a 'review_band': [low, high]; "
                         f"pass the result of choose_thresholds") from None
    if not low <= high:
        raise InputError(f"thresholds['{name}'] review_band {band} has low > high")
    return low, high


def flagged(probs, thresholds, class_names) -> list[list[str]]:
    """Per row, the unsafe classes whose score is at or over their threshold."""
    P = np.asarray(probs, dtype=float)
    cut = resolve_thresholds(thresholds, list(class_names), task="multilabel")
    named = [class_names.index(name) for name in thresholds or {}]
    return [[class_names[k] for k in named if row[k] >= cut[k]] for row in P]


def explained_classes(probs, class_names, *, task: str, thresholds=None,
                      pooled: bool = False) -> np.ndarray:
    """Per row, the class index an explanation of the decision targets: multiclass, the class
    decided (thresholds included); multilabel, the highest-scoring flagged class, else the
    highest-scoring class predicted, else the top score (tier 1's choice for a flagged row).
    `pooled` as in `predict_labels`."""
    names = list(class_names)
    P = np.asarray(probs, dtype=float)
    decided = predict_labels(P, names, task=task, thresholds=thresholds or None, pooled=pooled)
    if task == "multiclass":
        return decided
    chosen = np.zeros((len(P), len(names)), dtype=bool)
    for i, flags in enumerate(flagged(P, thresholds or {}, names)):
        chosen[i, [names.index(c) for c in flags]] = True
    chosen = np.where(chosen.any(axis=1, keepdims=True), chosen, decided == 1)
    pick = np.where(chosen, P, -np.inf).argmax(axis=1)
    return np.where(chosen.any(axis=1), pick, P.argmax(axis=1))


def decide(probs, class_names, *, task: str, thresholds=None, pooled: bool = False) -> list[dict]:
    """One dict per row: scores, labels, flagged, needs_review and review_classes (the unsafe
    classes whose score is inside their review band, highest first: what a review is about);
    the decision record's rule part. `pooled` as in `predict_labels` (a clip's pooled scores)."""
    names, thresholds = list(class_names), dict(thresholds or {})
    labels = predict_labels(probs, names, task=task, thresholds=thresholds or None, pooled=pooled)
    bands = review_bands(thresholds, names)
    flags = flagged(probs, thresholds, names)
    rows = []
    for row, label, flag in zip(np.asarray(probs), labels, flags):
        chosen = ([names[int(label)]] if task == "multiclass"
                  else [names[k] for k in np.flatnonzero(label)])
        scores = {c: float(s) for c, s in zip(names, row)}
        in_band = in_review_band(scores, bands)
        rows.append({"scores": scores, "labels": chosen, "flagged": flag,
                     "needs_review": bool(in_band), "review_classes": in_band})
    return rows


def in_review_band(scores: Mapping, bands: Mapping) -> list[str]:
    """The classes of `bands` ({class: (low, high)}) whose score is inside, highest first."""
    return sorted((c for c, (low, high) in bands.items() if low <= scores[c] <= high),
                  key=lambda c: -scores[c])


def review_classes(scores: Mapping, thresholds) -> list[str]:
    """`decide`'s review_classes for a stored decision's `scores` under `thresholds`."""
    return in_review_band(scores, {name: review_band(name, entry)
                                   for name, entry in (thresholds or {}).items()
                                   if name in scores and isinstance(entry, Mapping)
                                   and entry.get("review_band")})
