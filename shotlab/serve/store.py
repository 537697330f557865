"""The service's decision store: SQLite in WAL mode, written before a decision is acknowledged.

    store = DecisionStore(folder / "decisions.sqlite")
    saved = store.save(records, keys=[...], jobs={decision_id: input array})  # one transaction
    store.cached(key)                   # the decision already made for these bytes, or None
    store.get(decision_id)              # {"record": {...}, "explanation": {"status": ...}}
    store.claim(limit) / store.finish_explanation(decision_ids, error=None)
    store.release_claims()              # jobs a stopped worker had taken go back to the queue
    store.requeue_failed(models)        # failed jobs with attempts left go back (start-up)
    store.expire_failed_inputs()        # failed jobs' inputs past their retries are removed

The same interface on MongoDB (`serve/mongo_store.py`) is what replicas on several machines
share; this one serves one process, or replicas on one machine (Ray Serve): SQLite in WAL lets
several processes read while one writes, and a writer waits (BUSY_TIMEOUT_S) for another.

Tables:
    decisions      decision_id, cache_key (unique: input sha256 + bundle digest + runtime; NULL
                   when the cache is off), sha256, the record (JSON, as `shotlab predict` writes
                   it), created
    explain_queue  one row per flagged or review decision waiting for its tier-1 explanation:
                   status (pending / running: taken by a worker, shown as pending / done /
                   failed), the preprocessed input (float32 pixels or int64 token ids, a
                   post's parts as .npz; zlib; removed once explained, kept when it failed
                   while it can be retried, see below), error, requested (when the input
                   was stored), finished, attempts (failures the job's own; a file made
                   before the column existed gets it, 0, when opened)

A failed job is retried while it has had fewer than MAX_ATTEMPTS failures of its own: when a
server of its bundle starts (`requeue_failed`) and when the same bytes are sent again (`save`).
A failure whose cause is the server's (the bundle's checkpoint missing) is not counted
(`finish_explanation(..., attempt=False)`): fixing it and restarting retries the job. The input
is the moderated content itself, so a failed job keeps it only while a retry can use it: it is
removed by the failure that uses the last attempt or that no retry can follow (another
bundle's job), and at most KEEP_FAILED_INPUT_DAYS after it was stored (`expire_failed_inputs`,
run by the worker at start-up and hourly). Its bytes sent again bring a new input while the job
has attempts left.

A batch of decisions and their explanation jobs is one transaction, committed (and, with
`synchronous=FULL`, on disk) before any of them is answered: a `kill -9` of the server loses no
acknowledged decision, and a queued explanation survives a restart. One connection is shared
by the event loop, the batcher thread and the explanation worker, behind a lock (SQLite
serialises writers anyway; the lock keeps the connection's transaction state whole).
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
import zlib
from pathlib import Path

import numpy as np

from shotlab.core.clock import utc_now
from shotlab.core.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY, cache_key TEXT UNIQUE, sha256 TEXT, record TEXT NOT NULL,
    created TEXT);
CREATE TABLE IF NOT EXISTS explain_queue (
    decision_id TEXT PRIMARY KEY, status TEXT NOT NULL DEFAULT 'pending', input BLOB,
    error TEXT, requested TEXT, finished TEXT, attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS explain_queue_by_status ON explain_queue (status);
CREATE TABLE IF NOT EXISTS reviews (decision_id TEXT PRIMARY KEY, review TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_by_needs_review
    ON decisions (json_extract(record, '$.needs_review'));
"""
# The review queue: decisions sent to a human that have no verdict yet (serve/review.py)
WAITING = ("FROM decisions d LEFT JOIN reviews r USING (decision_id) "
           "WHERE json_extract(d.record, '$.needs_review') = 1 AND r.decision_id IS NULL")
