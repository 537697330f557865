"""The data checks: the one table of their names, what each finds, and whether it needs embeddings.

Import-free, so `shotlab curate check --help` lists the checks from here. Each name is also the
name of what the check writes (`is_<name>_issue`, `<name>_score`, the tag `issue:<name>`);
`shotlab.curate.checks.detect` runs the detectors of a name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckInfo:
    summary: str
    embeddings: bool  # needs backbone embeddings of every image


CHECKS: dict[str, CheckInfo] = {
    "label": CheckInfo("likely wrong labels (cleanlab on out-of-fold probabilities)", True),
    "duplicates": CheckInfo("exact and near-duplicate images (hash and embedding)", True),
    "leakage": CheckInfo("the same image in two splits", True),
    "quality": CheckInfo("blurry, dark, bright, low-information, odd size or shape, grey", False),
    "balance": CheckInfo("classes with too few images", False),
    "outlier": CheckInfo("images unlike the rest of their set (cleanlab Datalab)", True),
    "near_duplicate": CheckInfo("near duplicates as cleanlab Datalab finds them", True),
    "non_iid": CheckInfo("an ordering or drift that breaks the i.i.d. assumption (Datalab)", True),
}
EMBEDDING_CHECKS = frozenset(name for name, info in CHECKS.items() if info.embeddings)
