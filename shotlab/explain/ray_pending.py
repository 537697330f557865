"""`shotlab explain pending STORE --ray`: the queued appeals explained over a Ray cluster.

    summary = process_pending_ray(store_path, address=None)   # process_pending's summary

The driver reads the queue (pending.appeal_batches: by bundle, `batch` appeals at a time) and
hands each batch, with the stored decisions it refers to (and a comment's stored explanations,
which hold the text a text appeal explains), to a pool of Ray actors (one CPU and
one torch thread each; each keeps the models it opened). An actor runs pending.process_batch,
the single-process code, against a RecordingStore: the maps, scores and outcomes it would have
written come back to the driver, which writes them into STORE, one transaction per batch, as
the batches finish. Only the driver touches STORE (an SQLite file); the actors need the images
and bundles at the paths the appeals name (a shared filesystem on a cluster).

The pool is core/ray_pool.RetryingPool. A batch whose worker dies (a node lost, a kill, a crash
in a decoder) goes back in the queue, up to TRIES runs; then each of its appeals gets one run
alone, so an appeal that kills its worker every time is marked failed (with the reason and the
number of runs) and its batch-mates are still explained. A batch's writes reach STORE only
when it returns, so a batch cut short leaves nothing to be written twice.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

from shotlab.core.errors import ShotlabError
from shotlab.explain.pending import appeal_batches, fail, new_summary, process_batch, sole_run

TORCH_THREADS = 1  # one per actor: the actors, not threads inside one, use the cores
TRIES = 3  # runs of a batch whose worker died, before its appeals are run one by one


@dataclass
class Job:
    bundle_path: str
    appeals: list
    decisions: dict  # decision_id -> the stored decision, for the actor's RecordingStore
    stored: dict = field(default_factory=dict)  # decision_id -> its comment explanations
    deaths: int = 0  # runs of these appeals that ended with their worker's death
    last: bool = False  # an appeal split from its batch: one run left

    def alone(self) -> list["Job"]:
        return [Job(self.bundle_path, [a], pick(self.decisions, a), pick(self.stored, a),
                    self.deaths, last=True) for a in self.appeals]


def pick(by_decision: dict, appeal) -> dict:
    return {appeal.decision_id: by_decision.get(appeal.decision_id)}


def jobs_for(store, batch: int) -> deque:
    """The queued appeals as jobs, `batch` at a time, each with what its actor reads of STORE:
    the decisions, and the comment explanations (which hold a text appeal's comment)."""
    from shotlab.explain.text_store import is_text

    def job(bundle_path, appeals):
        ids = list(dict.fromkeys(a.decision_id for a in appeals))
        stored = {i: [e for e in store.explanations(i) if is_text(e)] if store.has_text(i)
                  else [] for i in ids}
        return Job(bundle_path, appeals, {i: store.decision(i) for i in ids}, stored)

    return deque(job(bundle_path, appeals) for bundle_path, batches in appeal_batches(store, batch)
                 for appeals in batches)


def retry(job: Job, why: str, jobs: deque, lost) -> None:
    """A job whose worker died: back in the queue while it has runs left; then its appeals
    alone; an appeal that has had its last run is given up (`lost`)."""
    job.deaths += 1
    if job.deaths < TRIES and not job.last:
        jobs.appendleft(job)
    elif len(job.appeals) > 1:
        jobs.extend(job.alone())
    else:
        lost(job, f"the Ray worker explaining it stopped in each of its {job.deaths} runs "
                  f"({why}); queue it again with `explain appeal` once the cause is found")


class RecordingStore:
    """What process_batch needs of an ExplanationStore: the decisions and comment explanations
    it reads (given), and the writes it makes (recorded, to be replayed into the real store by
    `replay`)."""

    def __init__(self, decisions: dict, stored: dict | None = None):
        self.decisions, self.stored = decisions, stored or {}
        self.writes: list[tuple[str, tuple, dict]] = []

    def decision(self, decision_id: str) -> dict | None:
        return self.decisions.get(decision_id)

    def explanations(self, decision_id: str, method: str | None = None) -> list:
        """The given explanations of `decision_id` (text_store.read_words reads a comment's)."""
        return [e for e in self.stored.get(decision_id) or [] if not method or e.method == method]

    def put(self, *args, **kwargs) -> None:
        self.writes.append(("put", args, kwargs))

    def finish(self, *args, **kwargs) -> None:
        self.writes.append(("finish", args, kwargs))


def replay(store, writes) -> None:
    """The recorded writes into `store`, all or none."""
    with store.transaction():
        for name, args, kwargs in writes:
            getattr(store, name)(*args, **kwargs)


class AppealWorker:
    """A Ray actor: explains one batch of appeals at a time; opened sources are kept."""

    def __init__(self):
        import torch

        torch.set_num_threads(TORCH_THREADS)
        self.sources = {}

    def ready(self) -> int:
        """The actor's process id, once it has started."""
        return os.getpid()

    def explain(self, bundle_path, appeals, decisions, methods, score, options, stored=None):
        """(recorded writes, summary) for one batch."""
        from shotlab.explain.sources import open_source

        recorder, summary = RecordingStore(decisions, stored), new_summary()
        try:
            if bundle_path not in self.sources:
                self.sources[bundle_path] = open_source(bundle_path)
        except ShotlabError as exc:
            for appeal in appeals:
                fail(recorder, appeal, str(exc), summary)
            return recorder.writes, summary
        process_batch(recorder, self.sources[bundle_path], appeals, methods, score,
                      options or {}, summary)
        return recorder.writes, summary


class Results:
    """The driver's side of a run: each batch's recorded writes replayed into STORE as it
    returns, appeals given up marked failed, and the summary of both."""

    def __init__(self, store, progress=None):
        self.store, self.progress, self.total = store, progress, new_summary()

    def done(self, result) -> None:
        writes, summary = result
        replay(self.store, writes)
        add(self.total, summary)
        if self.progress:
            self.progress(summary["processed"] + summary["failed"])

    def lost(self, job: Job, reason: str) -> None:
        for appeal in job.appeals:
            fail(self.store, appeal, reason, self.total)
        if self.progress:
            self.progress(len(job.appeals))


def process_pending_ray(store_path, *, address: str | None = None, methods=None,
                        batch: int = 8, score: bool = True, options: dict | None = None,
                        progress=None) -> dict:
    """process_pending over a Ray cluster: the same summary, the same rows in the store."""
    from shotlab.core.cluster import ray_session
    from shotlab.core.ray_pool import NoWorkers, RetryingPool
    from shotlab.explain.store import ExplanationStore

    with ExplanationStore(store_path, create=False) as store, sole_run(store_path):
        results = Results(store, progress)
        jobs = jobs_for(store, batch)
        if not jobs:
            return results.total
        with ray_session(address):
            import ray

            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            pool = RetryingPool(ray, AppealWorker, min(cpus, len(jobs)),
                                lambda actor, job: actor.explain.remote(
                                    job.bundle_path, job.appeals, job.decisions, methods, score,
                                    options, job.stored))
            try:
                pool.run(jobs, results.done, lambda job, why: retry(job, why, jobs, results.lost))
            except NoWorkers as exc:
                raise ShotlabError(f"{exc}; {results.total['processed']} appeals were explained "
                                   f"and stored, the rest stay queued: run `explain pending` "
                                   f"again") from None
    return results.total


def add(total: dict, summary: dict) -> None:
    for key in ("processed", "failed", "stored"):
        total[key] += summary[key]
    total["errors"] += summary["errors"]
