"""The decision store on MongoDB: what replicas on several machines share (`--decision-store
mongodb`), on the workspace's own server or the one `--database-uri` names.

    store = MongoDecisionStore("mongodb://db.internal:27017/moderation")
    # the interface of serve.store.DecisionStore: save, cached, get, count, ids, review_queue,
    # record_review, claim, release_claims, requeue_failed, expire_failed_inputs, pending,
    # finish_explanation, close

One document per decision in the collection `decisions` of the URI's database (DATABASE when
the URI names none): `_id` the decision id, `cache_key` (unique where set), `sha256`, `record`
(the JSON text `shotlab predict` writes), `needs_review` (the record's, to query the review
queue), `created`, `order` (nanoseconds at storing: the queue's order), a reviewer's verdict in `review` (serve/review.py), and its tier-1 job in
`explanation`
(status pending / running / done / failed, the preprocessed input until explained or its
retries end, error, requested, finished, attempts: a failed job is retried, and its input
removed, under the SQLite store's rules, `serve.store.MAX_ATTEMPTS` and
`KEEP_FAILED_INPUT_DAYS`). A decision and its job are one document, so one insert writes both: a
standalone mongod has no multi-document transactions, and none are needed. Writes wait for the
journal (`j=True`): an acknowledged decision survives a killed mongod as well as a killed replica.
"""

from __future__ import annotations

import json
import time

from shotlab.core.clock import utc_now
from shotlab.core.errors import ShotlabError
from shotlab.serve.store import MAX_ATTEMPTS, input_expiry, pack, shown_status, unpack

DATABASE = "shotlab_serve"
COLLECTION = "decisions"
DUPLICATE_KEY = 11000  # MongoDB's error code for a unique index violation
NEEDS_REVIEW_TEXT = '"needs_review": true'
WAITING = {"needs_review": True, "review": {"$exists": False}}  # the review queue


