"""Leakage: duplicate clusters whose members sit in more than one of train/val/test, so the
model is evaluated on images it trained on. Unassigned samples do not count as a split."""

from __future__ import annotations

import numpy as np

from shotlab.curate.checks.base import CheckResult

NAME = "leakage"
SPLITS = ("train", "val", "test")


def find_leakage(cluster_ids: list[str | None], splits: list[str | None],
                 similarity: np.ndarray) -> CheckResult:
    """`leakage_score` = the member's duplicate similarity; `leakage_splits` = the splits its
    cluster spans (e.g. 'test,train') on flagged samples."""
    spans: dict[str, set] = {}
    for cluster, split in zip(cluster_ids, splits):
        if cluster is not None and split in SPLITS:
            spans.setdefault(cluster, set()).add(split)
    leaking = {c for c, s in spans.items() if len(s) > 1}
    issues = np.array([c in leaking for c in cluster_ids], bool)
    scores = np.where(issues, similarity, np.nan)
    where = [",".join(sorted(spans[c])) if c in leaking else None for c in cluster_ids]
    notes = [f"{len(leaking)} duplicate cluster{'s' * (len(leaking) != 1)} span more than one "
             f"split"] if leaking else []
    return CheckResult(NAME, scores, issues, {"leakage_splits": where}, notes=notes,
                       details={"leaking_clusters": sorted(leaking)})
