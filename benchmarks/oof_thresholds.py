"""Unsafe-class thresholds on few-shot data: what they are read off, and by which rule.

    .venv/bin/python benchmarks/oof_thresholds.py [--repeats 20] [--workspace DIR]

Fashion-MNIST (Debian's dataset-fashion-mnist), lite0 embeddings (shotlab's cached extractor),
the linear run's head recipe on them (`finetune.logistic_head` on centred, scaled embeddings:
the probe a linear run starts from), temperature scaling (`train.calibration`) and
`train.thresholds`, as a run uses them. Each repeat draws 10 train and 10 validation images per
class (seeded) from a fixed pool and treats one class as unsafe at target recall 0.95:

- **val alone**: the model learns on train; its temperature and the threshold come from the
  10 validation positives (what `shotlab train` did before, and still does for runs whose
  features learn);
- **train folds + val**: `train.threshold_scores.pooled_scores`, what a linear run does now:
  the train images scored out of fold (5 folds of the train split, their own temperature)
  pooled with the model's calibrated validation scores: 20 positives;
- **out-of-fold, model on both**: the alternative not built: 5-fold cross-validation over
  train + validation, and the deployed model learns on both (a run keeps val for early stopping
  and calibration, so it cannot).

Each with the conformal rule (`highest_threshold`: target x (n + 1) positives flagged, now) and
the empirical one (target x n, before). All are measured on the same held-out test images
(100 per class from the test file): the recall the threshold reaches on the unsafe class, the
share of repeats that reach the target, and the flag rate (the share of all test images over the
threshold: the review load), with 5th-95th percentiles over the repeats. Writes
results/oof_thresholds.{json,md}.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_home, bench_parser, header, save_results, stamp  # noqa: E402
from label_errors import fashion_mnist  # noqa: E402

UNSAFE = ("Shirt", "Sneaker")  # a class the model confuses often, one it rarely confuses
POOL, TEST = 40, 100  # images per class: the pool train/val are drawn from; the test set
TARGET = 0.95
FOLDS = 5


def embed(kind: str, per_class: int, seed: int):
    """lite0 embeddings and labels of `per_class` images per class of Fashion-MNIST's `kind`."""
    from PIL import Image

    from shotlab.core.images import sha256_file
    from shotlab.train.backbones import create_model
    from shotlab.train.embeddings import extract

    fm = fashion_mnist()
    images, labels = fm.load(kind)
    chosen = fm.pick(labels, per_class, np.random.default_rng(seed))
    with tempfile.TemporaryDirectory(prefix="shotlab-bench-oof-") as tmp:
        paths = []
        for i in chosen:
            paths.append(str(Path(tmp) / f"{kind}-{i:05d}.png"))
            Image.fromarray(images[i], mode="L").save(paths[-1])
        features = extract(create_model("lite0", num_classes=0), paths,
                           [sha256_file(p) for p in paths], progress=True)
    return features, labels[chosen].astype(int)


def fit_probe(x, y):
    """The linear run's starting head on `x`: (predict_proba on new features)."""
    from scipy.special import softmax

    from shotlab.train.finetune import logistic_head
    from shotlab.train.threshold_scores import standardised

    weight, bias = logistic_head(standardised(x)[0], y, "multiclass", 10)
    return lambda new: softmax(standardised(x, new)[1] @ weight.T + bias, axis=1)


def empirical_cut(positives, target: float) -> float:
    """The rule before: the highest t flagging target x n of the n positives."""
    s = np.sort(positives)
    at_or_above = s.size - np.searchsorted(s, s, side="left")
    return float(s[at_or_above / s.size >= target].max())


def cuts(y, scores, unsafe: int) -> dict:
    """{rule: threshold} on calibrated `scores` of labels `y`, each lowered into the gap below it
    as a run's thresholds are (`below_noise`: 0.001, or halfway to the next lower score)."""
    from shotlab.train.thresholds import below_noise, highest_threshold

    positives, column = scores[y == unsafe, unsafe], scores[:, unsafe]
    return {"conformal": below_noise(highest_threshold(positives, TARGET), column),
            "empirical": below_noise(empirical_cut(positives, TARGET), column)}


def on_test(scores: np.ndarray, y_test, threshold: float) -> dict:
    flagged = scores >= threshold
    return {"threshold": threshold, "recall": float(flagged[y_test == 1].mean()),
            "flag_rate": float(flagged.mean())}


