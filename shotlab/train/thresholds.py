"""Thresholds for unsafe classes, chosen on validation data, and the human-review band around them.

    policy = choose_thresholds(y_val, probs_val, names, unsafe=["nsfw", "gore"])
    policy["nsfw"]["threshold"], policy["nsfw"]["precision"]   # what 95% recall costs
    needs_review = apply_review_band(probs_test, policy, names)
    classification_metrics(y_test, probs_test, names, thresholds=policy)

Each unsafe class is treated one-vs-rest on its own score: its threshold is the highest one that
still flags `target_recall` of the class's validation positives. With at least one positive the
target is always reachable (the lowest positive score flags them all); what varies is the
precision it costs, which the result reports. A class without validation positives gets
threshold 0.0 (flag everything: no evidence, so fail safe) and `reached: False`.

Under the multiclass rule (`shotlab.train.metrics.predict_labels`) a sample over the thresholds of
two unsafe classes goes to the higher score, so test-time recall per class can be lower than the
one-vs-rest recall reported here; measure it with `classification_metrics(..., thresholds=...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np

from shotlab.core.errors import InputError
from shotlab.train.metrics import _check_names, _check_probs, check_inputs

# Moderation: a missed unsafe image costs more than a false alarm a reviewer clears in seconds.
TARGET_RECALL = 0.95
# Scores within 0.1 of a threshold are too close to call on a model trained on 5-50 images a class.
REVIEW_MARGIN = 0.1


def choose_thresholds(y_true, probs, class_names, *, unsafe, target_recall=TARGET_RECALL,
                      review_margin=REVIEW_MARGIN, task="multiclass") -> dict:
    """Per unsafe class, the highest threshold whose validation recall is >= target_recall.

    Returns {class name: {threshold, recall, precision, target_recall, reached, support,
    review_band: [low, high]}} for the classes in `unsafe` only. precision is over the
    validation samples at or above the threshold; review_band is threshold -/+ review_margin,
    clipped to [0, 1]; recall is None for a class without positives.
    """
    Y, P, names = check_inputs(y_true, probs, class_names, task=task)
    wanted = _check_unsafe(unsafe, names)
    if not isinstance(target_recall, Real) or not 0 < target_recall <= 1:
        raise InputError(f"target_recall must be in (0, 1]; got {target_recall!r}")
    if not isinstance(review_margin, Real) or not 0 <= review_margin <= 1:
        raise InputError(f"review_margin must be in [0, 1]; got {review_margin!r}")
    return {name: _class_threshold(Y[:, names.index(name)], P[:, names.index(name)],
                                   target_recall=float(target_recall), margin=float(review_margin))
            for name in wanted}


def highest_threshold(positive_scores, target_recall: float) -> float | None:
    """The highest t with mean(positive_scores >= t) >= target_recall; None without positives."""
    s = np.sort(np.asarray(positive_scores, dtype=float))
    if s.size == 0:
        return None
    at_or_above = s.size - np.searchsorted(s, s, side="left")  # positives flagged at t = s[i]
    return float(s[at_or_above / s.size >= target_recall].max())


def _class_threshold(y, s, *, target_recall, margin) -> dict:
    positives = s[y == 1]
    threshold = highest_threshold(positives, target_recall)
    threshold = 0.0 if threshold is None else threshold
    recall = float(np.mean(positives >= threshold)) if positives.size else None
    flagged = s >= threshold
    return {
        "threshold": threshold,
        "recall": recall,
        "precision": float(y[flagged].mean()) if flagged.any() else None,
        "target_recall": target_recall,
        "reached": recall is not None and recall >= target_recall,
        "support": int(positives.size),
        "review_band": [max(0.0, threshold - margin), min(1.0, threshold + margin)],
    }


def apply_review_band(probs, thresholds, class_names) -> np.ndarray:
    """Boolean (n,): rows with any unsafe-class score inside that class's review band.

    `thresholds` is `choose_thresholds`' result (each entry needs "review_band": [low, high],
    bounds included). Scores above the band are confident flags and below it confident passes;
    neither goes to review.
    """
    names = _check_names(class_names, task="multilabel")  # any score array works: no sum check
    P = _check_probs(probs, len(names), task="multilabel")
    if not isinstance(thresholds, Mapping):
        raise InputError(f"thresholds must be the dict choose_thresholds returns; "
                         f"got {type(thresholds).__name__}")
    review = np.zeros(P.shape[0], dtype=bool)
    for name, entry in thresholds.items():
        if name not in names:
            raise InputError(f"thresholds name an unknown class '{name}'; "
                             f"classes: {', '.join(names)}")
        low, high = _band(name, entry)
        score = P[:, names.index(name)]
        review |= (score >= low) & (score <= high)
    return review


def _band(name, entry) -> tuple[float, float]:
    band = entry.get("review_band") if isinstance(entry, Mapping) else None
    try:
        low, high = (float(b) for b in band)
    except (TypeError, ValueError):
        raise InputError(f"thresholds['{name}'] needs a 'review_band': [low, high]; "
                         f"pass the result of choose_thresholds") from None
    if not low <= high:
        raise InputError(f"thresholds['{name}'] review_band {band} has low > high")
    return low, high


def _check_unsafe(unsafe, names: list[str]) -> list[str]:
    if not isinstance(unsafe, str) and not hasattr(unsafe, "__iter__"):
        raise InputError(f"unsafe must be a class name or a list of them; got {unsafe!r}")
    wanted = [unsafe] if isinstance(unsafe, str) else list(unsafe)
    unknown = [u for u in wanted if u not in names]
    if unknown:
        raise InputError(f"unsafe names unknown class(es) {', '.join(map(repr, unknown))}; "
                         f"classes: {', '.join(names)}")
    return list(dict.fromkeys(wanted))
