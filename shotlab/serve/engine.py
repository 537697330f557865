"""What the service does with a batch: run the model, decide, store, then answer.

    engine = Engine(bundle, store, options)
    records = engine.process(items)       # on the batcher's model thread

The decision is `shotlab predict`'s (`export.predict.decision_records` through the request's
kind, serve/requests.py: the same rule and the same record); the batch's decisions and its explanation jobs are committed to the store before
`process` returns, so before any request of the batch is answered.
"""

from __future__ import annotations

import numpy as np

from shotlab.export.predict import needs_attention
from shotlab.runtime.runners import make_runner


class Engine:
    def __init__(self, bundle, store, *, runtime: str = "onnx", threads: int | None = None,
                 cache: bool = True, explain: bool = True, metrics=None):
        self.bundle = bundle
        self.store = store
        self.runtime = runtime
        self.runner = make_runner(bundle, runtime, threads=threads)
        self.kind = bundle.preprocessing.kind
        self.cache = cache
        self.explain = explain
        self.metrics = metrics
        # What a cached decision must match besides the bytes: the whole manifest (model
        # hashes, thresholds, review band, policy) and the runtime that ran it.
        self.model_key = f"{bundle.manifest['digest']}:{runtime}"

    def cache_key(self, sha256: str) -> str | None:
        return f"{sha256}:{self.model_key}" if self.cache else None

    def warm_up(self) -> None:
        """One batch-1 run, so the first request does not pay ONNX Runtime's first-run cost."""
        shape = self.bundle.preprocessing.sample_shape
        self.runner(np.zeros((1, *shape), np.float32))

    def process(self, items) -> list[dict]:
        """One model run over every item's rows (an image is one row, a clip its frames); each
        item's scores become its decision through its kind (serve/requests.py)."""
        rows = [item.decoded.rows for item in items]
        probs = self.runner(np.concatenate(rows))
        ends = np.cumsum([len(r) for r in rows])
        decided = [item.kind.decide(self.bundle, item.decoded, probs[end - len(r):end],
                                    item.sha256, self.runtime)
                   for item, r, end in zip(items, rows, ends)]
        records = [record for record, _ in decided]
        jobs = ({record["decision_id"]: explained for record, explained in decided
                 if needs_attention(record)} if self.explain else {})
        saved = self.store.save(records, [item.key for item in items], jobs)
        if self.metrics:
            self.metrics.count_decisions([r for r, s in zip(records, saved) if r is s])
        return saved
