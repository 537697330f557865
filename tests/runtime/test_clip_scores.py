"""Clip aggregation, segments and the early-exit test, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from shotlab.core.errors import InputError
from shotlab.runtime.clip_scores import ClipContract, parse_rule, segments
from shotlab.runtime.decide import decide

CLASSES = ["cooking", "sports", "violence"]
# Five frames: cooking throughout, sports fading, violence in frames 2 and 3 only.
FRAMES = np.array([[0.8, 0.2, 0.0],
                   [0.6, 0.3, 0.1],
                   [0.2, 0.1, 0.7],
                   [0.1, 0.0, 0.9],
                   [0.9, 0.1, 0.0]])
TIMES = [0.0, 1.0, 2.0, 3.0, 4.0]
THRESHOLDS = {"violence": {"threshold": 0.5, "review_band": [0.3, 0.5]}}


def test_default_rules_are_mean_for_tags_and_max_for_unsafe_classes():
    contract = ClipContract.resolve(None, CLASSES, ["violence"])
    assert contract.aggregation == {"cooking": "mean", "sports": "mean", "violence": "max"}
    assert contract.sampling == "uniform:8"
    # mean(0.8, 0.6, 0.2, 0.1, 0.9) = 2.6 / 5; mean of sports = 0.7 / 5; max of violence = 0.9
    np.testing.assert_allclose(contract.pool(FRAMES), [0.52, 0.14, 0.9])


def test_topk_is_the_mean_of_the_k_highest_frames():
    contract = ClipContract.resolve({"aggregation": {"violence": "topk:2", "*": "max"}},
                                    CLASSES, ["violence"])
    # cooking max 0.9, sports max 0.3, violence (0.9 + 0.7) / 2
    np.testing.assert_allclose(contract.pool(FRAMES), [0.9, 0.3, 0.8])


def test_the_callers_settings_override_the_bundles():
    saved = {"sampling": "fps:1", "aggregation": {"violence": "topk:3"}, "margin": 0.2}
    contract = ClipContract.resolve(saved, CLASSES, ["violence"], sampling="uniform:4",
                                    rules={"violence": "max"})
    assert (contract.sampling, contract.aggregation["violence"], contract.margin) == \
        ("uniform:4", "max", 0.2)


def test_a_bare_rule_of_the_caller_replaces_the_bundles_rules():
    # a clip-trained bundle names a rule for every class: `--aggregate topk:2` must still apply
    saved = {"aggregation": {"cooking": "mean", "sports": "mean", "violence": "max"}}
    every = ClipContract.resolve(saved, CLASSES, ["violence"], rules={"*": "topk:2"})
    assert set(every.aggregation.values()) == {"topk:2"}
    named = ClipContract.resolve(saved, CLASSES, ["violence"],
                                 rules={"*": "topk:2", "violence": "max"})
    assert named.aggregation == {"cooking": "topk:2", "sports": "topk:2", "violence": "max"}
    kept = ClipContract.resolve(saved, CLASSES, ["violence"], rules={"sports": "max"})
    assert kept.aggregation == {"cooking": "mean", "sports": "max", "violence": "max"}


@pytest.mark.parametrize("rules, message", [({"violence": "median"}, "use mean, max or topk:K"),
                                            ({"violence": "topk:0"}, "use mean, max or topk:K"),
                                            ({"dance": "max"}, "unknown classes ['dance']")])
def test_bad_rules_are_refused_by_name(rules, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ClipContract.resolve(None, CLASSES, [], rules=rules)


def test_bad_sampling_is_refused_before_any_clip_is_read():
    with pytest.raises(InputError, match="uniform:N"):
        ClipContract.resolve(None, CLASSES, [], sampling="every-frame")


def test_pooled_scores_go_through_the_one_decision_rule():
    contract = ClipContract.resolve(None, CLASSES, ["violence"])
    pooled = contract.pool(FRAMES)  # [0.52, 0.14, 0.9]: does not sum to 1 under max
    (row,) = decide(pooled[None], CLASSES, task="multiclass", thresholds=THRESHOLDS, pooled=True)
    assert row["labels"] == ["violence"] and row["flagged"] == ["violence"]
    assert row["needs_review"] is False
    with pytest.raises(InputError, match="sum to 1"):
        decide(pooled[None], CLASSES, task="multiclass", thresholds=THRESHOLDS)


def test_segments_merge_adjacent_frames_and_split_at_gaps():
    probs = np.array([[0, 0, 0.1], [0, 0, 0.35], [0, 0, 0.8], [0, 0, 0.2], [0, 0, 0.6]])
    found = segments(TIMES, probs, CLASSES, THRESHOLDS)
    assert found == [
        {"class": "violence", "start": 0.5, "end": 2.5, "peak": 0.8, "flagged": True},
        {"class": "violence", "start": 3.5, "end": 4.0, "peak": 0.6, "flagged": True}]
    review_only = segments(TIMES, np.array([[0, 0, 0.4]] * 2 + [[0, 0, 0]] * 3), CLASSES,
                           THRESHOLDS)
    assert review_only == [{"class": "violence", "start": 0.0, "end": 1.5, "peak": 0.4,
                            "flagged": False}]
    # the last sample's seconds run to `end` (the clip's end, or halfway to the next planned
    # sample after an early exit): a run of the last sample alone is no instant
    (last,) = segments(TIMES[:1], probs[2:3], CLASSES, THRESHOLDS, end=0.25)
    assert (last["start"], last["end"]) == (0.0, 0.25)
    assert segments(TIMES, probs, CLASSES, THRESHOLDS, end=4.2)[-1]["end"] == 4.2


def test_clear_flag_needs_the_margin_and_a_monotone_rule():
    contract = ClipContract.resolve(None, CLASSES, ["violence"], margin=0.1)
    assert contract.clear_flag(FRAMES[:2], THRESHOLDS) is None  # 0.1: under the threshold
    assert contract.clear_flag(FRAMES[:3], THRESHOLDS) == "violence"  # 0.7 >= 0.5 + 0.1
    tight = ClipContract.resolve(None, CLASSES, ["violence"], margin=0.25)
    assert tight.clear_flag(FRAMES[:3], THRESHOLDS) is None  # 0.7 < 0.75
    assert tight.clear_flag(FRAMES[:4], THRESHOLDS) == "violence"  # 0.9
    topk = ClipContract.resolve(None, CLASSES, ["violence"], rules={"violence": "topk:2"})
    assert topk.clear_flag(FRAMES[:3], THRESHOLDS) is None  # (0.7 + 0.1) / 2
    assert topk.clear_flag(FRAMES[:4], THRESHOLDS) == "violence"  # (0.9 + 0.7) / 2
    mean = ClipContract.resolve(None, CLASSES, ["violence"], rules={"violence": "mean"})
    assert mean.clear_flag(FRAMES, THRESHOLDS) is None  # a mean can fall again: never early


def test_rule_parsing():
    assert [parse_rule(r) for r in ("mean", "max", "topk:3")] == [("mean", 0), ("max", 1),
                                                                 ("topk", 3)]