def scored(x_pool, y_pool, x_test, train, val, seed: int) -> dict:
    """{method: (labels, calibrated scores the threshold is read off, calibrated test scores)}."""
    from sklearn.model_selection import StratifiedKFold

    from shotlab.train.calibration import apply, fit_calibration
    from shotlab.train.threshold_scores import pooled_scores

    def calibrated(y_fit, p_fit, *others):
        record = fit_calibration(y_fit, p_fit, task="multiclass")
        return [apply(p, record, "multiclass") for p in (p_fit, *others)]

    model = fit_probe(x_pool[train], y_pool[train])
    y = {"train": y_pool[train], "val": y_pool[val]}
    val_scores, test_scores = calibrated(y["val"], model(x_pool[val]), model(x_test))
    labels, pooled, _ = pooled_scores(x_pool[train], y, {"val": val_scores}, task="multiclass",
                                      seed=seed)
    both = np.asarray(list(train) + list(val))
    oof = np.zeros((len(both), 10))
    for fit, held in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(
            x_pool[both], y_pool[both]):
        oof[held] = fit_probe(x_pool[both][fit], y_pool[both][fit])(x_pool[both][held])
    oof_scores, oof_test = calibrated(y_pool[both], oof, fit_probe(x_pool[both],
                                                                   y_pool[both])(x_test))
    return {"val alone": (y["val"], val_scores, test_scores),
            "train folds + val": (labels, pooled, test_scores),
            "out-of-fold, model on both": (y_pool[both], oof_scores, oof_test)}


def one_repeat(pool, test, names, seed: int) -> dict:
    """{unsafe class: {method (rule): test figures}} for one draw of train and validation
    images (the models do not depend on which class is unsafe: fitted once per draw)."""
    (x_pool, y_pool), (x_test, y_test) = pool, test
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(y_pool == c))
        train += list(members[:10])
        val += list(members[10:20])
    methods = scored(x_pool, y_pool, x_test, train, val, seed)
    found = {}
    for unsafe in UNSAFE:
        index = names.index(unsafe)
        found[unsafe] = {f"{method} ({rule})": on_test(test_scores[:, index], y_test == index, t)
                         for method, (labels, scores, test_scores) in methods.items()
                         for rule, t in cuts(labels, scores, index).items()}
    return found


def summary(rows: list[dict]) -> dict:
    def spread(key):
        values = np.asarray([r[key] for r in rows])
        return {"mean": float(values.mean()), "p5": float(np.percentile(values, 5)),
                "p95": float(np.percentile(values, 95))}

    return {"recall": spread("recall"), "flag_rate": spread("flag_rate"),
            "threshold": spread("threshold"),
            "reached": float(statistics.mean(r["recall"] >= TARGET for r in rows))}


def run(args) -> dict:
    load_before = os.getloadavg()[0]
    names = fashion_mnist().CLASSES
    with bench_home(args.workspace, "shotlab-bench-oof-"):
        pool, test = embed("train", POOL, seed=0), embed("test", TEST, seed=1)
    repeats = [one_repeat(pool, test, names, seed) for seed in range(args.repeats)]
    results = {unsafe: {method: {"summary": summary([r[unsafe][method] for r in repeats]),
                                 "repeats": [r[unsafe][method] for r in repeats]}
                        for method in repeats[0][unsafe]}
               for unsafe in UNSAFE}
    return {**stamp(load_before, repeats=args.repeats, pool_per_class=POOL,
                    test_per_class=TEST, target_recall=TARGET), "results": results}


def markdown(result: dict) -> str:
    lines = header("Unsafe-class thresholds: what they are read off, and by which rule "
                   "(Fashion-MNIST)",
                   result, f"; {result['repeats']} repeats")
    lines += [f"Each repeat: 10 train + 10 validation images per class, lite0 embeddings + "
              f"the linear run's logistic head, temperature scaling; target recall {TARGET} on the unsafe "
              f"class; measured on {result['test_per_class']} test images per class. Ranges "
              f"are the 5th-95th percentiles over the repeats.", "",
              "| unsafe class | thresholds from | test recall (mean, p5-p95) | repeats reaching "
              "the target | flag rate (mean, p5-p95) |", "|---|---|---|---|---|"]
    for unsafe, methods in result["results"].items():
        for method, found in methods.items():
            s = found["summary"]
            lines.append(f"| {unsafe} | {method} | {s['recall']['mean']:.3f} "
                         f"({s['recall']['p5']:.2f}-{s['recall']['p95']:.2f}) | "
                         f"{s['reached']:.0%} | {s['flag_rate']['mean']:.3f} "
                         f"({s['flag_rate']['p5']:.2f}-{s['flag_rate']['p95']:.2f}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = bench_parser(__doc__, "its embedding cache")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not fashion_mnist().SOURCE.is_dir():
        sys.exit(f"{fashion_mnist().SOURCE} is missing: apt-get install dataset-fashion-mnist")
    result = run(args)
    save_results("oof_thresholds", result, markdown(result))


if __name__ == "__main__":
    main()