# A job that failed this many times for a reason of its own stays failed (shown with its error;
# `shotlab explain appeal` explains it by hand): 3 covers a passing cause (memory, a worker
# killed mid-write) without a job that always fails running at every start-up for ever.
MAX_ATTEMPTS = 3
# A failed job's input (the moderated pixels or tokens) is kept for a retry at most this long
# after it was stored, then removed (`expire_failed_inputs`): long enough for an operator to see
# the start-up WARNING and restore a missing checkpoint over a weekend, not for ever. Sent again,
# its bytes bring a new input while it has attempts left.
KEEP_FAILED_INPUT_DAYS = 3
DECISIONS_FILE = "decisions.sqlite"
# A writer waits this long for another process's transaction (a replica beside it) before the
# request fails; a batch commit takes milliseconds, an fsync on a slow disk tens of them.
BUSY_TIMEOUT_S = 30
EXPLANATIONS_FILE = "explanations.sqlite"  # shotlab.explain.store.ExplanationStore, beside it


def shown_status(status: str | None) -> str:
    """A job's status as clients see it: `running` (taken by a worker) is still `pending`."""
    return "pending" if status == "running" else status or "none"


def input_expiry(now: float | None = None) -> str:
    """The `requested` time before which a failed job's input is no longer kept (utc_now's
    spelling, so the stores compare it as text)."""
    return utc_now((time.time() if now is None else now) - KEEP_FAILED_INPUT_DAYS * 86400)


def pack(array: np.ndarray | dict) -> bytes:
    """An input as bytes: float pixels as float32, token ids as int64; a post's {part: array}
    as an .npz of its parts."""
    buffer = io.BytesIO()
    if isinstance(array, dict):
        np.savez(buffer, **{name: kept_dtype(part) for name, part in array.items()})
    else:
        np.save(buffer, kept_dtype(array), allow_pickle=False)
    return zlib.compress(buffer.getvalue(), 1)  # level 1: the input is kept briefly, not archived


def kept_dtype(array) -> np.ndarray:
    array = np.asarray(array)
    return array if np.issubdtype(array.dtype, np.integer) else array.astype(np.float32)


def unpack(blob: bytes) -> np.ndarray | dict:
    loaded = np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    return loaded


