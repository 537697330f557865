"""Human review in the service: the queue of decisions waiting for a verdict, and verdicts
(GET /v1/review, POST /v1/decisions/{id}/review), on both stores and over HTTP."""

from __future__ import annotations

import json
import sqlite3

import httpx
import numpy as np
import pytest

from tests.serve.test_mongo_store import PNG, open_store
from tests.serve.test_service import metric


def saved_records(store, bundle, needs_review: list[bool]) -> list[dict]:
    from shotlab.export.predict import decision_records

    probs = np.tile(np.array([[.6, .3, .1]], np.float32), (len(needs_review), 1))
    records = decision_records(bundle, probs, [f"{i:064x}" for i in range(len(needs_review))],
                               runtime="onnx")
    for record, waits in zip(records, needs_review):
        record["needs_review"] = waits
    store.save(records, [None] * len(records), {})
    return records


@pytest.mark.parametrize("kind", ["sqlite", "mongodb"])
def test_both_stores_keep_the_queue_and_one_verdict_per_decision(kind, mongo_uri, exported,
                                                                 tmp_path):
    from shotlab.runtime.bundle import load_bundle

    store = open_store(kind, mongo_uri, tmp_path)
    records = saved_records(store, load_bundle(exported.path), [True, False, True, True])
    waiting = [r["decision_id"] for r in records if r["needs_review"]]
    found, count = store.review_queue(2)
    assert [f["record"]["decision_id"] for f in found] == waiting[:2] and count == 3
    verdict = {"labels": ["red"], "upheld": False, "reviewer": "ana", "note": None,
               "reviewed": "2026-12-02T12:00:00Z"}
    assert store.record_review(waiting[0], verdict) is None
    assert store.record_review(waiting[0], {**verdict, "reviewer": "bo"}) == verdict  # kept once
    found, count = store.review_queue(10)
    assert [f["record"]["decision_id"] for f in found] == waiting[1:] and count == 2
    assert store.get(waiting[0])["review"] == verdict and store.get(waiting[1])["review"] is None
    # a decision that was never in the queue can be reviewed too (an appeal)
    assert store.record_review(records[1]["decision_id"], verdict) is None
    assert store.review_queue(10)[1] == 2
    store.close()


def test_decisions_stored_before_the_queue_existed_are_in_it(mongo_uri, exported):
    """A MongoDB store written by an older server has no `needs_review` field to query."""
    from shotlab.runtime.bundle import load_bundle
    from shotlab.serve.mongo_store import MongoDecisionStore

    store = MongoDecisionStore(mongo_uri)
    records = saved_records(store, load_bundle(exported.path), [True, False])
    store.decisions.update_many({}, {"$unset": {"needs_review": ""}})
    store.close()
    reopened = MongoDecisionStore(mongo_uri)
    found, count = reopened.review_queue(10)
    assert [f["record"]["decision_id"] for f in found] == [records[0]["decision_id"]]
    assert count == 1
    # each got the field, so a later start scans nothing again
    assert reopened.decisions.count_documents({"needs_review": {"$exists": False}}) == 0
    reopened.close()


def test_the_sqlite_queue_reads_an_index_not_every_record(tmp_path, exported):
    from shotlab.serve.store import WAITING, DecisionStore

    DecisionStore(tmp_path / "d.sqlite").close()
    plan = sqlite3.connect(tmp_path / "d.sqlite").execute(
        f"EXPLAIN QUERY PLAN SELECT d.decision_id {WAITING}").fetchall()
    assert any("decisions_by_needs_review" in row[-1] for row in plan), plan


