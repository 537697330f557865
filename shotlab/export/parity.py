"""Parity with PyTorch and the regression gate.

Every runtime is measured on the run's test split against the PyTorch checkpoint: the largest
absolute probability difference, top-1 agreement (for multilabel: the same predicted label set
under the policy thresholds) and recall on the policy's unsafe classes. The reference sees the
checkpoint's own preprocessing; a runtime sees the bundle's, so a preprocessing mismatch shows
up here as the regression it is.
"""

from __future__ import annotations

import numpy as np

from shotlab.runtime.decide import predict_labels


# Top-1 agreement below 99% means the export changed decisions on 1 image in 100.
MIN_AGREEMENT = 0.99
# A 2-point recall drop on an unsafe class is already a visible rise in missed content.
RECALL_TOLERANCE = 0.02


def predicted(probs, classes, task, thresholds) -> np.ndarray:
    return predict_labels(probs, list(classes), task=task, thresholds=thresholds or None)


def agreement(reference, probs, classes, task, thresholds) -> dict:
    """max_abs_diff and top1_agreement of `probs` against `reference` (same rows)."""
    a = predicted(reference, classes, task, thresholds)
    b = predicted(probs, classes, task, thresholds)
    same = (a == b) if a.ndim == 1 else (a == b).all(axis=1)
    return {"max_abs_diff": float(np.abs(reference - probs).max()) if len(probs) else 0.0,
            "top1_agreement": float(same.mean()) if len(same) else 1.0, "n": int(len(same))}


def gate_failures(runtime: str, parity: dict, metrics: dict, reference: dict, unsafe, *,
                  min_agreement: float, recall_tolerance: float) -> list[str]:
    """One message per broken rule, naming the metric and both numbers."""
    failures = []
    if parity["top1_agreement"] < min_agreement:
        failures.append(f"{runtime}: top-1 agreement with PyTorch {parity['top1_agreement']:.3f} "
                        f"is below --min-agreement {min_agreement:.3f}")
    for name in unsafe:
        ours = metrics["per_class"][name]["recall"]
        theirs = reference["per_class"][name]["recall"]
        if ours is None or theirs is None:
            continue  # no positives of this class in the test split: nothing to compare
        if theirs - ours > recall_tolerance:
            failures.append(f"{runtime}: recall on unsafe class '{name}' {ours:.3f} vs PyTorch "
                            f"{theirs:.3f} (drop {theirs - ours:.3f} > --recall-tolerance "
                            f"{recall_tolerance:.3f})")
    return failures
