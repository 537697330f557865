"""Label efficiency: test accuracy against labels spent, `curate suggest`'s ranking vs random picks.

    .venv/bin/python benchmarks/label_efficiency.py [--pool-per-class 100] [--repeats 3]

Fashion-MNIST from Debian's dataset-fashion-mnist: a pool of `--pool-per-class` training images
per class and 50 test images per class (the separate test file), embedded once with lite0 (the
embeddings `curate suggest` uses). Each repeat starts from one random label per class and adds
`--step` labels per round, chosen by `shotlab.curate.suggest.rank_to_label` (the function the
command calls) or at random from the same pool; after each round a logistic regression on the
labelled embeddings (train's few-shot recipe, the one `curate suggest` uses) is scored on the
test images. Reported: the curves (mean over repeats) and
how many labels suggest needs to reach random's accuracy at its last budget. Target: <= 0.7x.
Writes benchmarks/results/label_efficiency.{json,md}.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from common import bench_home, bench_parser, header, machine, save_results
from label_errors import fashion_mnist

TARGET = 0.7


def write_images(folder, images, idx):
    from PIL import Image

    from shotlab.core.images import sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in idx:
        path = folder / f"{i:05d}.png"
        if not path.exists():
            Image.fromarray(images[i], mode="L").save(path)
        paths.append(str(path))
    return paths, [sha256_file(p) for p in paths]


def embedded_sets(home, per_class: int):
    from shotlab.train.backbones import create_model
    from shotlab.train.embeddings import extract

    fm = fashion_mnist()
    rng = np.random.default_rng(0)
    out = {}
    for kind, n in (("train", per_class), ("test", 50)):
        images, labels = fm.load(kind)
        idx = fm.pick(labels, n, rng)
        paths, sha = write_images(home / kind, images, idx)
        out[kind] = (extract(create_model("lite0", num_classes=0), paths, sha, progress=False),
                     labels[idx])
    return out


def accuracy(x, y, labelled, test) -> float:
    """Test accuracy of train's few-shot logistic regression (centred, L2, C=10) on the labels."""
    from shotlab.train.baselines import make_classifier

    model = make_classifier("logreg").fit(x[labelled], y[labelled])
    return float((model.predict(test[0]) == test[1]).mean())


def curve(x, y, test, strategy: str, seed: int, step: int, rounds: int) -> list[tuple[int, float]]:
    from functools import partial

    from shotlab.curate.suggest import rank_to_label
    from shotlab.train.baselines import make_classifier

    rng = np.random.default_rng(seed)
    labelled = [int(rng.choice(np.flatnonzero(y == c))) for c in np.unique(y)]
    points = [(len(labelled), accuracy(x, y, labelled, test))]
    for _ in range(rounds):
        pool = np.setdiff1d(np.arange(len(y)), labelled)
        if strategy == "random":
            new = rng.choice(pool, step, replace=False).tolist()
        else:
            picked = rank_to_label(x[labelled], [(str(v),) for v in y[labelled]], x[pool], step,
                                   classifier=partial(make_classifier, "logreg", seed=seed))
            new = pool[picked.order].tolist()
        labelled += new
        points.append((len(labelled), accuracy(x, y, labelled, test)))
    return points


def labels_to_reach(points, target: float) -> int | None:
    return next((n for n, acc in points if acc >= target), None)


def markdown(result: dict) -> str:
    lines = header("Label efficiency: curate suggest vs random picks (Fashion-MNIST)", result,
                   f"; pool {result['pool']} images, test {result['test']}, lite0 embeddings, "
                   f"logistic regression, mean of {result['repeats']} repeats")
    lines += ["| labels | random accuracy | suggest accuracy |", "|---|---|---|"]
    for (n, r), (_, s) in zip(result["curves"]["random"], result["curves"]["suggest"]):
        lines.append(f"| {n} | {r:.3f} | {s:.3f} |")
    e = result["efficiency"]
    verdict = "met" if e["ratio"] is not None and e["ratio"] <= TARGET else "missed"
    lines += ["", f"Random reaches {e['random_accuracy']:.3f} with {e['random_labels']} labels; "
              f"suggest reaches it with {e['suggest_labels']} labels: ratio "
              f"{e['ratio'] if e['ratio'] is None else round(e['ratio'], 2)} (target <= {TARGET}: "
              f"{verdict}).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, "the images and their embedding cache")
    parser.add_argument("--pool-per-class", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "repeats": args.repeats,
              "load_average_1m": {"before": round(os.getloadavg()[0], 2)}}
    with bench_home(args.workspace, "shotlab-label-efficiency-") as home:
        sets = embedded_sets(home, args.pool_per_class)
    x, y = sets["train"]
    result.update(pool=len(y), test=len(sets["test"][1]), curves={})
    for strategy in ("random", "suggest"):
        runs = [curve(x, y, sets["test"], strategy, seed, args.step, args.rounds)
                for seed in range(args.repeats)]
        print(f"{strategy}: {runs[0][-1]}", file=sys.stderr, flush=True)
        result["curves"][strategy] = [(runs[0][i][0], float(np.mean([r[i][1] for r in runs])))
                                      for i in range(len(runs[0]))]
    last_n, last_acc = result["curves"]["random"][-1]
    needed = labels_to_reach(result["curves"]["suggest"], last_acc)
    result["efficiency"] = {"random_labels": last_n, "random_accuracy": last_acc,
                            "suggest_labels": needed, "ratio": needed / last_n if needed else None}
    result["load_average_1m"]["after"] = round(os.getloadavg()[0], 2)
    save_results("label_efficiency", result, markdown(result))


if __name__ == "__main__":
    main()
