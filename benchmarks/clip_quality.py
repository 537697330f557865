"""Clip models on the recipe's clip set: pooling vs the middle frame, and early exit.

Builds the synthetic clip set (`datasets/clips.py synthetic`: 120 clips of 6 s from the sample
images; in train a third show the subject throughout, a third only for 2 s among filler, a third
cut between two images and filler; val and test, 4 images a class, have 2 full clips, 1 partial
and 1 cut a class. By construction the middle sampled frame shows filler in every cut clip and
about half the partial ones: 8 of the 24 test clips, where the baseline cannot see the subject,
so part of the gap below is built into the set), imports it (uniform:8), trains a lite0 frame model
(`--mode linear`, `bird` standing in for an unsafe class) and reads the run's clip evaluation:

    (2) quality   test clips: mAP (mean per-class AP) and unsafe recall of the aggregated model
                  (mean pooling for tags, max for the unsafe class, thresholds on val clips)
                  beside the middle-frame baseline (the same model on each clip's middle
                  sampled frame, its own thresholds on val). Target: aggregation ahead by >= 5
                  points of mAP.
    (3) early exit  the run exported to ONNX; on the val and test clips the bundle flags, the
                  time to a decision with `--early-exit` vs without (predict_clips, interleaved,
                  median of --rounds). Target: ratio <= 0.5.

    .venv/bin/python benchmarks/clip_quality.py [--rounds 5] [--workspace DIR [--reuse]]

Writes benchmarks/results/clip_quality.json and clip_quality.md. About 10 minutes on 2 CPUs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import bench_home, bench_parser, header, save_results, stamp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
UNSAFE = "bird"
TARGET_POINTS = 5.0
TARGET_RATIO = 0.5


def train(home: Path) -> Path:
    from clip_sampling import recipe

    from shotlab.curate.importer import import_path
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run

    clips = home / "clips"
    if not clips.is_dir():
        recipe().build_synthetic(clips)
    import_path(clips, "clips", progress=False, sampling="uniform:8")
    config = TrainConfig(backbone="lite0", mode="linear", epochs=10, unsafe=[UNSAFE])
    return train_run("clips", config, track=False, writeback=False, progress=False).run_dir


def quality(run_dir: Path) -> dict:
    results = json.loads((run_dir / "clip_metrics.json").read_text())
    out = {}
    for kind in ("aggregated", "middle_frame"):
        test = results[kind]["test"]
        out[kind] = {"mAP": test["macro_auprc"], "macro_f1": test["macro_f1"],
                     "unsafe_recall": test["per_class"][UNSAFE]["recall"],
                     "unsafe_recall_interval": test["intervals"].get(f"recall/{UNSAFE}"),
                     "accuracy": test["accuracy"], "clips": test["n"]}
    return out


def early_exit(run_dir: Path, home: Path, rounds: int, reuse: bool = False) -> dict:
    from shotlab.export.exporter import export_run
    from shotlab.export.predict_clips import predict_clips
    from shotlab.runtime.bundle import load_bundle

    folder = home / "bundle"
    if not (reuse and (folder / "manifest.json").is_file()):
        export_run(run_dir, out=folder, force=True, explain=False, progress=False)
    bundle = load_bundle(folder)
    candidates = sorted((home / "clips").glob("val/*/*.mp4")) + \
        sorted((home / "clips").glob("test/*/*.mp4"))
    decided = predict_clips(bundle, candidates).decisions
    flagged = [Path(d["path"]) for d in decided if d["flagged"]]
    times = {"full": [], "early": []}
    decoded = {"full": 0, "early": 0}
    for _ in range(rounds):
        for mode in ("full", "early"):
            start = time.perf_counter()
            found = predict_clips(bundle, flagged, early_exit=mode == "early").decisions
            times[mode].append(time.perf_counter() - start)
            decoded[mode] = sum(d["frames_decoded"] for d in found)
            assert all(d["flagged"] for d in found)
    full, early = statistics.median(times["full"]), statistics.median(times["early"])
    return {"flagged_clips": len(flagged), "full_s": full, "early_s": early,
            "ratio": early / full if full else None, "frames_decoded": decoded,
            "samples": times}


def markdown(result: dict) -> str:
    q, e = result["quality"], result["early_exit"]
    lines = header("Clip models: pooling vs the middle frame, and early exit", result,
                   f"; lite0 linear, uniform:8, median of {result['rounds']} rounds")
    lines += ["| test clips | mAP | macro-F1 | accuracy | recall on `bird` (95% CI) |",
              "|---|---:|---:|---:|---|"]
    for kind in ("aggregated", "middle_frame"):
        r = q[kind]
        ci = r["unsafe_recall_interval"]
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci else ""
        lines.append(f"| {kind.replace('_', ' ')} ({r['clips']}) | {r['mAP']:.3f} | "
                     f"{r['macro_f1']:.3f} | {r['accuracy']:.3f} | "
                     f"{r['unsafe_recall'] if r['unsafe_recall'] is None else round(r['unsafe_recall'], 2)}"
                     f"{interval} |")
    points = 100 * (q["aggregated"]["mAP"] - q["middle_frame"]["mAP"])
    lines += ["", f"Aggregation ahead by {points:.1f} points of mAP (target >= {TARGET_POINTS:g}: "
                  f"{'met' if points >= TARGET_POINTS else 'MISSED'}).", ""]
    if e["ratio"] is not None:
        lines += [f"Early exit on {e['flagged_clips']} flagged clips: {e['early_s']:.2f} s vs "
                  f"{e['full_s']:.2f} s without, ratio {e['ratio']:.2f} (target <= "
                  f"{TARGET_RATIO:g}: {'met' if e['ratio'] <= TARGET_RATIO else 'MISSED'}); "
                  f"frames decoded {e['frames_decoded']['early']} vs "
                  f"{e['frames_decoded']['full']}.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = bench_parser(__doc__, "the clips, the run and the bundle")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reuse", action="store_true",
                        help="With --workspace: measure the newest run and bundle kept there "
                             "instead of training again.")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with bench_home(args.workspace, "clip-quality-") as home:
        runs = sorted((home / "ws" / "runs").glob("*-clips-*/clip_metrics.json"))
        run_dir = runs[-1].parent if args.reuse and runs else train(home)
        result = {"quality": quality(run_dir),
                  "early_exit": early_exit(run_dir, home, args.rounds, reuse=args.reuse)}
    result.update(stamp(load_before, rounds=args.rounds))
    save_results("clip_quality", result, markdown(result))


if __name__ == "__main__":
    main()
