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
that cannot be explained (no checkpoint) is marked failed with the reason; the worker never
stops the service.
"""

from __future__ import annotations

import logging
import threading

from shotlab.core.errors import ShotlabError, one_line

BATCH = 8  # jobs per round (8 Grad-CAMs: one forward and backward), then a commit
IDLE_POLL_S = 2.0  # a wake() comes with every new job; the poll only covers a missed one
TORCH_THREADS = 1  # the model's ONNX Runtime session keeps the other cores
# Nice 10: the worker takes the CPU the requests leave idle; under load its queue grows (in the
# store, durable) instead of the requests' latency.
NICENESS = 10
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

    def start(self) -> None:
        self.thread.start()

    def wake(self) -> None:
        self.event.set()

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        self.event.set()
        self.thread.join(timeout)

    def run(self) -> None:
        lower_priority()
        try:
            self.store.release_claims()  # jobs a killed worker had taken
        except Exception as exc:  # a store error: the rounds below say so again
            log.error("tier-1 explanations: %s", one_line(exc, limit=1000))
        while not self.stopping.is_set():
            try:
                done = self.round()
            except Exception as exc:  # a store error: say so and try again later
                log.error("tier-1 explanations: %s", one_line(exc, limit=1000))
                done = 0
            if not done:
                self.event.wait(IDLE_POLL_S)
                self.event.clear()

    def round(self) -> int:
        claimed = self.store.claim(BATCH, self.models)
        if not claimed:
            return 0
        jobs = self.own(claimed)
        if not jobs:
            return len(claimed)
        records = [record for record, _ in jobs]
        ids = [record["decision_id"] for record in records]
        try:
            self.explain(records, [array for _, array in jobs])
        except Exception as exc:  # noqa: BLE001 - a batch that cannot be explained must not
            # block the queue: its jobs are marked failed with the reason, the next ones go on
            reason = str(exc) if isinstance(exc, ShotlabError) else f"{type(exc).__name__}: {exc}"
            self.store.finish_explanation(ids, error=" ".join(reason.split())[:500])
            return len(claimed)
        self.store.finish_explanation(ids)
        return len(claimed)

    def own(self, jobs: list) -> list:
        """The jobs this server's bundle decided (the store hands out only those, but for
        MongoDB documents stored before their model was recorded); another model's are marked
        failed with the reason, never explained with a model that did not make them."""
        foreign = {}
        for record, _ in jobs:
            if reason := self.bundle.foreign(record):
                foreign.setdefault(reason, []).append(record["decision_id"])
        for reason, ids in foreign.items():
            log.warning("tier-1 explanations: %d job(s) %s", len(ids), reason)
            self.store.finish_explanation(ids, error=reason + " (serve it, or `shotlab explain "
                                          "appeal` with --bundle and --image)")
        taken = {i for ids in foreign.values() for i in ids}
        return [job for job in jobs if job[0]["decision_id"] not in taken]

    def explain(self, records, inputs) -> None:
        """Each request kind's tier 1 (serve/requests.py) over its jobs of this round."""
        from shotlab.serve.requests import kind_of_record

        groups: dict = {}
        for record, given in zip(records, inputs):
            groups.setdefault(kind_of_record(record), []).append((record, given))
        for kind, jobs in groups.items():
            kind.explain(self, [record for record, _ in jobs], [given for _, given in jobs])

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


def lower_priority() -> None:
    """Lower this thread's scheduling priority (Linux schedules threads one by one)."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass
