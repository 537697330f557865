"""Tier-1 explanations off the request path: a background thread drains the store's queue.

    worker = ExplanationWorker(bundle, store, explanations_path)
    worker.start(); worker.wake(); worker.stop()

Each round takes up to `BATCH` queued jobs (decision record + the preprocessed input kept in the
store) and explains them through their request kind's `explain` (serve/requests.py: Grad-CAM of
an image or a clip's top frame, `explain.tier1.record_flagged`; Integrated Gradients over a
comment's words, `explain.text_tier1`; a post's modality split, Grad-CAM and caption IG,
`explain.post_tier1`) on the PyTorch checkpoint the bundle names, stores them in the
explanation store keyed by decision id, then marks the jobs done. The thread runs at a lower
priority (nice 10) and with one torch thread, so explanations use the CPU that requests leave
idle. The queue is rows in the store: jobs queued before a crash or a restart are taken up when
the worker starts again. A worker takes only the jobs of decisions its bundle's models made:
another bundle's (two bundles on one store in a rolling deploy, a restart with another bundle)
wait for a server of that bundle, never explained with a model that did not decide them. A job
that cannot be explained is marked failed with the reason, in the decision store and in the
explanation store (`explain show` says why), logged (one WARNING per job: decision id, reason)
and counted (`shotlab_explanations_failed_total`); the worker never stops the service. A
round's failure is its jobs' own only where they are its cause: a batch that fails is explained
again job by job, so one bad job fails alone; a checkpoint that cannot be loaded fails the
round's jobs without counting against their attempts (serve/store.py, MAX_ATTEMPTS), and is
said once at start-up (`check_checkpoint`). A starting worker puts failed jobs with attempts
left back in the queue, unless the checkpoint is still unusable. A failed job's input (the
moderated content) is removed once no retry can use it: at its last attempt, for another
bundle's job at once, and at start-up and hourly for any kept past
`serve.store.KEEP_FAILED_INPUT_DAYS` (`expire_inputs`).
"""

from __future__ import annotations

import logging
import threading
import time

from shotlab.core.errors import ShotlabError, one_line

BATCH = 8  # jobs per round (8 Grad-CAMs: one forward and backward), then a commit
IDLE_POLL_S = 2.0  # a wake() comes with every new job; the poll only covers a missed one
TORCH_THREADS = 1  # the model's ONNX Runtime session keeps the other cores
# Nice 10: the worker takes the CPU the requests leave idle; under load its queue grows (in the
# store, durable) instead of the requests' latency.
NICENESS = 10
# How often a running worker removes the inputs failed jobs keep past KEEP_FAILED_INPUT_DAYS: a
# server that runs for weeks without a restart still keeps them about that long, no longer.
EXPIRE_EVERY_S = 3600
log = logging.getLogger("uvicorn.error")  # printed with the server's own lines


