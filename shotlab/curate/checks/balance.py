"""Class balance: counts, the largest/smallest ratio and classes below a minimum. Dataset-level
only (no per-sample fields); it reuses what `curate info` computes."""

from __future__ import annotations

from collections import Counter

import numpy as np

from shotlab.curate.checks.base import CheckResult
from shotlab.curate.summary import MIN_PER_CLASS, class_warnings, imbalance_ratio, kind_noun

NAME = "balance"


def find_balance_issues(labels: list[tuple[str, ...]], *, min_per_class: int = MIN_PER_CLASS,
                        kind: str = "image") -> CheckResult:
    """`kind`: the dataset's (store.kind_of), to name its samples ("only 3 comments")."""
    counts = Counter(c for ls in labels for c in ls)
    ratio = imbalance_ratio(dict(counts))
    small = sorted(c for c, k in counts.items() if k < min_per_class)
    notes = class_warnings(dict(sorted(counts.items())), min_per_class, kind_noun(kind))
    if ratio is not None and ratio > 1:
        notes.insert(0, f"imbalance ratio {ratio:.1f} (largest class / smallest class)")
    n = len(labels)
    return CheckResult(NAME, np.full(n, np.nan), np.zeros(n, bool), notes=notes,
                       details={"counts": dict(sorted(counts.items())), "imbalance_ratio": ratio,
                                "min_per_class": min_per_class, "below_minimum": small})
