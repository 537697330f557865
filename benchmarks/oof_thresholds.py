"""Unsafe-class thresholds on few-shot data: from the validation split alone vs out-of-fold.

    .venv/bin/python benchmarks/oof_thresholds.py [--repeats 20] [--workspace DIR]

Fashion-MNIST (Debian's dataset-fashion-mnist), lite0 embeddings (shotlab's cached extractor),
a logistic regression on them (`baselines.make_classifier`, the model `train benchmark` reports),
temperature scaling (`train.calibration`) and `train.thresholds.choose_thresholds`, each as a run
uses them. Each repeat draws 10 train and 10 validation images per class (seeded) from a fixed
pool and treats one class as unsafe at target recall 0.95:

- **validation alone** (what `shotlab train` does): the model learns on train; its temperature
  and the threshold come from the 10 validation positives.
- **out-of-fold**: 5-fold cross-validation over train + validation gives every one of the 20
  images a score from a model that did not see it; the temperature and the threshold come from
  those 20 positives, and the deployed model learns on all 20 per class.

Both are measured on the same held-out test images (100 per class from the test file): the recall
the threshold reaches on the unsafe class, the share of repeats that reach the target, and the
flag rate (the share of all test images over the threshold: the review load), with 5th-95th
percentiles over the repeats. Writes results/oof_thresholds.{json,md}.
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


def make_classifier_fit(x, y):
    from shotlab.train.baselines import make_classifier

    return make_classifier("logreg").fit(x, y)


def out_of_fold(x, y, seed: int):
    from sklearn.model_selection import StratifiedKFold

    probs = np.zeros((len(y), 10))
    for fit, held in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, y):
        probs[held] = make_classifier_fit(x[fit], y[fit]).predict_proba(x[held])
    return probs


def threshold_on(y, probs, unsafe: str, names):
    """(calibration record, {unsafe: threshold record}) read off scores `probs` of labels `y`."""
    from shotlab.train.calibration import apply, fit_calibration
    from shotlab.train.thresholds import choose_thresholds

    record = fit_calibration(y, probs, task="multiclass")
    return record, choose_thresholds(y, apply(probs, record, "multiclass"), names,
                                     unsafe=[unsafe], target_recall=TARGET)[unsafe]


def on_test(probs_test, y_test, record, threshold: dict, index: int) -> dict:
    from shotlab.train.calibration import apply

    scores = apply(probs_test, record, "multiclass")[:, index]
    flagged = scores >= threshold["threshold"]
    return {"threshold": float(threshold["threshold"]),
            "recall": float(flagged[y_test == index].mean()),
            "flag_rate": float(flagged.mean()),
            "reported_lower_bound": threshold.get("recall_lower_bound")}


def one_repeat(pool, test, names, seed: int) -> dict:
    """{unsafe class: {method: test figures}} for one draw of train and validation images (the
    models do not depend on which class is unsafe: fitted once per draw)."""
    (x_pool, y_pool), (x_test, y_test) = pool, test
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(y_pool == c))
        train += list(members[:10])
        val += list(members[10:20])
    both = np.asarray(train + val)
    model = make_classifier_fit(x_pool[train], y_pool[train])
    scored = {"validation alone": (y_pool[val], model.predict_proba(x_pool[val]),
                                   model.predict_proba(x_test)),
              "out-of-fold": (y_pool[both], out_of_fold(x_pool[both], y_pool[both], seed),
                              make_classifier_fit(x_pool[both], y_pool[both])
                              .predict_proba(x_test))}
    found = {}
    for unsafe in UNSAFE:
        found[unsafe] = {}
        for method, (y_cut, probs_cut, probs_test) in scored.items():
            record, cut = threshold_on(y_cut, probs_cut, unsafe, names)
            found[unsafe][method] = on_test(probs_test, y_test, record, cut,
                                            names.index(unsafe))
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
    lines = header("Unsafe-class thresholds: validation alone vs out-of-fold (Fashion-MNIST)",
                   result, f"; {result['repeats']} repeats")
    lines += [f"Each repeat: 10 train + 10 validation images per class, lite0 embeddings + "
              f"logistic regression, temperature scaling; target recall {TARGET} on the unsafe "
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
