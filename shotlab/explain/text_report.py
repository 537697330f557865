"""The work behind `shotlab explain RUN_OR_BUNDLE --text ...`: every method on every comment
through a run or bundle, with faithfulness, as the result the CLI prints, renders and stores.
"""

from __future__ import annotations

import numpy as np


def explain_texts(source, texts, methods, *, target=None, score: bool = True,
                  batch_size: int = 50) -> dict:
    """Every method on every comment through `source` (`explain.sources.Source` of a text
    model): {"source", "methods", "comments": [{"text", "predicted", "score", "target",
    "explanations": {method: WordScores}}]}. SHAP, LIME and the faithfulness scores run on the
    source's forward model (a bundle's ONNX runner: the deployed model), IG on its PyTorch model."""
    from shotlab.explain import explain_text
    from shotlab.explain.text_explain import attach_faithfulness, comments_of, text_forward

    forward = text_forward(source.forward_model, source.preprocessing,
                           multilabel=source.multilabel, batch_size=batch_size)
    checked = [c.text for c in comments_of(forward.tokenizer, texts, forward.max_tokens)]
    probs, passages, decided, targets = windowed(source, forward, checked, target)
    comments = comments_of(forward.tokenizer, passages, forward.max_tokens)
    by_method = {}
    for method in methods:
        options = {"multilabel": source.multilabel}
        by_method[method] = explain_text(source.model_for(method), [c.text for c in comments],
                                         targets, method, preprocessing=source.preprocessing,
                                         forward=forward, batch_size=batch_size, **options)
    if score:
        attach_faithfulness(forward, [e for ex in by_method.values() for e in ex])
    entries = []
    for i, comment in enumerate(comments):
        top = decided[i]
        entries.append({"text": comment.text, "predicted": source.classes[top],
                        "score": float(probs[i, top]), "target": source.classes[targets[i]],
                        "target_score": float(probs[i, targets[i]]),
                        "explanations": {m: by_method[m][i] for m in methods}})
    return {"source": str(source.origin), "kind": source.kind, "methods": list(methods),
            "comments": entries}


def windowed(source, forward, texts: list[str], target=None) -> tuple:
    """(each comment's scores, the passage of it to explain, the class the bundle's rule
    decides, the class to explain), as `shotlab predict` reads and explains it: a comment
    longer than the model reads is scored window by window and pooled
    (`runtime.text.pool_windows`), and explained on the window that scored the explained class
    highest: `target`, else the class decided, else (a long comment not flagged, which predict
    sends to review) the class its review is about (`runtime.text.windowed_review_class`)."""
    from shotlab.runtime.text import pool_windows, window_texts, windowed_review_class

    parts, owners, _ = window_texts(forward.tokenizer, texts, forward.max_tokens)
    pooled = len(parts) > len(texts)
    window_probs = forward(parts)  # a short comment's one window is itself
    probs = (pool_windows(window_probs, owners, len(texts), source.classes, source.unsafe)
             if pooled else window_probs)
    decided = source.decided(probs, pooled=pooled)  # the bundle's rule, thresholds included
    owners = np.asarray(owners)
    passages, targets = [], []
    for i in range(len(texts)):
        rows = np.flatnonzero(owners == i)
        chosen = source.target_index(target) if target is not None else decided[i]
        about = windowed_review_class(probs[i], source.classes, source.unsafe)
        if target is None and len(rows) > 1 and about and source.classes[chosen] not in \
                source.unsafe:
            chosen = source.classes.index(about)
        passages.append(parts[rows[int(np.argmax(window_probs[rows, chosen]))]])
        targets.append(chosen)
    return probs, passages, decided, targets


def as_json(result: dict) -> dict:
    """`explain_texts`'s result with each explanation as plain data."""
    return {**result, "comments": [
        {**entry, "explanations": {m: e.as_dict() for m, e in entry["explanations"].items()}}
        for entry in result["comments"]]}
