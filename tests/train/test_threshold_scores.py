"""Thresholds are chosen on train folds + val where the features are frozen: every train score
comes from a model that never saw that sample, and about twice the positives count."""

from __future__ import annotations

import numpy as np
import pytest

from shotlab.train.threshold_scores import POOLED, VALIDATION, fold_scores, pooled_scores
from shotlab.train.thresholds import choose_thresholds

NAMES = ["safe", "fish", "boat"]


def clusters(per_class: int, seed: int = 0, spread: float = 1.0):
    """Three Gaussian clusters in 8 dimensions, `per_class` samples each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, (3, 8))
    y = np.repeat(np.arange(3), per_class)
    return centres[y] + rng.normal(0, spread, (len(y), 8)), y


def test_train_scores_come_from_models_that_did_not_see_the_sample():
    # Labels are noise in 60 dimensions: a model scoring its own training samples memorises
    # them; out of fold, the own label's score stays at chance (1/3).
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 60)), np.repeat(np.arange(3), 10)
    from scipy.special import softmax

    from shotlab.train.finetune import logistic_head
    from shotlab.train.threshold_scores import standardised

    weight, bias = logistic_head(standardised(x)[0], y, "multiclass", 3)
    in_sample = softmax(standardised(x)[0] @ weight.T + bias, axis=1)[np.arange(30), y]
    out_of_fold = fold_scores(x, y, "multiclass", 3, folds=5, seed=0)[np.arange(30), y]
    assert in_sample.mean() > 0.75 and out_of_fold.mean() < 0.45  # chance: 1/3


def test_fold_scores_learn_separable_classes():
    x, y = clusters(10)
    scores = fold_scores(x, y, "multiclass", 3, folds=5, seed=0)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    assert (scores.argmax(axis=1) == y).mean() > 0.8
    np.testing.assert_array_equal(scores, fold_scores(x, y, "multiclass", 3, folds=5, seed=0))


def test_multilabel_fold_scores_are_per_class_probabilities():
    x, y = clusters(8)
    targets = np.eye(3, dtype=int)[y]
    scores = fold_scores(x, targets, "multilabel", 3, folds=4, seed=0)
    assert scores.shape == (24, 3) and ((scores > 0) & (scores < 1)).all()
    assert (scores.argmax(axis=1) == y).mean() > 0.8


def test_pooled_scores_count_train_and_val_positives():
    x, y_train = clusters(10, seed=1, spread=2.0)
    _, y_val = clusters(4, seed=2)
    val_probs = np.full((len(y_val), 3), 1 / 3)
    labels, scores, record = pooled_scores(x, {"train": y_train, "val": y_val},
                                           {"val": val_probs}, task="multiclass", seed=0)
    assert record["scored_on"] == POOLED and record["folds"] == 5
    assert (record["train"], record["validation"]) == (30, 12)
    assert labels.tolist() == y_train.tolist() + y_val.tolist()
    np.testing.assert_allclose(scores[30:], val_probs)  # val keeps the run's own scores
    assert record["fold_calibration"]["method"] == "temperature"
    fish = choose_thresholds(labels, scores, NAMES, unsafe=["fish"])["fish"]
    assert fish["support"] == 14  # 10 train + 4 val positives, not 4


@pytest.mark.parametrize("features, y_train, why", [
    (None, np.repeat(np.arange(3), 5), "features learnt"),
    (np.zeros((4, 8)), np.array([0, 1, 2, 2]), "a class has a single train sample"),
])
def test_validation_alone_when_the_train_split_cannot_be_scored(features, y_train, why):
    y_val = np.array([0, 1, 2])
    labels, scores, record = pooled_scores(features, {"train": y_train, "val": y_val},
                                           {"val": np.eye(3)}, task="multiclass", seed=0,
                                           why_not="the model's features learnt")
    assert record["scored_on"] == VALIDATION and why in record["reason"]
    assert labels.tolist() == [0, 1, 2] and scores.shape == (3, 3)


def twins(count: int = 30, seed: int = 0):
    """`count` noise samples in 60 dimensions with random labels, each stored twice (a byte copy
    in the train split): (x, y, groups)."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(count, 60)), np.repeat(np.arange(3), count // 3)
    return np.repeat(x, 2, axis=0), np.repeat(y, 2), np.repeat(np.arange(count), 2)


def test_a_twin_in_the_other_folds_does_not_score_its_copy():
    # Labels are noise: a sample's own-label score is chance (1/3) unless a copy of it was
    # learnt. Folds that split the twins score them as if learnt; grouped folds do not.
    x, y, groups = twins()
    rows = np.arange(len(y))
    split = fold_scores(x, y, "multiclass", 3, folds=5, seed=0)[rows, y]
    grouped = fold_scores(x, y, "multiclass", 3, folds=5, seed=0, groups=groups)[rows, y]
    assert split.mean() > 0.6 and grouped.mean() < 0.45


def test_pooled_scores_hold_groups_out_whole_and_count_them():
    x, y, groups = twins()
    y_val = np.array([0, 1, 2])
    _, scores, record = pooled_scores(x, {"train": y, "val": y_val}, {"val": np.eye(3)},
                                      task="multiclass", seed=0, groups=groups)
    assert record["scored_on"] == POOLED and record["grouped"] == 60
    assert scores[np.arange(60), y].mean() < 0.45
    one_group = np.zeros(len(y), int)  # every sample of every class bound together: no folds
    _, _, record = pooled_scores(x, {"train": y, "val": y_val}, {"val": np.eye(3)},
                                 task="multiclass", seed=0, groups=one_group)
    assert record["scored_on"] == VALIDATION and "group" in record["reason"]
