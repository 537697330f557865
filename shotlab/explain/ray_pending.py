"""`shotlab explain pending STORE --ray`: the queued appeals explained over a Ray cluster.

    summary = process_pending_ray(store_path, address=None)   # process_pending's summary

The driver reads the queue (pending.appeal_batches: by bundle, `batch` appeals at a time) and
hands each batch, with the stored decisions it refers to, to a pool of Ray actors (one CPU and
one torch thread each; each keeps the models it opened). An actor runs pending.process_batch,
the single-process code, against a RecordingStore: the maps, scores and outcomes it would have
written come back to the driver, which writes them into STORE, one transaction per batch, as
the batches finish. Only the driver touches STORE (an SQLite file); the actors need the images
and bundles at the paths the appeals name (a shared filesystem on a cluster).

An actor that dies (a node lost, a kill) is restarted by Ray and its batch run again, up to
WORKER_RESTARTS times: a batch's writes reach STORE only when the batch returns, so a batch cut
short leaves nothing behind to be written twice.
"""

from __future__ import annotations

from shotlab.core.errors import ShotlabError
from shotlab.explain.pending import appeal_batches, new_summary, process_batch, sole_run

TORCH_THREADS = 1  # one per actor: the actors, not threads inside one, use the cores
WORKER_RESTARTS = 2  # Ray's max_restarts and max_task_retries for each actor


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
        jobs = [(bundle_path, appeals, {a.decision_id: store.decision(a.decision_id)
                                        for a in appeals})
                for bundle_path, batches in appeal_batches(store, batch) for appeals in batches]
        if not jobs:
            return total
        with ray_session(address):
            import ray
            from ray.util import ActorPool

            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            worker = ray.remote(num_cpus=1, max_restarts=WORKER_RESTARTS,
                                max_task_retries=WORKER_RESTARTS)(AppealWorker)
            pool = ActorPool([worker.remote() for _ in range(min(cpus, len(jobs)))])
            results = pool.map_unordered(
                lambda actor, job: actor.explain.remote(*job, methods, score, options), jobs)
            try:
                for writes, summary in results:
                    replay(store, writes)
                    add(total, summary)
                    if progress:
                        progress(summary["processed"] + summary["failed"])
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.NodeDiedError) as exc:  # a worker died (a node lost, a kill)
                raise ShotlabError(
                    f"a Ray worker stopped ({type(exc).__name__}) and its batch failed again "
                    f"after {WORKER_RESTARTS} restarts; {total['processed']} appeals were "
                    f"explained and stored, the rest stay queued: run `explain pending` "
                    f"again") from None
    return total


def add(total: dict, summary: dict) -> None:
    for key in ("processed", "failed", "stored"):
        total[key] += summary[key]
    total["errors"] += summary["errors"]
