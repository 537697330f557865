"""Label issues on synthetic separable embeddings with labels flipped at known indices."""

from __future__ import annotations

import numpy as np

from shotlab.curate.checks.label import fold_count, find_label_issues
from shotlab.curate.checks.label_multilabel import find_multilabel_issues

CLASSES = ("cat", "dog", "fox")


def blobs(per_class: int = 20, dim: int = 32, seed: int = 0):
    """Well separated clusters, one per class: (features, true class names)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (len(CLASSES), dim))
    truth = np.repeat(np.arange(len(CLASSES)), per_class)
    return centres[truth] + rng.normal(0, 1, (len(truth), dim)), [CLASSES[t] for t in truth]


def test_flipped_labels_are_found_with_the_true_class_suggested():
    features, truth = blobs()
    labels = list(truth)
    flipped = [3, 25, 47]
    for i in flipped:
        labels[i] = CLASSES[(CLASSES.index(truth[i]) + 1) % 3]
    result = find_label_issues(labels, features)
    assert np.flatnonzero(result.issues).tolist() == flipped
    assert [result.fields["label_suggestion"][i] for i in flipped] == [truth[i] for i in flipped]
    assert all(result.fields["label_suggestion_confidence"][i] > 0.5 for i in flipped)
    assert result.fields["label_suggestion"][0] is None  # only flagged samples get a suggestion
    assert set(np.argsort(-result.scores)[:3]) == set(flipped)  # worst scores = the flips


def test_folds_adapt_to_the_smallest_class():
    assert fold_count([40, 30, 3]) == 3
    assert fold_count([40, 2]) == 2
    assert fold_count([100, 100]) == 5


def test_a_class_of_one_or_two_is_handled_and_reported():
    features, labels = blobs(per_class=10)
    rng = np.random.default_rng(1)
    features = np.vstack([features, rng.normal(0, 1, (3, features.shape[1]))])
    labels = labels + ["owl", "bat", "bat"]  # owl: 1 image (too small); bat: 2 (judged, 2 folds)
    result = find_label_issues(labels, features)
    assert np.isnan(result.scores[30]) and not result.issues[30]
    assert any("'owl' has 1 sample: too small to judge" in n for n in result.notes)
    assert result.details["folds"] == 2 and result.details["too_small"] == {"owl": 1}
    assert not np.isnan(result.scores[31])


def test_unlabeled_samples_are_not_judged():
    features, labels = blobs(per_class=8)
    labels[0] = None
    result = find_label_issues(labels, features)
    assert np.isnan(result.scores[0]) and not result.issues[0]


def test_fewer_than_two_judgeable_classes_judges_nothing():
    features, _ = blobs(per_class=4)
    result = find_label_issues(["cat"] * 11 + ["dog"], features)
    assert not result.issues.any() and np.isnan(result.scores).all()
    assert any("'dog' has 1 sample" in n for n in result.notes)


def test_multilabel_variant_finds_a_dropped_and_an_added_label():
    features, truth = blobs(per_class=16)
    sets = {"cat": ("red",), "dog": ("blue",), "fox": ("blue", "red")}
    labels = [sets[t] for t in truth]
    labels[5] = ("blue",)  # a cat that lost 'red' and gained 'blue'
    labels[40] = ("red",)  # a fox that lost 'blue'
    result = find_multilabel_issues(labels, features)
    assert {5, 40} <= set(np.flatnonzero(result.issues).tolist())
    assert result.count <= 4
    assert result.fields["label_suggestion"][5] == "red"
    assert result.fields["label_suggestion"][40] == "blue;red"


def test_multilabel_note_names_a_class_on_every_sample_as_one_sided():
    """A tag on all samples has no 'without' examples: the note says so, not 'too small'."""
    features, _ = blobs(per_class=4)
    labels = [("cat",)] * 6 + [("cat", "dog")] * 6
    result = find_multilabel_issues(labels, features)
    assert result.notes[-1] == ("class 'cat' is on 12 of 12 samples: too few with it or without "
                                "it to judge its labels (needs 2 of each); add more images")


def test_the_neighbour_score_counts_each_class_among_the_nearest_others():
    from shotlab.curate.checks.label import neighbour_shares

    rng = np.random.default_rng(0)
    centres = np.eye(3, 16) * 10
    features = np.concatenate([c + rng.normal(0, 0.5, (12, 16)) for c in centres])
    y = np.repeat([0, 1, 2], 12)
    y[5] = 2  # a sample of cluster 0 labelled 2: none of its neighbours is
    shares = neighbour_shares(features, y, k=10)
    assert shares.shape == (36, 3) and np.allclose(shares.sum(axis=1), 1.0)
    assert shares[5, 2] == 0.0 and shares[5, 0] == 1.0
    assert shares[20, 1] == 1.0


def test_the_neighbour_score_is_left_out_where_a_class_is_too_small_for_it():
    """With 10 neighbours, the samples of a class of 8 could never find their own class's
    majority: small classes would be flagged for being small."""
    from shotlab.curate.checks.label import KNN_WEIGHT, knn_weight

    assert knn_weight([11, 40]) == KNN_WEIGHT and knn_weight([10, 40]) == 0.0
    rng = np.random.default_rng(1)
    features = np.concatenate([rng.normal(0, 1, (8, 16)) + 5, rng.normal(0, 1, (40, 16))])
    result = find_label_issues(["owl"] * 8 + ["cat"] * 40, features)
    assert result.details["knn_weight"] == 0.0 and not result.issues[:8].any()


def test_the_neighbour_score_is_the_same_in_chunks():
    """Rows are compared `chunk` at a time (memory O(chunk x n), not n^2): the same shares."""
    from shotlab.curate.checks.label import neighbour_shares

    rng = np.random.default_rng(2)
    features, y = rng.normal(size=(700, 24)), rng.integers(0, 4, 700)
    assert np.array_equal(neighbour_shares(features, y, chunk=256),
                          neighbour_shares(features, y, chunk=700))


def mislabelled_copies(dim: int = 256):
    """Three overlapping classes of 20 in `dim` dimensions (embedding-like: many weak
    directions); samples 3, 25 and 47 are copied (positions 60-62) and both copies of each
    carry the same wrong label: (features, labels, groups, the six copies)."""
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 20)
    features = rng.normal(0, 1, (3, dim))[truth] + rng.normal(0, 1, (60, dim))
    copied = [3, 25, 47]
    labels = [CLASSES[t] for t in truth] + [None] * 3
    for j, i in enumerate(copied):
        labels[i] = labels[60 + j] = CLASSES[(truth[i] + 1) % 3]
    groups = np.concatenate([np.arange(60), copied])
    return np.vstack([features, features[copied]]), labels, groups, copied + [60, 61, 62]


def test_an_image_uploaded_twice_with_the_same_wrong_label_is_found():
    """A copy learnt in the other folds, and its twin as nearest neighbour, vouched for its
    wrong label: no copy was flagged. Held out together, five of the six are."""
    features, labels, groups, copies = mislabelled_copies()
    apart = find_label_issues(labels, features)
    together = find_label_issues(labels, features, groups=groups)
    assert apart.issues[copies].sum() == 0 and apart.details["grouped"] == 0
    found = together.issues[copies].sum()
    assert found >= 5 and together.issues.sum() == found  # and nothing else
    assert together.details["grouped"] == 6


def test_a_class_whose_samples_all_belong_together_is_too_small_to_judge():
    features, labels = blobs(per_class=10)
    features = np.vstack([features, np.repeat(features[:1] + 9, 3, axis=0)])
    labels = labels + ["owl"] * 3  # three copies of one owl: one group, nothing to hold out
    groups = np.concatenate([np.arange(30), [30, 30, 30]])
    result = find_label_issues(labels, features, groups=groups)
    assert np.isnan(result.scores[30:]).all() and not result.issues[30:].any()
    assert result.details["too_small"] == {"owl": 1}
    assert any("'owl' has 3 samples that all belong together" in n for n in result.notes)


def test_the_neighbour_score_skips_samples_of_the_same_group():
    from shotlab.curate.checks.label import neighbour_shares

    rng = np.random.default_rng(0)
    features = np.concatenate([np.eye(2, 16)[k] * 10 + rng.normal(0, 0.5, (12, 16))
                               for k in (0, 1)])
    y = np.repeat([0, 1], 12)
    features[0] = features[1] = features[12]  # two copies of a class-1 image labelled 0
    y[0] = y[1] = 0
    groups = np.arange(24)
    groups[1] = 0
    apart = neighbour_shares(features, y, k=3)
    together = neighbour_shares(features, y, k=3, groups=groups)
    assert apart[0, 0] == 1 / 3 and together[0, 0] == 0.0 and together[0, 1] == 1.0


def test_multilabel_copies_are_held_out_together_and_a_class_counts_its_groups():
    """A correct class made of three copies of one image was judged, held out together, and
    two of its copies flagged: as in multiclass, it is one group, too small to judge."""
    features, labels = blobs(per_class=8)
    tags = [(l,) for l in labels]
    groups = np.arange(24) // 2  # pairs
    result = find_multilabel_issues(tags, features, groups=groups)
    assert result.details["grouped"] == 24 and not np.isnan(result.scores).any()
    copies = np.repeat(features[:1] + 9, 3, axis=0)
    tags, groups = tags + [("cat", "owl")] * 3, np.concatenate([np.arange(24), [24] * 3])
    result = find_multilabel_issues(tags, np.vstack([features, copies]), groups=groups)
    assert "owl" in result.details["too_small"] and "owl" not in result.details["classes_judged"]
    assert not result.issues[24:].any()
