"""The decision store on MongoDB (the workspace's own mongod): the SQLite store's contract, and
a server whose decisions go there (`--decision-store mongodb`)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.serve.test_service import wait_for

PNG = {"Content-Type": "image/png"}


def open_store(kind: str, uri: str, folder):
    from shotlab.serve.service import ServeOptions, open_store

    return open_store(ServeOptions(bundle=None, store=folder,
                                   database_uri=uri if kind == "mongodb" else None))


@pytest.mark.parametrize("kind", ["sqlite", "mongodb"])
def test_both_stores_keep_one_contract(kind, mongo_uri, exported, tmp_path):
    from shotlab.export.predict import decision_records
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(exported.path)
    first, second = open_store(kind, mongo_uri, tmp_path), open_store(kind, mongo_uri, tmp_path)
    probs = np.array([[.9, .05, .05], [.1, .8, .1], [.95, .03, .02]], np.float32)
    records = decision_records(bundle, probs, ["a" * 64, "b" * 64, "c" * 64], runtime="onnx")
    jobs = {records[0]["decision_id"]: np.ones((3, 4, 4)), records[2]["decision_id"]:
            np.zeros((3, 4, 4))}
    assert first.save(records, ["ka", "kb", None], jobs) == records
    again = decision_records(bundle, probs[:1], ["a" * 64], runtime="onnx")
    assert second.save(again, ["ka"], {}) == [records[0]]  # the earlier decision for the key
    assert first.cached("ka") == (records[0], "pending") and first.cached("kz") is None
    assert second.get(records[1]["decision_id"])["explanation"]["status"] == "none"
    assert first.count() == 3 and second.ids() == {r["decision_id"] for r in records}

    taken = first.claim(1) + second.claim(5)  # two workers: each job to one of them
    assert sorted(r["decision_id"] for r, _ in taken) == sorted(jobs)
    assert np.array_equal(taken[0][1], jobs[taken[0][0]["decision_id"]])
    assert first.claim(5) == [] and first.pending() == 2
    second.release_claims()  # a restarted worker puts the taken jobs back
    assert first.claim(5, {"0" * 64}) == []  # another model's worker is handed none of them
    assert len(first.claim(5, {records[0]["model_sha256"]})) == 2
    first.finish_explanation([records[0]["decision_id"]])
    first.finish_explanation([records[2]["decision_id"]], error="no checkpoint")
    assert first.pending() == 0
    assert second.get(records[2]["decision_id"])["explanation"]["error"] == "no checkpoint"
    assert first.get("nope") is None
    # record 1 (key kb) was stored with no job (explanations off): deciding it again with one
    # queues it for the stored decision; an explained one (ka) is not queued twice
    again = decision_records(bundle, probs[:2], ["a" * 64, "b" * 64], runtime="onnx")
    jobs = {record["decision_id"]: np.ones((3, 4, 4)) for record in again}
    assert second.save(again, ["ka", "kb"], jobs) == records[:2]
    assert first.cached("kb") == (records[1], "pending") and first.cached("ka")[1] == "done"
    assert [r["decision_id"] for r, _ in first.claim(5)] == [records[1]["decision_id"]]
    first.close()
    second.close()


def test_a_server_on_mongodb_stores_and_finds_its_decisions(exported, start_server, images,
                                                            mongo_uri, tmp_path):
    from shotlab.serve.mongo_store import MongoDecisionStore

    env = {"SHOTLAB_DATABASE_URI": mongo_uri}
    server = start_server(exported.path, "--decision-store", "mongodb", env=env)
    red = next(p for p in images if p.parent.name == "red")
    answer = httpx.post(server.url + "/v1/moderate", content=red.read_bytes(), headers=PNG,
                        timeout=60).json()
    assert answer["flagged"] == ["red"] and answer["explanation"] == "pending"
    assert not (tmp_path / "store" / "decisions.sqlite").exists()
    store = MongoDecisionStore(mongo_uri)
    assert store.ids() == {answer["decision_id"]}

    def explained():
        found = httpx.get(f"{server.url}/v1/decisions/{answer['decision_id']}").json()
        return found["explanation"]["status"] == "done" and found

    assert wait_for(explained, timeout=120)["explanation"]["maps"][0]["method"] == "gradcam"
    server.stop()

    # Another server on the same database (another machine, in a cluster) knows the decision.
    # It explains nothing (--no-explain), so it has no explanations.sqlite: the decision is
    # 'done' with no maps here (a 500, "no explanation store there", before).
    other = start_server(exported.path, "--decision-store", "mongodb", "--no-explain", env=env,
                         store=tmp_path / "elsewhere")
    cached = httpx.post(other.url + "/v1/moderate", content=red.read_bytes(), headers=PNG,
                        timeout=60).json()
    assert cached["decision_id"] == answer["decision_id"] and cached["cached"] is True
    assert cached["explanation"] == "done" and store.count() == 1
    found = httpx.get(f"{other.url}/v1/decisions/{answer['decision_id']}", timeout=60)
    assert found.status_code == 200, found.text
    assert found.json()["explanation"]["status"] == "done"
    assert found.json()["explanation"]["maps"] == []
    assert not (tmp_path / "elsewhere" / "explanations.sqlite").exists()
    store.close()


def test_a_write_the_journal_did_not_confirm_is_never_acknowledged(mongo_uri, exported):
    """pymongo reports a failed journal wait (a mongod shutting down, a primary stepping down)
    as a BulkWriteError holding only writeConcernErrors; `save` took it for 'no duplicates' and
    answered the decisions as stored."""
    from pymongo.errors import BulkWriteError

    from shotlab.export.predict import decision_records
    from shotlab.runtime.bundle import load_bundle
    from shotlab.serve.mongo_store import MongoDecisionStore

    store = MongoDecisionStore(mongo_uri)
    records = decision_records(load_bundle(exported.path), np.array([[.9, .05, .05]], np.float32),
                               ["a" * 64], runtime="onnx")
    insert = store.decisions.insert_many

    def unconfirmed(documents, **options):  # the server's answer when the journal wait fails
        insert(documents, **options)
        raise BulkWriteError({"writeErrors": [], "nInserted": len(documents),
                              "writeConcernErrors": [{"code": 91, "errmsg": "shutting down"}]})

    store.decisions.insert_many = unconfirmed
    with pytest.raises(BulkWriteError):
        store.save(records, ["ka"], {})
    store.close()


@pytest.mark.parametrize("uri", ["mongodb://admin:S3cr:et@Pass@127.0.0.1/db",
                                 "mongodb://127.0.0.1:99999/db", "http://127.0.0.1/"])
def test_a_bad_uri_is_one_line_without_the_password(uri):
    from shotlab.core.errors import ShotlabError
    from shotlab.serve.mongo_store import MongoDecisionStore

    with pytest.raises(ShotlabError, match="MongoDB URI cannot be used: .*; check "
                                           "--database-uri") as caught:
        MongoDecisionStore(uri)
    assert "S3cr" not in str(caught.value) and "Pass" not in str(caught.value)


def test_a_store_that_stops_answering_makes_the_server_unready_not_a_bare_500(
        exported, start_server, images, tmp_path):
    """mongod killed under a server: /v1/moderate answered a plain-text 500, /metrics a 500 and
    /v2/health/ready 200, so a load balancer kept sending requests to it."""
    from shotlab.core import database
    from shotlab.core.workspace import Workspace

    other = Workspace(tmp_path / "other-db")  # a mongod of its own: the tests' own keeps running
    other.db_dir.mkdir(parents=True)
    state = database.start(other)
    try:
        uri = database.with_timeouts(database.uri(state, "moderation"))
        server = start_server(exported.path, "--decision-store", "mongodb",
                              env={"SHOTLAB_DATABASE_URI": uri})
        red = next(p for p in images if p.parent.name == "red")
        assert httpx.post(server.url + "/v1/moderate", content=red.read_bytes(), headers=PNG,
                          timeout=60).status_code == 200
    finally:
        database.stop(other)
    answer = httpx.post(server.url + "/v1/moderate", content=images[0].read_bytes(),
                        headers=PNG, timeout=60)
    assert answer.status_code == 503 and "not answering" in answer.json()["detail"]
    ready = httpx.get(server.url + "/v2/health/ready", timeout=60)
    assert ready.status_code == 503 and ready.json()["ready"] is False
    metrics = httpx.get(server.url + "/metrics", timeout=60)
    assert metrics.status_code == 200 and "shotlab_explanations_pending NaN" in metrics.text
    # The request counter says what the client got (it counted a 500 before).
    assert requests_counted(metrics.text, "/v1/moderate", 503) == 1
    assert requests_counted(metrics.text, "/v1/moderate", 500) == 0


def requests_counted(text: str, endpoint: str, code: int) -> float:
    """shotlab_requests_total{endpoint, code} in a /metrics text (0 when absent)."""
    labels = (f'endpoint="{endpoint}"', f'code="{code}"')
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("shotlab_requests_total{") and all(x in line for x in labels))


@pytest.mark.parametrize("kind", ["sqlite", "mongodb"])
def test_both_stores_retry_a_failed_job_a_bounded_number_of_times(kind, mongo_uri, exported,
                                                                  tmp_path):
    """A failure keeps the input; the job goes back at start-up (requeue_failed) and when its
    bytes come again (save) until MAX_ATTEMPTS failures of its own; the server's (attempt=False)
    are not counted."""
    from shotlab.export.predict import decision_records
    from shotlab.runtime.bundle import load_bundle
    from shotlab.serve.store import MAX_ATTEMPTS

    bundle = load_bundle(exported.path)
    store = open_store(kind, mongo_uri, tmp_path)
    probs = np.array([[.9, .05, .05]], np.float32)
    (record,) = decision_records(bundle, probs, ["a" * 64], runtime="onnx")
    decision_id = record["decision_id"]
    store.save([record], ["ka"], {decision_id: np.ones((3, 4, 4))})
    store.claim(1)
    store.finish_explanation([decision_id], error="no checkpoint", attempt=False)
    assert store.get(decision_id)["explanation"]["status"] == "failed"
    assert store.requeue_failed(bundle.model_hashes) == (1, 0)
    for failures in range(1, MAX_ATTEMPTS + 1):
        ((_, kept),) = store.claim(1)
        assert np.array_equal(kept, np.ones((3, 4, 4)))  # the input survived the failure
        store.finish_explanation([decision_id], error="bad input")
        assert store.retryable(decision_id) is (failures < MAX_ATTEMPTS)
        if failures < MAX_ATTEMPTS:  # the same bytes again: queued again
            again = decision_records(bundle, probs, ["a" * 64], runtime="onnx")
            assert store.save(again, ["ka"], {again[0]["decision_id"]: np.ones((3, 4, 4))}) \
                == [record]
            assert store.cached("ka") == (record, "pending")
    assert store.requeue_failed(bundle.model_hashes) == (0, 1)
    assert store.cached("ka") == (record, "failed")
    store.close()


def kept_inputs(store) -> set[str]:
    """The decisions whose job still holds its input, read from the store itself."""
    if hasattr(store, "decisions"):  # MongoDB
        return {d["_id"] for d in store.decisions.find({"explanation.input": {"$exists": True}},
                                                       {"_id": 1})}
    return {row[0] for row in store.read("SELECT decision_id FROM explain_queue "
                                         "WHERE input IS NOT NULL")}


@pytest.mark.parametrize("kind", ["sqlite", "mongodb"])
def test_both_stores_remove_a_failed_jobs_input_when_no_retry_can_use_it(kind, mongo_uri,
                                                                         exported, tmp_path):
    """A failed job keeps the moderated input only while a retry can use it: the failure that
    uses its last attempt, or one no retry follows (`final`: another bundle's job), removes it,
    and `expire_failed_inputs` removes those stored before its cutoff (KEEP_FAILED_INPUT_DAYS
    ago by default); the job's bytes sent again bring it back while it has attempts left."""
    import time

    from shotlab.export.predict import decision_records
    from shotlab.runtime.bundle import load_bundle
    from shotlab.serve.store import MAX_ATTEMPTS, input_expiry

    bundle = load_bundle(exported.path)
    store = open_store(kind, mongo_uri, tmp_path)
    probs = np.full((4, 3), [.9, .05, .05], np.float32)
    sha256s = [c * 64 for c in "abcd"]
    records = decision_records(bundle, probs, sha256s, runtime="onnx")
    spent, foreign, server_cause, kept = ids = [r["decision_id"] for r in records]
    keys = [f"k{c}" for c in "abcd"]
    store.save(records, keys, {i: np.ones((3, 4, 4)) for i in ids})
    assert len(store.claim(4)) == 4
    for failures in range(1, MAX_ATTEMPTS + 1):
        store.finish_explanation([spent], error="bad input")
        assert (spent in kept_inputs(store)) is (failures < MAX_ATTEMPTS)
    store.finish_explanation([foreign], error="another bundle's decision", final=True)
    store.finish_explanation([server_cause, kept], error="no checkpoint", attempt=False)
    assert kept_inputs(store) == {server_cause, kept}
    assert store.expire_failed_inputs() == 0  # stored now: within its time
    assert store.expire_failed_inputs(before=input_expiry(time.time() + 86400 * 365)) == 2
    assert kept_inputs(store) == set()
    assert store.requeue_failed(bundle.model_hashes) == (0, 4)  # nothing left to retry from

    again = decision_records(bundle, probs, sha256s, runtime="onnx")
    store.save(again, keys, {r["decision_id"]: np.ones((3, 4, 4)) for r in again})
    assert kept_inputs(store) == {foreign, server_cause, kept}  # all but the spent one
    assert store.cached("ka")[1] == "failed" and store.cached("kc")[1] == "pending"
    store.close()
