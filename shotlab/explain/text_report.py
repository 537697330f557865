"""The work behind `shotlab explain RUN_OR_BUNDLE --text ...`: every method on every comment
through a run or bundle, with faithfulness, as the result the CLI prints, renders and stores.
"""

from __future__ import annotations


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
    comments = comments_of(forward.tokenizer, texts, forward.max_tokens)
    probs = forward([c.text for c in comments])
    decided = source.decided(probs)  # the bundle's rule, thresholds included
    targets = [source.target_index(target)] * len(comments) if target is not None else decided
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


def as_json(result: dict) -> dict:
    """`explain_texts`'s result with each explanation as plain data."""
    return {**result, "comments": [
        {**entry, "explanations": {m: e.as_dict() for m, e in entry["explanations"].items()}}
        for entry in result["comments"]]}
