"""Label-error detection on real images: Fashion-MNIST with labels flipped at random.

    .venv/bin/python benchmarks/label_errors.py [--per-class 50] [--repeats 3] [--backbone lite0]

Takes `--per-class` images of each of the 10 classes from Debian's Fashion-MNIST training file,
embeds them with the backbone (shotlab's cached extractor), flips 10% and 20% of the labels to
another class at random (seeded, `--repeats` draws each), and runs the label check
(`find_label_issues`, as `shotlab curate check` runs it). Precision, recall and F1 of the
flagged set and AUROC of `label_score` against the flipped indices; the time of the check itself
(embeddings are timed apart: they are cached between runs).
A grid over the logistic regression's penalty alpha and cleanlab's `filter_by` on the plain
out-of-fold probabilities (no neighbour score) shows what each filter does on this set. The
check's settings were chosen on three sets (`label_check_grid.py`), not on this grid; the second
draw of images is one they were not chosen on. Target of the first issue: F1 >= 0.80 at 20%.
Writes results/label_errors.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
RESULTS = Path(__file__).parent / "results"
NOISE = (0.1, 0.2)
GRID_ALPHA = (0.03, 0.3, 1.0, 3.0)  # sklearn's C = 1 / (alpha * n_train)
FILTERS = ("prune_by_noise_rate", "both", "confident_learning", "predicted_neq_given",
           "low_normalized_margin", "low_self_confidence")


def fashion_mnist():
    """datasets/fashion_mnist.py, by path: the name `datasets` is taken by Hugging Face's package."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "datasets" / "fashion_mnist.py"
    spec = importlib.util.spec_from_file_location("shotlab_fashion_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_subset(folder: Path, per_class: int, seed: int):
    """PNG files of `per_class` training images per class; returns paths, sha256s, labels."""
    from PIL import Image

    from shotlab.core.images import sha256_file

    load, pick = fashion_mnist().load, fashion_mnist().pick

    images, labels = load("train")
    chosen = pick(labels, per_class, np.random.default_rng(seed))
    paths = []
    for i in chosen:
        path = folder / f"{i:05d}.png"
        Image.fromarray(images[i], mode="L").save(path)
        paths.append(str(path))
    return paths, [sha256_file(Path(p)) for p in paths], labels[chosen].astype(int)


def flip(labels: np.ndarray, rate: float, rng, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Labels with round(rate * n) of them moved to another class; and the flipped mask."""
    noisy = labels.copy()
    flipped = np.zeros(len(labels), bool)
    picked = rng.choice(len(labels), round(rate * len(labels)), replace=False)
    for i in picked:
        noisy[i] = rng.choice([c for c in range(classes) if c != labels[i]])
    flipped[picked] = True
    return noisy, flipped


def scores(truth: np.ndarray, flagged: np.ndarray, severity: np.ndarray) -> dict:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    return {"precision": float(precision_score(truth, flagged, zero_division=0)),
            "recall": float(recall_score(truth, flagged)),
            "f1": float(f1_score(truth, flagged)), "auroc": float(roc_auc_score(truth, severity)),
            "flagged": int(flagged.sum())}


def grid(features, noisy, truth, seed: int) -> tuple[list[dict], dict]:
    """Every (alpha, filter_by) pair on shared out-of-fold probabilities (without the neighbour
    score); and the check's own row, `find_label_issues` as `curate check` runs it, timed."""
    import cleanlab.filter
    import cleanlab.rank

    from shotlab.curate.checks.label import find_label_issues, fold_count, out_of_fold_probs

    rows = []
    for alpha in GRID_ALPHA:
        probs = out_of_fold_probs(features, noisy, folds=fold_count(np.bincount(noisy)), alpha=alpha,
                                  seed=seed)
        severity = 1 - cleanlab.rank.get_label_quality_scores(noisy, probs)
        for filter_by in FILTERS:
            flagged = np.zeros(len(noisy), bool)
            flagged[cleanlab.filter.find_label_issues(noisy, probs, filter_by=filter_by)] = True
            rows.append({"alpha": alpha, "filter_by": filter_by, **scores(truth, flagged, severity)})
    start = time.perf_counter()
    check = find_label_issues([str(v) for v in noisy], features, seed=seed)
    seconds = time.perf_counter() - start
    return rows, {"seconds": seconds, **scores(truth, check.issues, check.scores)}


def mean_rows(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    metrics = ("precision", "recall", "f1", "auroc", "seconds")
    return [{**dict(zip(keys, key)), "runs": len(g),
             **{m: round(statistics.mean(r[m] for r in g), 3) for m in metrics if m in g[0]},
             **({"f1_min": round(min(r["f1"] for r in g), 3)} if "f1" in g[0] else {})}
            for key, g in groups.items()]


def default_rows_for(features, labels, repeats: int) -> tuple[list[dict], list[dict]]:
    """The default's row and the grid's rows for each noise rate and repeat."""
    default_rows, grid_rows = [], []
    for rate in NOISE:
        for repeat in range(repeats):
            rng = np.random.default_rng(1000 * repeat + int(rate * 100))
            noisy, truth = flip(labels, rate, rng)
            rows, default = grid(features, noisy, truth, repeat)
            default_rows.append({"noise": rate, "repeat": repeat, **default})
            grid_rows += [{"noise": rate, "repeat": repeat, **row} for row in rows]
            print(f"noise {rate:.0%} repeat {repeat}: {default_rows[-1]}", flush=True)
    return default_rows, grid_rows


def embed_subset(args, seed: int):
    from shotlab.train.backbones import create_model
    from shotlab.train.embeddings import extract

    with tempfile.TemporaryDirectory(prefix="shotlab-bench-fm-") as tmp:
        paths, sha256s, labels = write_subset(Path(tmp), args.per_class, seed)
        start = time.perf_counter()
        features = extract(create_model(args.backbone, num_classes=0), paths, sha256s,
                           progress=False, use_cache=False)  # timed as a first run
    return features, labels, time.perf_counter() - start


def run(args) -> dict:
    from benchmarks.common import machine
    from shotlab.core import workspace

    workspace.activate(args.workspace)
    from shotlab.curate.checks.label import (DEFAULT_ALPHA, DEFAULT_FILTER, FLAG_SHARE,
                                             KNN_WEIGHT)

    features, labels, embed_seconds = embed_subset(args, args.seed)
    default_rows, grid_rows = default_rows_for(features, labels, args.repeats)
    # The default was picked on the grid above: check it on other images it was not tuned on.
    features, labels, _ = embed_subset(args, args.holdout_seed)
    holdout_rows, _ = default_rows_for(features, labels, args.repeats)
    return {"benchmark": "label_errors", "backbone": args.backbone, "per_class": args.per_class,
            "images": len(labels), "repeats": args.repeats,
            "default": {"alpha": DEFAULT_ALPHA, "filter_by": DEFAULT_FILTER,
                        "flag_share": FLAG_SHARE, "knn_weight": KNN_WEIGHT},
            "embedding_seconds": round(embed_seconds, 1),
            "summary": mean_rows(default_rows, ("noise",)),
            "holdout_seed": args.holdout_seed,
            "holdout": mean_rows(holdout_rows, ("noise",)),
            "grid": mean_rows(grid_rows, ("noise", "alpha", "filter_by")),
            "runs": default_rows,
            "machine": machine(),
            "load_average_1m": {"end": os.getloadavg()[0]}}


def quality_table(rows: list[dict]) -> list[str]:
    return ["| noise | precision | recall | F1 (min) | AUROC | check time (s) |",
            "|---|---|---|---|---|---|",
            *(f"| {r['noise']:.0%} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} "
              f"({r['f1_min']:.3f}) | {r['auroc']:.3f} | {r['seconds']:.1f} |" for r in rows)]


def markdown(result: dict) -> str:
    from benchmarks.common import busy_note

    lines = [f"# Label-error detection: Fashion-MNIST, {result['images']} images "
             f"({result['per_class']} per class), {result['backbone']} embeddings", "",
             *busy_note(result),
             f"The check's settings (alpha={result['default']['alpha']}, filter_by="
             f"{result['default']['filter_by']}, flag share {result['default']['flag_share']}, "
             f"neighbour weight {result['default']['knn_weight']}), mean of {result['repeats']} "
             f"random flips each. Target: F1 >= 0.80 at 20% noise.", "",
             *quality_table(result["summary"])]
    lines += ["", f"The same settings on another {result['images']} images (seed "
                  f"{result['holdout_seed']}):", "",
              *quality_table(result["holdout"])]
    lines += ["", f"Embedding the {result['images']} images took {result['embedding_seconds']} s "
                  f"(uncached; a re-run reads the cache). The check time is the cross-validation (5 folds x 3 "
                  f"repeats of a logistic regression), the neighbour score and cleanlab.", "",
              "The settings were chosen on three sets by label_check_grid.py (until 2026-12-01 "
              "they were chosen from the grid below, on this set alone). cleanlab's own default filter "
              "(prune_by_noise_rate) also flags samples the classifier itself confuses: at 20% "
              "noise its precision stays near 0.6-0.65. "
              "For reference, the Confident Learning paper reports precision 0.65-0.67 and recall "
              "0.93 at 20% noise on CIFAR-10 with full ResNet-50 cross-validation.", "",
              "## Grid: alpha x filter_by (same out-of-fold probabilities per alpha)", "",
              "| noise | alpha | filter_by | precision | recall | F1 (min) | AUROC |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['noise']:.0%} | {r['alpha']} | {r['filter_by']} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['f1']:.3f} ({r['f1_min']:.3f}) | {r['auroc']:.3f} |"
              for r in result["grid"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from benchmarks.common import positive, seed

    parser.add_argument("--per-class", type=positive, default=50)
    parser.add_argument("--repeats", type=positive, default=3)
    parser.add_argument("--backbone", default="lite0")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--holdout-seed", type=seed, default=1,
                        help="Seed of a second image draw on which the tuned default is checked.")
    parser.add_argument("--workspace", default=os.environ.get("SHOTLAB_BENCH_HOME",
                                                              "/tmp/shotlab-bench-checks"),
                        help="Workspace for the embedding cache [default /tmp/shotlab-bench-checks].")
    args = parser.parse_args()
    result = run(args)
    from benchmarks.common import save_results

    save_results("label_errors", result, markdown(result))


if __name__ == "__main__":
    main()
