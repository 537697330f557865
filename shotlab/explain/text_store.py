"""Word explanations in the explanation store (`store.py`), beside the image maps.

    put_words(store, decision_id, explanation, model_sha256=...)   # one row per method
    read_words(store, decision_id)                                 # -> [WordScores]

A text explanation is one row of the same `explanations` table: the word scores as a (1, n_words)
map (float16 like every map: about 3 significant digits, plenty for ranking and colouring), the
comment, its words and their character spans in `params` (with the method's settings:
`"kind": "text"` marks the row), the faithfulness scores and IG's convergence delta in `scores`,
and the model's and the comment's sha256 (of its UTF-8 bytes). No new table and no new column:
a store written before text existed opens unchanged, and `explain show` lists text rows too.
"""

from __future__ import annotations

import hashlib

import numpy as np

KIND = "text"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stored_scores(explanation) -> dict:
    scores = dict(explanation.faithfulness or {})
    if "convergence_delta" in explanation.info:
        scores["convergence_delta"] = explanation.info["convergence_delta"]
    return scores


def stored_params(explanation, params: dict | None) -> dict:
    info = {k: v for k, v in explanation.info.items() if isinstance(v, (int, float, str))
            and k not in ("convergence_delta", "seconds")}
    return {**info, **(params or {}), "kind": KIND, "text": explanation.comment.text,
            "words": list(explanation.comment.words),
            "spans": [list(span) for span in explanation.comment.spans],
            "positions": [list(p) for p in explanation.comment.positions],
            "target_index": int(explanation.target)}


def put_words(store, decision_id: str, explanation, *, model_sha256: str | None = None,
              params: dict | None = None) -> int:
    """Store one `WordScores` for `decision_id`; returns the row id."""
    return store.put(decision_id, explanation.method,
                     np.asarray(explanation.scores, np.float32).reshape(1, -1),
                     target=explanation.target_name, params=stored_params(explanation, params),
                     scores=stored_scores(explanation), model_sha256=model_sha256,
                     input_sha256=text_sha256(explanation.comment.text))


def is_text(row) -> bool:
    return row.params.get("kind") == KIND


def from_row(row):
    """A stored text row (`store.Explanation`) back as `WordScores`."""
    from shotlab.explain.text_words import Comment, WordScores

    p = row.params
    comment = Comment(p["text"], list(p["words"]), [tuple(s) for s in p["spans"]],
                      [list(x) for x in p["positions"]])
    scores = dict(row.scores)
    info = {"convergence_delta": scores.pop("convergence_delta")} \
        if "convergence_delta" in scores else {}
    return WordScores(comment, int(p["target_index"]), row.target, row.method,
                      row.map.reshape(-1).astype(np.float32), info, scores or None)


def read_words(store, decision_id: str, method: str | None = None) -> list:
    """The text explanations stored for `decision_id` (image rows left out), oldest first."""
    return [from_row(row) for row in store.explanations(decision_id, method) if is_text(row)]
