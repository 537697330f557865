"""From frame scores to one clip's scores, segments and early exit: the clip contract's rules.

    contract = ClipContract.resolve(bundle.manifest.get("clip"), classes, unsafe, ...)
    pooled = contract.pool(frame_probs)                 # (K,) one score per class
    segments(timestamps, frame_probs, classes, thresholds)
    contract.clear_flag(frame_probs, thresholds)        # early exit: a flag more frames cannot undo

Aggregation is per class, over the sampled frames (F, K):
    mean      the average: scene and object tags, present through most of a clip
    max       the highest frame: unsafe classes, where one clear frame is enough to flag
    topk:K    the mean of the K highest frames: a flag needs K frames, so one odd frame is not one

Only `max` and `topk` are monotone (more frames can only raise them), so only they can stop
decoding early: `clear_flag` says when an unsafe class has crossed its threshold by `margin`
and no later frame can undo the flag. The decision itself is `runtime/decide.py`'s rule applied
to the pooled row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from shotlab.core.errors import InputError

DEFAULT_SAMPLING = "uniform:8"  # 8 frames: the rate commercial moderation APIs cap a short clip at
DEFAULT_TAG_RULE = "mean"
DEFAULT_UNSAFE_RULE = "max"  # "flag a clip if any sampled frame is flagged", as those APIs do
# How far over its threshold a max- or topk-pooled unsafe score must be before --early-exit stops
# decoding: a flag that clear does not move with the few remaining frames' noise.
DEFAULT_MARGIN = 0.1
RULES = "mean, max or topk:K (e.g. topk:3)"


def parse_rule(text: str) -> tuple[str, int]:
    """'mean' -> ('mean', 0), 'max' -> ('max', 1), 'topk:3' -> ('topk', 3)."""
    name, _, number = str(text).strip().partition(":")
    if name in ("mean", "max") and not number:
        return name, 1 if name == "max" else 0
    if name == "topk" and number.isdigit() and int(number) >= 1:
        return "topk", int(number)
    raise InputError(f"aggregation {text!r} is not one shotlab knows; use {RULES}")


def pool_column(scores: np.ndarray, rule: str) -> float:
    """One class's clip score from its frame scores under `rule`."""
    name, k = parse_rule(rule)
    if name == "mean":
        return float(np.mean(scores))
    top = np.sort(scores)[::-1][:k]
    return float(top.mean())


