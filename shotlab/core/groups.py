"""Samples that belong together: the fields that bind them and their connected components.

`curate split` keeps a group inside one split; `--pseudo-label` never takes a sample whose group
holds a val or test sample; a run's manifest records each sample's group, so the train split's
cross-validation folds (thresholds, the automatic choice) hold a group out whole; `curate
check`'s duplicate clusters are components of close pairs.
"""

from __future__ import annotations

# Per-sample string fields that bind samples into one group, where the dataset has them:
# `curate check` writes duplicate clusters; video imports write the clip a frame came from; a
# text import writes the `group` column (one thread, one author: curate/text_import.py).
# `curate split` keeps a group in one split; pseudo-labels never take a sample grouped with
# val or test.
GROUP_FIELDS = ("duplicate_cluster", "sha256", "clip_id", "group")


def component_roots(n: int, pairs) -> list[int]:
    """Union-find over `pairs` of positions: each position's component representative."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, *_ in pairs:
        parent[root(i)] = root(j)
    return [root(i) for i in range(n)]


def group_ids(*keys: list) -> list[int]:
    """One group number per sample: samples sharing any non-empty key are in one group.

    `keys` are per-sample lists (e.g. duplicate cluster, sha256, clip id); an entry may also be
    a list of keys (a clip's frames' duplicate clusters); a sample with no key is a group of its
    own. Groups are connected components, so a clip whose frame is a duplicate of another
    clip's frame joins both clips.
    """
    size = len(keys[0]) if keys else 0
    pairs = []
    for column, values in enumerate(keys):
        first: dict = {}
        for i, entry in enumerate(values):
            for key in entry if isinstance(entry, (list, tuple)) else [entry]:
                if key not in (None, ""):
                    pairs.append((i, first.setdefault((column, key), i)))
    roots = component_roots(size, pairs)
    numbers = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return [numbers[r] for r in roots]


def dataset_groups(dataset) -> list[int]:
    """`group_ids` of a FiftyOne dataset's samples, in dataset order, over the GROUP_FIELDS it
    has."""
    schema = dataset.get_field_schema()
    return group_ids(*[dataset.values(f) for f in GROUP_FIELDS if f in schema])


def grouped_count(groups) -> int:
    """How many samples share their group with another (`groups`: one group id per sample, or
    None for every sample alone)."""
    import numpy as np

    if groups is None:
        return 0
    _, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    return int((counts[inverse] > 1).sum())


def shared_keys(groups: list[int], ids: list[str]) -> list[str | None]:
    """Per sample, a key naming its group where the group holds other samples (the first
    member's id, so it does not depend on how groups are numbered); None for a sample alone."""
    from collections import Counter

    sizes, first = Counter(groups), {}
    for group, sample_id in zip(groups, ids):
        first.setdefault(group, sample_id)
    return [first[g] if sizes[g] > 1 else None for g in groups]
