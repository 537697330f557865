"""How the label check's settings were chosen: a grid over three public sets, never one.

    .venv/bin/python benchmarks/label_check_grid.py run --draws 0:10 --sets sample,lfw,fashion-mnist
    .venv/bin/python benchmarks/label_check_grid.py run --draws 10:20 --sets sample,lfw,fashion-mnist-1
    .venv/bin/python benchmarks/label_check_grid.py summarise ROWS.json ... 

`run` embeds the sets of `label_check_sets.py` with lite0 (plus `fashion-mnist-1`, another 50
images a class drawn with seed 1, for held-out checking), flips 10% and 20% of the labels (the
flips of `label_check_sets.py`, draws chosen by `--draws`) and scores every setting on each
draw, writing the rows to a JSON file (about 20 minutes a call on one busy core). The settings:
how the embeddings enter the logistic regression (`std`: standardised, as shipped; `l2`:
L2-normalised first; `cl2`: centred and L2-normalised), its per-sample penalty alpha, the weight
of the neighbour score (`label.neighbour_shares`, k = 10), the ranking (self-confidence or
normalised margin) and how many are flagged (cleanlab's `num_label_issues`, its calibrated
variant, or 0.8, 0.9, 1.1 times it).

`summarise` reads the rows of the selection draws (0-9, the three sets) and the held-out draws
(10-19, with the other Fashion-MNIST images) and ranks the settings on the selection draws alone:
how many sets reach F1 0.85 at 20% noise (the issue's target), then the lowest F1 of the three;
near-ties (within 0.002) go to the setting closest to the one shipped before. (Ranking by the
lowest F1 alone was looked at first: its top settings gain 3 points on the sample set and lose
9 on LFW, below 0.85; the rule above was settled then, before the held-out rows were read.)
Writes results/label_check_grid.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

PREPS = ("std", "l2", "cl2")
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)
WEIGHTS = (0.0, 0.25, 0.5)
RANKS = ("self_confidence", "normalized_margin")
COUNTS = ("off", "cal", 0.8, 0.9, 1.1)
RATES = (0.1, 0.2)
TARGET = 0.85
BEFORE = ("std", 1.0, 0.0, "self_confidence", "off")  # the settings until 2026-12-01


def prepared(x: np.ndarray, how: str) -> np.ndarray:
    if how == "l2":
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    if how == "cl2":
        x = x - x.mean(0)
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    return x


def features_of(sets: list[str], home: Path) -> dict:
    from common import bench_home
    from label_check_sets import SETS, embed
    from label_errors import write_subset

    built = {}
    with bench_home(str(home), "shotlab-label-grid-") as home:
        for name in sets:
            if name == "fashion-mnist-1":
                (home / name).mkdir(parents=True, exist_ok=True)
                paths, sha256s, labels = write_subset(home / name, 50, 1)
                junk = np.zeros(len(labels), bool)
            else:
                paths, sha256s, labels, junk = SETS[name](home / name)
            built[name] = (embed(paths, sha256s, "lite0"), labels, junk)
    return built


def score_draw(features, noisy, truth, scored, seed: int) -> list[dict]:
    """Every setting on one flipped draw."""
    import cleanlab.count
    import cleanlab.rank
    from label_errors import scores

    from shotlab.curate.checks.label import fold_count, neighbour_shares, out_of_fold_probs

    rows, knn = [], neighbour_shares(features, noisy)
    for prep in PREPS:
        for alpha in ALPHAS:
            base = out_of_fold_probs(prepared(features, prep), noisy,
                                     folds=fold_count(np.bincount(noisy)), alpha=alpha, seed=seed)
            for weight in WEIGHTS:
                probs = (1 - weight) * base + weight * knn
                estimate = cleanlab.count.num_label_issues(noisy, probs)
                calibrated = cleanlab.count.num_label_issues(
                    noisy, probs, estimation_method="off_diagonal_calibrated")
                for rank in RANKS:
                    quality = cleanlab.rank.get_label_quality_scores(noisy, probs, method=rank)
                    order = np.argsort(quality)
                    for count in COUNTS:
                        n = (estimate if count == "off" else calibrated if count == "cal"
                             else int(round(count * estimate)))
                        flagged = np.zeros(len(noisy), bool)
                        flagged[order[:n]] = True
                        rows.append({"prep": prep, "alpha": alpha, "w": weight, "rank": rank,
                                     "count": count, **scores(truth, flagged[scored],
                                                              (1 - quality)[scored])})
    return rows


def run(args) -> None:
    from label_errors import flip

    start, stop = (int(v) for v in args.draws.split(":"))
    rows, began = [], time.time()
    for name, (features, labels, junk) in features_of(args.sets.split(","), args.home).items():
        scored, classes = ~junk, int(labels.max()) + 1
        for rate in RATES:
            for draw in range(start, stop):
                rng = np.random.default_rng(1000 * draw + int(rate * 100))
                noisy = labels.copy()
                noisy[scored], truth = flip(labels[scored], rate, rng, classes)
                rows += [{"set": name, "rate": rate, "draw": draw, **row}
                         for row in score_draw(features, noisy, truth, scored, draw)]
                print(name, rate, draw, round(time.time() - began), flush=True)
    Path(args.out).write_text(json.dumps(rows))


def setting(row: dict) -> tuple:
    return row["prep"], row["alpha"], row["w"], row["rank"], str(row["count"])


def mean_f1(rows: list[dict], rate: float, draws: range) -> dict:
    """{setting: {set: mean F1}} over `draws` at noise `rate` (fashion-mnist-1 as fashion-mnist)."""
    groups: dict = {}
    for r in rows:
        if r["rate"] == rate and r["draw"] in draws:
            groups.setdefault(setting(r), {}).setdefault(
                r["set"].removesuffix("-1"), []).append(r["f1"])
    return {k: {s: statistics.mean(v) for s, v in sets.items()} for k, sets in groups.items()}


def distance(candidate: tuple) -> int:
    return sum(a != b for a, b in zip(candidate, BEFORE))


def summarise(args) -> None:
    from common import save_results

    rows = [r for path in args.rows for r in json.loads(Path(path).read_text())]
    chosen_on, held = range(0, 10), range(10, 20)
    table = {(rate, part): mean_f1(rows, rate, draws) for rate in RATES
             for part, draws in (("selection", chosen_on), ("held-out", held))}
    selection = table[(0.2, "selection")]

    def rank_key(c):
        return sum(f >= TARGET for f in selection[c].values()), min(selection[c].values())

    ranked = sorted(selection, key=rank_key, reverse=True)
    best = rank_key(ranked[0])
    near = [c for c in ranked if best[0] == rank_key(c)[0] and best[1] - rank_key(c)[1] <= 0.002]
    chosen = min(near, key=distance)
    shown = list(dict.fromkeys([chosen, BEFORE, *ranked[:12]]))
    result = {"benchmark": "label_check_grid", "rule": "sets reaching F1 0.85 at 20% on draws "
              "0-9, then the lowest F1; near-ties (0.002) to the closest to the settings before",
              "chosen": list(chosen), "before": list(BEFORE), "settings": len(selection),
              "table": [{"setting": list(c), **{f"{rate:.0%} {part}": table[(rate, part)][c]
                                                 for rate, part in table}} for c in shown]}
    save_results("label_check_grid", result, markdown(result))


def markdown(result: dict) -> str:
    sets = ("fashion-mnist", "sample", "lfw")
    lines = ["# How the label check's settings were chosen (three sets)", "",
             "Rows measured 2026-12-01 22:45-23:25 UTC, two runs side by side on a 2-core "
             "machine (F1 only: no timings), by this grid in its first form (a script outside "
             "the repository with the same settings, flips and scores; `run` is it, tidied), "
             "summarised here by `summarise`.", "",
             f"{result['settings']} settings; rule: {result['rule']}. Chosen: "
             f"`{tuple(result['chosen'])}`; before: `{tuple(result['before'])}`.", "",
             "Setting: (embeddings, alpha, neighbour weight, ranking, how many flagged). F1 per "
             "set, " + " / ".join(sets) + "; selection = draws 0-9, held-out = draws 10-19 "
             "(Fashion-MNIST: other images).", "",
             "| setting | 20% selection | 20% held-out | 10% selection | 10% held-out |",
             "|---|---|---|---|---|"]
    for row in result["table"]:
        cells = [" / ".join(f"{row[key][s]:.3f}" for s in sets)
                 for key in ("20% selection", "20% held-out", "10% selection", "10% held-out")]
        lines.append(f"| `{tuple(row['setting'])}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run")
    go.add_argument("--draws", default="0:10")
    go.add_argument("--sets", default="sample,lfw,fashion-mnist")
    go.add_argument("--home", type=Path, default=Path("/tmp/shotlab-label-grid"),
                    help="Where the sets' images and embedding cache are kept.")
    go.add_argument("--out", default="label_check_grid_rows.json")
    again = commands.add_parser("summarise")
    again.add_argument("rows", nargs="+")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run(args) if args.command == "run" else summarise(args)


if __name__ == "__main__":
    main()
