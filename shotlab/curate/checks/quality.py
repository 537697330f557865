"""Image quality, the CleanVision issue types: blurry, dark, bright, low information, odd size,
odd aspect ratio, and grayscale images in a colour set.

Each rule measures one number per image. Its cut adapts to the dataset: the median moved by
`ROBUST_Z` robust standard deviations (1.4826 x the median absolute deviation) in the bad
direction, then clipped into the rule's absolute bounds, so a uniformly dark set of night shots
is not all flagged dark, and a real problem is flagged even when half the set has it. Any cut can
be overridden (`--threshold dark=0.1`). Each type writes `<type>_score` (the image's rank in the
bad direction, 1.0 = the dataset's worst) and `is_<type>_issue`; the summary `quality` check
writes `quality_score` (the worst score among the flagged types), `is_quality_issue` and
`quality_issues` (the flagged types' names).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shotlab.core.errors import InputError
from shotlab.curate.checks.base import CheckResult, percentile_rank
from shotlab.curate.checks.image_stats import GRAY_TOLERANCE, ImageStats

NAME = "quality"
# 3 robust SDs: about 1 image in 700 of a normal distribution is past it by chance.
ROBUST_Z = 3.0
# A grayscale image is only odd where colour is the rule: at least this share of the set is colour
# (line art in a clip-art set is common, and then not an issue).
COLOUR_SET_SHARE = 0.9


@dataclass(frozen=True)
class Rule:
    name: str
    measure: str  # what `value` computes, for the docs and the report
    high_is_bad: bool
    bounds: tuple[float, float]  # the adaptive cut is clipped into [low, high]
    valid: tuple[float, float]  # the values the measure can take: a --threshold must lie in them

    def value(self, stats: ImageStats) -> np.ndarray:
        v = stats.values
        return {"blurry": lambda: np.log10(v["sharpness"] + 1e-6),
                "dark": lambda: v["brightness"],
                "bright": lambda: v["brightness"],
                "low_information": lambda: v["entropy"],
                "odd_size": lambda: np.abs(np.log(v["width"] * v["height"])
                                           - np.nanmedian(np.log(v["width"] * v["height"]))),
                "odd_aspect_ratio": lambda: np.abs(np.log(v["width"] / v["height"])),
                }[self.name]()

    def cut(self, values: np.ndarray) -> float:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return self.bounds[1] if self.high_is_bad else self.bounds[0]
        median = float(np.median(finite))
        spread = 1.4826 * float(np.median(np.abs(finite - median)))
        raw = median + ROBUST_Z * spread if self.high_is_bad else median - ROBUST_Z * spread
        return float(np.clip(raw, *self.bounds))


INF = float("inf")
RULES = (
    # log10(Laplacian variance / grey variance) at <= 256 px: sharp photos and clip art sit
    # between -0.9 and 0.8 (datasets/sample), a 4-pixel Gaussian blur drops to about -2.5.
    # Possible values: -6 (a flat image, the 1e-6 floor) to log10(64) (a 1-pixel checkerboard).
    Rule("blurry", "log10(Laplacian variance / grey variance)", False, (-2.0, -1.0), (-6.0, 2.0)),
    # Mean luminance 0-1: never call an image with mean above 0.25 dark, always call one below 0.06.
    Rule("dark", "mean luminance (0-1)", False, (0.06, 0.25), (0.0, 1.0)),
    Rule("bright", "mean luminance (0-1)", True, (0.85, 0.97), (0.0, 1.0)),
    # Grey-histogram entropy in bits (0-8): a blank or near-blank image has under 1-2 bits.
    Rule("low_information", "grey-level entropy (bits)", False, (1.0, 3.0), (0.0, 8.0)),
    # |log(area / median area)|: 16x smaller or larger than usual is always odd, 2x never.
    Rule("odd_size", "|log(pixels / median pixels)|", True, (float(np.log(2)), float(np.log(16))),
         (0.0, INF)),
    # |log(width / height)|: 3:1 and wider is always odd, 1.5:1 never.
    Rule("odd_aspect_ratio", "|log(width / height)|", True, (float(np.log(1.5)), float(np.log(3))),
         (0.0, INF)),
)
TYPES = tuple(r.name for r in RULES) + ("grayscale",)


def parse_thresholds(pairs: dict[str, float], known: tuple[str, ...]) -> dict[str, float]:
    unknown = sorted(set(pairs) - set(known))
    if unknown:
        raise InputError(f"--threshold {unknown[0]}=...: unknown threshold; known: "
                         f"{', '.join(known)}")
    return pairs


def rule_result(rule: Rule, stats: ImageStats, override: float | None) -> CheckResult:
    values = rule.value(stats)
    cut = rule.cut(values) if override is None else float(override)
    finite = np.isfinite(values)
    issues = finite & ((values > cut) if rule.high_is_bad else (values < cut))
    filled = np.where(finite, values, np.nanmedian(values) if finite.any() else 0.0)
    scores = np.where(finite, percentile_rank(filled, higher_is_worse=rule.high_is_bad), np.nan)
    return CheckResult(rule.name, scores, issues,
                       details={"cut": round(cut, 4), "measure": rule.measure,
                                "adaptive": override is None})


def grayscale_result(stats: ImageStats) -> CheckResult:
    colour = stats.values["colourfulness"]
    finite = np.isfinite(colour)
    gray = finite & (colour < GRAY_TOLERANCE)
    colour_share = float((finite & ~gray).sum() / max(1, finite.sum()))
    issues = gray if colour_share >= COLOUR_SET_SHARE else np.zeros(len(colour), bool)
    scores = np.where(finite, 1.0 - np.clip(colour / GRAY_TOLERANCE, 0, 1), np.nan)
    return CheckResult("grayscale", scores, issues,
                       details={"colour_share": round(colour_share, 3)})


def find_quality_issues(stats: ImageStats, *,
                        thresholds: dict[str, float] | None = None) -> list[CheckResult]:
    """The summary `quality` result first, then one result per issue type."""
    thresholds = parse_thresholds(dict(thresholds or {}), tuple(r.name for r in RULES))
    parts = [rule_result(r, stats, thresholds.get(r.name)) for r in RULES]
    parts.append(grayscale_result(stats))
    n = len(parts[0].issues)
    unreadable = np.zeros(n, bool)
    unreadable[list(stats.unreadable)] = True
    flagged = np.stack([p.issues for p in parts] + [unreadable], axis=1)
    names = [p.name for p in parts] + ["unreadable"]
    worst = np.stack([np.where(p.issues, np.nan_to_num(p.scores), 0.0) for p in parts], 1).max(1)
    scores = np.where(unreadable, 1.0, worst)
    issue_names = [[nm for nm, f in zip(names, row) if f] for row in flagged]
    summary = CheckResult(NAME, scores, flagged.any(1),
                          {"quality_issues": [ls or None for ls in issue_names]},
                          details={p.name: {**p.details, "count": p.count} for p in parts}
                          | {"unreadable": {str(i): r for i, r in stats.unreadable.items()}})
    return [summary, *parts]
