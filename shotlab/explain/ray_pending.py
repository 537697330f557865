"""`shotlab explain pending STORE --ray`: the queued appeals explained over a Ray cluster.

    summary = process_pending_ray(store_path, address=None)   # process_pending's summary

The driver reads the queue (pending.appeal_batches: by bundle, `batch` appeals at a time) and
hands each batch, with the stored decisions it refers to, to a pool of Ray actors (one CPU and
one torch thread each; each keeps the models it opened). An actor runs pending.process_batch,
the single-process code, against a RecordingStore: the maps, scores and outcomes it would have
written come back to the driver, which writes them into STORE, one transaction per batch, as
the batches finish. Only the driver touches STORE (an SQLite file); the actors need the images
and bundles at the paths the appeals name (a shared filesystem on a cluster).

A batch whose actor dies (a node lost, a kill, a crash in a decoder) goes back in the queue,
for any surviving or new actor, up to TRIES runs in all; then each of its appeals gets one run
alone, so one appeal that kills its worker every time is marked failed (with the reason) and
its batch-mates are still explained. A batch's writes reach STORE only when the batch returns,
so a batch cut short leaves nothing to be written twice. The retries are the driver's, not
Ray's actor restarts: a restarted actor waits for a free CPU, and when a node is lost none
frees up while the other actors hold theirs, so the run would wait for ever.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

from shotlab.core.errors import ShotlabError
from shotlab.explain.pending import appeal_batches, fail, new_summary, process_batch, sole_run

TORCH_THREADS = 1  # one per actor: the actors, not threads inside one, use the cores
TRIES = 3  # runs of a batch whose actor died, before its appeals are tried one by one
START_WAIT_S = 120  # with no actor left, how long a new one may take to be placed and start


@dataclass
class Job:
    bundle_path: str
    appeals: list
    decisions: dict  # decision_id -> the stored decision, for the actor's RecordingStore
    tries: int = 0

    def alone(self) -> list["Job"]:
        """Each appeal as a job of its own, with one run left."""
        return [Job(self.bundle_path, [a], {a.decision_id: self.decisions[a.decision_id]},
                    TRIES - 1) for a in self.appeals]


class RecordingStore:
    """What process_batch needs of an ExplanationStore: the decisions it reads (given), and the
    writes it makes (recorded, to be replayed into the real store by `replay`)."""

    def __init__(self, decisions: dict):
        self.decisions = decisions
        self.writes: list[tuple[str, tuple, dict]] = []

    def decision(self, decision_id: str) -> dict | None:
        return self.decisions.get(decision_id)

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

    def explain(self, bundle_path, appeals, decisions, methods, score, options):
        """(recorded writes, summary) for one batch."""
        from shotlab.explain.pending import fail
        from shotlab.explain.sources import open_source

        recorder, summary = RecordingStore(decisions), new_summary()
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


def process_pending_ray(store_path, *, address: str | None = None, methods=None,
                        batch: int = 8, score: bool = True, options: dict | None = None,
                        progress=None) -> dict:
    """process_pending over a Ray cluster: the same summary, the same rows in the store."""
    from shotlab.core.cluster import ray_session
    from shotlab.explain.store import ExplanationStore

    total = new_summary()
    with ExplanationStore(store_path, create=False) as store, sole_run(store_path):
        jobs = deque(Job(bundle_path, appeals, {a.decision_id: store.decision(a.decision_id)
                                                for a in appeals})
                     for bundle_path, batches in appeal_batches(store, batch)
                     for appeals in batches)
        if not jobs:
            return total
        with ray_session(address):
            import ray

            def done(result) -> None:
                writes, summary = result
                replay(store, writes)
                add(total, summary)
                if progress:
                    progress(summary["processed"] + summary["failed"])

            def lost(job: Job, reason: str) -> None:
                for appeal in job.appeals:
                    fail(store, appeal, reason, total)
                if progress:
                    progress(len(job.appeals))

            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            pool = ActorPool(ray, min(cpus, len(jobs)),
                             lambda actor, job: actor.explain.remote(
                                 job.bundle_path, job.appeals, job.decisions, methods, score,
                                 options))
            pool.run(jobs, done, lost, total)
    return total


class ActorPool:
    """AppealWorker actors, one job each at a time. A job whose actor dies goes back in the
    queue (`Job.tries`) and a new actor is started in its place; the pool goes on with the
    actors it has while the new one waits for a CPU."""

    def __init__(self, ray, size: int, call):
        self.ray, self.call = ray, call
        self.worker = ray.remote(num_cpus=1)(AppealWorker)
        self.starting, self.idle, self.running = {}, [], {}
        for _ in range(size):
            self.start()

    def start(self) -> None:
        actor = self.worker.remote()
        self.starting[actor.ready.remote()] = actor

    def run(self, jobs: deque, done, lost, total: dict) -> None:
        while jobs or self.running:
            while self.idle and jobs:
                actor, job = self.idle.pop(), jobs.popleft()
                self.running[self.call(actor, job)] = (actor, job)
            ref = self.next_ready(total)
            if ref in self.starting:
                self.started(ref, total)
                continue
            actor, job = self.running.pop(ref)
            try:
                result = self.ray.get(ref)
            except died_errors() as exc:
                self.start()
                retry(job, type(exc).__name__, jobs, lost)
                continue
            self.idle.append(actor)
            done(result)

    def next_ready(self, total: dict):
        """The next task or actor start to finish; ShotlabError when no actor is left and none
        starts within START_WAIT_S (a cluster that lost every CPU it had)."""
        waiting = [*self.running, *self.starting]
        timeout = None if self.running or self.idle else START_WAIT_S
        ready, _ = self.ray.wait(waiting, num_returns=1, timeout=timeout)
        if not ready:
            raise ShotlabError(
                f"no Ray worker is left and none could start within {START_WAIT_S} s (has the "
                f"cluster lost its CPUs?); {total['processed']} appeals were explained and "
                f"stored, the rest stay queued: run `explain pending` again")
        return ready[0]

    def started(self, ref, total: dict) -> None:
        actor = self.starting.pop(ref)
        try:
            self.ray.get(ref)
        except died_errors() as exc:
            if not (self.running or self.idle or self.starting):
                raise ShotlabError(
                    f"no Ray worker could start ({type(exc).__name__}); {total['processed']} "
                    f"appeals were explained and stored, the rest stay queued") from None
            return
        self.idle.append(actor)


def died_errors() -> tuple:
    """Ray's exceptions for a task whose worker process or node went away (not the task's own
    error, which is a bug and is raised as it is)."""
    import ray

    return (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError)


def retry(job: Job, why: str, jobs: deque, lost) -> None:
    """Back in the queue while the job has runs left; then its appeals alone; an appeal that
    has had its runs is marked failed."""
    job.tries += 1
    if job.tries < TRIES:
        jobs.appendleft(job)
    elif len(job.appeals) > 1:
        jobs.extend(job.alone())
    else:
        lost(job, f"the Ray worker explaining it stopped on each of {TRIES} tries ({why}); "
                  f"queue it again with `explain appeal` once the cause is found")


def add(total: dict, summary: dict) -> None:
    for key in ("processed", "failed", "stored"):
        total[key] += summary[key]
    total["errors"] += summary["errors"]
