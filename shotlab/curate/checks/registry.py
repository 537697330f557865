"""The data checks: the one table of their names, what each finds, whether it needs embeddings,
and which kinds of dataset it applies to (`store.kind_of`: "image" or "text").

Import-free, so `shotlab curate check --help` lists the checks from here. Each name is also the
name of what the check writes (`is_<name>_issue`, `<name>_score`, the tag `issue:<name>`), but
`duplicates` writes `duplicate` and `conflicting_duplicate`;
`shotlab.curate.checks.detect` runs the detectors of a name.
"""

from __future__ import annotations

from dataclasses import dataclass


ANY_KIND = frozenset({"image", "text"})  # checks on labels, hashes or embeddings
PIXELS = frozenset({"image"})  # checks that measure pixels


@dataclass(frozen=True)
class CheckInfo:
    summary: str
    embeddings: bool  # needs embeddings of every sample (a backbone's, or the text encoder's)
    kinds: frozenset[str] = ANY_KIND  # the dataset kinds it applies to; skipped on the others


CHECKS: dict[str, CheckInfo] = {
    "label": CheckInfo("likely wrong labels (cleanlab on out-of-fold probabilities)", True),
    "duplicates": CheckInfo("exact and near-duplicate samples (sha256, pHash of images, "
                            "embedding cosine)", True),
    "leakage": CheckInfo("the same or a near-identical sample in two splits", True),
    "quality": CheckInfo("blurry, dark, bright, low-information, odd size or shape, grey", False,
                         PIXELS),
    "balance": CheckInfo("classes with too few samples", False),
    "outlier": CheckInfo("samples unlike the rest of their set (cleanlab Datalab)", True),
    "near_duplicate": CheckInfo("near duplicates as cleanlab Datalab finds them", True),
    "non_iid": CheckInfo("an ordering or drift that breaks the i.i.d. assumption (Datalab)", True),
}


def skipped_for(kind: str, checks) -> dict[str, str]:
    """The checks of `checks` that do not apply to a `kind` dataset, each with its one line."""
    return {name: f"skipped: applies to {' and '.join(sorted(CHECKS[name].kinds))} datasets, "
                  f"this one holds {kind}" for name in checks if kind not in CHECKS[name].kinds}
EMBEDDING_CHECKS = frozenset(name for name, info in CHECKS.items() if info.embeddings)
