"""Tier 2 for comments: the appeals `explain --pending` processes for a text model's decisions.

The comment comes from the decision's stored explanation (tier 1 stores the text with its word
scores), else from the appeal's file (`--image` naming a UTF-8 text file). Each method runs on
the source's forward model (a bundle's ONNX runner for SHAP and LIME: the deployed model), all
the batch's comments at once, and every explanation is stored with its faithfulness.
"""

from __future__ import annotations

from shotlab.core.errors import ShotlabError

DEFAULT_METHODS = ("shap", "lime")  # the model-agnostic methods, as for images


def appeal_text(store, appeal) -> str:
    from shotlab.explain.text_store import read_words

    stored = read_words(store, appeal.decision_id)
    if stored:
        return stored[0].comment.text
    if appeal.image_path:
        from pathlib import Path

        try:
            return Path(appeal.image_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ShotlabError(f"{appeal.image_path}: cannot read the comment ({exc})") from None
    raise ShotlabError(f"decision {appeal.decision_id}: no comment stored for it; queue it "
                       f"with --image naming a UTF-8 file holding the comment")


def process_text_batch(store, source, appeals, methods, score: bool, options: dict,
                       summary: dict, *, fail, finish_rows, appeal_target) -> None:
    """`pending.process_batch` for a text source; `fail`, `finish_rows` and `appeal_target` are
    pending's own (handed in: pending imports this module)."""
    from shotlab.explain import TEXT_METHODS, explain_text
    from shotlab.explain.text_explain import attach_faithfulness, text_forward
    from shotlab.explain.text_store import put_words

    rows = []
    for appeal in appeals:
        try:
            rows.append((appeal, appeal_text(store, appeal)))
        except ShotlabError as exc:
            fail(store, appeal, str(exc), summary)
    if not rows:
        return
    forward = text_forward(source.forward_model, source.preprocessing,
                           multilabel=source.multilabel)
    probs = forward([text for _, text in rows])
    targets = [appeal_target(store, source, a, p) for (a, _), p in zip(rows, probs)]
    asked = [[m for m in (methods or a.methods or DEFAULT_METHODS)] for a, _ in rows]
    errors: dict[int, str] = {}
    for method in [m for m in TEXT_METHODS if any(m in wanted for wanted in asked)]:
        keep = [i for i, wanted in enumerate(asked) if method in wanted]
        try:
            explained = explain_text(source.model_for(method), [rows[i][1] for i in keep],
                                     [targets[i] for i in keep], method,
                                     preprocessing=source.preprocessing,
                                     multilabel=source.multilabel, **options.get(method, {}))
        except ShotlabError as exc:
            errors.update({i: str(exc) for i in keep})
            continue
        if score:
            attach_faithfulness(forward, explained)
        model_sha256, model = source.made_by(method)
        for i, explanation in zip(keep, explained):
            put_words(store, rows[i][0].decision_id, explanation,
                      model_sha256=model_sha256, params={"tier": 2, **model})
            summary["stored"] += 1
    finish_rows(store, rows, errors, summary)
