"""Pseudo-labels: test accuracy of `shotlab train NAME --pseudo-label` beside the run without them.

    .venv/bin/python benchmarks/pseudo_label.py [--pool-per-class 50] [--mode linear]

Fashion-MNIST from Debian's dataset-fashion-mnist: 10 train, 10 val and 50 test images per
class (datasets/fashion_mnist.py, seed 0) and an unlabeled pool of `--pool-per-class` other
training images per class, imported without labels. One `train_with_pseudo_labels` call (lite0)
trains the teacher on the human labels, adds the pool images above the default threshold and
trains again; the teacher's test figures come from the same call (pseudo.json). Reported: the
threshold, how many were added per class, how many of them are right (the pool's true labels are
known to the bench only), and test accuracy / macro-F1 without and with them. Writes
benchmarks/results/pseudo_label.{json,md}.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
from common import bench_home, bench_parser, header, save_results, stamp
from label_errors import fashion_mnist


def write_pool(home: Path, per_class: int) -> tuple[Path, dict]:
    """A CSV of `per_class` unlabeled training images per class that the few-shot folder does
    not hold; and each file's true class."""
    from PIL import Image

    fm = fashion_mnist()
    images, labels = fm.load("train")
    used = set(fm.pick(labels, 20, np.random.default_rng(0)).tolist())  # build()'s train + val
    spare = np.array([i for i in fm.pick(labels, per_class + 40, np.random.default_rng(7))
                      if i not in used])
    chosen = np.concatenate([spare[labels[spare] == c][:per_class] for c in range(10)])
    folder = home / "pool"
    folder.mkdir(parents=True, exist_ok=True)
    rows, truth = ["filepath,label"], {}
    for i in chosen:
        path = folder / f"pool-{i:05d}.png"
        Image.fromarray(images[i], mode="L").save(path)
        rows.append(f"{path},")
        truth[str(path)] = fm.CLASSES[labels[i]]
    (folder / "pool.csv").write_text("\n".join(rows) + "\n")
    return folder / "pool.csv", truth


def measure(home: Path, per_class: int, mode: str, epochs: int) -> dict:
    from shotlab.curate.importer import import_path
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.manifest import Manifest
    from shotlab.train.pseudo import train_with_pseudo_labels

    fm = fashion_mnist()
    folder = home / "fashion"
    fm.build(folder, 10, 10, 50, seed=0)
    pool_csv, truth = write_pool(home, per_class)
    import_path(folder, "fmnist", progress=False)
    import_path(pool_csv, "fmnist", progress=False)
    config = TrainConfig(backbone="lite0", mode=mode, epochs=epochs, seed=0)
    started = time.perf_counter()
    result = train_with_pseudo_labels("fmnist", config, track=False, progress=False)
    seconds = time.perf_counter() - started
    marked = [e for e in Manifest.load(result.run_dir / "manifest.json").entries
              if e.pseudo is not None]
    right = Counter(e.labels[0] for e in marked if truth[e.filepath] == e.labels[0])
    pseudo = result.pseudo
    return {"mode": mode, "epochs": epochs, "pool": pseudo["pool"], "threshold": pseudo["threshold"],
            "val_rule": pseudo["val_rule"], "pool_rule": pseudo["pool_rule"],
            "calibrated": pseudo["calibrated"], "added": pseudo["added"],
            "added_per_class": pseudo["added_per_class"], "right_per_class": dict(right),
            "pseudo_precision": (sum(right.values()) / len(marked)) if marked else None,
            "without": pseudo["teacher"]["test"],
            "with": {k: result.metrics["test"][k] for k in ("n", "accuracy", "macro_f1", "ece")},
            "seconds": round(seconds, 1)}


def rounded(value) -> str:
    return "none" if value is None else f"{value:.3f}"


def markdown(result: dict) -> str:
    lines = header("Pseudo-labels on Fashion-MNIST (10 labelled images per class)", result,
                   f"; lite0 {result['row']['mode']}, {result['row']['epochs']} epochs, seed 0")
    r = result["row"]
    cut = "none" if r["threshold"] is None else f"{r['threshold']:.3f}"
    precision = "-" if r["pseudo_precision"] is None else f"{r['pseudo_precision']:.3f}"
    lines += ["| pool | threshold (val rule, pool rule) | added | right | test accuracy without -> with | "
              "test macro-F1 without -> with | seconds |", "|---|---|---|---|---|---|---|",
              f"| {r['pool']} | {cut} ({rounded(r['val_rule'])}, {rounded(r['pool_rule'])}) | {r['added']} | "
              f"{precision} | {r['without']['accuracy']:.3f} -> {r['with']['accuracy']:.3f} | "
              f"{r['without']['macro_f1']:.3f} -> {r['with']['macro_f1']:.3f} | {r['seconds']} |",
              "", "Added per class (right / added): " + ", ".join(
                  f"{c} {r['right_per_class'].get(c, 0)}/{n}" for c, n in r["added_per_class"].items()),
              "", *result["notes"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, "the few-shot folder, the pool and the runs")
    parser.add_argument("--pool-per-class", type=int, default=50)
    parser.add_argument("--mode", default="linear")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("SHOTLAB_PROGRESS", "0")
    load = os.getloadavg()[0]
    if not fashion_mnist().SOURCE.is_dir():
        raise SystemExit("install Debian's dataset-fashion-mnist first")
    with bench_home(args.workspace, "shotlab-pseudo-") as home:
        row = measure(home, args.pool_per_class, args.mode, args.epochs)
    result = {**stamp(load), "row": row, "notes": [
        "Test: 500 images from Fashion-MNIST's separate test file, human labels only; the "
        "teacher (without) and the run (with) are the two fits of one --pseudo-label run. "
        "'right' is the share of pseudo-labels equal to the pool image's true class, which "
        "the run never sees."]}
    save_results("pseudo_label", result, markdown(result))


if __name__ == "__main__":
    main()
