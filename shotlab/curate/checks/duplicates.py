"""Duplicates: exact copies (sha256) and near copies (perceptual hash, embedding cosine),
joined into clusters; clusters whose members carry different labels are flagged separately.

Fields: `duplicate_cluster` (string id shared by a cluster's members, None when alone; `curate
split` keeps a cluster inside one split), `duplicate_score` (highest similarity to another
member, 1.0 for an exact copy), `is_duplicate_issue`, and `conflicting_duplicate_score` /
`is_conflicting_duplicate_issue` for members of clusters with conflicting labels.
"""

from __future__ import annotations

import numpy as np

from shotlab.curate import duplicates as dup
from shotlab.curate.checks.base import CheckResult

NAME = "duplicate"
CONFLICT_NAME = "conflicting_duplicate"


def cluster_ids(numbers: list[int]) -> list[str | None]:
    return [None if k < 0 else f"dup-{k:04d}" for k in numbers]


def find_duplicates(sha256s: list[str], labels: list[tuple[str, ...]], *, phashes=None,
                    embeddings=None, max_distance: int = dup.PHASH_MAX_DISTANCE,
                    min_cosine: float = dup.EMBEDDING_MIN_COSINE,
                    multilabel: bool = False) -> list[CheckResult]:
    """The duplicate and conflicting-duplicate results; hashes and embeddings are optional
    ((n, 64) bool and (n, d)), each source of pairs used when given. `multilabel`: a sample
    without labels is a negative for every class, not unlabeled (`duplicates.disagree`)."""
    n = len(sha256s)
    pairs = dup.exact_pairs(sha256s)
    sources = {"exact": len(pairs)}
    if phashes is not None:
        found = dup.close_pairs(phashes, max_distance=max_distance)
        pairs += found
        sources["phash"] = len(found)
    if embeddings is not None:
        found = dup.similar_pairs(embeddings, min_cosine=min_cosine)
        pairs += found
        sources["embedding"] = len(found)
    numbers = dup.clusters(n, pairs)
    in_cluster = np.array([k >= 0 for k in numbers], bool)
    scores = np.where(in_cluster, dup.best_similarity(n, pairs), np.nan)
    conflicting = conflicting_members(numbers, labels, multilabel=multilabel)
    count = max(numbers, default=-1) + 1
    details = {"clusters": count, "pairs": sources, "max_phash_distance": max_distance,
               "min_cosine": min_cosine}
    notes = [f"{count} duplicate cluster{'s' * (count != 1)}, "
             f"{len({numbers[i] for i in np.flatnonzero(conflicting)})} with conflicting labels"]
    return [CheckResult(NAME, scores, in_cluster, {"duplicate_cluster": cluster_ids(numbers)},
                        notes=notes, details=details),
            CheckResult(CONFLICT_NAME, np.where(conflicting, scores, np.nan), conflicting)]


def conflicting_members(numbers: list[int], labels: list[tuple[str, ...]], *,
                        multilabel: bool = False) -> np.ndarray:
    """Per sample, whether its cluster's labels disagree (`duplicates.disagree`: an unlabeled
    copy of a labelled image is no conflict in a multiclass dataset)."""
    members: dict[int, list] = {}
    for k, ls in zip(numbers, labels):
        if k >= 0:
            members.setdefault(k, []).append(ls)
    conflicts = {k: dup.disagree(ls, multilabel=multilabel) for k, ls in members.items()}
    return np.array([k >= 0 and conflicts[k] for k in numbers], bool)
