"""A tier-1 explanation that fails is said (a WARNING at start-up when the checkpoint is
unusable, one log line per failed job, a counter in /metrics, `explain show`), keeps its input
and is retried: at start-up and when the same bytes come again, a bounded number of times.
Before, a failure was silent and final: the input was thrown away, nothing logged or counted,
and a restart or the same bytes again answered `failed` for ever."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.serve.store import MAX_ATTEMPTS, input_expiry
from tests.serve.test_durability import distinct_bodies
from tests.serve.test_service import metric, wait_for

PNG = {"Content-Type": "image/png"}


@pytest.fixture(scope="module")
def own_bundle(trained_run, tmp_path_factory):
    """A bundle exported from a copy of the shared run: its checkpoint may be moved aside."""
    from shotlab.export.exporter import export_run

    root = tmp_path_factory.mktemp("failures")
    run = shutil.copytree(trained_run, root / "run", ignore=shutil.ignore_patterns("bundle"))
    return export_run(run, out=root / "bundle", progress=False).path


@contextmanager
def checkpoint_aside(bundle: Path):
    """The bundle's source checkpoint moved away inside the block, put back after it."""
    import json

    checkpoint = Path(json.loads((bundle / "manifest.json").read_text())["source"]["checkpoint"])
    aside = checkpoint.with_name("best.pt.aside")
    checkpoint.rename(aside)
    try:
        yield checkpoint
    finally:
        aside.rename(checkpoint)