class MongoDecisionStore:
    def __init__(self, uri: str):
        from pymongo import ASCENDING, MongoClient
        from pymongo.errors import ConfigurationError, PyMongoError
        from pymongo.write_concern import WriteConcern

        try:
            self.client = MongoClient(uri)
            database = self.client.get_default_database(default=DATABASE)
        except (ConfigurationError, ValueError) as exc:  # InvalidURI is a ConfigurationError
            raise ShotlabError(f"the decision store's MongoDB URI cannot be used: "
                               f"{' '.join(str(exc).split())[:200]}; check --database-uri "
                               f"(or SHOTLAB_DATABASE_URI)") from None
        self.decisions = database.get_collection(COLLECTION,
                                                 write_concern=WriteConcern(w=1, j=True))
        try:
            self.decisions.create_index("cache_key", unique=True,
                                        partialFilterExpression={"cache_key": {"$type": "string"}})
            self.decisions.create_index([("explanation.status", ASCENDING),
                                         ("explanation.requested", ASCENDING)])
            self.decisions.create_index([("needs_review", ASCENDING), ("order", ASCENDING)])
            # Decisions stored before `needs_review` was a field of its own: read off the
            # record's JSON text, which json.dumps wrote; the rest get False (once: a later
            # start finds none without the field, through the index).
            self.decisions.update_many(
                {"needs_review": {"$exists": False}, "record": {"$regex": NEEDS_REVIEW_TEXT}},
                {"$set": {"needs_review": True}})
            self.decisions.update_many({"needs_review": {"$exists": False}},
                                       {"$set": {"needs_review": False}})
        except PyMongoError as exc:
            self.client.close()
            raise ShotlabError(f"the decision store on MongoDB ({database.name}) cannot be "
                               f"opened: {' '.join(str(exc).split())[:200]}; check "
                               f"--database-uri and that the server answers") from None

    def close(self) -> None:
        self.client.close()

    def ping(self) -> None:
        """Raises pymongo's ConnectionFailure when the server does not answer (readiness)."""
        self.client.admin.command("ping")

    # decisions ----------------------------------------------------------------------------------
    def save(self, records: list[dict], keys: list[str | None], jobs: dict) -> list[dict]:
        """Store `records` with their explanation `jobs` ({decision_id: input}); returns the
        stored record for each: the earlier one where another replica decided the same key."""
        from pymongo.errors import BulkWriteError

        now, order = utc_now(), time.time_ns()
        documents = [{**self.document(record, key, jobs.get(record["decision_id"]), now),
                      "order": order + i} for i, (record, key) in enumerate(zip(records, keys))]
        try:
            self.decisions.insert_many(documents, ordered=False)
            return list(records)
        except BulkWriteError as exc:
            duplicates = {e["index"] for e in exc.details["writeErrors"]
                          if e["code"] == DUPLICATE_KEY}
            # A write-concern error (the journal wait failed: a mongod shutting down, a primary
            # stepping down) means nothing is known durable: never acknowledge on it.
            if len(duplicates) < len(exc.details["writeErrors"]) or \
                    exc.details.get("writeConcernErrors"):
                raise
        for i in duplicates:  # explain an earlier decision that never was (explanations off)
            if "explanation" in documents[i]:  # or whose explanation failed with attempts left
                self.queue_again(keys[i], documents[i]["explanation"])
        earlier = {d["cache_key"]: json.loads(d["record"]) for d in self.decisions.find(
            {"cache_key": {"$in": [keys[i] for i in duplicates]}}, {"record": 1, "cache_key": 1})}
        return [earlier[keys[i]] if i in duplicates else record
                for i, record in enumerate(records)]

    def queue_again(self, key: str, job: dict) -> None:
        """Queue `job` for the earlier decision under `key`: one never queued, or one whose
        explanation failed with attempts left (its attempts kept)."""
        self.decisions.update_one({"cache_key": key, "explanation": {"$exists": False}},
                                  {"$set": {"explanation": job}})
        self.decisions.update_one(
            {"cache_key": key, "explanation.status": "failed",
             "explanation.attempts": {"$not": {"$gte": MAX_ATTEMPTS}}},
            {"$set": {"explanation.status": "pending", "explanation.input": job["input"],
                      "explanation.requested": job["requested"]}})

    def retryable(self, decision_id: str) -> bool:
        return self.decisions.count_documents(
            {"_id": decision_id, "explanation.status": "failed",
             "explanation.attempts": {"$not": {"$gte": MAX_ATTEMPTS}}}, limit=1) > 0

    @staticmethod
    def document(record: dict, key: str | None, job, now: str) -> dict:
        document = {"_id": record["decision_id"], "sha256": record["sha256"],
                    "model_sha256": record.get("model_sha256"), "record": json.dumps(record),
                    "needs_review": bool(record.get("needs_review")), "created": now}
        if key is not None:
            document["cache_key"] = key
        if job is not None:
            document["explanation"] = {"status": "pending", "input": pack(job),
                                       "requested": now, "error": None, "finished": None}
        return document

    def cached(self, key: str) -> tuple[dict, str] | None:
        found = self.decisions.find_one({"cache_key": key}, {"record": 1, "explanation.status": 1})
        if found is None:
            return None
        return json.loads(found["record"]), shown_status(found.get("explanation", {}).get("status"))

    def get(self, decision_id: str) -> dict | None:
        found = self.decisions.find_one({"_id": decision_id}, {"explanation.input": 0})
        if found is None:
            return None
        job = found.get("explanation") or {}
        return {"record": json.loads(found["record"]),
                "explanation": {"status": shown_status(job.get("status")),
                                "error": job.get("error"), "finished": job.get("finished")},
                "review": found.get("review")}

    def review_queue(self, limit: int) -> tuple[list[dict], int]:
        ids = [d["_id"] for d in self.decisions.find(WAITING, {"_id": 1})
               .sort([("order", 1), ("_id", 1)]).limit(int(limit))]
        waiting = self.decisions.count_documents(WAITING)
        return [found for decision_id in ids if (found := self.get(decision_id))], waiting

    def record_review(self, decision_id: str, review: dict) -> dict | None:
        stored = self.decisions.update_one({"_id": decision_id, "review": {"$exists": False}},
                                           {"$set": {"review": review}})
        if stored.matched_count:
            return None
        found = self.decisions.find_one({"_id": decision_id}, {"review": 1}) or {}
        return found.get("review")

    def count(self) -> int:
        return self.decisions.count_documents({})

    def ids(self) -> set[str]:
        return {d["_id"] for d in self.decisions.find({}, {"_id": 1})}

    # the tier-1 explanation queue ---------------------------------------------------------------
    def claim(self, limit: int, models=()) -> list:
        """Take up to `limit` queued jobs, oldest first: each one atomically (pending ->
        running), so a job is explained by one replica only; with `models`, only jobs of
        decisions one of them made (as the SQLite store's; documents stored before the field
        existed are taken, and the worker checks their record)."""
        from pymongo import ASCENDING

        query = {"explanation.status": "pending"}
        if models:
            query["$or"] = [{"model_sha256": {"$in": sorted(models)}},
                            {"model_sha256": {"$exists": False}}]
        candidates = self.decisions.find(query, {"_id": 1}).sort(
            [("explanation.requested", ASCENDING), ("_id", ASCENDING)]).limit(int(limit))
        jobs = []
        for candidate in list(candidates):
            taken = self.decisions.find_one_and_update(
                {"_id": candidate["_id"], "explanation.status": "pending"},
                {"$set": {"explanation.status": "running"}},
                {"record": 1, "explanation.input": 1})
            if taken is not None:
                jobs.append((json.loads(taken["record"]), unpack(taken["explanation"]["input"])))
        return jobs

    def release_claims(self) -> None:
        self.decisions.update_many({"explanation.status": "running"},
                                   {"$set": {"explanation.status": "pending"}})

    def requeue_failed(self, models=()) -> tuple[int, int]:
        """As the SQLite store's: failed jobs with their input and attempts left go back in
        the queue; (re-queued, left failed)."""
        mine = ({"$or": [{"model_sha256": {"$in": sorted(models)}},
                         {"model_sha256": {"$exists": False}}]} if models else {})
        requeued = self.decisions.update_many(
            {**mine, "explanation.status": "failed", "explanation.input": {"$exists": True},
             "explanation.attempts": {"$not": {"$gte": MAX_ATTEMPTS}}},
            {"$set": {"explanation.status": "pending"}}).modified_count
        left = self.decisions.count_documents({**mine, "explanation.status": "failed"})
        return requeued, left

    def pending(self) -> int:
        return self.decisions.count_documents(
            {"explanation.status": {"$in": ["pending", "running"]}})

    def finish_explanation(self, decision_ids, *, error: str | None = None,
                           attempt: bool = True, final: bool = False) -> None:
        """As the SQLite store's: done drops the input, failed keeps it while a retry can
        come (not `final`, attempts left)."""
        query = {"_id": {"$in": list(decision_ids)}}
        if not error:
            self.decisions.update_many(query, {
                "$set": {"explanation.status": "done", "explanation.error": None,
                         "explanation.finished": utc_now()},
                "$unset": {"explanation.input": ""}})
            return
        self.decisions.update_many(query, {
            "$set": {"explanation.status": "failed", "explanation.error": error,
                     "explanation.finished": utc_now()},
            "$inc": {"explanation.attempts": int(attempt)}})
        spent = {} if final else {"explanation.attempts": {"$gte": MAX_ATTEMPTS}}
        self.decisions.update_many({**query, "explanation.status": "failed", **spent},
                                   {"$unset": {"explanation.input": ""}})

    def expire_failed_inputs(self, before: str | None = None) -> int:
        """As the SQLite store's: failed jobs out of attempts, or whose input was stored
        before `before` (KEEP_FAILED_INPUT_DAYS ago), lose their input; how many."""
        return self.decisions.update_many(
            {"explanation.status": "failed", "explanation.input": {"$exists": True},
             "$or": [{"explanation.attempts": {"$gte": MAX_ATTEMPTS}},
                     {"explanation.requested": {"$lt": before or input_expiry()}}]},
            {"$unset": {"explanation.input": ""}}).modified_count
