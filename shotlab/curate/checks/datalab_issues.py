"""Outliers, near duplicates and non-IID order from cleanlab's Datalab, on the same embeddings.

Datalab's `<type>_score` is a quality (1 = fine); ours is a severity, so it is written as
1 - quality, and `is_<type>_issue` is copied as is. Datalab's k-NN graph needs more samples than
neighbours: `k` shrinks on small sets and below `MIN_SAMPLES` the checks are skipped with a note.
"""

from __future__ import annotations

import numpy as np

from shotlab.curate.checks.base import CheckResult, empty_result

TYPES = ("outlier", "near_duplicate", "non_iid")
DEFAULT_K = 10  # Datalab's own default neighbourhood
MIN_SAMPLES = 12  # fewer, and every point's 10 nearest neighbours are most of the set


def find_datalab_issues(features: np.ndarray, *, types=TYPES, pred_probs=None) -> list[CheckResult]:
    """One result per issue type in `types`, in that order."""
    n = len(features)
    if n < MIN_SAMPLES:
        return [empty_result(t, n, f"skipped, Datalab needs at least {MIN_SAMPLES} samples "
                                f"(got {n})") for t in types]
    from cleanlab import Datalab

    k = min(DEFAULT_K, n - 2)
    lab = Datalab(data={"position": list(range(n))}, verbosity=0)
    lab.find_issues(features=np.asarray(features, np.float32), pred_probs=pred_probs,
                    issue_types={t: {"k": k} for t in types})
    summary = lab.get_issue_summary()
    return [from_frame(t, lab.get_issues(t), summary) for t in types]


def from_frame(name: str, frame, summary) -> CheckResult:
    quality = frame[f"{name}_score"].to_numpy(float)
    row = summary[summary["issue_type"] == name]
    overall = float(row["score"].iloc[0]) if len(row) else None
    return CheckResult(name, 1.0 - quality, frame[f"is_{name}_issue"].to_numpy(bool),
                       details={"dataset_score": overall})
