"""Automatic method choice on Fashion-MNIST: `shotlab train` without --mode vs single methods.

    nice -n 10 .venv/bin/python benchmarks/auto_choice.py [--shots 5,10,20] [--repeats 3]

Debian's dataset-fashion-mnist (`datasets/fashion_mnist.py` reads it): a train pool of
`--pool-per-class` and 5 validation images per class from the training file, `--test-per-class`
images per class from the separate test file. Runs `shotlab.train.benchmark.Benchmark` (what
`shotlab train benchmark` runs) with backbones lite0, lite1, lite2 and the fine-tune modes
linear and auto: every method trains on the same draw of shots and is scored on the same test
images. "auto" is what `shotlab train` without --mode trains: the backbone is chosen by
cross-validation on those shots alone (train/auto_choice.py), then its linear head fine-tunes
with early stopping on val. Partial fine-tuning is left out (minutes per fit on a CPU; its
earlier figures are in results/fashion_mnist). Target: auto >= 0.80 test accuracy at 10 shots.
Writes benchmarks/results/auto_choice.{json,md}.
"""

from __future__ import annotations

import os
import time

from common import bench_home, bench_parser, header, save_results, stamp
from label_errors import fashion_mnist

TARGET = 0.80
BACKBONES = ["lite0", "lite1", "lite2"]
VAL_PER_CLASS = 5


def manifest_of(home, pool: int, test_per_class: int):
    """A Manifest over PNGs written from Debian's Fashion-MNIST (no database needed)."""
    from shotlab.core.images import sha256_file
    from shotlab.train.manifest import Entry, Manifest

    fm = fashion_mnist()
    folder = home / "fashion"
    fm.build(folder, pool, VAL_PER_CLASS, test_per_class, seed=0)
    entries = []
    for path in sorted(folder.glob("*/*/*.png")):
        split, label = path.parts[-3], path.parts[-2]
        entries.append(Entry(f"{split}/{path.name}", str(path), sha256_file(path), (label,), split))
    return Manifest("fashion-mnist", "multiclass", tuple(sorted(fm.CLASSES)), tuple(entries), {})


def best_single(summary: list[dict], shots: int) -> dict:
    return max((r for r in summary if r["shots"] == shots and r["method"] != "auto"),
               key=lambda r: r["accuracy_mean"])


def markdown(result: dict) -> str:
    from shotlab.train.benchmark import markdown as table

    lines = header("Automatic method choice on Fashion-MNIST", result,
                   f"; {result['test']} test images, {result['repeats']} draws of shots per "
                   f"count, backbones {', '.join(BACKBONES)}")
    lines += [table(result["summary"], result["shots"], result["embedding_seconds"]), ""]
    for shots in result["shots"]:
        auto = next(r for r in result["summary"] if r["method"] == "auto" and r["shots"] == shots)
        best = best_single(result["summary"], shots)
        picks = ", ".join(f"{k} {v}/{result['repeats']}" for k, v in auto["chose"].items())
        lines.append(f"- {shots} shots: auto {auto['accuracy_mean']:.3f} (chose {picks}); best "
                     f"single method {best['method']} ({best['backbone']}) "
                     f"{best['accuracy_mean']:.3f}.")
    ten = next((r for r in result["summary"] if r["method"] == "auto" and r["shots"] == 10), None)
    if ten is not None:
        verdict = "met" if ten["accuracy_mean"] >= TARGET else "missed"
        lines += ["", f"Target: auto >= {TARGET} test accuracy at 10 shots: "
                      f"**{ten['accuracy_mean']:.3f}, {verdict}**.", ""]
    return "\n".join(lines)


def main() -> None:
    from shotlab.train.benchmark import Benchmark, summarise

    parser = bench_parser(__doc__, "the images and their embedding cache")
    parser.add_argument("--shots", default="5,10,20")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pool-per-class", type=int, default=30,
                        help="Train images per class the shots are drawn from.")
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    shots = [int(s) for s in args.shots.split(",")]
    load = os.getloadavg()[0]
    with bench_home(args.workspace, "shotlab-auto-choice-") as home:
        manifest = manifest_of(home, max(args.pool_per_class, *shots), args.test_per_class)
        bench = Benchmark(manifest, backbones=BACKBONES, finetune=["linear", "auto"],
                          epochs=args.epochs, workers=None, progress=None)
        started = time.perf_counter()
        rows = bench.run(shots, args.repeats)
    result = {**stamp(load, repeats=args.repeats), "shots": shots,
              "test": len(manifest.split("test")), "seconds": round(time.perf_counter() - started),
              "embedding_seconds": bench.embedding_seconds, "summary": summarise(rows),
              "rows": [vars(r) for r in rows]}
    save_results("auto_choice", result, markdown(result))


if __name__ == "__main__":
    main()