class DecisionStore:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock = threading.Lock()
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                      timeout=BUSY_TIMEOUT_S)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the answer leaves; NORMAL would survive a killed
            # process but not a power cut. One fsync per batch, not per request.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self.transaction(add_attempts)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable decision store ({exc}); give another "
                             f"--store folder or move this file aside") from None

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def transaction(self, work):
        """Run `work(cursor)` in one IMMEDIATE transaction under the lock; its result."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self.db)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return result

    def read(self, query: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(query, args).fetchall()

    # decisions ----------------------------------------------------------------------------------
    def save(self, records: list[dict], keys: list[str | None], jobs: dict) -> list[dict]:
        """Store `records` (with their cache keys) and the explanation `jobs` ({decision_id:
        input array}) together; returns the stored record for each: the earlier one where
        another request already decided the same key (its job then queued for the earlier
        decision, where it has none: one decided while explanations were off)."""
        packed = {decision_id: pack(array) for decision_id, array in jobs.items()}

        def work(db):
            saved = []
            for record, key in zip(records, keys):
                earlier = key and db.execute("SELECT record FROM decisions WHERE cache_key = ?",
                                             (key,)).fetchone()
                if earlier:
                    saved.append(json.loads(earlier[0]))
                    if record["decision_id"] in packed:  # explain it, if it never was queued
                        queue_again(db, saved[-1]["decision_id"], packed[record["decision_id"]])
                    continue
                db.execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?)",
                           (record["decision_id"], key, record["sha256"], json.dumps(record),
                            utc_now()))
                if record["decision_id"] in packed:
                    db.execute("INSERT INTO explain_queue (decision_id, input, requested) "
                               "VALUES (?, ?, ?)",
                               (record["decision_id"], packed[record["decision_id"]], utc_now()))
                saved.append(record)
            return saved

        return self.transaction(work)

    def retryable(self, decision_id: str) -> bool:
        """Whether the decision's explanation failed with attempts left (sent again, it is
        queued again)."""
        return bool(self.read("SELECT 1 FROM explain_queue WHERE decision_id = ? AND status = "
                              "'failed' AND attempts < ?", (decision_id, MAX_ATTEMPTS)))

    def cached(self, key: str) -> tuple[dict, str] | None:
        """(record, explanation status) of the decision stored under `key`, or None."""
        rows = self.read("SELECT d.record, q.status FROM decisions d LEFT JOIN explain_queue q "
                         "USING (decision_id) WHERE d.cache_key = ?", (key,))
        return (json.loads(rows[0][0]), shown_status(rows[0][1])) if rows else None

    def get(self, decision_id: str) -> dict | None:
        rows = self.read("SELECT d.record, q.status, q.error, q.finished, r.review "
                         "FROM decisions d LEFT JOIN explain_queue q USING (decision_id) "
                         "LEFT JOIN reviews r USING (decision_id) "
                         "WHERE d.decision_id = ?", (decision_id,))
        if not rows:
            return None
        record, status, error, finished, review = rows[0]
        return {"record": json.loads(record),
                "explanation": {"status": shown_status(status), "error": error,
                                "finished": finished},
                "review": json.loads(review) if review else None}

    # human review -------------------------------------------------------------------------------
    def review_queue(self, limit: int) -> tuple[list[dict], int]:
        """Up to `limit` decisions waiting for a verdict (as `get` gives them), oldest first,
        and how many wait in all."""
        ids = self.read(f"SELECT d.decision_id {WAITING} ORDER BY d.rowid LIMIT ?", (int(limit),))
        waiting = int(self.read(f"SELECT COUNT(*) {WAITING}")[0][0])
        return [found for (decision_id,) in ids if (found := self.get(decision_id))], waiting

    def record_review(self, decision_id: str, review: dict) -> dict | None:
        """Store a verdict unless the decision has one: None when stored, else the earlier."""
        def work(db):
            earlier = db.execute("SELECT review FROM reviews WHERE decision_id = ?",
                                 (decision_id,)).fetchone()
            if earlier:
                return json.loads(earlier[0])
            db.execute("INSERT INTO reviews VALUES (?, ?)", (decision_id, json.dumps(review)))
            return None

        return self.transaction(work)

    def count(self) -> int:
        return int(self.read("SELECT COUNT(*) FROM decisions")[0][0])

    def ids(self) -> set[str]:
        return {row[0] for row in self.read("SELECT decision_id FROM decisions")}

    # the tier-1 explanation queue ---------------------------------------------------------------
    def claim(self, limit: int, models=()) -> list[tuple[dict, np.ndarray]]:
        """Take up to `limit` queued jobs, oldest first, for this worker: (record, input); with
        `models` (sha256s), only jobs of decisions one of them made: another bundle's wait for
        its own server (two bundles on one store, a restart with another bundle). A job is
        taken by one worker only (status pending -> running in one transaction), so replicas
        sharing the store do not explain the same decision twice."""
        models = sorted(models)
        mine = (f" AND json_extract(d.record, '$.model_sha256') IN "
                f"({', '.join('?' * len(models))})" if models else "")

        def work(db):
            rows = db.execute("SELECT d.record, q.input FROM explain_queue q JOIN decisions d "
                              f"USING (decision_id) WHERE q.status = 'pending'{mine} "
                              "ORDER BY q.rowid LIMIT ?", (*models, int(limit))).fetchall()
            jobs = [(json.loads(record), blob) for record, blob in rows]
            db.executemany("UPDATE explain_queue SET status = 'running' WHERE decision_id = ?",
                           [(record["decision_id"],) for record, _ in jobs])
            return jobs

        return [(record, unpack(blob)) for record, blob in self.transaction(work)]

    def release_claims(self) -> None:
        """Put jobs taken by a worker that stopped (a crash, a kill) back in the queue. Called
        when a worker starts: with replicas, a job another live worker holds may then be
        explained twice, which stores a second map and loses nothing."""
        self.transaction(lambda db: db.execute(
            "UPDATE explain_queue SET status = 'pending' WHERE status = 'running'"))

    def requeue_failed(self, models=()) -> tuple[int, int]:
        """Put failed jobs of decisions `models` made back in the queue where they have their
        input and attempts left (a server starting); (re-queued, left failed)."""
        models = sorted(models)
        mine = (f" AND decision_id IN (SELECT decision_id FROM decisions WHERE "
                f"json_extract(record, '$.model_sha256') IN ({', '.join('?' * len(models))}))"
                if models else "")

        def work(db):
            requeued = db.execute("UPDATE explain_queue SET status = 'pending' WHERE status = "
                                  "'failed' AND input IS NOT NULL AND attempts < ?" + mine,
                                  (MAX_ATTEMPTS, *models)).rowcount
            left = db.execute("SELECT COUNT(*) FROM explain_queue WHERE status = 'failed'"
                              + mine, models).fetchone()[0]
            return requeued, int(left)

        return self.transaction(work)

    def pending(self) -> int:
        """Jobs not explained yet: queued, or taken by a worker."""
        return int(self.read("SELECT COUNT(*) FROM explain_queue "
                             "WHERE status IN ('pending', 'running')")[0][0])

    def finish_explanation(self, decision_ids, *, error: str | None = None,
                           attempt: bool = True, final: bool = False) -> None:
        """Mark jobs done (their input removed) or failed with the one-line `error`, their
        input kept for a retry while one can come; `attempt`: whether the failure counts
        against the job's MAX_ATTEMPTS (False where the cause is the server's, not the job's);
        `final`: no retry can come here (another bundle's job). The input of a job with no
        retry left is removed with the failure: it is the moderated content, kept only to
        explain it."""
        now = utc_now()

        def work(db):
            if not error:
                db.executemany("UPDATE explain_queue SET status = 'done', error = NULL, "
                               "finished = ?, input = NULL WHERE decision_id = ?",
                               [(now, decision_id) for decision_id in decision_ids])
                return
            db.executemany("UPDATE explain_queue SET status = 'failed', error = ?, finished = ?, "
                           "input = CASE WHEN ? OR attempts + ? >= ? THEN NULL ELSE input END, "
                           "attempts = attempts + ? WHERE decision_id = ?",
                           [(error, now, int(final), int(attempt), MAX_ATTEMPTS, int(attempt),
                             decision_id) for decision_id in decision_ids])

        self.transaction(work)

    def expire_failed_inputs(self, before: str | None = None) -> int:
        """Remove the input of failed jobs that can no longer be retried from it: out of
        attempts (a store written before a failure removed it), or stored before `before`
        (default: KEEP_FAILED_INPUT_DAYS ago; a checkpoint missing for that long, a server
        not restarted since a failure). Their status and error stay; how many lost it."""
        before = before or input_expiry()
        return self.transaction(lambda db: db.execute(
            "UPDATE explain_queue SET input = NULL WHERE status = 'failed' AND input IS NOT NULL "
            "AND (attempts >= ? OR requested < ?)", (MAX_ATTEMPTS, before)).rowcount)


def add_attempts(db) -> None:
    """The `attempts` column, on a store made before it existed (its jobs: 0 attempts)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(explain_queue)")}
    if "attempts" not in columns:
        db.execute("ALTER TABLE explain_queue ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")


def queue_again(db, decision_id: str, blob: bytes) -> None:
    """Queue the explanation of an earlier decision sent again: one never queued (decided
    while explanations were off), or one that failed with attempts left (with this input: an
    older store threw a failed job's input away)."""
    db.execute("INSERT OR IGNORE INTO explain_queue (decision_id, input, requested) "
               "VALUES (?, ?, ?)", (decision_id, blob, utc_now()))
    db.execute("UPDATE explain_queue SET status = 'pending', input = ?, requested = ? "
               "WHERE decision_id = ? AND status = 'failed' AND attempts < ?",
               (blob, utc_now(), decision_id, MAX_ATTEMPTS))
