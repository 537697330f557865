"""Parity with PyTorch and the regression gate.

Every runtime is measured on the run's test split against the PyTorch checkpoint: the largest
absolute probability difference, top-1 agreement (for multilabel: the same predicted label set
under the policy thresholds), recall on the policy's unsafe classes, and for each unsafe class
with a threshold the share of its positives flagged (score at or over the threshold: what
moderation acts on; a score can fall under the threshold and keep the argmax, so the label's
recall alone misses it). The reference sees the checkpoint's own preprocessing; a runtime sees
the bundle's, so a preprocessing mismatch shows up here as the regression it is. An unsafe class
with no positives in the split cannot be checked; the gate says so (`unchecked`).
"""

from __future__ import annotations

import numpy as np

from shotlab.runtime.decide import predict_labels, resolve_thresholds


# Top-1 agreement below 99% means the export changed decisions on 1 image in 100.
MIN_AGREEMENT = 0.99
# A 2-point recall drop on an unsafe class is already a visible rise in missed content.
RECALL_TOLERANCE = 0.02
# Rates are ratios of counts: 49/50 read 1 - 0.98 = 0.020000000000000018, past a 0.02 tolerance.
EPSILON = 1e-9


def predicted(probs, classes, task, thresholds, pooled: bool = False) -> np.ndarray:
    return predict_labels(probs, list(classes), task=task, thresholds=thresholds or None,
                          pooled=pooled)


def agreement(reference, probs, classes, task, thresholds, *, pooled: bool = False) -> dict:
    """max_abs_diff and top1_agreement of `probs` against `reference` (same rows; `pooled`:
    clip scores pooled over frames, as runtime.decide takes them)."""
    a = predicted(reference, classes, task, thresholds, pooled)
    b = predicted(probs, classes, task, thresholds, pooled)
    same = (a == b) if a.ndim == 1 else (a == b).all(axis=1)
    return {"max_abs_diff": float(np.abs(reference - probs).max()) if len(probs) else 0.0,
            "top1_agreement": float(same.mean()) if len(same) else 1.0, "n": int(len(same))}


def flag_recall(y, probs, classes, task, thresholds, unsafe) -> dict:
    """Per unsafe class with a threshold, the share of its positives in `y` whose score is at
    or over it (None: no positives)."""
    names = list(classes)
    cut = resolve_thresholds(thresholds or None, names, task="multilabel")
    P, y = np.asarray(probs), np.asarray(y)
    shares = {}
    for name in unsafe:
        if name not in (thresholds or {}):
            continue
        k = names.index(name)
        positives = (y == k) if y.ndim == 1 else (y[:, k] == 1)
        shares[name] = float((P[positives, k] >= cut[k]).mean()) if positives.any() else None
    return shares


def gate_failures(runtime: str, parity: dict, metrics: dict, reference: dict, unsafe, *,
                  min_agreement: float, recall_tolerance: float,
                  reference_flags: dict | None = None) -> list[str]:
    """One message per broken rule, naming the metric and both numbers. `parity["flag_recall"]`
    and `reference_flags` are this runtime's and PyTorch's `flag_recall`, where there are
    thresholds."""
    failures = []
    if parity["top1_agreement"] < min_agreement:
        failures.append(f"{runtime}: top-1 agreement with PyTorch {parity['top1_agreement']:.3f} "
                        f"is below --min-agreement {min_agreement:.3f}")
    for name in unsafe:
        rates = [("recall on unsafe class", metrics["per_class"][name]["recall"],
                  reference["per_class"][name]["recall"])]
        if name in parity.get("flag_recall", {}) and name in (reference_flags or {}):
            rates.append(("share of positives flagged for unsafe class",
                          parity["flag_recall"][name], reference_flags[name]))
        for what, ours, theirs in rates:
            if ours is None or theirs is None:
                continue  # no positives of this class in the split: `unchecked` says so
            if theirs - ours > recall_tolerance + EPSILON:
                failures.append(f"{runtime}: {what} '{name}' {ours:.3f} vs PyTorch "
                                f"{theirs:.3f} (drop {theirs - ours:.3f} > --recall-tolerance "
                                f"{recall_tolerance:.3f})")
    return failures


def unchecked(metrics: dict, unsafe, split: str) -> list[str]:
    """The unsafe classes the recall rules could not check: no positives in the split."""
    return [f"recall on unsafe class '{name}' not checked: the {split} split has no '{name}' "
            f"samples" for name in unsafe if metrics["per_class"][name]["recall"] is None]
