"""Exact duplicates: the same bytes (sha256) at several paths, possibly under different labels."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

from shotlab.core.groups import component_roots


@dataclass(frozen=True)
class DuplicateGroup:
    sha256: str
    indices: tuple[int, ...]  # positions in the arrays given
    conflicting: bool  # the copies carry different labels (`disagree`)


def disagree(labels, *, multilabel: bool = False) -> bool:
    """Whether copies with these labels conflict. A multiclass copy without a label is not yet
    labelled, so it disagrees with nothing (an unlabeled copy of a 'boat' is no conflict); in a
    multilabel dataset no labels is a negative for every class, an answer like any other."""
    return len({frozenset(ls) for ls in labels if ls or multilabel}) > 1


def exact_duplicate_groups(sha256s: list[str], labels: list[tuple[str, ...]], *,
                           multilabel: bool = False) -> list[DuplicateGroup]:
    """Groups of positions whose files have the same sha256, largest first."""
    positions: dict[str, list[int]] = defaultdict(list)
    for index, digest in enumerate(sha256s):
        if digest:
            positions[digest].append(index)
    groups = [DuplicateGroup(digest, tuple(ix),
                             disagree([labels[i] for i in ix], multilabel=multilabel))
              for digest, ix in positions.items() if len(ix) > 1]
    return sorted(groups, key=lambda g: (-len(g.indices), g.sha256))


# Near duplicates: pairs of similar images from perceptual hashes and embeddings, joined into
# clusters. Functions take arrays (hashes, embeddings); reading pixels is the caller's job.

# 64-bit pHash: a re-save, resize or light recompression of one image stays within a few bits
# (imagehash's own docs use <= 5); unrelated images differ in about 32.
PHASH_MAX_DISTANCE = 4
# Cosine of pooled CNN embeddings (lite0): on datasets/sample the closest two different drawings
# (variants in one clip-art series) score 0.93 and 99.9% of pairs stay below 0.83, while copies
# score 1.0; 0.97 leaves room for re-encoded or resized copies without merging look-alikes.
EMBEDDING_MIN_COSINE = 0.97
# Cosine of all-MiniLM-L6-v2 sentence embeddings (the text encoder): over 420 Debian fortunes
# (7 topics), each text's closest other text scores 0.43 at the median, 0.72 at the 99th
# percentile and 0.894 at most (two wordings of one joke about chocolate); a light edit of a text
# (upper case, '!!!', a smiley, dropped commas, one word written backwards) scores 0.99 at the
# median and 0.84 at the 5th percentile. At 0.9, 91% of the edits are flagged (34 of the 36
# missed have a word backwards) and no text's nearest unrelated neighbour is
# (datasets/fortunes.py, 60 per topic, seed 0; docs/text.md).
TEXT_MIN_COSINE = 0.9
DEFAULT_MIN_COSINE = {"image": EMBEDDING_MIN_COSINE, "text": TEXT_MIN_COSINE}  # by dataset kind
_CHUNK = 512  # rows compared at a time, so memory stays O(chunk x n)


# pHash exactly as imagehash computes it (the image in PIL's 8-bit grey, resampled to 32 x 32 with
# PIL's Lanczos filter, a type-II DCT, the top-left 8 x 8 coefficients compared with their median),
# with the DCT as one small matrix product instead of two scipy calls per image, and the medians
# taken for many images at once. PIL's 8-bit resampling is kept on purpose: a float pipeline moves
# 2-4 bits in 40% of images, enough to move pairs across the distance threshold.
PHASH_SIDE = 32  # hash side 8 x imagehash's high-frequency factor 4
PHASH_BITS = 64


@functools.lru_cache(maxsize=1)
def dct_rows():
    """(8, 32) float64: the first 8 rows of the unnormalised type-II DCT (scipy's default)."""
    import numpy as np

    k, x = np.arange(8)[:, None], np.arange(PHASH_SIDE)[None, :]
    return 2 * np.cos(np.pi * k * (2 * x + 1) / (2 * PHASH_SIDE))


def phash_coefficients(image):
    """The 64 low-frequency DCT coefficients of a PIL image's pHash, row-major."""
    import numpy as np
    from PIL import Image

    small = image.convert("L").resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS)
    dct = dct_rows()
    return (dct @ np.asarray(small, dtype=np.float64) @ dct.T).ravel()


def phash_from_coefficients(coefficients):
    """(n, 64) coefficients -> (n, 64) bool hashes: each coefficient above its row's median."""
    import numpy as np

    coefficients = np.asarray(coefficients, dtype=np.float32).reshape(-1, PHASH_BITS)
    return coefficients > np.median(coefficients, axis=1, keepdims=True)


def close_pairs(hashes, *, max_distance: int = PHASH_MAX_DISTANCE) -> list[tuple[int, int, float]]:
    """(i, j, similarity) for hash pairs within `max_distance` bits; similarity = 1 - d / bits.

    `hashes` is (n, bits) bool; rows of all-False (images that could not be read) never match.
    """
    import numpy as np

    bits = np.asarray(hashes, dtype=bool)
    if len(bits) < 2:
        return []
    # Each hash as whole 64-bit words (zero-padded): a distance is one XOR and one popcount a word.
    packed = np.packbits(bits, axis=1)
    packed = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8)))
    # packbits and pad keep a Fortran-ordered input so; the uint64 view needs rows in C order
    words = np.ascontiguousarray(packed).view(np.uint64)
    valid = bits.any(1)
    pairs = []
    for start in range(0, len(words), _CHUNK):
        block, rest = words[start:start + _CHUNK], words[start:]  # later rows only: i < j
        distance = np.bitwise_count(block[:, None, :] ^ rest[None, :, :]).sum(2, dtype=np.int32)
        for a, b in zip(*np.nonzero(distance <= max_distance)):
            i, j = start + int(a), start + int(b)
            if i < j and valid[i] and valid[j]:
                pairs.append((i, j, 1.0 - distance[a, b] / bits.shape[1]))
    return pairs


def similar_pairs(embeddings, *,
                  min_cosine: float = EMBEDDING_MIN_COSINE) -> list[tuple[int, int, float]]:
    """(i, j, cosine) for embedding pairs at or above `min_cosine`."""
    import numpy as np

    vectors = np.asarray(embeddings, dtype=np.float32)
    if len(vectors) < 2:
        return []
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    pairs = []
    for start in range(0, len(vectors), _CHUNK):
        cosine = vectors[start:start + _CHUNK] @ vectors.T
        for a, b in zip(*np.nonzero(cosine >= min_cosine)):
            if start + a < b:
                pairs.append((start + int(a), int(b), float(min(cosine[a, b], 1.0))))
    return pairs


def exact_pairs(sha256s: list[str]) -> list[tuple[int, int, float]]:
    """(first copy, other copy, 1.0) for every file whose bytes another file also has."""
    return [(g.indices[0], other, 1.0) for g in exact_duplicate_groups(sha256s, [()] * len(sha256s))
            for other in g.indices[1:]]


def clusters(n: int, pairs) -> list[int]:
    """Union-find over `pairs`: each position's cluster number (0 = largest), -1 when alone."""
    roots = component_roots(n, pairs)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        members[roots[i]].append(i)
    groups = sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))
    number = [-1] * n
    for k, group in enumerate(groups):
        for i in group:
            number[i] = k
    return number


def best_similarity(n: int, pairs) -> list[float]:
    """Each position's highest similarity to any other image in `pairs` (0.0 when none)."""
    best = [0.0] * n
    for i, j, similarity in pairs:
        best[i] = max(best[i], similarity)
        best[j] = max(best[j], similarity)
    return best