class ExplanationWorker:
    def __init__(self, bundle, store, explanations_path):
        self.bundle = bundle
        self.store = store
        self.explanations_path = explanations_path
        self.event = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="shotlab-explain", daemon=True)
        self.checkpoint = None
        self.onnx = None
        self.models = bundle.model_hashes  # the jobs it takes are of decisions they made
        self.on_failed = lambda count: None  # the service counts failures in its metrics
        # Whether a failed job could be explained now: False while the checkpoint cannot be
        # used (found so at start-up or by the last load), when a retry would only fail again.
        self.retry_failed = True
        self.next_expiry = 0.0  # monotonic time of the next expire_inputs

    def check_checkpoint(self) -> str | None:
        """Say at start-up, in one WARNING, when the checkpoint the bundle names cannot be used
        (missing, or not the file exported): every explanation would fail while decisions are
        still served. Failed jobs are then not re-queued (they would fail again); the reason."""
        from shotlab.explain.tier1 import checkpoint_problem

        problem = checkpoint_problem(self.bundle)
        if problem:
            log.warning("tier-1 explanations will fail: %s; decisions are still served, and "
                        "their explanations are retried when the server starts with it fixed",
                        problem)
        self.retry_failed = problem is None
        return problem

    def start(self) -> None:
        """Takes up the store as a stop left it, then starts the thread: done before the server
        answers anything, so a job a restart queues again never reads `failed` meanwhile."""
        try:
            self.store.release_claims()  # jobs a killed worker had taken
            self.expire_inputs()  # first: an input past its time is not retried
            if self.retry_failed:
                self.requeue_failed()
        except Exception as exc:  # a store error: the rounds say so again
            log.error("tier-1 explanations: %s", one_line(exc, limit=1000))
        self.thread.start()

    def wake(self) -> None:
        self.event.set()

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        self.event.set()
        self.thread.join(timeout)

    def run(self) -> None:
        lower_priority()
        while not self.stopping.is_set():
            try:
                if time.monotonic() >= self.next_expiry:
                    self.expire_inputs()
                done = self.round()
            except Exception as exc:  # a store error: say so and try again later
                log.error("tier-1 explanations: %s", one_line(exc, limit=1000))
                done = 0
            if not done:
                self.event.wait(IDLE_POLL_S)
                self.event.clear()

    def requeue_failed(self) -> None:
        """Failed jobs of this bundle with attempts left go back in the queue; said in a line."""
        from shotlab.serve.store import MAX_ATTEMPTS

        requeued, left = self.store.requeue_failed(self.models)
        if requeued:
            log.info("tier-1 explanations: %d failed job(s) queued again", requeued)
        if left:
            log.warning("tier-1 explanations: %d job(s) stay failed (%d attempts, or no input "
                        "kept); see GET /v1/decisions/ID, or `shotlab explain appeal`", left,
                        MAX_ATTEMPTS)

    def expire_inputs(self) -> None:
        """Remove the inputs failed jobs keep with no retry left or past their time (the
        moderated content is kept to explain it, not for ever); said in a line when any were.
        Every bundle's jobs: an input is content whichever model decided it."""
        from shotlab.serve.store import KEEP_FAILED_INPUT_DAYS

        self.next_expiry = time.monotonic() + EXPIRE_EVERY_S
        removed = self.store.expire_failed_inputs()
        if removed:
            log.info("tier-1 explanations: the input of %d failed job(s) removed (no attempt "
                     "left, or kept %d days); their bytes sent again bring it back while they "
                     "have attempts left", removed, KEEP_FAILED_INPUT_DAYS)

    def round(self) -> int:
        claimed = self.store.claim(BATCH, self.models)
        if not claimed:
            return 0
        jobs = self.own(claimed)
        if not jobs:
            return len(claimed)
        try:
            self.load_checkpoint()
        except Exception as exc:  # noqa: BLE001 - the server's cause, not the jobs': they fail
            # without using an attempt, and a restart with the checkpoint back retries them
            self.retry_failed = False
            self.fail([record for record, _ in jobs], reason_of(exc), attempt=False)
            return len(claimed)
        self.retry_failed = True
        from shotlab.serve.requests import kind_of_record

        groups: dict = {}
        for record, given in jobs:
            groups.setdefault(kind_of_record(record), []).append((record, given))
        for kind, group in groups.items():
            self.explain(kind, group)
        return len(claimed)

    def explain(self, kind, jobs: list) -> None:
        """The request kind's tier 1 (serve/requests.py) over `jobs` ((record, input)); where
        it fails, each job again alone, so a failure is the job's that caused it (a kind's
        tier 1 stores a batch in one transaction: nothing of a failed batch is stored)."""
        records = [record for record, _ in jobs]
        try:
            kind.explain(self, records, [given for _, given in jobs])
        except Exception as exc:  # noqa: BLE001 - a job that cannot be explained must not
            # block the queue: it is marked failed with the reason, the next ones go on
            if len(jobs) == 1:
                self.fail(records, reason_of(exc))
                return
            for job in jobs:
                self.explain(kind, [job])
            return
        self.forget_failures(records)  # first: a job read as done no longer reads as failed
        self.store.finish_explanation([record["decision_id"] for record in records])

    def fail(self, records: list[dict], reason: str, *, attempt: bool = True,
             final: bool = False) -> None:
        """Mark the jobs of `records` failed with `reason`: in the explanation store (for
        `explain show`), then the decision store, the metric and one WARNING line each, so
        whoever sees the status or the line finds the rest written."""
        from shotlab.explain.store import ExplanationStore

        ids = [record["decision_id"] for record in records]
        try:
            with ExplanationStore(self.explanations_path) as store, store.transaction():
                for record in records:
                    store.fail(record, reason, getattr(self.bundle, "origin", None) or
                               self.bundle.path)
        except Exception as exc:  # noqa: BLE001 - the decision store is the record: its status
            # is written all the same, and the round goes on to the jobs after these
            log.error("tier-1 explanations: %s", explanation_store_error(ids, exc))
        self.store.finish_explanation(ids, error=reason, attempt=attempt, final=final)
        self.on_failed(len(ids))
        for decision_id in ids:
            log.warning("tier-1 explanation of decision %s failed: %s", decision_id, reason)

    def forget_failures(self, records: list[dict]) -> None:
        """A job explained on a retry no longer reads as failed in the explanation store."""
        from shotlab.explain.store import ExplanationStore

        ids = [record["decision_id"] for record in records]
        try:
            with ExplanationStore(self.explanations_path) as store:
                store.clear_failures(ids)
        except Exception as exc:  # noqa: BLE001 - the maps are stored: the jobs are done
            log.error("tier-1 explanations: %s", explanation_store_error(ids, exc))

    def own(self, jobs: list) -> list:
        """The jobs this server's bundle decided (the store hands out only those, but for
        MongoDB documents stored before their model was recorded); another model's are marked
        failed with the reason, never explained with a model that did not make them."""
        foreign = {}
        for record, _ in jobs:
            if reason := self.bundle.foreign(record):
                foreign.setdefault(reason, []).append(record)
        for reason, records in foreign.items():  # final: this server never retries them, so
            # their input goes now; a server of their bundle sent the bytes again brings it back
            self.fail(records, reason + " (serve it, or `shotlab explain appeal` with --bundle "
                      "and --image)", final=True)
        taken = {r["decision_id"] for records in foreign.values() for r in records}
        return [job for job in jobs if job[0]["decision_id"] not in taken]

    def load_checkpoint(self):
        """The PyTorch model the bundle names, loaded once (torch on TORCH_THREADS)."""
        from shotlab.explain.tier1 import load_bundle_checkpoint

        if self.checkpoint is None:
            import torch

            torch.set_num_threads(TORCH_THREADS)
            self.checkpoint = load_bundle_checkpoint(self.bundle)
        return self.checkpoint

    def runner(self):
        """The bundle's ONNX model on one thread, for explanations that run it (a post's
        modality split: 4 passes); made once."""
        from shotlab.runtime.runners import make_runner

        if self.onnx is None:
            self.onnx = make_runner(self.bundle, "onnx", threads=TORCH_THREADS)
        return self.onnx


def reason_of(exc: Exception) -> str:
    """An exception as the one-line reason stored with a failed job (at most 500 characters)."""
    reason = str(exc) if isinstance(exc, ShotlabError) else f"{type(exc).__name__}: {exc}"
    return " ".join(reason.split())[:500]


def lower_priority() -> None:
    """Lower this thread's scheduling priority (Linux schedules threads one by one)."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


def explanation_store_error(ids: list[str], exc: Exception) -> str:
    """The line for a failure mark the explanation store could not take or clear."""
    return (f"the explanation store could not record the failure state of decision(s) "
            f"{', '.join(ids)} ({one_line(exc, limit=1000)}); `explain show` may show it wrong, "
            f"GET /v1/decisions/ID has it right")
