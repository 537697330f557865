"""`shotlab curate check`: run the chosen detectors on a dataset and write what they find.

The detectors take arrays; this module reads the store, computes image statistics, asks the
caller's `embed` function for embeddings (the CLI passes one built on `shotlab.train`, which
curate never imports), runs the detectors on the samples not tagged `exclude`, and writes fields,
tags, saved views and the summary back. A text dataset (`store.kind_of`) runs the checks the
registry says apply to text, on the text encoder's embeddings; the others are skipped, each with
one line in the summary.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.core.groups import GROUP_FIELDS
from shotlab.curate.checks import fields
from shotlab.curate.checks.base import CheckResult
from shotlab.curate.checks.registry import CHECKS as REGISTRY
from shotlab.curate.checks.registry import EMBEDDING_CHECKS

CHECKS = tuple(REGISTRY)
EXCLUDE_TAG = "exclude"
KEEP_FIELD = "reviewed_keep"  # set by `curate apply` from the `keep` tag: a person judged it right
# Judgement calls a reviewer may overrule; duplicates, leakage and quality are facts and stay.
KEEPABLE = ("label", "outlier")
TOP = 3  # sample paths shown per check in the terminal summary

# (inputs, sha256s) -> (n, d); inputs are image paths, or the comments of a text dataset
Embedder = Callable[[list[str], list[str]], np.ndarray]


@dataclass
class Samples:
    """The samples a check run looks at, in dataset order."""

    ids: list[str]
    paths: list[str]
    sha256s: list[str]
    labels: list[tuple[str, ...]]
    splits: list[str | None]
    task: str
    excluded: int
    kept: np.ndarray  # (n,) bool: reviewed as `keep`, label unchanged since that review
    kind: str = "image"  # the dataset's kind (store.kind_of)
    texts: list[str] | None = None  # a text dataset's comments
    changed: list[str] = field(default_factory=list)  # files edited since import, hashed again
    # Stored fields that bind samples together (core/groups.GROUP_FIELDS but sha256): the last
    # check's duplicate clusters, a frame's clip, a comment's thread; field -> values.
    bound: dict[str, list] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)  # files deleted since import
    # How a sample is named to the user where its file name says little: a frame's clip and
    # time ("bird_003.mp4 at 6.5 s"); None: the file name.
    names: list[str] | None = None

    @property
    def inputs(self) -> list[str]:
        """What the embedder reads: image paths, or the comments themselves."""
        return self.texts if self.texts is not None else self.paths


@dataclass
class CheckSummary:
    name: str
    task: str
    checked: int
    excluded: int
    time: str
    options: dict
    checks: dict[str, dict] = field(default_factory=dict)  # name -> count, top, notes, details
    views: list[str] = field(default_factory=list)
    report: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # check -> why it did not apply
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_checks(text: str | None) -> tuple[str, ...]:
    """'label,quality' -> ('label', 'quality'); None or 'all' -> every check."""
    if text is None or text.strip() == "all":
        return CHECKS
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in CHECKS]
    if unknown or not names:
        raise InputError(f"--checks {text}: unknown check '{unknown[0] if unknown else ''}'; "
                         f"choose from {', '.join(CHECKS)} (comma-separated) or 'all'")
    return names


def parse_thresholds(pairs) -> dict[str, float]:
    """('blurry=-1.5', 'cosine=0.95') -> {'blurry': -1.5, 'cosine': 0.95}, names and ranges checked."""
    from shotlab.curate.checks.detect import threshold_ranges

    ranges = threshold_ranges()
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if key not in ranges or not sep:
            raise InputError(f"--threshold {pair}: expected NAME=VALUE with NAME one of "
                             f"{', '.join(ranges)}")
        parsed[key] = threshold_value(pair, value, *ranges[key])
    return parsed


def threshold_value(pair: str, text: str, low: float, high: float, kind: type) -> float:
    """The number in `text`, refused unless it is a `kind` within [low, high]."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--threshold {pair}: '{text}' is not a number") from None
    if not (low <= value <= high and math.isfinite(value)) or \
            (kind is int and not value.is_integer()):  # inf: no image reaches it
        what = "a whole number" if kind is int else "a number"
        span = f"from {low:g} to {high:g}" if high < float("inf") else f"of {low:g} or more"
        raise InputError(f"--threshold {pair}: expected {what} {span} (the values this "
                         f"measure can take; see docs/curate-check.md)")
    return value


def load_samples(dataset) -> Samples:
    """The samples not tagged `exclude`, once files edited since import have their current
    sha256 in the store (core/changed_files.py), so no cache answers for their old bytes."""
    from shotlab.core.changed_files import refresh_changed

    gone: list[str] = []
    changed = refresh_changed(dataset, gone)
    task = store.task_of(dataset)
    view = dataset.match_tags(EXCLUDE_TAG, bool=False)
    raw = view.values(store.label_path(task))
    labels = ([tuple(v or ()) for v in raw] if task == "multilabel"
              else [(v,) if v else () for v in raw])
    kind = store.kind_of(dataset)
    schema = view.get_field_schema()
    bound = {f: view.values(f) for f in GROUP_FIELDS if f in schema and f != "sha256"}
    paths = view.values("filepath")
    checked = set(paths)
    return Samples(view.values("id"), paths, view.values("sha256"), labels,
                   view.values("split"), task, len(dataset) - len(view), kept_mask(view, labels),
                   kind, view.values("text") if kind == store.TEXT else None, changed, bound,
                   [path for path in gone if path in checked], frame_names(view, schema))


