"""Classification metrics for tiny test sets: F2, AUPRC, calibration and bootstrap intervals.

    m = classification_metrics(y_true, probs, ["safe", "nsfw", "gore"], thresholds={"nsfw": 0.3})
    m["macro_f2"], m["per_class"]["nsfw"]["recall"], m["intervals"]["recall/nsfw"]

Tasks. "multiclass": `y_true` holds class indices (n,) and `probs` is (n, k) softmax rows.
"multilabel": `y_true` is an (n, k) 0/1 array and `probs` (n, k) independent sigmoid scores.

Prediction rule: `shotlab.runtime.decide` (the one rule predict, the report and the service use).
`thresholds` maps class name -> float, or is `choose_thresholds`' result.

Undefined is None. A class without positives in y_true has no recall, F-scores, AUPRC or ROC AUC;
macro F1/F2/AUPRC average the classes that do have positives; macro ROC AUC is None as soon as one
class's AUC is undefined (no positives or no negatives), as scikit-learn's would be.

Intervals are 95% bootstrap percentile intervals over resampled rows, except per-class recall's:
that is an exact binomial (Clopper-Pearson) interval on the positives caught, because a bootstrap
of 4 positives all caught is [1, 1], which tells a reviewer nothing (the exact one is [0.40, 1]).
A resample where a metric is undefined is skipped for that metric: a class drawn zero times has no
recall, and a macro metric is skipped when a class with positives in the test set is missing from
the resample, so every resample averages the same classes. `bootstrap["valid"]` says how many
resamples each rests on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from shotlab.core.errors import InputError
from shotlab.runtime.decide import check_names, check_probs, predict_indicator, resolve_thresholds

# 15 equal-width bins: the usual choice since Guo et al. (2017), so numbers compare with papers.
ECE_BINS = 15
# Bootstrap weights are drawn this many resamples at a time, bounding memory to chunk x n floats.
BOOTSTRAP_CHUNK = 256


def classification_metrics(y_true, probs, class_names, *, task="multiclass", thresholds=None,
                           n_bootstrap=1000, seed=0, pooled: bool = False) -> dict:
    """Metrics of `probs` against `y_true`, as a JSON-ready dict (see the module docstring).

    Keys: task, n, class_names, thresholds (those applied), accuracy (subset accuracy for
    multilabel), hamming_accuracy (multilabel only), macro_f1, macro_f2, macro_auprc, roc_auc,
    ece, per_class {name: {precision, recall, f1, f2, auprc, roc_auc, support}},
    confusion_matrix (multiclass: k x k, rows = true class; multilabel: {name: [[tn, fp],
    [fn, tp]]}), intervals {accuracy, macro_f1, macro_auprc, "recall/<name>": [low, high]}
    and bootstrap {n_resamples, seed, valid: {metric: resamples used}}.
    `n_bootstrap=0` leaves every interval None. `pooled`: rows are clip scores pooled over
    frames (runtime/clip_scores.py), which need not sum to 1 (the decision rule is the same).
    """
    Y, P, names = check_inputs(y_true, probs, class_names, task=task, pooled=pooled)
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise InputError(f"n_bootstrap must be an integer >= 0; got {n_bootstrap!r}")
    cut = resolve_thresholds(thresholds, names, task=task)
    pred = predict_indicator(P, cut, task=task)
    result = {"task": task, "n": len(Y), "class_names": names,
              "thresholds": {n: float(t) for n, t in zip(names, cut) if not np.isnan(t)}}
    result.update(_summary_metrics(Y, P, pred, names, task=task))
    intervals, valid = bootstrap_intervals(_bootstrap_statistic(Y, P, pred, names), len(Y),
                                           n_bootstrap=n_bootstrap, seed=seed)
    intervals.update(recall_intervals(Y, pred, names) if n_bootstrap
                     else {f"recall/{name}": None for name in names})
    result["intervals"] = intervals
    result["bootstrap"] = {"n_resamples": n_bootstrap, "seed": seed, "valid": valid}
    return _json_ready(result)


def _summary_metrics(Y, P, pred, names, *, task) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, multilabel_confusion_matrix

    per_class = _per_class(Y, P, pred, names, task=task)
    out = {"accuracy": accuracy_score(_sk(Y, task), _sk(pred, task))}
    if task == "multilabel":
        out["hamming_accuracy"] = float(np.mean(Y == pred))
    for key, field in (("macro_f1", "f1"), ("macro_f2", "f2"), ("macro_auprc", "auprc")):
        out[key] = _macro([m[field] for m in per_class.values()])
    aucs = [m["roc_auc"] for m in per_class.values()]
    out["roc_auc"] = None if any(a is None for a in aucs) else float(np.mean(aucs))
    out["ece"] = expected_calibration_error(*calibration_pairs(Y, P, task=task))
    out["per_class"] = per_class
    if task == "multiclass":
        labels = list(range(len(names)))
        out["confusion_matrix"] = confusion_matrix(_sk(Y, task), _sk(pred, task), labels=labels)
    else:
        out["confusion_matrix"] = dict(zip(names, multilabel_confusion_matrix(Y, pred)))
    return out


def _per_class(Y, P, pred, names, *, task) -> dict:
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        _sk(Y, task), _sk(pred, task), labels=list(range(len(names))), zero_division=0)
    out = {}
    for c, name in enumerate(names):
        has = support[c] > 0  # recall, F and AUPRC need positives
        out[name] = {
            "precision": float(precision[c]),
            "recall": float(recall[c]) if has else None,
            "f1": float(f1[c]) if has else None,
            "f2": fbeta(precision[c], recall[c], beta=2) if has else None,
            "auprc": float(average_precision_score(Y[:, c], P[:, c])) if has else None,
            "roc_auc": _roc_auc(Y[:, c], P[:, c]),
            "support": int(support[c]),
        }
    return out


def _roc_auc(y, s) -> float | None:
    from sklearn.metrics import roc_auc_score

    if y.min() == y.max():  # one-vs-rest AUC needs both positives and negatives
        return None
    return float(roc_auc_score(y, s))


def _macro(values) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _sk(Y: np.ndarray, task: str) -> np.ndarray:
    """The label form scikit-learn expects: class indices for multiclass, indicators otherwise."""
    return Y.argmax(axis=1) if task == "multiclass" else Y


# --- small metric helpers ------------------------------------------------------------------------

def fbeta(precision, recall, *, beta=1.0):
    """F-beta from precision and recall; 0 where both are 0, NaN where either is NaN.

    beta=2 weighs recall four times as much as precision: what moderation wants for unsafe classes.
    """
    p, r = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
    b2 = beta ** 2
    denominator = b2 * p + r
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(denominator == 0, 0.0, (1 + b2) * p * r / denominator)
    return float(f) if f.ndim == 0 else f


def expected_calibration_error(confidences, outcomes, *, n_bins=ECE_BINS) -> float:
    """Sum over equal-width bins of (share of scores in the bin) x |mean outcome - mean score|.

    Bins are (lo, hi] with 0 in the first. Multiclass passes top-label confidence and whether the
    argmax was right; multilabel passes every (sample, class) score and its 0/1 label.
    """
    conf = np.asarray(confidences, dtype=float).ravel()
    hit = np.asarray(outcomes, dtype=float).ravel()
    if conf.size == 0 or conf.shape != hit.shape:
        raise InputError(f"confidences and outcomes must be non-empty and the same length; "
                         f"got {conf.size} and {hit.size}")
    count, score_sum, hit_sum = calibration_bins(conf, hit, n_bins=n_bins)
    return float(np.abs(hit_sum - score_sum).sum() / conf.size)


def calibration_bins(conf: np.ndarray, hit: np.ndarray, *, n_bins=ECE_BINS):
    """Per equal-width bin (lo, hi]: the number of scores, their sum and the sum of outcomes."""
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], conf, side="left")
    return (np.bincount(bins, minlength=n_bins), np.bincount(bins, conf, n_bins),
            np.bincount(bins, hit, n_bins))


def ece(y_true, probs, *, task="multiclass") -> float:
    """Expected calibration error of `probs` against `y_true` (labels as classification_metrics
    takes them)."""
    Y, P, _ = check_inputs(y_true, probs, [str(k) for k in range(np.shape(probs)[1])], task=task)
    return expected_calibration_error(*calibration_pairs(Y, P, task=task))


def calibration_pairs(Y, P, *, task):
    if task == "multiclass":
        return P.max(axis=1), P.argmax(axis=1) == Y.argmax(axis=1)
    return P.ravel(), Y.ravel()


def recall_intervals(Y, pred, names, confidence: float = 0.95) -> dict:
    """{"recall/<name>": two-sided Clopper-Pearson interval on caught / positives, or None}."""
    from scipy.stats import binomtest

    out = {}
    for c, name in enumerate(names):
        positives = int(Y[:, c].sum())
        caught = int((Y[:, c].astype(bool) & pred[:, c].astype(bool)).sum())
        out[f"recall/{name}"] = ([float(v) for v in binomtest(caught, positives).proportion_ci(
            confidence, method="exact")] if positives else None)
    return out


# --- bootstrap -----------------------------------------------------------------------------------

def bootstrap_intervals(statistic: Callable[[np.ndarray], dict], n: int, *, n_bootstrap=1000,
                        seed=0, confidence=0.95) -> tuple[dict, dict]:
    """Percentile intervals of `statistic` over `n_bootstrap` resamples of n rows.

    `statistic(weights)` gets a (b, n) array saying how often each row was drawn in each of b
    resamples and returns {name: (b,) array}, NaN where the metric is undefined; those resamples
    are skipped. Returns ({name: [low, high] or None}, {name: resamples used}). Seeded: the same
    seed gives the same intervals.
    """
    rng = np.random.default_rng(seed)
    sizes = [min(BOOTSTRAP_CHUNK, n_bootstrap - s) for s in range(0, n_bootstrap, BOOTSTRAP_CHUNK)]
    draws: dict[str, list] = {}
    for size in sizes or [0]:
        # how often each row is drawn when drawing n rows with replacement, per resample
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        for name, values in statistic(weights).items():
            draws.setdefault(name, []).append(np.asarray(values, dtype=float))
    tail = 50.0 * (1.0 - confidence)
    intervals, valid = {}, {}
    for name, parts in draws.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        valid[name] = int(values.size)
        interval = np.percentile(values, [tail, 100.0 - tail]).tolist() if values.size else None
        intervals[name] = interval
    return intervals, valid


def _bootstrap_statistic(Y, P, pred, names) -> Callable[[np.ndarray], dict]:
    """Accuracy, macro F1 and macro AUPRC for a batch of row weights (recall's interval is
    exact: `recall_intervals`).

    Vectorised numpy, because scikit-learn per resample costs ~2 ms a call and a 10-class
    bootstrap would take half a minute; with all weights 1 it equals `_summary_metrics` (tested).
    """
    correct = np.all(Y == pred, axis=1).astype(float)
    present = Y.sum(axis=0) > 0  # classes with positives in the test set
    orders = [_ranking(Y[:, c], P[:, c]) for c in range(len(names))]

    def statistic(weights: np.ndarray) -> dict:
        W = weights.astype(float)
        support, tp, flagged = W @ Y, W @ (Y * pred), W @ pred
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, tp / support, np.nan)
            precision = np.where(flagged > 0, tp / flagged, 0.0)
        complete = np.all(support[:, present] > 0, axis=1)
        ap = np.stack([_weighted_average_precision(W, *o) for o in orders], axis=1)
        return {"accuracy": W @ correct / len(Y),
                "macro_f1": _macro_rows(fbeta(precision, recall), present, complete),
                "macro_auprc": _macro_rows(ap, present, complete)}

    return statistic


def _macro_rows(values, present, complete):
    if not present.any():
        return np.full(len(values), np.nan)
    return np.where(complete, values[:, present].mean(axis=1), np.nan)


def _ranking(y, s):
    """Rows by descending score, and the last position of each distinct score (ties grouped)."""
    order = np.argsort(-s, kind="mergesort")
    last = np.r_[np.flatnonzero(np.diff(s[order])), len(s) - 1]
    return order, y[order].astype(float), last


def _weighted_average_precision(W, order, y_sorted, last):
    """scikit-learn's average precision, for each row of weights W (b, n) at once."""
    tps = np.cumsum(W[:, order] * y_sorted, axis=1)[:, last]
    seen = np.cumsum(W[:, order], axis=1)[:, last]
    positives = tps[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.diff(tps / positives, axis=1, prepend=0.0)  # recall gained at each threshold
        ap = np.where(step > 0, step * tps / seen, 0.0).sum(axis=1)
    return np.where(positives[:, 0] > 0, ap, np.nan)


# --- input checks --------------------------------------------------------------------------------

def check_inputs(y_true, probs, class_names, *, task="multiclass", pooled: bool = False):
    """Validated (Y, P, names): Y an (n, k) 0/1 int array (one-hot for multiclass), P float64.
    `pooled` rows (a clip's pooled scores) skip the multiclass sum-to-1 check."""
    names = check_names(class_names, task=task)
    P = check_probs(probs, len(names), task="multilabel" if pooled else task)
    return _check_labels(y_true, P.shape[0], len(names), task=task), P, names


def _check_labels(y_true, n: int, k: int, *, task) -> np.ndarray:
    y = np.asarray(y_true)
    expected = (n,) if task == "multiclass" else (n, k)
    if y.shape != expected:
        one_hot = task == "multiclass" and y.ndim == 2
        hint = " (for one-hot labels pass y.argmax(1))" if one_hot else ""
        raise InputError(f"y_true must have shape {expected} to match probs for task='{task}'; "
                         f"got {y.shape}{hint}")
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.all(y == np.round(y))):
        raise InputError(f"y_true must hold integers for task='{task}'; got dtype {y.dtype}")
    y = y.astype(int)
    if task == "multilabel":
        if not np.isin(y, (0, 1)).all():
            raise InputError("y_true must be 0/1 for task='multilabel'; got other values")
        return y
    if y.min() < 0 or y.max() >= k:
        raise InputError(f"y_true holds class index {y.min() if y.min() < 0 else y.max()} but "
                         f"there are {k} classes (indices 0..{k - 1})")
    return np.eye(k, dtype=int)[y]


def _json_ready(value):
    """Plain Python: dicts, lists, floats, ints, bools; NaN and inf become None."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value
