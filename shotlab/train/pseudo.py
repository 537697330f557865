"""Pseudo-labels: `shotlab train NAME --pseudo-label [--pseudo-threshold P]`.

    result = train_with_pseudo_labels("vehicles", config)   # a RunResult; result.pseudo says what was added

1. A first model (the *teacher*) trains on the human labels exactly as `shotlab train` would, in
   `RUN/teacher/`; its scores are calibrated on val (train/calibration.py).
2. It scores the unlabeled pool: the dataset's samples with no label (multiclass), not tagged
   `exclude`, whose split is train or unassigned. Unlabeled samples someone put in val or test,
   or that share a group with a val or test sample (the same sha256, a duplicate cluster, a clip,
   a thread: the fields `curate split` groups by), are never used (counted as `held_out`).
3. A pool sample whose top calibrated score is at least the threshold joins the train split with
   the teacher's label, marked in the manifest (`Entry.pseudo` = its score).
4. The model of the run trains again on train + those samples. Val and test hold human labels
   only, so calibration, thresholds and every metric are on human labels. The teacher's val and
   test metrics are kept in `pseudo.json` beside the run's own, to show what the pseudo-labels
   changed.

**The threshold** (without `--pseudo-threshold`) is the higher of two cut-offs, each the lowest
score at which its test holds:
- *val precision*: the validation samples whose top calibrated score is >= t are right
  (human labels) at least TARGET_PRECISION of the time (the precision-target threshold of a
  precision-recall curve);
- *expected pool precision*: the mean top calibrated score of the pool samples at or above t is
  at least TARGET_PRECISION. Calibrated scores are probabilities of being right, so their mean
  is the precision the added set is expected to have; val alone, a few dozen images on a
  few-shot set, would let a low threshold through whenever every val image is right.
When no cut-off passes a test, nothing is added and the run says so. (Requiring the val test at
every higher cut-off as well was tried and dropped: one wrong image among the first few val
scores then vetoes every threshold below it; on Fashion-MNIST at 10 labels per class it kept
17 of 500 pool images, at a threshold of 0.988.) Where the
calibration was refused (too few val samples), the scores are the raw ones and the record says
so.

The dataset gets the field `pseudo_label` (a Classification with the score as its confidence and
the run's name) on the samples added, None elsewhere, and the saved view `pseudo-labelled`
(least confident first, for checking). `ground_truth` is never written: a later `shotlab train`
without the flag does not see them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.files import remove, write_json_atomic
from shotlab.train.finetune import TrainConfig
from shotlab.train.manifest import Entry, Manifest, sample_rows
from shotlab.train.runs import PSEUDO_FILE

TARGET_PRECISION = 0.95  # 1 wrong pseudo-label in 20: about the label noise of a careful annotator
TEACHER = "teacher"
POOL_SPLITS = (None, "train")  # unlabeled samples in val or test stay out of training
KINDS = ("image", "text")  # the kinds whose pool a plain trainer.predict scores


def lowest_score_reaching(scores, right, target: float = TARGET_PRECISION) -> float:
    """The lowest cut-off score s at which the samples scoring >= s have a mean `right` (1/0
    for judged samples, or each one's probability of being right) of at least `target`; inf
    when no cut-off reaches it, -inf when there are no samples. Tied scores are one cut-off."""
    scores, right = np.asarray(scores, dtype=np.float64), np.asarray(right, dtype=np.float64)
    if len(scores) == 0:
        return -np.inf
    order = np.argsort(-scores, kind="stable")
    s, r = scores[order], right[order]
    precision = np.cumsum(r) / np.arange(1, len(s) + 1)
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last index of each tied score
    reaching = ends[precision[ends] >= target]
    return float(s[reaching[-1]]) if len(reaching) else np.inf


def choose_threshold(y_val, probs_val, probs_pool, target: float = TARGET_PRECISION) -> dict:
    """The default threshold (module docstring) with its two parts."""
    probs_val, probs_pool = np.asarray(probs_val), np.asarray(probs_pool)
    val = lowest_score_reaching(probs_val.max(axis=1), probs_val.argmax(axis=1) == np.asarray(y_val),
                            target)
    pool = lowest_score_reaching(probs_pool.max(axis=1), probs_pool.max(axis=1), target)
    return {"threshold": max(val, pool), "val_rule": val, "pool_rule": pool}


def pool_of(manifest: Manifest) -> tuple[list[Entry], int]:
    """The unlabeled samples that may be pseudo-labelled (as entries without labels) and how
    many unlabeled samples are held out: in val or test, or in a group with a val or test
    sample (a copy, a near-duplicate, a frame of its clip, through any chain of them: the groups
    `curate split` keeps together), which `curate split` leaves unassigned when they have no
    label; pseudo-labelled into train they would leak."""
    from shotlab.core import store
    from shotlab.train.manifest import EXCLUDE_TAG

    dataset = store.load(manifest.dataset)
    rows = list(sample_rows(dataset))
    tied = tied_to_holdout(dataset, [split for *_, split, _ in rows])
    pool, held_out = [], 0
    for (sample_id, filepath, digest, labels, split, tags), leaks in zip(rows, tied):
        if labels or EXCLUDE_TAG in (tags or []):
            continue
        if split in POOL_SPLITS and not leaks:
            pool.append(Entry(sample_id, filepath, digest, (), split))
        else:
            held_out += 1
    return pool, held_out


def tied_to_holdout(dataset, splits: list) -> list[bool]:
    """Per sample, whether its group (core/groups.py, as `curate split` forms them) holds a
    val or test sample."""
    from shotlab.core.groups import dataset_groups

    groups = dataset_groups(dataset)
    held = {g for g, s in zip(groups, splits) if s in ("val", "test")}
    return [g in held for g in groups]


def check_pool(name: str, manifest: Manifest, pool: list[Entry], held_out: int) -> None:
    """Refuse, before any run folder exists, what pseudo-labelling cannot do."""
    if manifest.dataset != name:
        raise InputError(f"--pseudo-label trains image and text datasets; '{name}' is a clip "
                         f"dataset (its frames are trained): leave --pseudo-label out")
    if manifest.kind not in KINDS or manifest.task != "multiclass":
        raise InputError(f"--pseudo-label needs a multiclass dataset of {' or '.join(KINDS)}s; "
                         f"'{name}' is {manifest.task} ({manifest.kind}s), where an image "
                         f"without labels is not unlabeled: leave --pseudo-label out")
    if not pool:
        where = (f" ({held_out} unlabeled samples are in val or test or grouped with them, "
                 f"which pseudo-labels never enter)" if held_out else "")
        raise InputError(f"dataset '{name}' has no unlabeled samples in train or without a "
                         f"split{where}; import images without labels (a CSV row 'path,' with "
                         f"an empty label), or leave --pseudo-label out")


def pseudo_entries(pool: list[Entry], probs: np.ndarray, classes, threshold: float) -> list[Entry]:
    """The pool samples scoring at least `threshold`, labelled with their top class, in train."""
    top = np.asarray(probs).max(axis=1)
    picked = np.asarray(probs).argmax(axis=1)
    return [Entry(e.sample_id, e.filepath, e.sha256, (classes[int(k)],), "train",
                  round(float(t), 4))
            for e, t, k in zip(pool, top, picked) if t >= threshold]


def with_pseudo(manifest: Manifest, added: list[Entry]) -> Manifest:
    """`manifest` plus the pseudo-labelled `added` (a new dataset version: its own hash)."""
    left_out = {**manifest.left_out, "unlabeled": manifest.left_out.get("unlabeled", 0) - len(added),
                "pseudo_labelled": len(added)}
    return replace(manifest, entries=manifest.entries + tuple(added), left_out=left_out)


def headline(metrics: dict) -> dict:
    keep = ("n", "accuracy", "macro_f1", "ece")
    return {split: {k: m.get(k) for k in keep} for split, m in metrics.items()}


def pseudo_record(threshold: float | None, chosen: dict, target: float, calibration: dict,
                  pool: list[Entry], held_out: int, added: list[Entry], classes,
                  teacher_metrics: dict) -> dict:
    """What pseudo.json holds: the threshold and how it was set, what was added per class."""
    counts = Counter(e.labels[0] for e in added)
    finite = {k: (v if np.isfinite(v) else None) for k, v in chosen.items()}
    return {"threshold": threshold if threshold is not None else finite["threshold"],
            "rule": "given (--pseudo-threshold)" if threshold is not None else
                    f"lowest score with val precision and expected pool precision >= {target}",
            "target_precision": target, "val_rule": finite["val_rule"],
            "pool_rule": finite["pool_rule"],
            "calibrated": calibration.get("method") == "temperature",
            "pool": len(pool), "held_out": held_out, "added": len(added),
            "added_per_class": {c: counts.get(c, 0) for c in classes},
            "teacher": headline(teacher_metrics)}


def teach(run_dir: Path, manifest: Manifest, policy, config: TrainConfig, pool: list[Entry],
          held_out: int, threshold: float | None, progress) -> tuple[Manifest, list[Entry]]:
    """Fit and calibrate the teacher in RUN/teacher, pick the pseudo-labels, write pseudo.json;
    the manifest to train on and the entries added."""
    from shotlab.train.runs import evaluate, score_entries, trainer_of

    teacher = trainer_of(manifest.kind).fit(manifest, config, run_dir / TEACHER, progress=progress)
    judged = evaluate(teacher, manifest, policy, config, progress)  # folds the temperature in
    probs = score_entries(teacher, pool, manifest, config, progress)
    chosen = choose_threshold(manifest.targets(manifest.split("val")), judged.probs["val"], probs)
    cut = chosen["threshold"] if threshold is None else threshold
    added = pseudo_entries(pool, probs, manifest.classes, cut)
    write_json_atomic(run_dir / PSEUDO_FILE, pseudo_record(
        threshold, chosen, TARGET_PRECISION, judged.calibration, pool, held_out, added,
        manifest.classes, judged.metrics))
    remove(run_dir / TEACHER / "checkpoints" / "last.pt")  # the teacher is never resumed
    return with_pseudo(manifest, added), added


def train_with_pseudo_labels(name: str, config: TrainConfig, *, threshold: float | None = None,
                             tracking_uri: str | None = None, track: bool = True,
                             writeback: bool = True, progress: bool | None = None):
    """`shotlab train NAME --pseudo-label`: the module docstring's four steps; a RunResult whose
    `pseudo` is pseudo.json. `threshold` None: chosen from the calibrated scores."""
    from shotlab.train.runs import finish, new_run_dir, prepare, start

    if threshold is not None and not 0 < threshold <= 1:
        raise InputError(f"--pseudo-threshold must be in (0, 1]; got {threshold}")
    manifest, policy, config, choice = prepare(name, config, progress)
    pool, held_out = pool_of(manifest)
    check_pool(name, manifest, pool, held_out)
    run_dir = new_run_dir(name, config)
    try:
        student, added = teach(run_dir, manifest, policy, config, pool, held_out, threshold,
                               progress)
        fitted = start(run_dir, student, config, policy, progress, choice)
    except BaseException:
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            remove(run_dir)  # a run that never started its own training is no run
        raise
    return finish(run_dir, student, policy, config, fitted, tracking_uri=tracking_uri,
                  track=track, writeback=writeback, progress=progress)
