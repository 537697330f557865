"""Latency and throughput of runners, measured side by side: interleaved repeats, medians.

Interleaving (A, B, A, B, ...) spreads the noise of a shared machine evenly over the runners
compared, so their ratio means something even when the absolute numbers move.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

BATCH_SIZES = (1, 32)
REPEATS = 5  # timed rounds per runner and batch size; the median is reported
WARMUP = 2  # untimed calls first: lazy allocation, ORT's first-run graph work


def time_call(runner, batch: np.ndarray) -> float:
    start = time.perf_counter()
    runner(batch)
    return time.perf_counter() - start


def compare(runners: dict, sample: np.ndarray, *, batch_sizes=BATCH_SIZES, repeats=REPEATS,
            warmup=WARMUP, calls: int = 1) -> dict:
    """{batch: {runner: {median_ms, images_per_s, runs_ms}}} for `sample`-shaped batches.

    Each timed round calls a runner `calls` times on one batch (more calls average out the
    timer's resolution at batch 1). Batches are `sample` rows repeated to the batch size.
    """
    results = {}
    for size in batch_sizes:
        batch = repeated(sample, size)
        for runner in runners.values():
            for _ in range(warmup):
                runner(batch)
        times = {name: [] for name in runners}
        for _ in range(repeats):
            for name, runner in runners.items():
                times[name].append(sum(time_call(runner, batch) for _ in range(calls)) / calls)
        results[size] = {name: summary(values, size) for name, values in times.items()}
    return results


def repeated(sample, size: int):
    """`sample`'s rows repeated to `size` rows (each part's, for a dict of parts)."""
    if isinstance(sample, dict):
        return {name: repeated(part, size) for name, part in sample.items()}
    return np.ascontiguousarray(np.resize(sample, (size, *sample.shape[1:])))


def summary(seconds: list[float], batch: int) -> dict:
    median = statistics.median(seconds)
    return {"median_ms": median * 1000, "images_per_s": batch / median if median else None,
            "runs_ms": [s * 1000 for s in seconds]}


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
