"""A stored explanation as plain data, for `explain show --json` and the service's
`GET /v1/decisions/{id}`: what was explained and, where a map is small enough to read as
numbers, the numbers themselves (a comment's word scores, a post's modality split)."""

from __future__ import annotations


def explanation_summary(row) -> dict:
    """Method, target class, map shape, its scores (faithfulness; a post's split: image and
    caption shares) and when it was made; a text row's words with their scores and character
    spans in the comment (a long comment's: `window`, the passage explained); a clip frame's
    time."""
    from shotlab.explain.text_store import from_row, is_text

    summary = {"method": row.method, "target": row.target, "shape": list(row.map.shape),
               "scores": row.scores, "created": row.created}
    if is_text(row):
        # characters of the comment: a long one's window starts at `offset` (text_tier1)
        offset = int(row.params.get("offset", 0))
        summary["words"] = [{**w, "start": w["start"] + offset, "end": w["end"] + offset}
                            for w in from_row(row).as_dict()["words"]]
        if offset:
            summary["window"] = [offset, offset + len(row.params["text"])]
    if "timestamp" in row.params:
        summary["timestamp"] = row.params["timestamp"]
    return summary
