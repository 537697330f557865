"""`shotlab predict BUNDLE PATHS...`: one decision per image, and a review queue.

Each decision (a JSON line):
    decision_id   uuid4 hex: the key explanations and reviews refer to
    path, sha256  the image as read (the file is never modified)
    scores        {class: probability} from the bundle's model (softmax or sigmoid)
    labels        predicted classes under the policy's thresholds (`shotlab.runtime.decide`)
    flagged       unsafe classes whose score is at or over their threshold
    needs_review  a score inside an unsafe class's review band
    bundle, model_sha256, runtime, time

`review_queue.jsonl` beside the decisions holds the decisions that are flagged or need review.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.runtime.kinds import load_inputs
from shotlab.runtime.runners import BATCH_SIZE

REVIEW_QUEUE_FILE = "review_queue.jsonl"


@dataclass
class Prediction:
    decisions: list[dict] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    inputs: list[np.ndarray] = field(default_factory=list)  # per decision (for --explain)


def collect_paths(paths) -> list[Path]:
    """Files as given, folders searched recursively for image extensions; sorted, unique."""
    from shotlab.core.images import IMAGE_EXTENSIONS

    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.exists():
            found.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def decisions_for(bundle, paths, probs: np.ndarray, *, runtime: str) -> list[dict]:
    from shotlab.core.images import sha256_file
    from shotlab.runtime.decide import decide

    rows = decide(probs, bundle.classes, task=bundle.task, thresholds=bundle.thresholds)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [{"decision_id": uuid.uuid4().hex, "path": str(Path(path).resolve()),
             "sha256": sha256_file(path), **row,
             "bundle": str(bundle.origin), "model_sha256": bundle.model_sha256(runtime),
             "runtime": runtime, "time": now}
            for path, row in zip(paths, rows)]


def predict_paths(bundle, paths, *, batch_size: int = BATCH_SIZE, runtime: str = "onnx",
                  progress=None, keep_inputs: bool = False) -> Prediction:
    """Decisions for `paths` in batches; unreadable images are listed in `.bad`, not raised."""
    from shotlab.core.progress import progress_bar
    from shotlab.runtime.runners import make_runner

    runner = make_runner(bundle, runtime)
    preprocessing, result = bundle.preprocessing, Prediction()
    with progress_bar(total=len(paths), enabled=progress, unit="img", desc="Predicting") as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            inputs = load_inputs(chunk, preprocessing, progress=False)
            result.bad += inputs.bad
            if inputs.kept:
                probs = runner(inputs.arrays)
                result.decisions += decisions_for(bundle, [chunk[i] for i in inputs.kept],
                                                  probs, runtime=runtime)
                if keep_inputs:
                    result.inputs += list(inputs.arrays)
            bar.update(len(chunk))
    return result


def needs_attention(decision: dict) -> bool:
    return bool(decision["needs_review"] or decision["flagged"])


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    partial.replace(path)
    return path


def write_decisions(out: Path, decisions: list[dict]) -> tuple[Path, Path]:
    """The decisions file (replaced) and `review_queue.jsonl` beside it."""
    queue = [d for d in decisions if needs_attention(d)]
    return write_jsonl(out, decisions), write_jsonl(out.parent / REVIEW_QUEUE_FILE, queue)


def summary(prediction: Prediction, classes) -> dict:
    counts = {c: 0 for c in classes}
    for decision in prediction.decisions:
        for label in decision["labels"]:
            counts[label] += 1
    return {"images": len(prediction.decisions), "bad": len(prediction.bad),
            "flagged": sum(bool(d["flagged"]) for d in prediction.decisions),
            "needs_review": sum(d["needs_review"] for d in prediction.decisions),
            "labels": counts}
