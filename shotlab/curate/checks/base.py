"""What every detector returns: the cleanlab shape, one row per sample.

A detector named `label` fills `label_score` (float, higher = worse, so a view sorted descending
shows the worst first; None where the sample was not judged) and `is_label_issue` (bool), plus
any extra per-sample fields it owns (`label_suggestion`, ...) and dataset-level notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CheckResult:
    name: str
    scores: np.ndarray  # (n,) float; higher = worse; NaN where the sample was not judged
    issues: np.ndarray  # (n,) bool
    fields: dict[str, list] = field(default_factory=dict)  # extra per-sample fields, n values each
    notes: list[str] = field(default_factory=list)  # dataset-level findings, one line each
    details: dict = field(default_factory=dict)  # dataset-level numbers (JSON-able)

    @property
    def score_field(self) -> str:
        return f"{self.name}_score"

    @property
    def issue_field(self) -> str:
        return f"is_{self.name}_issue"

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.issues))

    def columns(self) -> dict[str, list]:
        """Every per-sample field this check writes, as plain Python values."""
        scores = [None if math.isnan(s) else round(float(s), 6) for s in self.scores]
        return {self.score_field: scores, self.issue_field: [bool(i) for i in self.issues],
                **self.fields}

    def worst(self, limit: int) -> list[int]:
        """Positions of the flagged samples, worst first."""
        flagged = np.flatnonzero(self.issues)
        order = np.argsort(-np.nan_to_num(self.scores[flagged], nan=-1.0), kind="stable")
        return flagged[order][:limit].tolist()


def empty_result(name: str, n: int, note: str | None = None) -> CheckResult:
    """A check that judged nothing (too few samples, no labels...), saying why."""
    return CheckResult(name, np.full(n, np.nan), np.zeros(n, bool), notes=[note] if note else [])


def percentile_rank(values: np.ndarray, *, higher_is_worse: bool) -> np.ndarray:
    """Each value's rank in [0, 1] in the bad direction: 1 for the dataset's worst sample."""
    n = len(values)
    if n <= 1:
        return np.zeros(n)
    keyed = values if higher_is_worse else -values
    ranks = np.argsort(np.argsort(keyed, kind="stable"), kind="stable")
    return ranks / (n - 1)
