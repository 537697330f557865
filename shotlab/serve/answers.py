"""What a client sees of a stored decision, and a request body read within its limit: shared by
the moderation routes (serve/app.py) and the review routes (serve/review.py)."""

from __future__ import annotations

import re
import time

from fastapi import Request

from shotlab.serve.service import Refusal

PUBLIC_FIELDS = ("decision_id", "sha256", "scores", "labels", "flagged", "needs_review",
                 "review_classes", "model_sha256", "policy_version", "runtime", "time")
# What a kind's decision adds: what a reviewer needs (a clip's seconds to watch, what was scored
# and the frame its explanation is of; a comment or a caption as decided, a long comment's
# windows and their scores, a caption cut short) and, for a post, its caption's hash (the
# sha256 is the picture's).
KIND_FIELDS = {"clip": ("kind", "duration", "frames", "segments", "gaps", "explained_frames"),
               "text": ("kind", "text", "windows"),
               "post": ("kind", "text", "text_sha256", "caption_cut")}
# absent from most records
ONLY_WHERE_SET = frozenset({"windows", "caption_cut", "explained_frames"})
# An absolute path of two or more parts (not inside a URL or a longer path): what a failed
# explanation's reason names of the server's files (a run's checkpoint, the bundle folder).
SERVER_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/:;,'\"()\[\]]+/)+([^\s/:;,'\"()\[\]]+)")


def public(record: dict, explanation, started: float | None = None, cached=None) -> dict:
    """What a client sees of a record (not the server's bundle path)."""
    view = {key: record.get(key) for key in PUBLIC_FIELDS}
    view.update({key: record.get(key) for key in KIND_FIELDS.get(record.get("kind"), ())
                 if key in record or key not in ONLY_WHERE_SET})
    view["explanation"] = without_paths(explanation)
    if cached is not None:
        view["cached"] = cached
    if started is not None:
        view["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return view


def without_paths(explanation):
    """The explanation's status as a client sees it: a failure's reason with each of the
    server's paths cut to its last part ('best.pt', not where the workspace lies); the full
    reason stays in the server's log and in `explain show`."""
    if not isinstance(explanation, dict) or not explanation.get("error"):
        return explanation
    return {**explanation, "error": SERVER_PATH.sub(r"\1", explanation["error"])}


async def read_body(request: Request, limit: int, hint: str = " (--max-body-mb)") -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes (`hint`: what
    sets the limit, in the refusal)."""
    length = request.headers.get("content-length", "")
    too_large = Refusal(413, "too_large", f"body over the {limit:,}-byte limit{hint}; "
                        f"send a smaller request")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
