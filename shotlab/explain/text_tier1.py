"""Tier 1 for text: Integrated Gradients over the words of every flagged or review-queue comment,
stored as `shotlab predict --explain` makes the decisions (the text counterpart of `tier1.py`).

    stored = record_flagged_texts(bundle, decisions, texts, "out/explanations.sqlite")

The classes explained are `tier1.attention_classes`' (each flagged class and each class in its
review band, a row each; else the top class). IG runs on the PyTorch checkpoint the bundle was
exported from (52 forward-pass equivalents per comment, `text_methods.py`); each explanation is
stored with its convergence delta and, unless `score=False`, its faithfulness (ERASER
comprehensiveness and sufficiency against random word rankings: about 5 to 60 more forward
passes per comment, no gradients).
"""

from __future__ import annotations


def record_flagged_texts(bundle, decisions: list[dict], texts: list[str], store_path, *,
                         model=None, checkpoint=None, score: bool = True) -> int:
    """Store IG word scores for each decision (with `texts`, the comments, in the same order)
    and class it is flagged or reviewed for; returns how many were stored. All are stored, or
    none.

    `model` is the bundle's PyTorch text model when the caller holds it (the service's worker);
    else `checkpoint` (a loaded `train.checkpoint` result), else the checkpoint the bundle names
    is loaded here."""
    from shotlab.explain import explain_text
    from shotlab.explain.store import ExplanationStore
    from shotlab.explain.text_store import put_words
    from shotlab.explain.tier1 import attention_rows, load_bundle_checkpoint
    from shotlab.runtime.text import decided_span

    if not decisions:
        return 0
    if len(texts) != len(decisions):
        raise ValueError(f"{len(decisions)} decisions but {len(texts)} texts")
    if model is None:
        checkpoint = checkpoint or load_bundle_checkpoint(bundle)
        model = checkpoint.model
    model_sha256 = checkpoint.sha256 if checkpoint is not None else None
    classes = list(bundle.classes)
    rows, names = attention_rows(decisions)  # a row per class a reviewer is asked about
    decisions, texts = [decisions[i] for i in rows], [texts[i] for i in rows]
    targets = [classes.index(name) for name in names]
    # a comment read in windows is explained on the window its target's score came from; its
    # first character's place in the comment is stored (`offset`), so spans can name the comment's
    spans = [decided_span({**d, "text": text}, classes[target])
             for d, text, target in zip(decisions, texts, targets)]
    texts = [text[start:end] for text, (start, end) in zip(texts, spans)]
    explained = explain_text(model, texts, targets, "ig",
                             preprocessing=bundle.preprocessing, score=score,
                             multilabel=bundle.task == "multilabel")
    bundle_path = getattr(bundle, "origin", None) or bundle.path
    with ExplanationStore(store_path) as store, store.transaction():
        for decision, explanation, (start, _) in zip(decisions, explained, spans):
            store.add_decision(decision, bundle_path)
            put_words(store, decision["decision_id"], explanation, model_sha256=model_sha256,
                      params={"model": "checkpoint", **({"offset": start} if start else {}),
                              # the comment's line in the file predict read (`explain show`)
                              **({"line": decision["line"]} if decision.get("line") else {})})
    return len(decisions)
