"""Exact duplicates: the same bytes (sha256) at several paths, possibly under different labels."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class DuplicateGroup:
    sha256: str
    indices: tuple[int, ...]  # positions in the arrays given
    conflicting: bool  # the copies carry different labels


def exact_duplicate_groups(sha256s: list[str], labels: list[tuple[str, ...]]) -> list[DuplicateGroup]:
    """Groups of positions whose files have the same sha256, largest first."""
    positions: dict[str, list[int]] = defaultdict(list)
    for index, digest in enumerate(sha256s):
        if digest:
            positions[digest].append(index)
    groups = [DuplicateGroup(digest, tuple(ix), len({frozenset(labels[i]) for i in ix}) > 1)
              for digest, ix in positions.items() if len(ix) > 1]
    return sorted(groups, key=lambda g: (-len(g.indices), g.sha256))
