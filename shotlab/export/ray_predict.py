"""`shotlab predict BUNDLE PATHS --ray`: the same decisions, computed by Ray Data on a cluster.

    result = predict_paths_ray(bundle, paths, address=None)   # a predict.Prediction

The paths become a Ray Dataset (`from_items`); `map_batches` runs BatchPredictor on an actor
pool (`concurrency` actors, one CPU and one ONNX Runtime thread each): each actor loads the
bundle once and turns a batch of paths into decisions with predict's own `decisions_for` (the
same decision rule and record). The driver puts the rows back in input order; the CLI then
writes `decisions.jsonl` and the review queue exactly as the single-process path does.

Every node reads the bundle and the images at the paths given (a shared filesystem); each actor
checks that the bundle it loaded has the digest the driver verified (and, with --trusted-key,
whose signature it checked).
"""

from __future__ import annotations

import json
import os

from shotlab.core.errors import ShotlabError
from shotlab.export.predict import Prediction
from shotlab.runtime.runners import BATCH_SIZE

ACTOR_THREADS = 1  # one ONNX Runtime thread per actor: the actors, not threads, use the cores


class BatchPredictor:
    """A Ray Data actor: {"index", "path"} rows in, {"index", "record", "bad"} rows out
    (`record`: the decision as JSON, or "" for an unreadable file; `bad`: its reason)."""

    def __init__(self, origin: str, digest: str, runtime: str, max_pixels: int | None = None):
        from shotlab.runtime.bundle import load_bundle
        from shotlab.runtime.runners import make_runner

        self.bundle = load_bundle(origin)
        if self.bundle.manifest["digest"] != digest:
            raise ShotlabError(f"{origin}: this node's bundle has digest "
                               f"{self.bundle.manifest['digest'][:12]}, the driver verified "
                               f"{digest[:12]}; give every node the same bundle")
        self.runtime, self.max_pixels = runtime, max_pixels
        self.runner = make_runner(self.bundle, runtime, threads=ACTOR_THREADS)

    def __call__(self, batch: dict) -> dict:
        from shotlab.export.predict import decisions_for
        from shotlab.runtime.kinds import load_inputs

        paths = [str(p) for p in batch["path"]]
        inputs = load_inputs(paths, self.bundle.preprocessing, progress=False,
                             max_pixels=self.max_pixels)
        records = {}
        if inputs.kept:
            kept = [paths[i] for i in inputs.kept]
            decided = decisions_for(self.bundle, kept, self.runner(inputs.arrays),
                                    inputs.sha256s, runtime=self.runtime)
            records = {i: json.dumps(r) for i, r in zip(inputs.kept, decided)}
        bad = dict(inputs.bad)
        return {"index": batch["index"],
                "record": [records.get(i, "") for i in range(len(paths))],
                "bad": [bad.get(path, "") for path in paths]}


def predict_paths_ray(bundle, paths, *, address: str | None = None, runtime: str = "onnx",
                      batch_size: int = BATCH_SIZE, concurrency: int | None = None,
                      progress=None, max_pixels: int | None = None) -> Prediction:
    """Decisions for `paths` on Ray Data, in the order of `paths`; unreadable files in `.bad`."""
    from shotlab.core.cluster import ray_session
    from shotlab.core.progress import progress_bar

    rows = []
    with ray_session(address):
        import ray

        ray.data.DataContext.get_current().enable_progress_bars = False  # ours, below
        actors = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Absolute: a worker's working folder is not this one (on another machine, or a
        # cluster started elsewhere), where a relative path names some other file or none.
        dataset = ray.data.from_items([{"index": i, "path": os.path.abspath(p)}
                                       for i, p in enumerate(paths)])
        decided = dataset.map_batches(
            BatchPredictor, fn_constructor_args=(os.path.abspath(bundle.origin),
                                                 bundle.manifest["digest"], runtime,
                                                 max_pixels),
            batch_size=batch_size, batch_format="numpy", concurrency=actors, num_cpus=1)
        with progress_bar(total=len(paths), enabled=progress, unit="img",
                          desc=f"Predicting on Ray ({actors} actors)") as bar:
            for chunk in decided.iter_batches(batch_size=None, batch_format="numpy"):
                rows += zip(chunk["index"].tolist(), chunk["record"], chunk["bad"])
                bar.update(len(chunk["index"]))
    return prediction(rows, paths)


def prediction(rows, paths) -> Prediction:
    result = Prediction()
    for index, record, bad in sorted(rows, key=lambda row: row[0]):
        if record:
            result.decisions.append(json.loads(record))
        else:
            result.bad.append((str(paths[index]), str(bad)))
    return result
