"""ERASER comprehensiveness and sufficiency of word rankings against random ones."""

from __future__ import annotations

import numpy as np
import pytest

from shotlab.explain import explain_text
from shotlab.explain.text_faithfulness import bin_counts, text_faithfulness
from shotlab.explain.text_words import WordScores

TEXTS = ["this joke kills me", "the heat kills the plants in august",
         "my boss kills every idea we bring to the weekly meeting"]


def test_bins_round_up_to_at_least_one_word():
    assert bin_counts(4) == [1, 1, 1, 1, 2]
    assert bin_counts(20) == [1, 1, 2, 4, 10]
    assert bin_counts(0) == []


@pytest.mark.parametrize("method", ["ig", "shap"])
def test_toy_rankings_beat_random(one_word_model, text_prep, method):
    out = explain_text(one_word_model, TEXTS, [1, 1, 1], method, preprocessing=text_prep,
                       score=True)
    for explanation in out:
        f = explanation.faithfulness
        assert f["beats_random_comprehensiveness"] and f["beats_random_sufficiency"]
        # removing "kills" takes the whole sigmoid(2) - sigmoid(-2) away at every bin
        assert f["comprehensiveness"] == pytest.approx(0.7616, abs=1e-3)
        assert f["sufficiency"] == pytest.approx(0.0, abs=1e-5)
        assert f["random_comprehensiveness"] < 0.7


def test_a_reversed_ranking_loses_to_random(one_word_model, text_prep):
    from shotlab.explain.text_explain import text_forward

    (good,) = explain_text(one_word_model, [TEXTS[2]], [1], "ig", preprocessing=text_prep)
    worst = WordScores(good.comment, 1, "violent", "reversed", -good.scores)
    forward = text_forward(one_word_model, text_prep)
    (f,) = text_faithfulness(forward, [worst])
    assert not f["beats_random_comprehensiveness"] and not f["beats_random_sufficiency"]
    assert f["forward_passes_batch"] > 0


def test_each_distinct_text_is_scored_once(one_word_model, text_prep):
    from shotlab.explain.text_explain import text_forward

    out = explain_text(one_word_model, [TEXTS[0]] * 2, [1, 1], "ig", preprocessing=text_prep)
    forward = text_forward(one_word_model, text_prep)
    results = text_faithfulness(forward, out)
    assert results[0] == results[1]
    # 4 words: bins give 1, 1, 1, 1, 2 words -> 2 removed + 2 kept texts per ranking, at most
    # 4 rankings' worth (ours + 5 random of which many repeat) + the comment itself
    assert forward.calls <= 1 + 4 * 6
    assert np.isfinite([results[0]["comprehensiveness"], results[0]["sufficiency"]]).all()
