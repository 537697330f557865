"""Clip-level evaluation of a frame model trained on a clip dataset's frames.

`shotlab train CLIPS` trains on `CLIPS-frames` (each frame carries its clip's labels and split,
and `curate split` keeps a clip's frames together), then scores clips here:

    aggregated    the clip contract's pooling per class (runtime/clip_scores.py: mean for tags,
                  max for unsafe classes by default) over each clip's sampled frames
    middle_frame  the baseline: the one frame nearest the middle of the clip

For each, thresholds for the policy's unsafe classes are chosen on validation *clips* (the
recall target applies to clips, which is what a moderation team is judged on), and val and test
metrics come from `train/metrics.py`: per-class AP (`per_class[c].auprc`) and its mean
(`macro_auprc`, the mAP), macro-F1/F2 and unsafe recall with intervals (metrics.py's). The result
goes to `clip_metrics.json`; `clip.json` (sampling, aggregation, clip thresholds) is the clip
contract `shotlab export` puts in the bundle.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from shotlab.core import store

SPLITS = ("val", "test")


@dataclass
class ClipSet:
    """One split's clips: per clip its frame score rows (time order) and its labels."""

    clip_ids: list[str]
    frame_probs: list[np.ndarray]
    labels: list[tuple[str, ...]]


def clip_dataset_of(frames_name: str) -> str | None:
    """The clip dataset a frames dataset belongs to, else None (an image dataset)."""
    return store.clip_dataset_of(store.load(frames_name))


@dataclass
class ClipGrouping:
    """Which frame rows of a split make each clip: the same for every model's scores."""

    clip_ids: list[str]
    rows: list[list[int]]  # per clip, its frames' row indices in time order
    labels: list[tuple[str, ...]]

    def of(self, probs) -> ClipSet:
        """`probs` (one row per frame, in the entries' order) grouped per clip."""
        probs = np.asarray(probs)
        return ClipSet(self.clip_ids, [probs[rows] for rows in self.rows], self.labels)


def frame_places(manifest) -> dict:
    """Each frame's (clip id, timestamp), by sample id, from the run's frames dataset."""
    frames = store.load(manifest.dataset)
    return dict(zip(frames.values("id"), zip(frames.values("clip_id"),
                                              frames.values("timestamp"))))


def grouping(entries, places: dict) -> ClipGrouping:
    """Manifest `entries` (frames, one row each) grouped per clip in time order (`places`:
    `frame_places`); a KeyError where a frame is not in the frames dataset."""
    rows, labels = defaultdict(list), {}
    for i, entry in enumerate(entries):
        clip_id, timestamp = places[entry.sample_id]
        rows[clip_id].append((timestamp, i))
        labels[clip_id] = entry.labels
    ids = sorted(rows)
    return ClipGrouping(ids, [[i for _, i in sorted(rows[c])] for c in ids],
                        [labels[c] for c in ids])


def group_by_clip(manifest, probs: dict) -> dict[str, ClipSet]:
    """Frame rows of val and test grouped per clip, in time order."""
    places = frame_places(manifest)
    return {split: grouping(manifest.split(split), places).of(probs[split]) for split in SPLITS}


def middle_frames(clips: ClipSet) -> np.ndarray:
    """The baseline's scores: each clip's middle sampled frame."""
    return np.stack([rows[len(rows) // 2] for rows in clips.frame_probs])


def score(clips: ClipSet, contract, kind: str) -> np.ndarray:
    if kind == "middle_frame":
        return middle_frames(clips)
    return np.stack([contract.pool(rows) for rows in clips.frame_probs])


def targets(manifest, labels) -> np.ndarray:
    index = {c: i for i, c in enumerate(manifest.classes)}
    if manifest.task == "multilabel":
        y = np.zeros((len(labels), len(index)), int)
        for row, names in enumerate(labels):
            y[row, [index[n] for n in names]] = 1
        return y
    return np.array([index[names[0]] for names in labels])


def evaluate_clips(manifest, probs: dict, policy, *, sampling: str) -> tuple[dict, dict]:
    """(clip_metrics, clip_contract): the aggregated model and the middle-frame baseline on
    val and test clips, and the contract (with clip thresholds) the bundle carries."""
    from shotlab.runtime.clip_scores import ClipContract
    from shotlab.train.metrics import classification_metrics
    from shotlab.train.thresholds import choose_thresholds

    classes = list(manifest.classes)
    contract = ClipContract.resolve(None, classes, policy.unsafe, sampling=sampling)
    sets = group_by_clip(manifest, probs)
    results, chosen = {}, {}
    for kind in ("aggregated", "middle_frame"):
        pooled = {s: score(sets[s], contract, kind) for s in SPLITS if sets[s].clip_ids}
        y = {s: targets(manifest, sets[s].labels) for s in pooled}
        thresholds = (choose_thresholds(y["val"], pooled["val"], classes,
                                        unsafe=list(policy.unsafe),
                                        target_recall=policy.target_recall,
                                        review_margin=policy.review_margin, task=manifest.task,
                                        pooled=True)
                      if policy.unsafe and "val" in pooled else {})
        results[kind] = {s: classification_metrics(y[s], pooled[s], classes, task=manifest.task,
                                                   thresholds=thresholds or None, pooled=True)
                         for s in pooled}
        results[kind]["clips"] = {s: len(sets[s].clip_ids) for s in SPLITS}
        chosen[kind] = thresholds
    results["contract"] = contract.to_dict()
    results["unsafe"] = list(policy.unsafe)
    return results, {**contract.to_dict(), "thresholds": chosen["aggregated"]}


def headline(results: dict) -> dict:
    """mAP and unsafe recall of both, on test clips (val when there is no test split)."""
    out = {}
    for kind in ("aggregated", "middle_frame"):
        split = "test" if "test" in results[kind] else "val"
        metrics = results[kind].get(split)
        if metrics:
            # the policy's unsafe classes (multilabel thresholds hold every class: 0.5 by
            # default); a run from before they were recorded: its thresholds (multiclass: those)
            unsafe = results.get("unsafe", metrics["thresholds"])
            out[kind] = {"split": split, "mAP": metrics["macro_auprc"],
                         "macro_f1": metrics["macro_f1"],
                         "unsafe_recall": {c: metrics["per_class"][c]["recall"] for c in unsafe}}
    return out