@dataclass(frozen=True)
class ClipContract:
    """What a bundle says about clips: how to sample and how to pool each class."""

    sampling: str = DEFAULT_SAMPLING
    aggregation: Mapping[str, str] = field(default_factory=dict)  # class -> rule, every class
    margin: float = DEFAULT_MARGIN

    @classmethod
    def resolve(cls, saved: Mapping | None, classes, unsafe, *, sampling: str | None = None,
                rules: Mapping[str, str] | None = None, margin: float | None = None
                ) -> "ClipContract":
        """The bundle's clip contract (`saved`, may be None for an image bundle), with the
        caller's settings over it; classes without a rule get `max` if unsafe, else `mean`."""
        from shotlab.core.clips import Sampling

        saved = dict(saved or {})
        own, asked = dict(saved.get("aggregation") or {}), dict(rules or {})
        default = asked.pop("*", None)
        if default is None:
            default = own.pop("*", None)
        else:  # the caller's bare rule replaces the bundle's for every class it does not name
            own = {}
        given = {**own, **asked}
        unknown = sorted(set(given) - set(classes))
        if unknown:
            raise InputError(f"aggregation names unknown classes {unknown}; classes: "
                             f"{', '.join(classes)}")
        aggregation = {c: given.get(c) or default or
                       (DEFAULT_UNSAFE_RULE if c in set(unsafe) else DEFAULT_TAG_RULE)
                       for c in classes}
        for rule in aggregation.values():
            parse_rule(rule)
        chosen = sampling or saved.get("sampling") or DEFAULT_SAMPLING
        Sampling.parse(chosen)  # refused here, before any clip is opened
        return cls(chosen, aggregation, float(margin if margin is not None
                                               else saved.get("margin", DEFAULT_MARGIN)))

    def to_dict(self) -> dict:
        return {"sampling": self.sampling, "aggregation": dict(self.aggregation),
                "margin": self.margin}

    def pool(self, frame_probs: np.ndarray) -> np.ndarray:
        """(F, K) frame scores -> (K,) clip scores, column by column under each class's rule."""
        P = np.asarray(frame_probs, dtype=float)
        if P.ndim != 2 or P.shape[0] == 0 or P.shape[1] != len(self.aggregation):
            raise InputError(f"frame scores must be (frames >= 1, {len(self.aggregation)}); "
                             f"got shape {P.shape}")
        return np.array([pool_column(P[:, k], rule)
                         for k, rule in enumerate(self.aggregation.values())])

    def clear_flag(self, frame_probs: np.ndarray, thresholds: Mapping) -> str | None:
        """The first unsafe class whose pooled score so far is over its threshold by the margin
        under a monotone rule (max, topk with K frames seen): no later frame can lower it."""
        P = np.asarray(frame_probs, dtype=float)
        classes = list(self.aggregation)
        for name, entry in thresholds.items():
            rule, k = parse_rule(self.aggregation[name])
            if rule == "mean" or len(P) < k:
                continue
            cut = float(entry["threshold"] if isinstance(entry, Mapping) else entry)
            if pool_column(P[:, classes.index(name)], self.aggregation[name]) >= cut + self.margin:
                return name
        return None


def segments(timestamps, frame_probs, classes, thresholds: Mapping, *,
             end: float | None = None, last_seen=None) -> list[dict]:
    """Per unsafe class, the runs of consecutive sampled frames at or over its review band's low
    end (or its threshold when it has no band), merged while adjacent: {class, start, end, peak,
    flagged}. `flagged` says whether any frame of the run reaches the threshold itself. A run
    spans from halfway to the sample before it to halfway to the sample after it (the first
    sample starts its own): the seconds between samples belong to the nearer one, so a run of
    one sample is still a stretch a reviewer can watch, not a zero-length instant. `end` is
    where the last sample's stretch ends: the clip's end when every sample was scored, halfway
    to the next planned sample after an early exit (None: at the last sample itself).
    `last_seen[i]`: the last sampled time at which scored frame i was still on screen, where
    near-identical repeats after it were dropped unscored (default: its own time); a run's
    stretch reaches from halfway after the previous frame's last repeat to halfway after its
    own last frame's, so a still shot sampled several times is covered to its end."""
    P = np.asarray(frame_probs, dtype=float)
    times = [float(t) for t in timestamps]
    seen = times if last_seen is None else [float(t) for t in last_seen]
    found = []
    for name, entry in thresholds.items():
        column = P[:, list(classes).index(name)]
        cut = float(entry["threshold"] if isinstance(entry, Mapping) else entry)
        band = entry.get("review_band") if isinstance(entry, Mapping) else None
        low = min(cut, float(band[0])) if band else cut
        run: list[int] = []
        for i in range(len(times) + 1):
            if i < len(times) and column[i] >= low:
                run.append(i)
                continue
            if run:
                first, last = run[0], run[-1]
                start = (seen[first - 1] + times[first]) / 2 if first > 0 else times[first]
                if last + 1 < len(times):
                    end_of_run = (seen[last] + times[last + 1]) / 2
                else:
                    end_of_run = seen[last] if end is None else max(seen[last], end)
                found.append({"class": name, "start": round(start, 3),
                              "end": round(end_of_run, 3),
                              "peak": round(float(column[run].max()), 4),
                              "flagged": bool(column[run].max() >= cut)})
            run = []
    return sorted(found, key=lambda s: (s["start"], s["class"]))
