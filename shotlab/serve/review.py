"""Human review in the service: the queue of decisions waiting for a reviewer, and a reviewer's
verdict on one.

    GET  /v1/review?limit=50               decisions with needs_review and no verdict yet,
                                           oldest first, and how many wait in all
    POST /v1/decisions/{id}/review         {"labels": [...], "reviewer": "...", "note": "..."}

A verdict is stored beside the decision, once (a second answers 409 with the first): the
model's record is never changed. It says whether the reviewer upheld the model's labels, counted
in `shotlab_reviews_total{outcome}`, and `GET /v1/decisions/{id}` shows it. Any decision can be
reviewed (a flag a user appealed, say), not only the queue's.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shotlab.core.clock import utc_now
from shotlab.core.rows import surrogate_reason
from shotlab.serve.answers import public, read_body
from shotlab.serve.service import Refusal, Service

DEFAULT_LIMIT = 50
MAX_LIMIT = 500  # decisions one queue request lists
MAX_REVIEWER, MAX_NOTE = 200, 2_000  # characters
# bytes: labels, a name and a note, each character of which JSON may escape as 12 bytes (an
# emoji: two \uXXXX escapes), so a note the limits allow is never refused for its size
MAX_BODY = 65_536
LIMIT_HINT = " (a verdict's labels, reviewer and note)"
FIELDS = ("labels", "reviewer", "note")


def add_review_routes(app: FastAPI, service: Service, guarded: list) -> None:
    from starlette.concurrency import run_in_threadpool

    @app.get("/v1/review", dependencies=guarded)
    async def review_queue(limit: str = str(DEFAULT_LIMIT)):
        """Decisions waiting for a human verdict, oldest first."""
        if not (limit.isascii() and limit.isdigit() and len(limit) <= 4) \
                or not 1 <= int(limit) <= MAX_LIMIT:
            raise Refusal(422, "bad_input", f"limit={limit[:20]}: give a whole number from 1 "
                                            f"to {MAX_LIMIT}")
        limit = int(limit)
        found, waiting = await run_in_threadpool(service.store.review_queue, limit)
        return {"waiting": waiting,
                "items": [public(f["record"], f["explanation"]) for f in found]}

    @app.post("/v1/decisions/{decision_id}/review", dependencies=guarded)
    async def review(decision_id: str, request: Request):
        """A reviewer's verdict on a decision: stored once."""
        body = await read_body(request, MAX_BODY, LIMIT_HINT)
        found = await run_in_threadpool(service.store.get, decision_id)
        if found is None:
            return JSONResponse({"detail": f"no decision {decision_id} in this server's store"},
                                404)
        verdict = checked_verdict(body, found["record"], service.bundle.manifest["task"])
        earlier = await run_in_threadpool(service.store.record_review, decision_id, verdict)
        if earlier is not None:
            by = f" by {earlier['reviewer']}" if earlier.get("reviewer") else ""
            return JSONResponse({"detail": f"decision {decision_id} was reviewed already{by} "
                                           f"at {earlier['reviewed']}; a verdict is kept once",
                                 "review": earlier}, 409)
        service.metrics.reviews.labels("upheld" if verdict["upheld"] else "overturned").inc()
        return {"decision_id": decision_id, "review": verdict}


def checked_verdict(body: bytes, record: dict, task: str) -> dict:
    """The verdict to store from a request body, or a 422 Refusal naming the field and fix."""
    def refuse(message: str):
        raise Refusal(422, "bad_input", message)

    try:
        given = json.loads(body)
    except UnicodeDecodeError as exc:
        refuse(f"the body is not UTF-8 (byte {exc.start}); send the verdict as UTF-8 JSON")
    except (json.JSONDecodeError, RecursionError):  # deep nesting too
        given = None
    if not isinstance(given, dict):
        refuse('send a JSON object: {"labels": ["class", ...], "reviewer": "name", '
               '"note": "why"} (reviewer and note optional)')
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        refuse(f"unknown field(s) {unknown}; a verdict has {', '.join(FIELDS)}")
    classes, labels = list(record.get("scores") or {}), given.get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        refuse("labels: give a list of class names (an empty list: no class applies, "
               "multilabel models only)")
    if set(labels) - set(classes):
        refuse(f"labels: {sorted(set(labels) - set(classes))} not among the model's classes "
               f"({', '.join(classes)})")
    if task == "multiclass" and len(set(labels)) != 1:
        refuse(f"labels: a multiclass model's decision takes exactly one class; got {len(labels)}")
    for field, limit in (("reviewer", MAX_REVIEWER), ("note", MAX_NOTE)):
        value = given.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            refuse(f"{field}: give a string of at most {limit:,} characters")
        # valid JSON but no text: stored, it could never be answered (nor sent to MongoDB)
        if isinstance(value, str) and (reason := surrogate_reason(field, value)) is not None:
            refuse(reason)
    labels = sorted(set(labels), key=classes.index)
    return {"labels": labels, "upheld": labels == sorted(record.get("labels") or [],
                                                          key=classes.index),
            "reviewer": given.get("reviewer"), "note": given.get("note"), "reviewed": utc_now()}
