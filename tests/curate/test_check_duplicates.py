"""Duplicate clusters (exact, perceptual hash, embedding cosine), conflicting labels, leakage."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from shotlab.curate import duplicates as dup
from shotlab.curate.checks.duplicates import find_duplicates
from shotlab.curate.checks.image_stats import image_stats
from shotlab.curate.checks.leakage import find_leakage
from tests.imaging import write_image
from tests.train.trainsets import COLOURS, noisy_colour


def test_union_find_joins_chains_and_numbers_largest_first():
    numbers = dup.clusters(7, [(0, 1, 1.0), (1, 2, 0.9), (5, 6, 0.99)])
    assert numbers == [0, 0, 0, -1, -1, 1, 1]
    assert dup.best_similarity(4, [(0, 1, 0.5), (1, 2, 0.9)]) == [0.5, 0.9, 0.9, 0.0]


def test_hash_and_cosine_pairs():
    bits = np.zeros((4, 64), bool)
    bits[:, ::2] = True
    bits[1, 1] = True  # 1 bit from row 0
    bits[2, 1:6] = True  # 3 more bits set: 3 from row 0 (positions 1, 3, 5)
    bits[3] = ~bits[0]
    assert dup.close_pairs(bits, max_distance=1) == [(0, 1, 1 - 1 / 64)]
    assert {(i, j) for i, j, _ in dup.close_pairs(bits, max_distance=3)} == {(0, 1), (0, 2), (1, 2)}
    vectors = np.array([[1, 0], [0.999, 0.04], [0, 1]], np.float32)
    assert [(i, j) for i, j, _ in dup.similar_pairs(vectors, min_cosine=0.99)] == [(0, 1)]


def test_hash_pairs_agree_with_a_brute_force_count_across_blocks():
    """Pairs found block by block (whole 64-bit words, later rows only) are exactly those of
    counting differing bits for every pair, across block edges, for a width that is not 64 and
    for hashes in Fortran order (as a DataFrame's `to_numpy()` gives them)."""
    rng = np.random.default_rng(3)
    for rows, width in ((dup._CHUNK * 2 + 37, 64), (300, 100)):
        bits = rng.random((rows, width)) < 0.5
        for i in rng.choice(rows - 1, 40, replace=False):  # near copies, some across a block edge
            bits[(i + dup._CHUNK - 3) % rows] = bits[i] ^ (rng.random(width) < 0.02)
        bits[7] = False  # unreadable: never paired
        bits[8] = False
        readable = bits.any(1)
        expected = [(i, j, 1 - d / width) for i in range(rows) for j in range(i + 1, rows)
                    if (d := int((bits[i] != bits[j]).sum())) <= 4 and readable[i] and readable[j]]
        assert len(expected) >= 30
        assert sorted(dup.close_pairs(bits, max_distance=4)) == expected
        assert sorted(dup.close_pairs(np.asfortranarray(bits), max_distance=4)) == expected


def planted_set(tmp_path):
    """Ten distinct images; 3 = exact copy of 0, 4 = resized JPEG of 1, 5 = blurred copy of 2."""
    rng = np.random.default_rng(0)
    paths = []
    for i, colour in enumerate(["red", "green", "blue"] + ["grey"] * 7):
        path = tmp_path / f"img{i}.png"
        base = Image.fromarray(noisy_colour(COLOURS[colour], rng, 64)) if i < 3 else \
            Image.open(write_image(tmp_path / "raw" / f"{i}.png", seed=i, size=(64, 64)))
        base.save(path)
        paths.append(path)
    blobs = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # a smooth picture, like a photo
    Image.fromarray(blobs).resize((96, 96), Image.Resampling.BICUBIC).save(paths[1])
    paths[3].write_bytes(paths[0].read_bytes())
    Image.open(paths[1]).resize((48, 48)).save(paths[4].with_suffix(".jpg"), quality=90)
    paths[4] = paths[4].with_suffix(".jpg")
    Image.open(paths[2]).filter(ImageFilter.GaussianBlur(1)).save(paths[5])
    return [str(p) for p in paths]


def test_planted_exact_and_near_duplicates_are_clustered(tmp_path):
    from shotlab.core.images import sha256_file

    paths = planted_set(tmp_path)
    stats = image_stats(paths, progress=False)
    sha = [sha256_file(p) for p in paths]
    labels = [("a",)] * 10
    labels[4] = ("b",)  # a near copy under another label: a conflict
    embeddings = np.eye(10, 16)
    embeddings[5] = embeddings[2] + 0.01  # the blurred copy, seen alike by the model
    duplicate, conflicting = find_duplicates(sha, labels, phashes=stats.phashes,
                                             embeddings=embeddings)
    ids = duplicate.fields["duplicate_cluster"]
    assert ids[0] == ids[3] is not None and ids[1] == ids[4] is not None
    assert ids[2] == ids[5] is not None
    assert len({ids[0], ids[1], ids[2]}) == 3
    assert all(ids[i] is None for i in range(6, 10))
    assert duplicate.scores[0] == duplicate.scores[3] == 1.0
    assert np.flatnonzero(duplicate.issues).tolist() == [0, 1, 2, 3, 4, 5]
    assert np.flatnonzero(conflicting.issues).tolist() == [1, 4]
    assert duplicate.details["pairs"]["exact"] == 1


def test_a_cluster_across_splits_leaks():
    ids = ["dup-0000", "dup-0000", "dup-0001", "dup-0001", None, "dup-0002", "dup-0002"]
    splits = ["train", "test", "train", "train", "test", "val", None]
    result = find_leakage(ids, splits, np.ones(7))
    assert np.flatnonzero(result.issues).tolist() == [0, 1]
    assert result.fields["leakage_splits"][0] == "test,train"
    assert result.details["leaking_clusters"] == ["dup-0000"]


def test_exact_groups_still_work_for_the_importer():
    groups = dup.exact_duplicate_groups(["a", "b", "a", ""], [("x",), ("x",), ("y",), ()])
    assert [(g.indices, g.conflicting) for g in groups] == [((0, 2), True)]


def test_an_unlabeled_copy_of_a_labelled_image_is_no_conflict():
    """An unlabeled copy (from the pool) of a 'boat' was counted as conflicting labels by import
    and check; in a multilabel dataset no labels is a negative for every class, a real answer."""
    sha, labels = ["a", "a", "b", "b", "b"], [(), ("boat",), ("boat",), ("fish",), ()]
    groups = dup.exact_duplicate_groups(sha, labels)
    assert [(g.indices, g.conflicting) for g in groups] == [((2, 3, 4), True), ((0, 1), False)]
    assert [g.conflicting for g in dup.exact_duplicate_groups(sha, labels, multilabel=True)] == [
        True, True]
    _, conflicting = find_duplicates(sha, labels)
    assert conflicting.issues.tolist() == [False, False, True, True, True]
    assert find_duplicates(sha, labels, multilabel=True)[1].issues.all()
