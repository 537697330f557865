"""Thresholds reach the target recall on the positives they are chosen on with one to spare (the
conformal quantile: target x (n + 1) flagged), flag what the highest such threshold flags, and sit
just under the positive they rest on (room for an exported model's float noise)."""

from __future__ import annotations

import numpy as np
import pytest

from shotlab.core.errors import InputError
from shotlab.train.metrics import classification_metrics
from shotlab.runtime.decide import apply_review_band
from shotlab.train.thresholds import (REVIEW_LIMIT, SCORE_SLACK, choose_thresholds,
                                      highest_threshold)

NAMES = ["safe", "nsfw", "gore"]


def validation_set(n=120, seed=0):
    """Seeded softmax scores where unsafe classes overlap with safe: recall 0.95 has a cost."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.2
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_reaches_target_and_is_the_highest_that_does(target, seed):
    y, p = validation_set(seed=seed)
    policy = choose_thresholds(y, p, NAMES, unsafe=["nsfw", "gore"], target_recall=target)
    assert set(policy) == {"nsfw", "gore"}
    for name, entry in policy.items():
        c = NAMES.index(name)
        positives = p[y == c, c]
        t, wanted = entry["threshold"], min(target * (positives.size + 1), positives.size)
        top = highest_threshold(positives, target)
        assert np.sum(positives >= t) >= wanted - 1e-9
        assert np.sum(positives >= np.nextafter(top, 2.0)) < wanted  # a hair higher misses it
        assert ((p[:, c] >= t) == (p[:, c] >= top)).all()  # the same samples flagged
        assert top - SCORE_SLACK - 1e-12 <= t < top
        assert np.mean(positives >= t) >= target
        assert entry["reached"] is True and entry["target_recall"] == target
        assert entry["support"] == positives.size
        assert entry["recall"] == pytest.approx(np.mean(positives >= t))
        flagged = p[:, c] >= t
        assert entry["precision"] == pytest.approx(np.mean(y[flagged] == c))


def test_recall_one_takes_the_lowest_positive_score():
    y, p = validation_set(seed=4)
    entry = choose_thresholds(y, p, NAMES, unsafe="nsfw", target_recall=1.0)["nsfw"]
    assert p[y == 1, 1].min() - SCORE_SLACK <= entry["threshold"] < p[y == 1, 1].min()
    assert entry["recall"] == 1.0


def test_a_positive_scored_a_float_ulp_lower_is_still_flagged():
    """The threshold was the lowest positive's score itself: an exported model scoring that
    comment 2e-8 lower (float noise) did not flag it."""
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.058025375, 0.91, 0.0300, 0.0580, 0.2])
    p = np.stack([1 - s, s], axis=1)
    entry = choose_thresholds(y, p, ["safe", "threat"], unsafe="threat", target_recall=1.0)
    threshold = entry["threat"]["threshold"]
    assert 0.058025375 - 2e-8 >= threshold > 0.0580  # halfway into the narrow gap below it
    assert entry["threat"]["recall"] == 1.0 and entry["threat"]["flag_rate"] == 0.6
    # a negative one ulp below: no room under the positive, the threshold stays on it
    s = np.array([0.9, np.nextafter(0.9, 0), 0.1])
    close = choose_thresholds(np.array([1, 0, 0]), np.stack([1 - s, s], axis=1),
                              ["safe", "threat"], unsafe="threat", target_recall=1.0)["threat"]
    assert close["threshold"] == 0.9 and close["precision"] == 1.0


def test_class_without_validation_positives_is_reported_not_fatal():
    y, p = validation_set(seed=0)
    y = np.where(y == 2, 0, y)  # no gore in this validation split
    entry = choose_thresholds(y, p, NAMES, unsafe=["gore"])["gore"]
    assert entry["reached"] is False and entry["support"] == 0 and entry["recall"] is None
    assert entry["threshold"] == 0.0  # no evidence: flag everything (fail safe)
    assert entry["precision"] == 0.0
    assert entry["review_band"] == [0.0, pytest.approx(0.1)]


def test_highest_threshold_with_ties_and_no_positives():
    # 0.5 of (4 + 1) is 2.5 positives: three flagged; the two tied at 0.6 and the 0.9 give that
    assert highest_threshold([0.9, 0.6, 0.6, 0.2], 0.5) == 0.6
    assert highest_threshold([0.9, 0.6, 0.6, 0.2], 0.8) == 0.2
    assert highest_threshold([0.9, 0.6, 0.6, 0.2], 0.2) == 0.9  # one of five
    assert highest_threshold([0.9, 0.6, 0.6, 0.2], 0.25) == 0.6  # 1.25: two, the tie gives three
    # 95% of 19 + 1 is 19: all; of 39 + 1 is 38: the lowest one may stay unflagged
    scores = np.linspace(0.01, 0.99, 39)
    assert highest_threshold(scores[:19], 0.95) == scores[0]
    assert highest_threshold(scores, 0.95) == scores[1]
    assert highest_threshold([], 0.95) is None


def test_review_band_is_clipped_to_unit_interval():
    # one positive each: the threshold is just under that positive's score
    y = np.array([0, 1, 2])
    p = np.array([[0.02, 0.01, 0.97], [0.03, 0.95, 0.02], [0.93, 0.03, 0.04]])
    policy = choose_thresholds(y, p, NAMES, unsafe=["nsfw", "gore"], review_margin=0.1)
    assert policy["nsfw"]["threshold"] == pytest.approx(0.949)
    assert policy["nsfw"]["review_band"] == [pytest.approx(0.849), 1.0]
    assert policy["gore"]["threshold"] == pytest.approx(0.039)
    assert policy["gore"]["review_band"] == [0.0, pytest.approx(0.139)]


def test_apply_review_band_flags_scores_inside_any_band():
    policy = {"nsfw": {"threshold": 0.5, "review_band": [0.4, 0.6]},
              "gore": {"threshold": 0.3, "review_band": [0.2, 0.4]}}
    p = np.array([[0.50, 0.45, 0.05],   # nsfw inside
                  [0.10, 0.85, 0.05],   # nsfw above: a confident flag, no review
                  [0.70, 0.05, 0.25],   # gore inside
                  [0.90, 0.05, 0.05],   # both below: confident pass
                  [0.35, 0.60, 0.05]])  # nsfw on the upper bound: inclusive
    assert apply_review_band(p, policy, NAMES).tolist() == [True, False, True, False, True]
    assert apply_review_band(p, {}, NAMES).tolist() == [False] * 5


def test_policy_feeds_metrics_and_review():
    y, p = validation_set(seed=1)
    policy = choose_thresholds(y, p, NAMES, unsafe=["nsfw"], target_recall=0.95)
    m = classification_metrics(y, p, NAMES, thresholds=policy, n_bootstrap=0)
    assert m["thresholds"] == {"nsfw": policy["nsfw"]["threshold"]}
    # only nsfw has a threshold, so nothing can take its flagged samples away
    assert m["per_class"]["nsfw"]["recall"] >= 0.95
    assert apply_review_band(p, policy, NAMES).shape == (len(y),)


def test_multilabel_thresholds():
    rng = np.random.default_rng(0)
    y = (rng.random((80, 3)) < 0.3).astype(int)
    p = np.clip(0.35 * y + 0.65 * rng.random((80, 3)), 0, 1)
    policy = choose_thresholds(y, p, NAMES, unsafe=["gore"], task="multilabel", target_recall=0.9)
    positives = p[y[:, 2] == 1, 2]
    assert np.mean(positives >= policy["gore"]["threshold"]) >= 0.9


def test_bad_arguments_raise_input_error():
    y, p = validation_set()
    with pytest.raises(InputError, match="unknown class.*'violence'.*classes: safe, nsfw, gore"):
        choose_thresholds(y, p, NAMES, unsafe=["nsfw", "violence"])
    with pytest.raises(InputError, match="target_recall"):
        choose_thresholds(y, p, NAMES, unsafe=["nsfw"], target_recall=95)
    with pytest.raises(InputError, match="review_margin"):
        choose_thresholds(y, p, NAMES, unsafe=["nsfw"], review_margin=-0.1)
    with pytest.raises(InputError, match="probs has 3 columns"):
        choose_thresholds(y, p, NAMES[:2], unsafe=["nsfw"])
    with pytest.raises(InputError, match="unknown class 'violence'"):
        apply_review_band(p, {"violence": {"review_band": [0.1, 0.2]}}, NAMES)
    with pytest.raises(InputError, match="review_band"):
        apply_review_band(p, {"nsfw": 0.5}, NAMES)


def test_each_threshold_carries_its_interval_flag_rate_and_confidence():
    from shotlab.train.thresholds import positives_needed, recall_lower_bound

    y, p = validation_set(n=120, seed=1)
    entry = choose_thresholds(y, p, NAMES, unsafe=["nsfw"])["nsfw"]
    low, high = entry["threshold_interval"]
    assert 0 <= low <= entry["threshold"] <= high <= 1
    assert entry["flag_rate"] == pytest.approx(np.mean(p[:, 1] >= entry["threshold"]))
    positives = p[y == 1, 1]
    caught = int(np.sum(positives >= entry["threshold"]))
    assert entry["recall_lower_bound"] == pytest.approx(recall_lower_bound(caught,
                                                                           positives.size))
    assert entry["recall_lower_bound"] < entry["recall"]
    assert entry["confident"] is (entry["recall_lower_bound"] >= 0.95)
    # 59 positives, all caught: the first count whose 95% lower bound reaches 95% recall
    assert positives_needed(0.95) == 59
    assert recall_lower_bound(59, 59) >= 0.95 > recall_lower_bound(58, 58)
    assert positives_needed(1.0) is None


def test_four_positives_are_not_enough_and_the_report_says_how_many_more():
    from shotlab.train.report import few_positives

    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.stack([1 - np.linspace(0.1, 0.9, 10), np.linspace(0.1, 0.9, 10)], axis=1)[::-1]
    entry = choose_thresholds(y, p, ["ok", "fish"], unsafe=["fish"])["fish"]
    assert entry["reached"] is True and entry["confident"] is False
    assert entry["positives_needed"] == 59
    message = few_positives("fish", entry)
    assert "'fish' has 4 positives in val" in message and "about 55 more" in message
    # at a target of 1 no number of examples would do: it said "more must be caught" when all were
    perfect = choose_thresholds(y, p, ["ok", "fish"], unsafe=["fish"], target_recall=1.0)["fish"]
    assert perfect["recall"] == 1.0
    assert "a target recall of 1 can never be shown" in few_positives("fish", perfect)


def test_a_class_without_positives_is_said_to_flag_everything_not_told_to_narrow_its_band(
        capsys):
    """An unsafe class with no validation positives gets threshold 0 (fail safe): a run then
    called every test image 'owl' (accuracy 0.000), exited 0, and its only advice was to narrow
    the review band, which would still flag every image. The warning says what happened."""
    from shotlab.train.report import echo_thresholds

    y = np.zeros(6, dtype=int)
    p = np.stack([np.linspace(0.6, 0.9, 6), np.linspace(0.4, 0.1, 6)], axis=1)
    entry = choose_thresholds(y, p, ["ok", "owl"], unsafe=["owl"])["owl"]
    assert entry["threshold"] == 0.0 and entry["support"] == 0 and entry["flag_rate"] == 1.0
    echo_thresholds({"owl": entry}, "val", "Threshold", dataset="s5")
    out = capsys.readouterr().out
    assert "'owl' has no positives in val, so its threshold is 0: every image scores over it " \
           "and is flagged as 'owl'; label 'owl' examples for validation (at least 59 to show " \
           "recall >= 0.95) and train again" in " ".join(out.split())
    assert "narrow it" not in out


def test_with_misses_among_the_positives_the_advice_can_be_acted_on():
    """A threshold that misses 2 of 16 positives at a target of 0.8 was told "more of its
    examples must be caught", which nobody can act on: the threshold rule itself places the
    threshold to catch about the target's share, so the bound stays under the target however
    many positives are labelled. The warning says so and what to do."""
    from shotlab.train.report import few_positives

    entry = {"support": 16, "positives_needed": 14, "recall_lower_bound": 0.66,
             "target_recall": 0.8}
    message = few_positives("fish", entry)
    assert "must be caught" not in message
    assert "placed to catch about 80% of them" in message and "--target-recall above" in message


def test_a_review_band_from_zero_is_warned_with_the_fix():
    """A threshold under the review margin gave a band from 0 and sent nearly every decision to
    review with no word at training time (an exploratory test's comment model: 9 of 9
    captions queued). The warning now rests on the measured review rate, which covers it."""
    from shotlab.train.report import review_load

    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.05, 0.3, 0.6, 0.01, 0.02, 0.03, 0.2, 0.04])
    entry = choose_thresholds(y, np.stack([1 - scores, scores], axis=1), ["ok", "threat"],
                              unsafe=["threat"])["threat"]
    assert entry["threshold"] < 0.1 and entry["review_band"][0] == 0.0
    assert entry["review_rate"] == 5 / 8  # 0.01-0.05: everything under the band's top
    message = review_load("threat", entry, "posts")
    assert "sends 62% of val to review" in message and "--review-margin" in message
    assert "`shotlab curate policy posts --review-margin" in message  # it said DATASET
    margin = float(message.split("--review-margin ")[1].split("`")[0])
    assert 0 < margin < entry["threshold"]  # the margin it suggests keeps the band off 0
    # the run's unsafe classes (perhaps from `train --unsafe`) stay in the command it gives:
    # the policy it sets would otherwise hold none of them
    named = review_load("threat", entry, "posts", unsafe=("threat", "spam bot"))
    assert (f"`shotlab curate policy posts --unsafe 'threat,spam bot' --target-recall "
            f"{entry['target_recall']} --review-margin {margin}`") in named
    narrower = choose_thresholds(y, np.stack([1 - scores, scores], axis=1), ["ok", "threat"],
                                 unsafe=["threat"], review_margin=margin)["threat"]
    assert narrower["review_rate"] <= REVIEW_LIMIT  # ...and within the limit it promises


def test_a_band_off_zero_that_holds_most_samples_is_warned():
    """The sample set's fish: threshold 0.051, margin 0.05, band [0.001, 0.101]; the warning
    fired only for a band starting at exactly 0, so 61% of 96 scored images went to review
    unannounced. A positive at 0.053 sets the threshold; eight negatives lie within 0.05 of it."""
    from shotlab.train.report import review_load

    scores = np.array([0.053, 0.6, 0.7, 0.8, 0.001, 0.01, 0.02, 0.03, 0.04, 0.06, 0.07, 0.08,
                       0.09, 0.3, 0.35, 0.4])
    y = np.array([1, 1, 1, 1] + [0] * 12)
    entry = choose_thresholds(y, np.stack([1 - scores, scores], axis=1), ["ok", "fish"],
                              unsafe=["fish"], target_recall=0.8, review_margin=0.05)["fish"]
    assert entry["review_band"][0] > 0 and entry["review_band"][1] < 0.11
    inside = apply_review_band(np.stack([1 - scores, scores], axis=1), {"fish": entry},
                               ["ok", "fish"])
    assert entry["review_rate"] == inside.mean() == 9 / 16  # the runtime's own rule, counted
    assert entry["flag_rate"] == np.mean(scores >= entry["threshold"])
    message = review_load("fish", entry, "sample")
    assert "[0.00, 0.10] sends 56% of val to review" in message
    margin = entry["widest_margin"]
    assert f"--review-margin {margin}`" in message
    at = choose_thresholds(y, np.stack([1 - scores, scores], axis=1), ["ok", "fish"],
                           unsafe=["fish"], target_recall=0.8, review_margin=margin)["fish"]
    wider = choose_thresholds(y, np.stack([1 - scores, scores], axis=1), ["ok", "fish"],
                              unsafe=["fish"], target_recall=0.8,
                              review_margin=margin + 0.001)["fish"]
    assert at["review_rate"] <= REVIEW_LIMIT < wider["review_rate"]  # the widest that keeps it


def test_scores_crowding_at_the_threshold_get_no_margin_suggested():
    """Where only a margin of 0 (no review at all) keeps the band under the limit, no
    --review-margin would do: the message says to label more examples instead."""
    from shotlab.train.report import review_load

    scores = np.array([0.4] * 6 + [0.1, 0.9])
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    entry = choose_thresholds(y, np.stack([1 - scores, scores], axis=1), ["ok", "threat"],
                              unsafe=["threat"])["threat"]
    assert entry["widest_margin"] is None and entry["review_rate"] > REVIEW_LIMIT
    message = review_load("threat", entry, "posts")
    assert "no margin narrows it" in message and "--review-margin" not in message