def test_a_reviewer_takes_the_queue_and_records_verdicts_over_http(exported, start_server,
                                                                   images):
    server = start_server(exported.path, "--no-explain")
    answers = [httpx.post(server.url + "/v1/moderate", content=p.read_bytes(), headers=PNG,
                          timeout=60).json() for p in images]
    waiting = [a["decision_id"] for a in answers if a["needs_review"]]
    assert waiting, "the test needs decisions in the review band"
    queue = httpx.get(server.url + "/v1/review", params={"limit": 500}, timeout=60).json()
    assert [item["decision_id"] for item in queue["items"]] == waiting
    assert queue["waiting"] == len(waiting)

    flagged = next(a for a in answers if a["flagged"])
    upheld = httpx.post(f"{server.url}/v1/decisions/{flagged['decision_id']}/review",
                        json={"labels": flagged["labels"], "reviewer": "ana"}, timeout=60)
    assert upheld.status_code == 200, upheld.text
    assert upheld.json()["review"]["upheld"] is True
    other = next(c for c in flagged["scores"] if c not in flagged["labels"])
    again = httpx.post(f"{server.url}/v1/decisions/{flagged['decision_id']}/review",
                       json={"labels": [other]}, timeout=60)
    assert again.status_code == 409 and "reviewed already by ana" in again.json()["detail"]
    shown = httpx.get(f"{server.url}/v1/decisions/{flagged['decision_id']}", timeout=60).json()
    assert shown["review"]["labels"] == flagged["labels"] and shown["review"]["reviewer"] == "ana"

    safe = next(a for a in answers if not a["flagged"])
    overturned = httpx.post(f"{server.url}/v1/decisions/{safe['decision_id']}/review",
                            json={"labels": ["red"], "note": "a red scarf"}, timeout=60)
    assert overturned.status_code == 200 and overturned.json()["review"]["upheld"] is False
    text = httpx.get(server.url + "/metrics", timeout=60).text
    assert metric(text, 'shotlab_reviews_total{outcome="upheld"}') == 1
    assert metric(text, 'shotlab_reviews_total{outcome="overturned"}') == 1

    for body, needle in [(b"not json", "send a JSON object"),
                         (json.dumps({"labels": ["purple"]}).encode(), "not among the model's"),
                         (json.dumps({"labels": ["red", "blue"]}).encode(), "exactly one class"),
                         (json.dumps({"labels": ["red"], "who": 1}).encode(), "unknown field"),
                         (json.dumps({"labels": ["red"], "note": "x" * 3000}).encode(), "note:"),
                         # stored, it made the decision unreadable (a 500 at every GET)
                         (b'{"labels": ["red"], "note": "x\\ud800y"}', "not valid Unicode"),
                         # a JSON object in Latin-1: it was told to send a JSON object
                         (b'{"labels": ["red"], "note": "\xff\xfe"}', "not UTF-8 (byte 29)")]:
        refused = httpx.post(f"{server.url}/v1/decisions/{answers[-1]['decision_id']}/review",
                             content=body, timeout=60)
        assert refused.status_code == 422 and needle in refused.json()["detail"], refused.text
    missing = httpx.post(f"{server.url}/v1/decisions/nope/review", json={"labels": ["red"]})
    assert missing.status_code == 404
    assert httpx.get(server.url + "/v1/review", params={"limit": 0}).status_code == 422


def test_odd_review_requests_get_one_line_answers_and_a_hang_up_is_no_500(exported,
                                                                          start_server, images):
    """Bodies a reviewer's tool can send: JSON nested past Python's recursion limit was a 500
    with a traceback; a note the limits allow (2,000 emoji, 12 bytes each in JSON's escapes)
    was refused as too large, citing --max-body-mb, which does not set that limit; a queue
    limit that is not a number got FastAPI's list-shaped error. A client hanging up mid-body
    was counted as a server error (500) with a traceback in the log."""
    import socket
    from urllib.parse import urlsplit

    from tests.serve.test_service import wait_for

    server = start_server(exported.path, "--no-explain")
    decided = httpx.post(server.url + "/v1/moderate", content=images[0].read_bytes(),
                         headers=PNG, timeout=60).json()
    url = f"{server.url}/v1/decisions/{decided['decision_id']}/review"
    deep = httpx.post(url, content=b"[" * 20_000 + b"]" * 20_000, timeout=60)
    assert deep.status_code == 422 and "send a JSON object" in deep.json()["detail"], deep.text
    nested = httpx.post(url, content=b'{"labels": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
                        timeout=60)
    assert nested.status_code == 422 and "send a JSON object" in nested.json()["detail"]
    for limit in ("abc", "5.0"):
        bad = httpx.get(server.url + "/v1/review", params={"limit": limit}, timeout=60)
        assert bad.status_code == 422 and isinstance(bad.json()["detail"], str), bad.text
        assert "give a whole number from 1 to 500" in bad.json()["detail"]
    note = "\U0001F600" * 2_000
    kept = httpx.post(url, content=json.dumps({"labels": decided["labels"], "note": note}),
                      timeout=60)
    assert kept.status_code == 200 and kept.json()["review"]["note"] == note, kept.text

    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port)) as hanging:
        hanging.sendall(b"POST /v1/decisions/x/review HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n{")
    code = 'shotlab_requests_total{code="%s",endpoint="/v1/decisions/{decision_id}/review"}'
    wait_for(lambda: metric(httpx.get(server.url + "/metrics").text, code % 499) == 1)
    text = httpx.get(server.url + "/metrics").text
    assert metric(text, code % 500) == 0
    assert metric(text, 'shotlab_rejections_total{reason="client_disconnected"}') == 1
    assert not [line for line in server.log if "Traceback" in line or "ClientDisconnect" in line]
