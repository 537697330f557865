"""Thresholds for unsafe classes, chosen on validation data, and the human-review band around them.

    policy = choose_thresholds(y_val, probs_val, names, unsafe=["nsfw", "gore"])
    policy["nsfw"]["threshold"], policy["nsfw"]["precision"]   # what 95% recall costs
    needs_review = apply_review_band(probs_test, policy, names)   # shotlab.runtime.decide
    classification_metrics(y_test, probs_test, names, thresholds=policy)

Each unsafe class is treated one-vs-rest on its own score: its threshold is the highest one that
flags at least `target_recall` x (n + 1) of the class's n positives, or all of them when that is
more than n: the split-conformal quantile, so that a NEW positive is flagged with probability at
least `target_recall` (exchangeable scores assumed). Flagging `target_recall` x n, the empirical
quantile, falls short by about 1/(n + 1): with 20 positives at 95% it skips the lowest one and
caught 0.86-0.92 of held-out positives on average (benchmarks/oof_thresholds.py). With up to
1 / (1 - target_recall) - 1 positives (19 at 95%) both rules flag them all. With at least one
positive a threshold always exists; what varies is the precision it costs, which the result
reports. A class without positives gets threshold 0.0 (flag everything: no evidence, so fail
safe) and `reached: False`.

The threshold is then lowered into the gap beneath it (`below_noise`): by SCORE_SLACK, or halfway
to the next lower score where the gap is narrower. It flags the same validation samples, and the
positive it rests on stays flagged when an exported model scores it a few float ulps lower (an
ONNX graph scored the threshold-setting comment 2e-8 under the threshold, and missed it).

The positives are the validation split's, or, where `shotlab train` can score the train split
out of fold, train and validation pooled (`train.threshold_scores`).

Few-shot validation sets make thresholds shaky, so each one is reported with its uncertainty:
`threshold_interval` (a 90% bootstrap interval over the class's validation positives),
`flag_rate` (the share of the scored samples it flags),
`recall_lower_bound` (the one-sided 95% Clopper-Pearson bound on the recall it reaches) and
`positives_needed` (how many validation positives, all caught, it takes before that bound can
reach the target: 59 for 95% recall). `confident` is False when the bound falls short: the run
warns and says how many more examples the class needs.

The review band is a cost too, a human's time: `review_rate` is the share of the same scored
samples its band sends to review (bounds included, as `runtime.decide.apply_review_band` does),
and `widest_margin` the widest review margin, in steps of 0.001 under the policy's cap, whose band
would send at most REVIEW_LIMIT of them (None where only a margin of 0, no review at all, would:
the scores crowd within MARGIN_STEP of the threshold). A band over that limit gets a warning at
train with that margin as the fix: on the sample set, a threshold of 0.051 with a margin of 0.05 gave a band [0.001, 0.101]
that sent 61% of the 96 scored images (train folds + val) to review, while flagging 49%, and no
warning said so.

Under the multiclass rule (`shotlab.runtime.decide.predict_labels`) a sample over the thresholds of
two unsafe classes goes to the higher score, so test-time recall per class can be lower than the
one-vs-rest recall reported here; measure it with `classification_metrics(..., thresholds=...)`.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from shotlab.core.errors import InputError
from shotlab.runtime.decide import inside_band
from shotlab.train.metrics import check_inputs

# Moderation: a missed unsafe image costs more than a false alarm a reviewer clears in seconds.
TARGET_RECALL = 0.95
# Scores within 0.1 of a threshold are too close to call on a model trained on 5-50 images a class.
REVIEW_MARGIN = 0.1
CONFIDENCE = 0.95  # how sure a "recall >= target" statement must be
BOOTSTRAP_ROUNDS = 1000
INTERVAL = (5.0, 95.0)  # percentiles of the bootstrap thresholds: a 90% interval
# How far under the positive it rests on a threshold goes (at most halfway to the next lower
# score): above FP16's rounding of a score near 1 (5e-4), far below any precision that matters.
SCORE_SLACK = 1e-3
# A band meant for the uncertain few that sends more than half of the samples to a human has made
# review the main path: the policy's margin is too wide for this class's scores.
REVIEW_LIMIT = 0.5
MARGIN_STEP = 1e-3  # the precision `widest_margin` suggests a margin at
MARGIN_CAP = 0.5 - MARGIN_STEP  # a policy's margin must be under 0.5 (core.policy)


def choose_thresholds(y_true, probs, class_names, *, unsafe, target_recall=TARGET_RECALL,
                      review_margin=REVIEW_MARGIN, task="multiclass", pooled: bool = False) -> dict:
    """Per unsafe class, the highest threshold whose validation recall is >= target_recall.

    Returns {class name: {threshold, recall, precision, target_recall, reached, support,
    review_band: [low, high]}} for the classes in `unsafe` only. precision is over the
    validation samples at or above the threshold; review_band is threshold -/+ review_margin,
    clipped to [0, 1]; recall is None for a class without positives. `pooled`: clip scores
    pooled over frames (they need not sum to 1).
    """
    Y, P, names = check_inputs(y_true, probs, class_names, task=task, pooled=pooled)
    wanted = _check_unsafe(unsafe, names)
    if not isinstance(target_recall, Real) or not 0 < target_recall <= 1:
        raise InputError(f"target_recall must be in (0, 1]; got {target_recall!r}")
    if not isinstance(review_margin, Real) or not 0 <= review_margin <= 1:
        raise InputError(f"review_margin must be in [0, 1]; got {review_margin!r}")
    return {name: _class_threshold(Y[:, names.index(name)], P[:, names.index(name)],
                                   target_recall=float(target_recall), margin=float(review_margin))
            for name in wanted}


def highest_threshold(positive_scores, target_recall: float) -> float | None:
    """The highest t flagging at least min(target_recall * (n + 1), n) of the n positive scores
    (the conformal quantile, see the module docstring); None without positives."""
    s = np.sort(np.asarray(positive_scores, dtype=float))
    if s.size == 0:
        return None
    at_or_above = s.size - np.searchsorted(s, s, side="left")  # positives flagged at t = s[i]
    wanted = min(target_recall * (s.size + 1), s.size) - 1e-9  # 0.95 * 40 may round below 38
    return float(s[at_or_above >= wanted].max())


def below_noise(threshold: float, scores: np.ndarray) -> float:
    """`threshold` lowered by SCORE_SLACK, or halfway to the highest of `scores` below it where
    that is nearer: the same scores are flagged, with room for float noise (module docstring)."""
    lower = scores[scores < threshold]
    floor = float(lower.max()) if lower.size else 0.0
    lowered = max(threshold - SCORE_SLACK, (threshold + floor) / 2, 0.0)
    return lowered if lowered > floor or not lower.size else threshold  # one ulp: no room


def _class_threshold(y, s, *, target_recall, margin) -> dict:
    positives = s[y == 1]
    threshold = highest_threshold(positives, target_recall)
    threshold = 0.0 if threshold is None else below_noise(threshold, s)
    recall = float(np.mean(positives >= threshold)) if positives.size else None
    flagged = s >= threshold
    return {
        "threshold": threshold,
        "recall": recall,
        "precision": float(y[flagged].mean()) if flagged.any() else None,
        "target_recall": target_recall,
        "reached": recall is not None and recall >= target_recall,
        "support": int(positives.size),
        "review_band": band(threshold, margin),
        "flag_rate": float(flagged.mean()) if s.size else None,
        "review_rate": review_rate(s, threshold, margin),
        "widest_margin": widest_margin(s, threshold),
        **uncertainty(positives, threshold, target_recall, s),
    }


def band(threshold: float, margin: float) -> list[float]:
    """The review band: threshold -/+ margin, clipped to [0, 1]."""
    return [max(0.0, threshold - margin), min(1.0, threshold + margin)]


def review_rate(scores: np.ndarray, threshold: float, margin: float) -> float | None:
    """The share of `scores` the band around `threshold` sends to review; None without scores."""
    return float(inside_band(scores, *band(threshold, margin)).mean()) if scores.size else None


def widest_margin(scores: np.ndarray, threshold: float,
                  limit: float = REVIEW_LIMIT) -> float | None:
    """The widest margin (a multiple of MARGIN_STEP, at most MARGIN_CAP) whose band sends at most
    `limit` of `scores` to review; None where only a margin of 0, no review at all, would (see
    the module docstring)."""
    if not scores.size:
        return None
    allowed = int(np.floor(limit * scores.size + 1e-9))  # samples the band may hold
    distance = np.sort(np.abs(scores - threshold))
    if allowed >= scores.size:
        return MARGIN_CAP
    steps = min(int(np.floor(distance[allowed] / MARGIN_STEP)), round(MARGIN_CAP / MARGIN_STEP))
    while steps >= 0 and review_rate(scores, threshold, steps * MARGIN_STEP) > limit:
        steps -= 1  # distance[allowed] itself, or float rounding at the band's edge
    return round(steps * MARGIN_STEP, 3) if steps > 0 else None


def uncertainty(positives: np.ndarray, threshold: float, target_recall: float,
                scores: np.ndarray) -> dict:
    """How far the threshold and its recall can be trusted on `positives` (the class's
    validation scores; `scores`: all of its samples'): the bootstrap interval of the threshold,
    the recall's lower confidence bound, and the positives it takes for that bound to be able
    to reach the target."""
    n = int(positives.size)
    needed = positives_needed(target_recall)
    if n == 0:
        return {"threshold_interval": None, "recall_lower_bound": None,
                "positives_needed": needed, "confident": False}
    rng = np.random.default_rng(0)  # a local generator: the interval is reproducible
    draws = rng.choice(positives, size=(BOOTSTRAP_ROUNDS, n), replace=True)
    cuts = [below_noise(highest_threshold(row, target_recall), scores) for row in draws]
    low, high = np.percentile(cuts, INTERVAL)
    caught = int(np.sum(positives >= threshold))
    bound = recall_lower_bound(caught, n)
    return {"threshold_interval": [float(low), float(high)], "recall_lower_bound": bound,
            "positives_needed": needed, "confident": bound >= target_recall}


def recall_lower_bound(caught: int, positives: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson lower bound on recall after catching `caught` of `positives`."""
    from scipy.stats import beta

    return 0.0 if caught == 0 else float(beta.ppf(1 - confidence, caught, positives - caught + 1))


def positives_needed(target_recall: float, confidence: float = CONFIDENCE) -> int | None:
    """The fewest positives, all caught, whose recall lower bound reaches `target_recall`
    ((1 - confidence) ** (1 / n) >= target); None for a target of 1 (never provable)."""
    if target_recall >= 1:
        return None
    return int(np.ceil(np.log(1 - confidence) / np.log(target_recall) - 1e-9))


def _check_unsafe(unsafe, names: list[str]) -> list[str]:
    if not isinstance(unsafe, str) and not hasattr(unsafe, "__iter__"):
        raise InputError(f"unsafe must be a class name or a list of them; got {unsafe!r}")
    wanted = [unsafe] if isinstance(unsafe, str) else list(unsafe)
    unknown = [u for u in wanted if u not in names]
    if unknown:
        raise InputError(f"unsafe names unknown class(es) {', '.join(map(repr, unknown))}; "
                         f"classes: {', '.join(names)}")
    return list(dict.fromkeys(wanted))
