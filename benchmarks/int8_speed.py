"""ONNX Runtime INT8 vs FP32 on the CPU, for lite0 bundles exported with `--to onnx-int8`.

For each dataset, trains a quick lite0 run (`--mode linear`, in a throwaway bench workspace),
exports it with `shotlab export --to onnx-int8` (the real code path: calibration, method choice
and gate included; a bundle the gate refuses is kept and measured, its verdict reported), then
measures in one process:

    accuracy     FP32 and INT8 (both through ORT) on the dataset's test split, and their
                 top-1 agreement with each other (INT8 vs FP32, not vs PyTorch)
    speed        model.onnx vs model.int8.onnx, interleaved, batch 1 and 32, with 1 and 2
                 intra-op threads, median of `--repeats` rounds; the ratio INT8 / FP32

Datasets: `datasets/sample` (120 clip-art images, 6 classes) and, when Debian's dataset-fashion-mnist
package is installed (/usr/share/datasets/fashion-mnist), a Fashion-MNIST folder built by
`datasets/fashion_mnist.py` (20 train, 5 val and 100 test images per class). Speed is measured
on the sample set's bundle (224 px inputs; the Fashion-MNIST bundle has the same input size).
Target: INT8 >= 1.8x FP32 images/s at <= 1 point accuracy loss.

    .venv/bin/python benchmarks/int8_speed.py [--repeats 9] [--no-fashion-mnist]

Writes benchmarks/results/int8_speed.json and int8_speed.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import header, machine, save_results  # benchmarks/common.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_RATIO = 1.8
MAX_ACCURACY_LOSS = 0.01
BATCHES = (1, 32)
THREADS = (1, 2)
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def fashion_mnist_folder(out: Path) -> Path:
    """datasets/fashion_mnist.py, by path (the name `datasets` is Hugging Face's package)."""
    path = ROOT / "datasets" / "fashion_mnist.py"
    spec = importlib.util.spec_from_file_location("shotlab_fashion_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(out, train_per_class=20, val_per_class=5, test_per_class=100)
    return out


def train(folder: Path, name: str) -> Path:
    from shotlab.curate.importer import import_path
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run

    import_path(folder, name, progress=False)
    config = TrainConfig(backbone="lite0", mode="linear", epochs=1, workers=0)
    return train_run(name, config, track=False, writeback=False, progress=False).run_dir


def export(run_dir: Path, out: Path):
    from shotlab.export.exporter import export_run
    from shotlab.export.validate import GateRules
    from shotlab.runtime.bundle import load_bundle

    started = time.perf_counter()  # a refused INT8 is still measured: the gate's verdict is kept
    result = export_run(run_dir, formats=["onnx", "onnx-int8"], out=out, explain=False,
                        force=True, progress=False, rules=GateRules(allow_regression=True))
    return load_bundle(out), result, time.perf_counter() - started


def accuracy(bundle, run_dir: Path, result, export_s: float) -> dict:
    """FP32 and INT8 accuracy on the test split, and their agreement, through ORT."""
    from shotlab.runtime.kinds import load_inputs
    from shotlab.runtime.runners import make_runner, run_batched
    from shotlab.train.manifest import Manifest

    manifest = Manifest.load(run_dir / "manifest.json")
    entries = manifest.split("test")
    inputs = load_inputs([e.filepath for e in entries], bundle.preprocessing, progress=False)
    y = manifest.targets([entries[i] for i in inputs.kept])
    top1 = {name: run_batched(make_runner(bundle, name), inputs.arrays).argmax(axis=1)
            for name in ("onnx", "onnx-int8")}
    fp32, int8 = (float((top1[name] == y).mean()) for name in ("onnx", "onnx-int8"))
    return {"test_images": len(y), "fp32_accuracy": fp32, "int8_accuracy": int8,
            "accuracy_loss": fp32 - int8,
            "int8_vs_fp32_agreement": float((top1["onnx"] == top1["onnx-int8"]).mean()),
            "gate": result.report["gate"], "export_s": export_s,
            "quantization": bundle.manifest["quantization"]["onnx-int8"]}


def speed(bundle, repeats: int) -> dict:
    """Interleaved timings of FP32 and INT8 at each thread count and batch size."""
    import numpy as np

    from shotlab.export import speed as timing
    from shotlab.runtime.runners import make_runner

    sample = np.random.default_rng(0).normal(
        size=(1, *bundle.preprocessing.sample_shape)).astype(np.float32)
    settings = {}
    for threads in THREADS:
        runners = {"fp32": make_runner(bundle, "onnx", threads=threads),
                   "int8": make_runner(bundle, "onnx-int8", threads=threads)}
        timings = timing.compare(runners, sample, batch_sizes=BATCHES, repeats=repeats,
                                 warmup=3, calls=3)
        settings[str(threads)] = {
            "timings": {str(b): t for b, t in timings.items()},
            "ratio": {str(b): t["int8"]["images_per_s"] / t["fp32"]["images_per_s"]
                      for b, t in timings.items()}}
    return settings


def measure(folder: Path, name: str, scratch: Path) -> tuple:
    run_dir = train(folder, name)
    bundle, result, export_s = export(run_dir, scratch / f"bundle-{name}")
    return bundle, accuracy(bundle, run_dir, result, export_s)


def markdown(result: dict) -> str:
    lines = header("INT8 vs FP32: ONNX Runtime on the CPU (lite0)", result,
                   f", {result['cpu_flags']}; median of {result['repeats']} interleaved rounds "
                   f"of 3 calls")
    lines += ["| threads | batch | FP32 images/s | INT8 images/s | INT8 / FP32 |",
              "|---|---|---|---|---|"]
    for threads, block in result["speed"].items():
        for batch, rows in block["timings"].items():
            lines.append(f"| {threads} | {batch} | {rows['fp32']['images_per_s']:.1f} | "
                         f"{rows['int8']['images_per_s']:.1f} | {block['ratio'][batch]:.2f}x |")
    lines += ["", "| dataset | test images | FP32 accuracy | INT8 accuracy | loss (points) | "
              "INT8-FP32 agreement | method (val agreement per candidate) | gate |",
              "|---|---|---|---|---|---|---|---|"]
    for name, acc in result["accuracy"].items():
        if "skipped" in acc:
            lines.append(f"| {name} | not run: {acc['skipped']} | | | | | | |")
            continue
        q = acc["quantization"]
        candidates = ", ".join(f"{m} {c['top1_agreement']:.3f}" for m, c in
                               q["candidates"].items())
        lines.append(f"| {name} | {acc['test_images']} | {acc['fp32_accuracy']:.3f} | "
                     f"{acc['int8_accuracy']:.3f} | {100 * acc['accuracy_loss']:+.1f} | "
                     f"{acc['int8_vs_fp32_agreement']:.3f} | {q['method']} ({candidates}) | "
                     f"{gate_text(acc['gate'])} |")
    lines += ["", verdict(result), ""]
    return "\n".join(lines)


def gate_text(gate: dict) -> str:
    return "passed" if gate["passed"] else "refused: " + "; ".join(gate["failures"])


def verdict(result: dict) -> str:
    ratios = [r for block in result["speed"].values() for r in block["ratio"].values()]
    losses = [a["accuracy_loss"] for a in result["accuracy"].values() if "skipped" not in a]
    speed_met = min(ratios) >= TARGET_RATIO
    accuracy_met = max(losses) <= MAX_ACCURACY_LOSS + 1e-9
    return (f"Target INT8 >= {TARGET_RATIO}x FP32 at <= 1 point accuracy loss: speed "
            f"**{'met' if speed_met else 'missed'}** (INT8/FP32 from {min(ratios):.2f}x to "
            f"{max(ratios):.2f}x over the settings above), accuracy "
            f"**{'met' if accuracy_met else 'missed'}** (largest loss "
            f"{100 * max(losses):+.1f} points).")


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "CPU flags unknown"
    found = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return ("with " + ", ".join(found)) + ("" if {"avx512_vnni", "avx_vnni"} & flags
                                           else ": no VNNI")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-fashion-mnist", action="store_true")
    args = parser.parse_args()
    from shotlab.core import workspace as ws
    from shotlab.export.speed import load_average

    with tempfile.TemporaryDirectory(prefix="shotlab-bench-") as scratch:
        scratch = Path(scratch)
        ws.activate(scratch / "ws")
        load_before = load_average()
        bundle, sample = measure(ROOT / "datasets" / "sample", "sample", scratch)
        settings = speed(bundle, args.repeats)
        results = {"sample": sample}
        if args.no_fashion_mnist or not FASHION_MNIST.is_dir():
            why = "--no-fashion-mnist" if args.no_fashion_mnist else f"no {FASHION_MNIST}"
            results["fashion-mnist"] = {"skipped": why}
        else:
            folder = fashion_mnist_folder(scratch / "fashion-mnist")
            results["fashion-mnist"] = measure(folder, "fashion-mnist", scratch)[1]
        load_after = load_average()
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "repeats": args.repeats, "machine": machine(), "cpu_flags": cpu_flags(),
              "run": "lite0 linear, 1 epoch", "speed": settings, "accuracy": results,
              "load_average_1m": {"before": load_before[0], "after": load_after[0]}}
    save_results("int8_speed", result, markdown(result))


if __name__ == "__main__":
    main()