def frame_names(view, schema) -> list[str] | None:
    """A frames dataset's samples named by clip and time (their files are frame_000005.png in
    a cache folder); None for any other dataset."""
    if not {"clip_path", "timestamp"} <= set(schema):
        return None
    return [f"{Path(clip).name} at {float(t):.1f} s" if clip and t is not None else None
            for clip, t in zip(view.values("clip_path"), view.values("timestamp"))]


def kept_mask(view, labels: list[tuple[str, ...]]) -> np.ndarray:
    """Samples a reviewer marked `keep`, as long as their label is still the one reviewed."""
    schema = view.get_field_schema()
    if KEEP_FIELD not in schema:
        return np.zeros(len(labels), bool)
    kept = view.values(KEEP_FIELD)
    applied = view.values("applied_label") if "applied_label" in schema else [None] * len(labels)
    return np.array([bool(k) and (a is None or sorted(a) == sorted(l))
                     for k, a, l in zip(kept, applied, labels)], bool)


def honour_reviews(results: list[CheckResult], kept: np.ndarray) -> None:
    """Unflag judgement-based issues on samples a reviewer kept; their scores stay visible."""
    if not kept.any():
        return
    for result in results:
        if result.name in KEEPABLE and (result.issues & kept).any():
            cleared = int(np.count_nonzero(result.issues & kept))
            result.issues = result.issues & ~kept
            result.notes.append(f"{cleared} flagged sample(s) left unflagged: reviewed as 'keep'")


def run_checks(name: str, *, checks=CHECKS, embed: Embedder | None = None,
               thresholds: dict[str, float] | None = None, min_per_class: int | None = None,
               progress: bool | None = None, options: dict | None = None,
               ) -> tuple[CheckSummary, list[CheckResult], Samples]:
    """Run `checks` on dataset `name` and write fields, tags, views and the summary.

    Returns the summary, every result (positions index `Samples`), and the samples checked.
    """
    from shotlab.curate.checks.detect import detect
    from shotlab.curate.checks.registry import skipped_for

    dataset = store.load(name)
    samples = load_samples(dataset)
    if not samples.ids:
        raise InputError(f"dataset '{name}' has no samples to check (all are tagged "
                         f"'{EXCLUDE_TAG}' or it is empty); import images first")
    skipped = skipped_for(samples.kind, checks)
    checks = tuple(c for c in checks if c not in skipped)
    embeddings = None
    if embed is not None and EMBEDDING_CHECKS & set(checks):
        embeddings = embed(samples.inputs, samples.sha256s)
    results = detect(samples, checks, embeddings=embeddings, thresholds=thresholds or {},
                     min_per_class=min_per_class, progress=progress)
    honour_reviews(results, samples.kept)
    fields.write_results(dataset, samples.ids, [r for r in results if r.name != "balance"])
    views = fields.save_views(dataset, results)
    summary = summarize(name, samples, results, views, options or {})
    summary.skipped = skipped
    summary.warnings = changed_warning(samples.changed) + gone_warning(samples.gone)
    fields.record_summary(dataset, {"time": summary.time, "options": summary.options,
                                    "checked": summary.checked, "excluded": summary.excluded,
                                    "counts": {k: v["count"] for k, v in summary.checks.items()}})
    return summary, results, samples


def changed_warning(changed: list[str]) -> list[str]:
    if not changed:
        return []
    from shotlab.core.changed_files import changed_summary

    now = "it is" if len(changed) == 1 else "they are"
    return [f"{changed_summary(changed)}: measured as {now} now, and the dataset's sha256 "
            f"updated"]


def gone_warning(gone: list[str]) -> list[str]:
    """Files deleted since import: their figures come from the caches (measured before), and
    the report and views would send a reviewer to a missing image."""
    from shotlab.core.output import plural

    if not gone:
        return []
    one = len(gone) == 1
    return [f"{plural(len(gone), 'file')} gone since import (first: {gone[0]}): "
            f"{'its' if one else 'their'} results come from what was measured before where "
            f"the caches hold it, else {'it is' if one else 'they are'} listed as unreadable; "
            f"restore {'it' if one else 'them'}, or tag {'it' if one else 'them'} "
            f"'{EXCLUDE_TAG}' and run `shotlab curate apply`"]


def summarize(name: str, samples: Samples, results: list[CheckResult], views: list[str],
              options: dict) -> CheckSummary:
    summary = CheckSummary(name, samples.task, len(samples.ids), samples.excluded,
                           datetime.now(timezone.utc).isoformat(timespec="seconds"), options,
                           views=views)
    for result in results:
        worst = result.worst(TOP)
        summary.checks[result.name] = {
            "count": result.count, "top": [samples.paths[i] for i in worst],
            "notes": result.notes, "details": result.details,
            **({"top_texts": [samples.texts[i] for i in worst]} if samples.texts else {}),
            **({"top_names": [samples.names[i] for i in worst]} if samples.names else {})}
    return summary
