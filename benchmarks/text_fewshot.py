"""Few-shot text classification on the fortunes recipe: SetFit vs logistic regression on MiniLM
embeddings vs TF-IDF vs character n-grams.

    .venv/bin/python benchmarks/text_fewshot.py [--shots 8,16] [--repeats 3] [--per-class 100]

The data is `datasets/fortunes.py`'s recipe (Debian's fortunes topic files, deduplicated, split
60/20/20 per topic, seed 0). Each repeat draws `shots` train comments per topic (seeded by the
repeat, the same draw for every method) and scores every method on the same test split, through
`shotlab.train.benchmark.Benchmark`, the code `shotlab train benchmark` runs on a text dataset:

    tfidf + logreg            TF-IDF of word 1-2 grams, logistic regression (train/baselines.py)
    char-ngrams + logreg      TF-IDF of character 2-5 grams, logistic regression
    embeddings + logreg/...   the classifiers on frozen all-MiniLM-L6-v2 embeddings
    fine-tune setfit          SetFit (the `setfit` library: contrastive fine-tuning of MiniLM,
                              then the logistic head), the `--mode setfit` of `shotlab train`

Target: the best embedding method beats TF-IDF by >= 10 points of accuracy at 8 per class.
Writes benchmarks/results/text_fewshot.{json,md}.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from common import bench_home, bench_parser, header, save_results, stamp

TARGET_POINTS = 0.10
EMBEDDING_METHODS = ("embeddings + logreg", "embeddings + linear-svm", "embeddings + knn",
                     "fine-tune setfit")


def fortunes_manifest(folder: Path, per_class: int):
    """The recipe's rows as a text manifest: each comment in its own UTF-8 file."""
    from shotlab.train.manifest import Entry, Manifest

    build_rows = recipe("fortunes").build_rows
    entries = []
    for i, row in enumerate(build_rows(per_class=per_class, seed=0)):
        digest = hashlib.sha256(row["text"].encode("utf-8")).hexdigest()
        path = folder / f"{digest}.txt"
        path.write_text(row["text"], encoding="utf-8")
        entries.append(Entry(str(i), str(path), digest, (row["label"],), row["split"]))
    classes = tuple(sorted({e.labels[0] for e in entries}))
    return Manifest("fortunes", "multiclass", classes, tuple(entries), {}, "text")


def recipe(name: str):
    """datasets/NAME.py by file: the folder is not a package, and `datasets` is also the
    Hugging Face library setfit imports."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "datasets" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"shotlab_recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def verdict(summary: list[dict], shots: int) -> dict:
    at = {r["method"]: r for r in summary if r["shots"] == shots}
    best = max((m for m in EMBEDDING_METHODS if m in at), key=lambda m: at[m]["accuracy_mean"])
    margin = at[best]["accuracy_mean"] - at["tfidf + logreg"]["accuracy_mean"]
    return {"shots": shots, "best_embedding_method": best,
            "best_accuracy": at[best]["accuracy_mean"],
            "tfidf_accuracy": at["tfidf + logreg"]["accuracy_mean"], "margin": margin,
            "met": margin >= TARGET_POINTS}


def main() -> int:
    parser = bench_parser(__doc__, "the comment files")
    parser.add_argument("--shots", default="8,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--setfit-shots", default=None,
                        help="Shot counts SetFit runs at [default: all of --shots]; SetFit is "
                             "minutes per fit on a CPU.")
    parser.add_argument("--append", action="store_true",
                        help="Add these rows to the saved results (e.g. another shot count).")
    parser.add_argument("--per-class", type=int, default=100,
                        help="Entries per topic taken from fortunes (split 60/20/20).")
    args = parser.parse_args()
    shots = [int(s) for s in args.shots.split(",")]
    setfit_shots = shots if args.setfit_shots is None else [
        int(s) for s in args.setfit_shots.split(",") if s.strip()]
    load_before = os.getloadavg()[0]
    with bench_home(args.workspace, "shotlab-text-bench-") as home:
        from shotlab.train.benchmark import Benchmark

        folder = home / "comments"
        folder.mkdir(parents=True, exist_ok=True)
        manifest = fortunes_manifest(folder, args.per_class)
        bench = Benchmark(manifest, backbones=["minilm"], finetune=["setfit"], epochs=1,
                          workers=0, progress=False)
        rows = saved_rows() if args.append else []
        shots = sorted({r.shots for r in rows} | set(shots))
        for shot in shots:  # results saved after each shot count: a long CPU run keeps them
            if any(r.shots == shot for r in rows):
                continue
            bench.finetune = ["setfit"] if shot in setfit_shots else []
            rows += bench.run([shot], args.repeats)
            report(rows, shots, args, manifest, bench, load_before)
    return 0


def saved_rows() -> list:
    import json

    from shotlab.train.benchmark import Row

    path = Path(__file__).resolve().parent / "results" / "text_fewshot.json"
    return [Row(**row) for row in json.loads(path.read_text())["rows"]]


def report(rows, shots, args, manifest, bench, load_before) -> None:
    from shotlab.train.benchmark import markdown, summarise

    summary = summarise(rows)
    done = [s for s in shots if any(r.shots == s for r in rows)]
    first = verdict(summary, shots[0])
    counts = {split: len(manifest.split(split)) for split in ("train", "val", "test")}
    result = {**stamp(load_before, repeats=args.repeats), "shots": done, "classes":
              list(manifest.classes), "splits": counts, "summary": summary,
              "rows": [vars(r) for r in rows], "embedding_seconds": bench.embedding_seconds,
              "target": first}
    lines = [*header("Few-shot text classification on fortunes", result,
                     f"; {args.repeats} repeats"),
             f"{len(manifest.classes)} topics ({', '.join(manifest.classes)}); train pool "
             f"{counts['train']}, test {counts['test']} comments; accuracy / macro-F1 / seconds "
             f"per fit, mean ± std over repeats (each repeat one seeded draw, shared by every "
             f"method). SetFit: 5 pair-sampling iterations, 1 epoch, on the CPU.", "",
             markdown(summary, done, bench.embedding_seconds), "",
             f"**Target** (best embedding method beats TF-IDF by >= {TARGET_POINTS * 100:.0f} "
             f"points at {first['shots']} per class): {first['best_embedding_method']} "
             f"{first['best_accuracy']:.3f} vs TF-IDF {first['tfidf_accuracy']:.3f}, "
             f"{first['margin'] * 100:+.1f} points: **{'met' if first['met'] else 'missed'}**.",
             ""]
    save_results("text_fewshot", result, "\n".join(lines))

if __name__ == "__main__":
    raise SystemExit(main())
