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
    probs, passages, targets = windowed(source, forward, checked, target)
    comments = comments_of(forward.tokenizer, passages, forward.max_tokens)
    decided = source.decided(probs, pooled=passages != checked)  # the bundle's rule
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
    """(each comment's scores, the passage of it to explain, the class to explain), as
    `shotlab predict` reads and explains it: a comment longer than the model reads is scored
    window by window and pooled (`runtime.text.pool_windows`), and explained on the window that
    scored the explained class highest: `target`, else the class decided, else (a long comment
    not flagged, which predict sends to review) its highest-scoring unsafe class."""
    from shotlab.runtime.text import pool_windows, window_texts

    parts, owners, _ = window_texts(forward.tokenizer, texts, forward.max_tokens)
    if len(parts) == len(texts):
        probs = forward(texts)
        chosen = ([source.target_index(target)] * len(texts) if target is not None
                  else source.decided(probs))
        return probs, list(texts), chosen
    window_probs = forward(parts)
    probs = pool_windows(window_probs, owners, len(texts), source.classes, source.unsafe)
    chosen = ([source.target_index(target)] * len(texts) if target is not None
              else source.decided(probs, pooled=True))
    owners = np.asarray(owners)
    unsafe = [source.classes.index(c) for c in source.unsafe if c in source.classes]
    passages = []
    for i in range(len(texts)):
        rows = np.flatnonzero(owners == i)
        if target is None and len(rows) > 1 and unsafe and chosen[i] not in unsafe:
            chosen[i] = max(unsafe, key=lambda k: probs[i, k])
        passages.append(parts[rows[int(np.argmax(window_probs[rows, chosen[i]]))]])
    return probs, passages, chosen


def as_json(result: dict) -> dict:
    """`explain_texts`'s result with each explanation as plain data."""
    return {**result, "comments": [
        {**entry, "explanations": {m: e.as_dict() for m, e in entry["explanations"].items()}}
        for entry in result["comments"]]}
