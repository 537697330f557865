"""The work behind `explain_text` and `shotlab explain RUN_OR_BUNDLE --text ...`: word scores,
their faithfulness, and the result the CLI prints, renders and stores.
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


def word_scores(model, texts, targets, method: str, *, preprocessing, score: bool = False,
                batch_size: int = 50, forward=None, **options) -> list:
    """`explain_text`'s work (options already checked): a `WordScores` per comment."""
    from shotlab.explain import TEXT_METHODS, method_function
    from shotlab.explain.text_words import WordScores

    multilabel = bool(options.get("multilabel"))
    forward = forward or text_forward(model, preprocessing, multilabel=multilabel,
                                      batch_size=batch_size)
    comments = comments_of(forward.tokenizer, texts, forward.max_tokens)
    probs = forward([c.text for c in comments])
    targets = resolve_targets(targets, probs, len(comments))
    implementation = method_function(method, TEXT_METHODS)
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


def explain_texts(source, texts, methods, *, target=None, score: bool = True,
                  batch_size: int = 50) -> dict:
    """Every method on every comment through `source` (`explain.sources.Source` of a text
    model): {"source", "methods", "comments": [{"text", "predicted", "score", "target",
    "explanations": {method: WordScores}}]}. SHAP, LIME and the faithfulness scores run on the
    source's forward model (a bundle's ONNX runner: the deployed model), IG on its PyTorch model."""
    forward = text_forward(source.forward_model, source.preprocessing,
                           multilabel=source.multilabel, batch_size=batch_size)
    comments = comments_of(forward.tokenizer, texts, forward.max_tokens)
    probs = forward([c.text for c in comments])
    targets = ([source.target_index(target)] * len(comments) if target is not None
               else [int(p.argmax()) for p in probs])
    by_method = {}
    for method in methods:
        options = {"multilabel": source.multilabel}
        by_method[method] = word_scores(source.model_for(method), [c.text for c in comments],
                                        targets, method, preprocessing=source.preprocessing,
                                        forward=forward,
                                        batch_size=batch_size, **options)
    if score:
        attach_faithfulness(forward, [e for ex in by_method.values() for e in ex])
    entries = []
    for i, comment in enumerate(comments):
        top = int(probs[i].argmax())
        entries.append({"text": comment.text, "predicted": source.classes[top],
                        "score": float(probs[i, top]), "target": source.classes[targets[i]],
                        "target_score": float(probs[i, targets[i]]),
                        "explanations": {m: by_method[m][i] for m in methods}})
    return {"source": str(source.origin), "kind": source.kind, "methods": list(methods),
            "comments": entries}


def as_json(result: dict) -> dict:
    """`explain_texts`'s result with each explanation as plain data."""
    return {**result, "comments": [
        {**entry, "explanations": {m: e.as_dict() for m, e in entry["explanations"].items()}}
        for entry in result["comments"]]}
