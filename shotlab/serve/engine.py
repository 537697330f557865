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
from shotlab.runtime.runners import make_runner, run_batched

# Part of every cache key: raised when the same bytes and bundle come to be decided differently,
# so a decision stored by an older shotlab is not served again (2: long comments read in windows
# and reviewed, long captions marked).
RULE_VERSION = 2


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
        self.model_key = f"{bundle.manifest['digest']}:{runtime}:{RULE_VERSION}"

    def cache_key(self, sha256: str, kind: str) -> str | None:
        """The key a decision is cached under: the bytes, the kind they were decided as (the
        same bytes sent as an image and as a clip are two decisions), the bundle, the runtime."""
        return f"{sha256}:{kind}:{self.model_key}" if self.cache else None

    def warm_up(self) -> None:
        """One batch-1 run, so the first request does not pay ONNX Runtime's first-run cost:
        zeros of each input's shape and dtype (a dynamic axis, a comment's tokens: length 2)."""
        feeds = {spec.name: np.zeros((1, *(2 if isinstance(d, str) else d
                                          for d in spec.shape[1:])), spec.dtype)
                 for spec in self.bundle.input_specs()}
        self.runner(feeds if len(feeds) > 1 else next(iter(feeds.values())))

    def process(self, items) -> list[dict]:
        """One model run over every item's rows (an image is one row, a clip its frames, a
        comment its token ids), stacked by their kind (token ids padded to the longest); each
        item's scores become its decision through its kind (serve/requests.py)."""
        counts = [item.decoded.count for item in items]
        # in runs of BATCH_SIZE rows at most: long comments (windows) and clips (frames) give
        # many rows a request, and one run over all of them held them all in memory at once
        probs = run_batched(self.runner, items[0].kind.stack([item.decoded.rows
                                                              for item in items]))
        ends = np.cumsum(counts)
        decided = [item.kind.decide(self.bundle, item.decoded, probs[end - n:end],
                                    item.sha256, self.runtime)
                   for item, n, end in zip(items, counts, ends)]
        records = [record for record, _ in decided]
        if not self.explain:  # no map is made (--no-explain): no clip frame is named as explained
            for record in records:
                record.pop("explained_frames", None)
        jobs = ({record["decision_id"]: explained for record, explained in decided
                 if needs_attention(record)} if self.explain else {})
        saved = self.store.save(records, [item.key for item in items], jobs)
        if self.metrics:
            self.metrics.count_decisions([r for r, s in zip(records, saved) if r is s])
        return saved
