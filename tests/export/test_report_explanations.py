"""The bundle report's explanation cards judge right and wrong by the bundle's decision rule."""

from __future__ import annotations

import numpy as np

from shotlab.export.explanations import decisions, pick


def test_a_card_follows_the_unsafe_threshold_not_the_argmax():
    # nsfw at threshold 0.3: a true nsfw scored 0.4 is flagged, so the metrics count it right
    probs = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
    y = np.array([1, 0, 1])
    truth, target, right = decisions(y, probs, ["safe", "nsfw"], "multiclass",
                                     {"nsfw": {"threshold": 0.3}})
    assert target.tolist() == [1, 0, 1] and right.tolist() == [True, True, True]
    assert truth == [["nsfw"], ["safe"], ["nsfw"]]
    # without the policy the argmax decides, and the first row is a mistake
    _, target, right = decisions(y, probs, ["safe", "nsfw"], "multiclass", {})
    assert target.tolist() == [0, 0, 1] and right.tolist() == [False, True, True]
    assert pick(y, right, ["safe", "nsfw"]) == [(1, True), (2, True), (0, False)]


def test_multilabel_cards_compare_every_label_and_explain_a_predicted_one():
    probs = np.array([[0.7, 0.2, 0.9], [0.1, 0.2, 0.3], [0.6, 0.7, 0.1]])
    y = np.array([[1, 0, 1], [0, 0, 0], [1, 0, 0]])
    truth, target, right = decisions(y, probs, ["a", "b", "c"], "multilabel", {})
    assert truth == [["a", "c"], [], ["a"]]
    assert target.tolist() == [2, 2, 1]  # the top predicted class; none predicted: the top score
    assert right.tolist() == [True, True, False]  # row 2 also predicts b
