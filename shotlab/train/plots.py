"""PNG plots for a training run: confusion matrix, precision-recall curves, learning curves.

    confusion_matrix_png(metrics["confusion_matrix"], names, run_dir / "confusion.png")
    pr_curves_png(y_test, probs_test, names, run_dir / "pr.png", thresholds=policy)
    reliability_png(y_test, {"raw": raw, "calibrated": probs}, names, run_dir / "rel.png")
    learning_curve_png([{"method": "probe", "shots": 5, "mean": 0.71, "std": 0.04}, ...], path)

matplotlib is imported inside each function and drawn through its Agg canvas on a standalone
`Figure`, so nothing touches pyplot's global backend or figure registry: no window, nothing to
leak, safe in servers and notebooks alike. Long class names are shortened in the middle and
figures grow with the class count, so 10-30 classes stay readable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.figures import figure, literal
from shotlab.train.metrics import (calibration_bins, calibration_pairs, check_inputs,
                                   expected_calibration_error, resolve_thresholds)

DPI = 120  # sharp in an HTML report, a few hundred KB at most
NAME_WIDTH = 28  # characters of a class name shown on an axis or in a legend
LINESTYLES = ("-", "--", ":", "-.")  # after the colours run out (more than 20 classes)


def confusion_matrix_png(cm, class_names, path, *, title="Confusion matrix") -> Path:
    """Write a confusion matrix as PNG; returns the path.

    `cm` is k x k counts (rows = true class, as `classification_metrics` returns for multiclass)
    or, for multilabel, {name: [[tn, fp], [fn, tp]]} or a (k, 2, 2) array. Cells are coloured by
    their share of the true class, so small classes show as clearly as large ones, and labelled
    with counts.
    """
    names = [str(n) for n in class_names]
    if isinstance(cm, Mapping):
        missing = [n for n in names if n not in cm]
        if missing:
            raise InputError(f"confusion matrix has no entry for {', '.join(missing)}")
        cm = [cm[n] for n in names]
    counts = np.asarray(cm, dtype=float)
    k = len(names)
    if counts.shape not in ((k, k), (k, 2, 2)) or k == 0:
        raise InputError(f"cm must be {k} x {k} (or {k} x 2 x 2 for multilabel) to match "
                         f"{k} class names; got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or counts.min() < 0:
        raise InputError("cm must hold non-negative counts")
    if counts.ndim == 3:
        fig = _multilabel_confusion_figure(counts, names, title)
    else:
        fig = _confusion_figure(counts, names, title)
    return _save(fig, path)


def _confusion_figure(counts, names, title):
    k = len(names)
    side = min(3.5 + 0.45 * k, 22)
    fig = figure(side + 1.5, side)
    ax = fig.add_subplot()
    share = _row_share(counts)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    if k <= 30:
        _annotate(ax, counts, share, fontsize=max(6, 11 - k // 4))
    labels = [_short(n) for n in names]
    fontsize = 10 if k <= 15 else 8 if k <= 30 else 6
    ax.set_xticks(range(k), labels, rotation=45, ha="right", rotation_mode="anchor",
                  fontsize=fontsize)
    ax.set_yticks(range(k), labels, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(literal(title))
    return fig


def _multilabel_confusion_figure(counts, names, title):
    k = len(names)
    cols = min(k, 5)
    rows = math.ceil(k / cols)
    fig = figure(2.6 * cols, 2.5 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for c, ax in enumerate(axes.flat):
        if c >= k:
            ax.set_axis_off()
            continue
        share = _row_share(counts[c])
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        _annotate(ax, counts[c], share, fontsize=10)
        ax.set_xticks([0, 1], ["pred 0", "pred 1"], fontsize=8)
        ax.set_yticks([0, 1], ["true 0", "true 1"], fontsize=8)
        ax.set_title(_short(names[c], 22), fontsize=10)
    fig.suptitle(literal(title))
    return fig


def _row_share(counts):
    totals = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def _annotate(ax, counts, share, *, fontsize):
    for i, j in np.ndindex(*counts.shape):
        ax.text(j, i, f"{counts[i, j]:g}", ha="center", va="center", fontsize=fontsize,
                color="white" if share[i, j] > 0.5 else "black")


def pr_curves_png(y_true, probs, class_names, path, *, task="multiclass", thresholds=None,
                  title="Precision-recall, one-vs-rest") -> Path:
    """Write one precision-recall curve per class (AP in the legend) as PNG; returns the path.

    `thresholds` ({name: float} or `choose_thresholds`' result) are marked with a dot on their
    class's curve; multilabel marks every class's operating point (0.5 unless given). A class
    without positives is listed in the legend with no curve.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    Y, P, names = check_inputs(y_true, probs, class_names, task=task)
    cut = resolve_thresholds(thresholds, names, task=task)
    fig = figure(9.5, 6)
    ax = fig.add_subplot()
    for c, name in enumerate(names):
        y, s = Y[:, c], P[:, c]
        style = _style(c, len(names))
        if y.sum() == 0:
            ax.plot([], [], label=f"{_short(name)} (no positives)", **style)
            continue
        label = f"{_short(name)}  AP {average_precision_score(y, s):.2f}"
        if not np.isnan(cut[c]):
            label += f", t={cut[c]:.2f}"
            ax.plot(*_operating_point(y, s, cut[c]), marker="o", markersize=7,
                    markeredgecolor="black", linestyle="none", color=style["color"])
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, drawstyle="steps-post", label=label, **style)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.set_title(literal(title) + (" (dots: thresholds)" if not np.all(np.isnan(cut)) else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
              fontsize=9 if len(names) <= 15 else 7, ncol=1 if len(names) <= 20 else 2)
    return _save(fig, path)


def _operating_point(y, s, threshold):
    flagged = s >= threshold
    recall = (flagged & (y == 1)).sum() / y.sum()
    precision = y[flagged].mean() if flagged.any() else 1.0
    return recall, precision


def _style(index, k):
    from matplotlib import colormaps

    colors = colormaps["tab10" if k <= 10 else "tab20"].colors
    return {"color": colors[index % len(colors)],
            "linestyle": LINESTYLES[(index // len(colors)) % len(LINESTYLES)]}


def reliability_png(y_true, scores: Mapping[str, np.ndarray], class_names, path, *,
                    task="multiclass", title="Reliability") -> Path:
    """Write a reliability diagram as PNG: per score bin, the share that was right against the
    mean score, one line per entry of `scores` (e.g. {"raw": p, "calibrated": q}), its ECE in
    the legend; the diagonal is perfect calibration."""
    fig = figure(5.5, 5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for i, (name, probs) in enumerate(scores.items()):
        Y, P, _ = check_inputs(y_true, probs, class_names, task=task)
        conf, hit = calibration_pairs(Y, P, task=task)
        count, score_sum, hit_sum = calibration_bins(np.asarray(conf, float), np.asarray(hit, float))
        used = count > 0
        ece = expected_calibration_error(conf, hit)
        ax.plot(score_sum[used] / count[used], hit_sum[used] / count[used], marker="o",
                label=f"{literal(name)} (ECE {ece:.3f})", **_style(i, len(scores)))
    ax.set_xlabel("mean score in bin" if task == "multilabel" else "confidence (top score)")
    ax.set_ylabel("share positive" if task == "multilabel" else "share correct")
    ax.set(xlim=(0, 1), ylim=(0, 1), title=literal(title))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    return _save(fig, path)


def learning_curve_png(rows, path, *, ylabel="score", title="Learning curve") -> Path:
    """Write mean +/- std against shots, one line per method, as PNG; returns the path.

    `rows` are dicts {method, shots, mean, std} (std may be None for a single run), e.g. one per
    (method, shots) from a benchmark over several seeds. The shots axis is log2 when it spans a
    factor of 4 or more, as few-shot sweeps (1, 2, 5, 10, 20, 50) usually do.
    """
    series = _series(rows)
    fig = figure(8, 5)
    ax = fig.add_subplot()
    for i, (method, (shots, mean, std)) in enumerate(series.items()):
        ax.errorbar(shots, mean, yerr=std, marker="o", capsize=3, label=_short(method, 40),
                    **_style(i, len(series)))
    ticks = sorted({s for shots, _, _ in series.values() for s in shots})
    if ticks[0] > 0 and ticks[-1] / ticks[0] >= 4:
        ax.set_xscale("log", base=2)
    if len(ticks) <= 12:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    ax.set_xlabel("shots (training images per class)")
    ax.set_ylabel(ylabel)
    ax.set_title(literal(title))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=9)
    return _save(fig, path)


def _series(rows) -> dict[str, tuple[list, list, list]]:
    """{method: (shots, mean, std)} sorted by shots, methods in the order they first appear."""
    if isinstance(rows, Mapping) or not rows:
        raise InputError("learning-curve rows must be a non-empty list of dicts "
                         "{method, shots, mean, std}")
    points: dict[str, list] = {}
    for i, row in enumerate(rows):
        missing = [k for k in ("method", "shots", "mean", "std") if not isinstance(row, Mapping)
                   or k not in row]
        if missing:
            raise InputError(f"learning-curve row {i} lacks {', '.join(missing)}; "
                             f"each row needs method, shots, mean, std")
        try:
            point = (float(row["shots"]), float(row["mean"]),
                     0.0 if row["std"] is None else float(row["std"]))
        except (TypeError, ValueError):
            raise InputError(f"learning-curve row {i} needs numbers for shots, mean and std; "
                             f"got {row}") from None
        if not all(math.isfinite(v) for v in point):
            raise InputError(f"learning-curve row {i} has a non-finite value: {row}")
        points.setdefault(str(row["method"]), []).append(point)
    return {m: tuple(map(list, zip(*sorted(p)))) for m, p in points.items()}


def _short(name: str, width: int = NAME_WIDTH) -> str:
    """Keep head and tail: names often differ only at the end ("violence_graphic_real/_drawn");
    drawn as written (`literal`)."""
    if len(name) > width:
        tail = width // 3
        name = name[: width - tail - 1] + "…" + name[-tail:]
    return literal(name)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        fig.clear()  # a standalone Figure is not in pyplot's registry; clearing frees it now
    return path
