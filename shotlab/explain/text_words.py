"""Words of a comment, as a text model's explanations see them, and one score per word.

    comment = Comment.of(tokenizer, "this joke kills me", max_tokens=128)
    comment.words         # ['this', 'joke', 'kills', 'me']
    comment.spans         # [(0, 4), (5, 9), (10, 15), (16, 18)]: characters in the text
    comment.merge(token_scores)   # one score per word: the sum of its sub-word tokens' scores
    comment.without([2])  # 'this joke me': the text with word 2 removed

Words are the tokenizer's own pre-tokenization (`runtime/text.word_tokens`: BERT splits on
white space and punctuation), so "kills!" is two words, "kills" and "!". Special tokens
([CLS], [SEP]) are never words; words past the model's token limit are left out. A word's score
is the **sum** of its tokens' scores, so a method whose token scores add up to the score change
(Integrated Gradients' completeness) still does after merging.

Removing a word deletes its characters; the white space around it stays (the tokenizer ignores
it). That is what every text method here and the faithfulness scores mean by "absent".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Comment:
    text: str
    words: list[str]
    spans: list[tuple[int, int]]  # each word's characters in `text`
    positions: list[list[int]]  # each word's token positions in `encode`'s row

    @classmethod
    def of(cls, tokenizer, text: str, max_tokens: int) -> Comment:
        from shotlab.runtime.text import word_tokens

        words, spans, positions, cursor = [], [], [], 0
        for word, tokens in word_tokens(tokenizer, text, max_tokens):
            start = text.find(word, cursor)  # words come in order; find keeps their place
            words.append(word)
            spans.append((start, start + len(word)))
            positions.append(list(tokens))
            cursor = start + len(word)
        return cls(text, words, spans, positions)

    def __len__(self) -> int:
        return len(self.words)

    def merge(self, token_scores) -> np.ndarray:
        """float32 (n_words,): each word's tokens' scores summed (specials and padding dropped)."""
        token_scores = np.asarray(token_scores, dtype=np.float64)
        return np.array([token_scores[p].sum() for p in self.positions], dtype=np.float32)

    def keeping(self, keep) -> str:
        """The text with only the words where `keep` is true (a bool per word)."""
        parts, cursor = [], 0
        for (start, end), kept in zip(self.spans, keep):
            parts.append(self.text[cursor:start])
            if kept:
                parts.append(self.text[start:end])
            cursor = end
        parts.append(self.text[cursor:])
        return "".join(parts)

    def without(self, removed) -> str:
        """The text with the words at indices `removed` deleted."""
        keep = np.ones(len(self), bool)
        keep[list(removed)] = False
        return self.keeping(keep)

    def only(self, kept) -> str:
        """The text with only the words at indices `kept`."""
        keep = np.zeros(len(self), bool)
        keep[list(kept)] = True
        return self.keeping(keep)


@dataclass
class WordScores:
    """One explanation of a comment: a signed score per word for the `target` class (positive:
    evidence for it), with what the method reports beside it (`info`: the convergence delta,
    the model calls it made) and, when scored, its faithfulness."""

    comment: Comment
    target: int
    target_name: str
    method: str
    scores: np.ndarray  # float32 (n_words,)
    info: dict = field(default_factory=dict)
    faithfulness: dict | None = None

    @property
    def words(self) -> list[str]:
        return self.comment.words

    def ranking(self, rng=None) -> np.ndarray:
        """Word indices from most to least evidence for the target, ties in random order (the
        rule of `faithfulness.pixel_order`, not imported: that module imports the package's
        `explain`, which imports this one)."""
        rng = rng or np.random.default_rng(0)
        scores = np.asarray(self.scores, dtype=np.float64)
        return np.lexsort((rng.random(scores.size), -scores))

    def as_dict(self) -> dict:
        return {"text": self.comment.text, "method": self.method, "target": self.target_name,
                "words": [{"word": w, "start": s, "end": e, "score": float(v)}
                          for w, (s, e), v in zip(self.comment.words, self.comment.spans,
                                                  self.scores)],
                **({"info": self.info} if self.info else {}),
                **({"faithfulness": self.faithfulness} if self.faithfulness else {})}


class TextForward:
    """`f(texts) -> probabilities (N, K)` through a text model, `batch_size` texts per call,
    counting the texts it ran (`calls`): what a method's cost in forward passes is measured by.

    `model` is a torch module (token ids -> logits; softmax, or sigmoid when `multilabel`) or a
    callable on int64 ids returning probabilities (an ONNX runner)."""

    def __init__(self, model, tokenizer, max_tokens: int, *, multilabel: bool = False,
                 batch_size: int = 32):
        from shotlab.explain.inputs import forward_probabilities

        self.tokenizer, self.max_tokens, self.batch_size = tokenizer, max_tokens, batch_size
        self.forward = forward_probabilities(model, multilabel=multilabel,
                                             batch_size=batch_size, dtype=np.int64)
        self.calls = 0

    def ids(self, texts) -> np.ndarray:
        from shotlab.runtime.text import encode

        return encode(self.tokenizer, list(texts), self.max_tokens)

    def __call__(self, texts) -> np.ndarray:
        texts = [str(t) for t in texts]
        self.calls += len(texts)
        parts = [self.forward(self.ids(texts[start:start + self.batch_size]))  # padded per chunk
                 for start in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
