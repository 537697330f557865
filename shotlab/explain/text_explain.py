"""The work behind `shotlab.explain.explain_text`: comments, the model's forward on texts, the
targets, one method's word scores and their faithfulness. It does not import the package's
`__init__` (which imports it): the method's function is handed in.
"""

from __future__ import annotations

import time

import numpy as np

from shotlab.core.errors import InputError


def comments_of(tokenizer, texts, max_tokens: int, where: str = "text"):
    """A `Comment` per text; an InputError naming the text (1-based) when one is empty or long."""
    from shotlab.explain.text_words import Comment
    from shotlab.runtime.text import check_text

    if isinstance(texts, str):
        raise InputError("texts must be a list of comments; got one string (wrap it in a list)")
    return [Comment.of(tokenizer, check_text(text, f"{where} {i + 1}"), max_tokens)
            for i, text in enumerate(texts)]


def text_forward(model, preprocessing, *, multilabel: bool = False, batch_size: int = 50):
    from shotlab.explain.text_words import TextForward
    from shotlab.runtime.text import load_tokenizer

    return TextForward(model, load_tokenizer(preprocessing), preprocessing.max_tokens,
                       multilabel=multilabel, batch_size=batch_size)


def resolve_targets(targets, probs, n: int) -> list[int]:
    from shotlab.explain.inputs import check_targets

    if targets is None:
        return [int(p.argmax()) for p in probs]
    if isinstance(targets, (int, np.integer)) or len(targets) != n:
        raise InputError(f"{n} comments but targets {targets!r}; give one class index per "
                         f"comment")
    targets = [int(t) for t in targets]
    check_targets(targets, probs.shape[1])
    return targets


def class_name(preprocessing, target: int) -> str:
    names = list(preprocessing.class_names or ())
    return names[target] if target < len(names) else str(target)


def word_scores(implementation, model, texts, targets, method: str, *, preprocessing,
                score: bool = False, batch_size: int = 50, forward=None, **options) -> list:
    """`explain_text`'s work (`implementation`: the method's function from TEXT_METHODS;
    options already checked): a `WordScores` per comment."""
    from shotlab.explain.text_words import WordScores

    multilabel = bool(options.get("multilabel"))
    forward = forward or text_forward(model, preprocessing, multilabel=multilabel,
                                      batch_size=batch_size)
    comments = comments_of(forward.tokenizer, texts, forward.max_tokens)
    probs = forward([c.text for c in comments])
    targets = resolve_targets(targets, probs, len(comments))
    started = time.perf_counter()
    results = implementation(model, comments, targets, forward=forward, **options)
    seconds = (time.perf_counter() - started) / max(1, len(comments))
    explained = [WordScores(comment, target, class_name(preprocessing, target), method,
                            np.asarray(scores, np.float32),
                            {**info, "seconds": round(seconds, 4),
                             "target_score": float(probs[i, target])})
                 for i, (comment, target, (scores, info))
                 in enumerate(zip(comments, targets, results))]
    if score:
        attach_faithfulness(forward, explained)
    return explained


def attach_faithfulness(forward, explained) -> None:
    from shotlab.explain.text_faithfulness import text_faithfulness

    for explanation, faith in zip(explained, text_faithfulness(forward, explained)):
        explanation.faithfulness = faith
