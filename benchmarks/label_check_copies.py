"""Copies mislabelled twice: does the label check find them with the copies held out together?

    nice -n 10 .venv/bin/python benchmarks/label_check_copies.py [--repeats 5]

The three sets of `label_check_sets.py` (Fashion-MNIST 500, the sample set 120, LFW 200; lite0
embeddings). In each draw, 4% of the images (at least 6) are copied, the copy appended as a
sample of its own (a re-upload: same embedding), and both copies are given the same wrong class;
no other label is changed. The label check runs twice on the same labels: with every sample
alone (what it did before: the copies fall in different folds, and each is the other's nearest
neighbour) and with each original and its copy as one group (`find_label_issues(groups=...)`,
which `curate check` passes from byte copies and duplicate clusters). Reported per set: the share
of the mislabelled copies flagged and how many other samples are flagged beside them (clean
labels flagged: the set's own variety; the sample set's junk counts among them).
Writes benchmarks/results/label_check_copies.{json,md}.
"""

from __future__ import annotations

import os
import statistics

import numpy as np
from common import bench_home, bench_parser, header, save_results, stamp
from label_check_sets import SETS, embed

SHARE = 0.04
MODES = ("apart", "together")


def planted(labels: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows copied, their new labels for original + copy, groups over originals + copies)."""
    classes = int(labels.max()) + 1
    copied = rng.choice(len(labels), max(6, int(SHARE * len(labels))), replace=False)
    wrong = (labels[copied] + rng.integers(1, classes, len(copied))) % classes
    groups = np.concatenate([np.arange(len(labels)), copied])
    return copied, wrong, groups


def measure_draw(features: np.ndarray, labels: np.ndarray, repeat: int) -> dict:
    from shotlab.curate.checks.label import find_label_issues

    copied, wrong, groups = planted(labels, np.random.default_rng(repeat))
    x = np.vstack([features, features[copied]])
    noisy = np.concatenate([labels, wrong])
    noisy[copied] = wrong
    bad = np.zeros(len(noisy), bool)
    bad[copied], bad[len(labels):] = True, True
    row = {"repeat": repeat, "copies": int(bad.sum())}
    for mode in MODES:
        result = find_label_issues([str(v) for v in noisy], x, seed=repeat,
                                   groups=groups if mode == "together" else None)
        row[f"{mode}_found"] = float(result.issues[bad].mean())
        row[f"{mode}_others"] = int(result.issues[~bad].sum())
    return row


def summary(rows: dict[str, list[dict]]) -> list[dict]:
    return [{"set": name, "copies": draws[0]["copies"],
             **{key: round(statistics.mean(d[key] for d in draws), 3)
                for mode in MODES for key in (f"{mode}_found", f"{mode}_others")}}
            for name, draws in rows.items()]


def markdown(result: dict) -> str:
    lines = header("The label check on copies mislabelled twice: apart vs held out together",
                   result, f"; lite0 embeddings, {result['repeats']} draws per set")
    lines += ["| set | mislabelled copies | flagged, apart (others flagged) | "
              "flagged, held out together (others flagged) |", "|---|---|---|---|"]
    for r in result["summary"]:
        lines.append(f"| {r['set']} | {r['copies']} | {r['apart_found']:.0%} "
                     f"({r['apart_others']:.1f}) | {r['together_found']:.0%} "
                     f"({r['together_others']:.1f}) |")
    return "\n".join(lines + ["", *result["notes"], ""])


def main() -> None:
    parser = bench_parser(__doc__, "the embedding cache")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("SHOTLAB_PROGRESS", "0")
    load = os.getloadavg()[0]
    rows: dict[str, list[dict]] = {}
    with bench_home(args.workspace, "shotlab-label-copies-") as home:
        for name, build in SETS.items():
            paths, sha256s, labels, _ = build(home / name)
            features = embed(paths, sha256s, "lite0")
            rows[name] = [measure_draw(features, labels, r) for r in range(args.repeats)]
            print(name, rows[name][-1], flush=True)
    result = {**stamp(load), "repeats": args.repeats, "summary": summary(rows), "runs": rows,
              "notes": [f"{SHARE:.0%} of each set's images (at least 6) copied, original and copy "
                        "given the same wrong class; 'others flagged' are the samples flagged "
                        "beside them (mean per draw), none of them planted."]}
    save_results("label_check_copies", result, markdown(result))


if __name__ == "__main__":
    main()
