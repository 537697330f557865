"""Calibration: ECE of a run's raw scores and of its temperature-scaled scores, on held-out data.

    .venv/bin/python benchmarks/calibration.py [--epochs 8] [--workspace DIR]

Trains what `make demo` trains (lite0, partial fine-tuning) on two sets and reads the run's
metrics.json (the "model kept" column says when no epoch beat the linear-probe head on val and
the run kept that head, the backbone untouched): the sample set (datasets/sample: 6 classes, 24 val and 24 test images) and a
few-shot Fashion-MNIST folder (10 train, 10 val, 50 test images per class, from Debian's
dataset-fashion-mnist; skipped with a note where it is missing). The temperature is fitted on val;
the test split never takes part, so its ECE is the honest figure. Target: test ECE <= 0.05 after.
Writes benchmarks/results/calibration.{json,md}.
"""

from __future__ import annotations

import json
import os
import time

from common import bench_home, bench_parser, header, machine, save_results

TARGET = 0.05


def fashion_folder(home):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "datasets" / "fashion_mnist.py"
    spec = importlib.util.spec_from_file_location("shotlab_fashion_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.SOURCE.is_dir():
        return None
    out = home / "fashion"
    if not out.is_dir():
        module.build(out, 10, 10, 50, seed=0)
    return out


def train_set(folder, name: str, epochs: int) -> dict:
    from shotlab.core import store
    from shotlab.curate.importer import import_path
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run

    if name not in store.list_datasets():
        import_path(folder, name, progress=False)
    config = TrainConfig(backbone="lite0", mode="partial", epochs=epochs, seed=0)
    started = time.perf_counter()
    result = train_run(name, config, track=False, writeback=False, progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    row = {"set": name, "seconds": round(time.perf_counter() - started, 1),
           "best_epoch": metrics["best_epoch"], "calibration": metrics["calibration"],
           "test_ece_floor": ece_floor(result.run_dir)}
    for split in ("val", "test"):
        row[split] = {"n": metrics[split]["n"], "accuracy": metrics[split]["accuracy"],
                      "ece_raw": metrics[split]["ece_raw"], "ece": metrics[split]["ece"]}
    return row


def ece_floor(run_dir, draws: int = 2000) -> float:
    """The ECE a perfectly calibrated model with the run's test confidences would still show on
    this many images (outcomes drawn with the confidences as probabilities): the estimate's
    noise floor, which no calibration can go below on average."""
    import numpy as np
    import torch

    from shotlab.runtime.kinds import load_inputs
    from shotlab.train.checkpoint import load_checkpoint
    from shotlab.train.manifest import Manifest
    from shotlab.train.metrics import expected_calibration_error

    checkpoint = load_checkpoint(run_dir)
    paths = [e.filepath for e in Manifest.load(run_dir / "manifest.json").split("test")]
    with torch.no_grad():
        batch = torch.from_numpy(load_inputs(paths, checkpoint.preprocessing).arrays)
        conf = checkpoint.model(batch).softmax(-1).max(-1).values.numpy()
    rng = np.random.default_rng(0)
    return float(np.mean([expected_calibration_error(conf, rng.random(len(conf)) < conf)
                          for _ in range(draws)]))


def markdown(result: dict) -> str:
    lines = header("Calibration: ECE before and after temperature scaling", result,
                   f"; lite0 partial, {result['epochs']} epochs, seed 0")
    lines += ["| set | model kept | temperature | val n | val ECE raw -> calibrated | test n | "
              "test accuracy | test ECE raw -> calibrated | ECE floor at this n | "
              "target test ECE <= 0.05 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        cal, val, test = row["calibration"], row["val"], row["test"]
        t = cal.get("temperature", "none")
        kept = ("the probe (no epoch beat it on val)" if row["best_epoch"] < 0
                else f"epoch {row['best_epoch'] + 1}")
        lines.append(f"| {row['set']} | {kept} | {t if isinstance(t, str) else round(t, 2)} | "
                     f"{val['n']} | "
                     f"{val['ece_raw']:.3f} -> {val['ece']:.3f} | {test['n']} | "
                     f"{test['accuracy']:.3f} | {test['ece_raw']:.3f} -> {test['ece']:.3f} | "
                     f"{row['test_ece_floor']:.3f} | "
                     f"{'met' if test['ece'] <= TARGET else 'missed'} |")
    lines += ["", *result["notes"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, "the imported sets")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("SHOTLAB_PROGRESS", "0")
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "epochs": args.epochs,
              "load_average_1m": {"before": round(os.getloadavg()[0], 2)}, "rows": [], "notes": []}
    from pathlib import Path

    with bench_home(args.workspace, "shotlab-calibration-") as home:
        sample = Path(__file__).resolve().parents[1] / "datasets" / "sample"
        result["rows"].append(train_set(sample, "sample", args.epochs))
        fashion = fashion_folder(home)
        if fashion is None:
            result["notes"].append("Fashion-MNIST skipped: install Debian's dataset-fashion-mnist.")
        else:
            result["rows"].append(train_set(fashion, "fashion-mnist-10", args.epochs))
    result["load_average_1m"]["after"] = round(os.getloadavg()[0], 2)
    result["notes"].append("ECE uses 15 equal-width bins of the top score. The floor column is "
                           "the mean ECE a perfectly calibrated model with the same test "
                           "confidences shows on that many images (outcomes drawn at random "
                           "with the confidences as probabilities): below it, ECE measures "
                           "the sample, not the model.")
    save_results("calibration", result, markdown(result))


if __name__ == "__main__":
    main()
