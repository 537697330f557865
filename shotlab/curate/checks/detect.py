"""Which detectors a check name runs, and with which arrays."""

from __future__ import annotations

import numpy as np

from shotlab.curate.checks.base import CheckResult

# --threshold names of the duplicate check -> (find_duplicates parameter, type)
DUPLICATE_THRESHOLDS = {"phash_distance": ("max_distance", int), "cosine": ("min_cosine", float)}
# The values each duplicate threshold can take: bits of a 64-bit pHash, a cosine similarity.
DUPLICATE_RANGES = {"phash_distance": (0, 64), "cosine": (-1.0, 1.0)}


def threshold_names() -> tuple[str, ...]:
    return tuple(threshold_ranges())


def threshold_ranges() -> dict[str, tuple[float, float, type]]:
    """--threshold name -> (lowest, highest, int or float): the values its measure can take."""
    from shotlab.curate.checks.quality import RULES

    return ({r.name: (*r.valid, float) for r in RULES}
            | {k: (*DUPLICATE_RANGES[k], cast) for k, (_, cast) in DUPLICATE_THRESHOLDS.items()})


def detect(samples, checks, *, embeddings: np.ndarray | None, thresholds: dict[str, float],
           min_per_class: int | None, progress: bool | None) -> list[CheckResult]:
    """Run the detectors for `checks` on `samples` (a run.Samples); results in a stable order."""
    from shotlab.curate.checks import image_stats, stats_cache
    from shotlab.curate.checks.duplicates import find_duplicates
    from shotlab.curate.checks.leakage import find_leakage
    from shotlab.curate.checks.registry import PIXELS
    from shotlab.curate.duplicates import DEFAULT_MIN_COSINE

    checks = set(checks)
    results: list[CheckResult] = []
    stats = None
    if checks & {"quality", "duplicates", "leakage"} and samples.kind in PIXELS:
        # Cached by the store's sha256: a re-check decodes only new or changed images.
        stats = image_stats.image_stats(samples.paths, sha256s=samples.sha256s,
                                        cache=stats_cache.default_path(), progress=progress)
    duplicate = None
    if checks & {"duplicates", "leakage"}:
        duplicate, conflicting = find_duplicates(
            samples.sha256s, samples.labels, phashes=stats.phashes if stats else None,
            embeddings=embeddings, multilabel=samples.task == "multilabel",
            **{"min_cosine": DEFAULT_MIN_COSINE[samples.kind]} | {
                param: cast(thresholds[key]) for key, (param, cast) in DUPLICATE_THRESHOLDS.items()
                if key in thresholds})
    if "label" in checks:
        results.append(label_result(samples, embeddings, held_together(samples, duplicate)))
    if duplicate is not None:
        if "duplicates" in checks:
            results += [duplicate, conflicting]
        if "leakage" in checks:
            results.append(find_leakage(duplicate.fields["duplicate_cluster"], samples.splits,
                                        np.nan_to_num(duplicate.scores)))
    if "quality" in checks:
        results += quality_results(stats, thresholds, samples.paths)
    datalab = [t for t in ("outlier", "near_duplicate", "non_iid") if t in checks]
    if datalab:
        from shotlab.curate.checks.datalab_issues import find_datalab_issues

        results += find_datalab_issues(embeddings, types=datalab)
    if "balance" in checks:
        from shotlab.curate.checks.balance import find_balance_issues

        results.append(find_balance_issues(samples.labels, kind=samples.kind, **(
            {"min_per_class": min_per_class} if min_per_class else {})))
    return results


def held_together(samples, duplicate: CheckResult | None) -> np.ndarray | None:
    """The groups the label check holds out whole (core/groups.py): byte copies, this run's
    duplicate clusters (else the stored ones), a frame's clip, a comment's thread; None when
    every sample is alone."""
    from shotlab.core.groups import group_ids

    keys = {**samples.bound, "sha256": samples.sha256s}
    if duplicate is not None:
        keys["duplicate_cluster"] = duplicate.fields["duplicate_cluster"]
    groups = np.array(group_ids(*keys.values()))
    return groups if len(np.unique(groups)) < len(groups) else None


def label_result(samples, embeddings, groups: np.ndarray | None) -> CheckResult:
    if samples.task == "multilabel":
        from shotlab.curate.checks.label_multilabel import find_multilabel_issues

        return find_multilabel_issues(samples.labels, embeddings, groups=groups)
    from shotlab.curate.checks.label import find_label_issues

    return find_label_issues([ls[0] if ls else None for ls in samples.labels], embeddings,
                             groups=groups)


def quality_results(stats, thresholds: dict[str, float], paths: list[str]) -> list[CheckResult]:
    from shotlab.curate.checks.quality import find_quality_issues

    quality = {k: v for k, v in thresholds.items() if k not in DUPLICATE_THRESHOLDS}
    results = find_quality_issues(stats, thresholds=quality)
    results[0].notes += [f"unreadable: {paths[i]}: {reason}"
                         for i, reason in stats.unreadable.items()]
    results[0].details.pop("unreadable", None)
    return results