def moderate(server, body: bytes) -> dict:
    response = httpx.post(server.url + "/v1/moderate", content=body, headers=PNG, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def settled(server, decision_id: str) -> dict:
    """The stored decision once its explanation is no longer pending."""
    url = f"{server.url}/v1/decisions/{decision_id}"
    return wait_for(lambda: (s := httpx.get(url).json())["explanation"]["status"] != "pending"
                    and s)


def failure_lines(server, decision_id: str) -> list[str]:
    return [line for line in server.log
            if f"tier-1 explanation of decision {decision_id} failed" in line]


def job(store: Path, decision_id: str) -> tuple:
    """(status, input is kept, attempts) of a decision's job in decisions.sqlite."""
    with sqlite3.connect(store / "decisions.sqlite") as db:
        return db.execute("SELECT status, input IS NOT NULL, attempts FROM explain_queue "
                          "WHERE decision_id = ?", (decision_id,)).fetchone()


def test_a_missing_checkpoint_is_said_and_its_failures_are_retried_once_fixed(
        own_bundle, start_server, tmp_path):
    store = tmp_path / "store"
    (body,) = distinct_bodies(tmp_path, 1, red=True)
    image = tmp_path / "0.png"
    with checkpoint_aside(own_bundle) as checkpoint:
        server = start_server(own_bundle, store=store)
        warning = [line for line in server.log if "tier-1 explanations will fail" in line]
        assert len(warning) == 1 and "WARNING" in warning[0] and str(checkpoint) in warning[0]
        decision = moderate(server, body)
        assert decision["flagged"] == ["red"] and decision["explanation"] == "pending"
        stored = settled(server, decision["decision_id"])
        assert stored["explanation"]["status"] == "failed"
        assert "is missing" in stored["explanation"]["error"]
        # the client is told which file, not where the server keeps its workspace
        assert stored["explanation"]["error"].startswith("best.pt: ")
        assert str(tmp_path) not in stored["explanation"]["error"]
        wait_for(lambda: failure_lines(server, decision["decision_id"]))
        (line,) = failure_lines(server, decision["decision_id"])
        assert "WARNING" in line and "is missing" in line and str(checkpoint) in line
        assert metric(httpx.get(server.url + "/metrics").text,
                      "shotlab_explanations_failed_total") == 1
        # the server's cause, not the job's: its input kept, no attempt used
        assert job(store, decision["decision_id"]) == ("failed", 1, 0)

        shown = CliRunner().invoke(cli, ["explain", "show", decision["decision_id"], "--store",
                                         str(store / "explanations.sqlite")])
        assert shown.exit_code == 0, shown.output
        assert "tier-1 explanation failed" in shown.output and "is missing" in shown.output
        assert str(checkpoint) in " ".join(shown.output.split())  # the operator's, whole

        # the same bytes while the checkpoint is still missing: answered from the cache, not
        # decoded, run and queued again only to fail again (the job is retried once it is back)
        decodes = metric(httpx.get(server.url + "/metrics").text, "shotlab_decodes_total")
        again = moderate(server, body)
        assert again["decision_id"] == decision["decision_id"]
        assert again["cached"] and again["explanation"] == "failed"
        assert metric(httpx.get(server.url + "/metrics").text,
                      "shotlab_decodes_total") == decodes
        assert len(failure_lines(server, decision["decision_id"])) == 1
        assert job(store, decision["decision_id"]) == ("failed", 1, 0)

    # an appeal stores a Grad-CAM: the failed decision now lists it
    appeal = CliRunner().invoke(cli, ["explain", "appeal", str(store / "explanations.sqlite"),
                                      decision["decision_id"], "--method", "gradcam",
                                      "--image", str(image), "--bundle", str(own_bundle)])
    assert appeal.exit_code == 0, appeal.output
    pending = CliRunner().invoke(cli, ["explain", "--pending",
                                       str(store / "explanations.sqlite"), "--no-score"])
    assert pending.exit_code == 0, pending.output
    stored = httpx.get(f"{server.url}/v1/decisions/{decision['decision_id']}").json()
    assert stored["explanation"]["status"] == "failed"
    assert [m["method"] for m in stored["explanation"]["maps"]] == ["gradcam"]
    server.stop()

    fixed = start_server(own_bundle, store=store)  # the checkpoint back: retried at start-up
    assert not [line for line in fixed.log if "will fail" in line]
    stored = settled(fixed, decision["decision_id"])
    assert stored["explanation"]["status"] == "done" and stored["explanation"]["error"] is None
    assert [m["method"] for m in stored["explanation"]["maps"]] == ["gradcam", "gradcam"]
    assert job(store, decision["decision_id"]) == ("done", 0, 0)
    shown = CliRunner().invoke(cli, ["explain", "show", decision["decision_id"], "--store",
                                     str(store / "explanations.sqlite")])
    assert shown.exit_code == 0 and "failed" not in shown.output, shown.output


def bad_input() -> bytes:
    """A stored input no model takes (7 channels): its Grad-CAM fails, the job's own cause."""
    from shotlab.serve.store import pack

    return pack(np.zeros((7, 32, 32), np.float32))


def test_one_bad_job_fails_alone_and_is_retried_a_bounded_number_of_times(
        own_bundle, start_server, tmp_path):
    store = tmp_path / "store"
    bodies = distinct_bodies(tmp_path, 3, red=True)
    with checkpoint_aside(own_bundle):  # queue three jobs that stay failed, inputs kept
        server = start_server(own_bundle, store=store)
        ids = [moderate(server, body)["decision_id"] for body in bodies]
        for decision_id in ids:
            assert settled(server, decision_id)["explanation"]["status"] == "failed"
        server.stop()
    with sqlite3.connect(store / "decisions.sqlite") as db:
        db.execute("UPDATE explain_queue SET input = ? WHERE decision_id = ?",
                   (bad_input(), ids[1]))

    server = start_server(own_bundle, store=store)  # one round of three: one fails, alone
    statuses = {i: settled(server, i)["explanation"] for i in ids}
    assert statuses[ids[0]]["status"] == statuses[ids[2]]["status"] == "done"
    assert statuses[ids[1]]["status"] == "failed" and statuses[ids[1]]["error"]
    assert job(store, ids[1]) == ("failed", 1, 1)
    wait_for(lambda: failure_lines(server, ids[1]))
    assert not failure_lines(server, ids[0]) and not failure_lines(server, ids[2])
    assert metric(httpx.get(server.url + "/metrics").text,
                  "shotlab_explanations_failed_total") == 1
    server.stop()

    for attempt in range(2, MAX_ATTEMPTS + 1):  # each start retries it while attempts are left
        server = start_server(own_bundle, store=store)
        wait_for(lambda: job(store, ids[1])[2] == attempt)
        server.stop()
    last = start_server(own_bundle, store=store)  # out of attempts: said, and left alone
    wait_for(lambda: any("1 job(s) stay failed" in line for line in last.log))
    again = moderate(last, bodies[1])  # the same bytes: the stored failure, not a new try
    assert again["cached"] and again["explanation"] == "failed"
    # no retry can use its input: the failure that used the last attempt removed it
    assert job(store, ids[1]) == ("failed", 0, MAX_ATTEMPTS)
    assert not failure_lines(last, ids[1])


def test_a_failed_jobs_input_is_not_kept_past_its_retries(own_bundle, start_server, tmp_path):
    """The input a failed job keeps is the moderated content: a start removes it where no retry
    can use it (out of attempts, as the previous code left such a job) or where it was stored
    more than KEEP_FAILED_INPUT_DAYS ago (a checkpoint missing that long), even while the
    checkpoint is still missing; the job stays failed, and its bytes sent again bring the input
    back while it has attempts left. Before, only `done` removed it: kept for ever."""
    store = tmp_path / "store"
    bodies = distinct_bodies(tmp_path, 3, red=True)
    with checkpoint_aside(own_bundle):
        server = start_server(own_bundle, store=store)
        old, spent, fresh = [moderate(server, body)["decision_id"] for body in bodies]
        for decision_id in (old, spent, fresh):
            assert settled(server, decision_id)["explanation"]["status"] == "failed"
        server.stop()
        with sqlite3.connect(store / "decisions.sqlite") as db:
            db.execute("UPDATE explain_queue SET requested = ? WHERE decision_id = ?",
                       (input_expiry(time.time() - 3600), old))  # kept the limit and an hour
            db.execute("UPDATE explain_queue SET attempts = ? WHERE decision_id = ?",
                       (MAX_ATTEMPTS, spent))
        server = start_server(own_bundle, store=store)  # the checkpoint still missing
        wait_for(lambda: any("the input of 2 failed job(s) removed" in line
                             for line in server.log))
        assert job(store, old) == ("failed", 0, 0)
        assert job(store, spent) == ("failed", 0, MAX_ATTEMPTS)
        assert job(store, fresh) == ("failed", 1, 0)  # within its time: kept for the fix
        server.stop()

    server = start_server(own_bundle, store=store)  # the checkpoint back
    wait_for(lambda: job(store, fresh) == ("done", 0, 0))
    wait_for(lambda: any("2 job(s) stay failed" in line for line in server.log))
    again = moderate(server, bodies[0])  # its bytes again: a new input, explained
    assert again["decision_id"] == old and again["explanation"] == "pending"
    assert settled(server, old)["explanation"]["status"] == "done"
    spent_again = moderate(server, bodies[1])  # out of attempts: the stored failure
    assert spent_again["cached"] and spent_again["explanation"] == "failed"
    assert job(store, spent) == ("failed", 0, MAX_ATTEMPTS)


def test_a_running_worker_removes_inputs_kept_past_their_time(exported, tmp_path,
                                                              monkeypatch):
    """Not only at start-up: a server that runs for weeks removes them every EXPIRE_EVERY_S."""
    from shotlab.export.predict import decision_records
    from shotlab.runtime.bundle import load_bundle
    from shotlab.serve import explainer
    from shotlab.serve.store import DecisionStore

    monkeypatch.setattr(explainer, "EXPIRE_EVERY_S", 0.2)
    bundle = load_bundle(exported.path)
    store = DecisionStore(tmp_path / "decisions.sqlite")
    worker = explainer.ExplanationWorker(bundle, store, tmp_path / "explanations.sqlite")
    worker.start()
    try:
        (record,) = decision_records(bundle, np.array([[.9, .05, .05]], np.float32),
                                     ["a" * 64], runtime="onnx")
        # another model's decision, failed since the worker started: the worker never re-queues
        # it, yet removes its input (its hourly expiry): content is content
        record["model_sha256"] = "f" * 64
        decision_id = record["decision_id"]
        store.save([record], ["ka"], {})  # a job failed since the worker started, kept
        store.transaction(lambda db: db.execute(
            "INSERT INTO explain_queue (decision_id, status, input, requested) VALUES "
            "(?, 'failed', ?, ?)", (decision_id, bad_input(), input_expiry(time.time() - 60))))
        wait_for(lambda: job(tmp_path, decision_id)[1] == 0, timeout=10)
        assert job(tmp_path, decision_id) == ("failed", 0, 0)
    finally:
        worker.stop()
        store.close()


def test_a_failure_in_an_older_store_is_explained_when_the_bytes_come_again(
        own_bundle, start_server, tmp_path):
    """A store written before this fix: no attempts column, a failed job's input thrown away.
    It opens (the column added), the job cannot be retried at start-up (no input), and the
    same bytes sent again bring the input: explained."""
    store = tmp_path / "store"
    (body,) = distinct_bodies(tmp_path, 1, red=True)
    with checkpoint_aside(own_bundle):
        server = start_server(own_bundle, store=store)
        decision_id = moderate(server, body)["decision_id"]
        assert settled(server, decision_id)["explanation"]["status"] == "failed"
        server.stop()
    with sqlite3.connect(store / "decisions.sqlite") as db:  # as the old code left it
        db.execute("UPDATE explain_queue SET input = NULL")
        db.execute("ALTER TABLE explain_queue DROP COLUMN attempts")

    server = start_server(own_bundle, store=store)
    wait_for(lambda: any("1 job(s) stay failed" in line for line in server.log))
    assert job(store, decision_id) == ("failed", 0, 0)
    again = moderate(server, body)
    assert again["decision_id"] == decision_id and again["explanation"] == "pending"
    stored = settled(server, decision_id)
    assert stored["explanation"]["status"] == "done" and stored["explanation"]["maps"]


def test_show_of_an_older_explanation_store_without_the_failures_table(exported, tmp_path):
    """`explain show` reads a store made before the failures table, read-only, as before."""
    from shotlab.explain.store import ExplanationStore

    path = tmp_path / "explanations.sqlite"
    with ExplanationStore(path) as store:
        store.put("a" * 32, "gradcam", np.zeros((4, 4)), target="red")
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE failures")
    shown = CliRunner().invoke(cli, ["explain", "show", "a" * 32, "--store", str(path)])
    assert shown.exit_code == 0 and "gradcam: target red" in shown.output, shown.output


def test_a_failure_the_explanation_store_cannot_take_still_marks_the_job(exported, tmp_path):
    """The decision store is the record: where the explanation store cannot be written (here a
    folder in its place), a job that fails reads `failed` and the round goes on. It stayed
    `running`, taken, until the server restarted."""
    from shotlab.export.predict import decision_records
    from shotlab.runtime.bundle import load_bundle
    from shotlab.serve import explainer
    from shotlab.serve.store import DecisionStore

    bundle = load_bundle(exported.path)
    store = DecisionStore(tmp_path / "decisions.sqlite")
    (tmp_path / "explanations.sqlite").mkdir()
    records = decision_records(bundle, np.array([[.9, .05, .05]] * 2, np.float32),
                               ["a" * 64, "b" * 64], runtime="onnx")
    store.save(records, ["ka", "kb"],  # inputs no model takes (7 channels): both fail
               {r["decision_id"]: np.zeros((7, 32, 32), np.float32) for r in records})
    said = []
    handler = logging.Handler()
    handler.emit = lambda entry: said.append(entry.getMessage())
    explainer.log.addHandler(handler)
    worker = explainer.ExplanationWorker(bundle, store, tmp_path / "explanations.sqlite")
    worker.start()
    try:
        wait_for(lambda: all(job(tmp_path, r["decision_id"])[0] == "failed" for r in records),
                 timeout=60)
    finally:
        worker.stop()
        store.close()
        explainer.log.removeHandler(handler)
    assert any("could not record the failure state" in line for line in said), said
