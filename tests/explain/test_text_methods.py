"""Per-word attribution (IG, SHAP, LIME) on the one-word toy and on a real MiniLM classifier."""

from __future__ import annotations

import numpy as np
import pytest

from shotlab.core.errors import InputError
from shotlab.explain import TEXT_METHODS, explain_text

KILLS = "this joke kills me"


@pytest.mark.parametrize("method", list(TEXT_METHODS))
def test_one_word_model_puts_the_evidence_on_its_word(one_word_model, text_prep, method):
    out = explain_text(one_word_model, [KILLS, "nothing to see here"], [1, 1], method,
                       preprocessing=text_prep)
    kills, other = out
    assert kills.words == ["this", "joke", "kills", "me"]
    assert len(kills.scores) == 4 and kills.scores.dtype == np.float32
    assert int(np.argmax(kills.scores)) == 2
    # at least 90% of the absolute attribution on "kills"
    assert kills.scores[2] >= 0.9 * np.abs(kills.scores).sum()
    assert np.abs(other.scores).max() < 1e-3  # no "kills": nothing moves the score
    assert kills.info["forward_passes"] > 0 and kills.target_name == "violent"


def test_ig_completeness_on_the_toy(one_word_model, text_prep):
    """Sum of word scores = p(comment) - p(baseline) for the target, within 1e-4 (the toy is
    linear up to the softmax; Gauss-Legendre at 16 steps)."""
    (out,) = explain_text(one_word_model, [KILLS], [1], "ig", preprocessing=text_prep)
    change = out.info["score"] - out.info["baseline_score"]
    assert change == pytest.approx(0.7616, abs=1e-3)  # sigmoid(2) - sigmoid(-2)
    assert out.scores.sum() == pytest.approx(change, abs=1e-4)
    assert abs(out.info["convergence_delta"]) < 1e-4
    assert out.info["forward_passes"] == 3 * 16 + 4 <= 60


def test_subword_tokens_merge_into_their_word(one_word_model, text_prep):
    """"Unbelievably" is five word pieces; its score is their sum and it is one word."""
    from shotlab.explain.text_words import Comment
    from shotlab.runtime.text import load_tokenizer

    tokenizer = load_tokenizer(text_prep)
    text = "Unbelievably, it kills!"
    comment = Comment.of(tokenizer, text, 128)
    assert comment.words == ["Unbelievably", ",", "it", "kills", "!"]
    assert comment.positions[0] == [1, 2, 3, 4, 5]
    assert [text[s:e] for s, e in comment.spans] == comment.words
    merged = comment.merge(np.arange(10, dtype=np.float32))
    assert merged[0] == 1 + 2 + 3 + 4 + 5 and merged[3] == 8
    assert comment.without([3]) == "Unbelievably, it !"
    assert comment.only([0, 3]) == "Unbelievably  kills"
    (out,) = explain_text(one_word_model, [text], [1], "ig", preprocessing=text_prep)
    assert len(out.scores) == 5 and int(np.argmax(out.scores)) == 3


def test_words_past_the_token_limit_are_left_out(text_prep):
    from shotlab.explain.text_words import Comment
    from shotlab.runtime.text import load_tokenizer

    comment = Comment.of(load_tokenizer(text_prep), "one two three four five", 4)
    assert comment.words == ["one", "two"]  # [CLS] one two [SEP]


def test_bad_inputs_are_refused_with_the_fix(one_word_model, text_prep):
    with pytest.raises(InputError, match="text 2: the text is empty"):
        explain_text(one_word_model, [KILLS, "  "], preprocessing=text_prep)
    with pytest.raises(InputError, match="unknown explanation method 'gradcam'; methods: ig"):
        explain_text(one_word_model, [KILLS], method="gradcam", preprocessing=text_prep)
    with pytest.raises(InputError, match="no option n_segments"):
        explain_text(one_word_model, [KILLS], method="lime", preprocessing=text_prep,
                     n_segments=3)
    with pytest.raises(InputError, match="out of range"):
        explain_text(one_word_model, [KILLS], [5], preprocessing=text_prep)
    with pytest.raises(InputError, match="needs the PyTorch model"):
        explain_text(lambda ids: np.ones((len(ids), 2)) / 2, [KILLS], preprocessing=text_prep)


def test_the_model_is_left_as_it_was(one_word_model, text_prep):
    one_word_model.train()
    try:
        explain_text(one_word_model, [KILLS], method="ig", preprocessing=text_prep)
        assert one_word_model.training
        assert not one_word_model.encoder.word_embeddings._forward_hooks
    finally:
        one_word_model.eval()


# --- a real classifier: MiniLM + a logistic head ------------------------------------------------
@pytest.fixture(scope="module")
def classifier():
    from shotlab.train.text_model import load_encoder
    from tests.explain.text_toys import fitted_classifier

    return fitted_classifier(load_encoder())


def test_real_model_one_score_per_word_for_every_method(classifier, text_prep):
    text = "I will stab you tonight"
    results = {m: explain_text(classifier, [text], method=m, preprocessing=text_prep)[0]
               for m in TEXT_METHODS}
    for method, out in results.items():
        assert out.words == ["I", "will", "stab", "you", "tonight"], method
        assert out.scores.shape == (5,) and np.isfinite(out.scores).all(), method
        assert out.target_name == "violent", method
    ig = results["ig"]
    change = ig.info["score"] - ig.info["baseline_score"]
    # completeness on a 6-layer transformer at 16 steps: within 0.02 of the score change
    assert abs(ig.info["convergence_delta"]) < 0.02
    assert ig.scores.sum() == pytest.approx(change, abs=0.02)
    assert results["shap"].info["forward_passes"] <= 500
    assert results["lime"].info["forward_passes"] == 500
    for out in results.values():  # "stab" carries the threat
        assert out.words[int(np.argmax(out.scores))] == "stab"


def test_shap_and_lime_run_through_an_onnx_bundle(one_word_bundle):
    """The forward-only methods explain the deployed model: ids through ONNX Runtime."""
    from shotlab.explain.sources import from_bundle

    source = from_bundle(one_word_bundle)
    for method in ("shap", "lime"):
        (out,) = explain_text(source.forward_model, [KILLS], [1], method,
                              preprocessing=source.preprocessing)
        assert int(np.argmax(out.scores)) == 2
