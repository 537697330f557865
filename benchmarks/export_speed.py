"""ONNX Runtime vs PyTorch eager on the CPU, for an exported lite0 bundle, side by side.

Trains a quick lite0 run on datasets/sample (`--mode linear --epochs 1`, in a throwaway bench
workspace) unless `--run` names one, exports it with `shotlab export` (the real code path, gate
included), then times, interleaved in one process:

    pytorch   the checkpoint's model, eager, torch.inference_mode()
    onnx      the bundle's model.onnx, ORT graph optimisation ALL
    onnx-fp16 model.fp16.onnx (FP16 on a CPU: measured for completeness, not a CPU target)

at batch 1 and 32, several rounds each, reporting medians and the ratio ORT / PyTorch
(target >= 1.5x). Both runtimes get the same thread count, once with 1 thread and once with
threads = cores: on a shared, oversubscribed machine PyTorch's OpenMP pool slows down many
times over at threads = cores (measured: lite0 batch 1 at 0.11 s with 1 thread, 0.9 s with 2,
load average 10 on 2 cores), so one setting alone would make either side look bad. The GPU comparison the issue asks for (eager FP32 vs AMP vs torch.compile vs
ORT's best provider, lite0 and resnet50 at batch 256) needs a GPU machine: not run here.

    .venv/bin/python benchmarks/export_speed.py [--run RUN] [--repeats 9]

Writes benchmarks/results/export_speed.json and export_speed.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import bench_home, bench_parser, header, machine, save_results  # benchmarks/common.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.5  # ORT must be worth shipping over eager PyTorch on the CPU
BATCHES = (1, 32)


def quick_run(workspace: Path) -> Path:
    """A lite0 linear-probe run on the sample set: what the benchmark exports."""
    from shotlab.core import workspace as ws

    ws.activate(workspace)
    from shotlab.curate.importer import import_path
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run

    import_path(ROOT / "datasets" / "sample", "sample", progress=False)
    config = TrainConfig(backbone="lite0", mode="linear", epochs=1, workers=0)
    return train_run("sample", config, track=False, writeback=False, progress=False).run_dir


def time_runtimes(bundle, checkpoint, threads: int, repeats: int) -> dict:
    """Interleaved timings of the three runners, all with `threads` threads."""
    import numpy as np
    import torch

    from shotlab.export import speed
    from shotlab.runtime.runners import TorchRunner, make_runner

    torch.set_num_threads(threads)
    runners = {"pytorch": TorchRunner(checkpoint.model, checkpoint.task),
               "onnx": make_runner(bundle, "onnx", threads=threads),
               "onnx-fp16": make_runner(bundle, "onnx-fp16", threads=threads)}
    height, width = bundle.preprocessing.input_size
    sample = np.random.default_rng(0).normal(size=(1, 3, height, width)).astype(np.float32)
    timings = speed.compare(runners, sample, batch_sizes=BATCHES, repeats=repeats, warmup=3)
    return {"timings": {str(b): t for b, t in timings.items()},
            "ratios": {str(b): {name: t[name]["images_per_s"] / t["pytorch"]["images_per_s"]
                                for name in t if name != "pytorch"}
                       for b, t in timings.items()}}


def measure(run_dir: Path, bundle_dir: Path, repeats: int) -> dict:
    from shotlab.export import speed
    from shotlab.export.exporter import export_run
    from shotlab.runtime.bundle import load_bundle
    from shotlab.train.checkpoint import load_checkpoint

    started = time.perf_counter()
    result = export_run(run_dir, out=bundle_dir, fp16=True, explain=False, force=True)
    export_s = time.perf_counter() - started
    bundle, checkpoint = load_bundle(bundle_dir), load_checkpoint(run_dir)
    load_before = speed.load_average()
    settings = {str(t): time_runtimes(bundle, checkpoint, t, repeats)
                for t in dict.fromkeys((1, os.cpu_count() or 1))}
    return {"export_s": export_s, "gate": result.report["gate"],
            "agreement": {k: v["parity"] for k, v in result.report["runtimes"].items()},
            "input_size": list(bundle.preprocessing.input_size), "threads": settings,
            "load_average_1m": {"before": load_before[0], "after": speed.load_average()[0]}}


def markdown(result: dict) -> str:
    lines = header("Export speed: ONNX Runtime vs PyTorch eager (CPU, lite0)", result,
                   f", input {result['input_size'][0]}x{result['input_size'][1]}, median of "
                   f"{result['repeats']} interleaved rounds; both runtimes with the same "
                   f"threads")
    lines += ["| threads | batch | runtime | median ms | images/s | vs PyTorch |",
              "|---|---|---|---|---|---|"]
    for threads, block in result["threads"].items():
        for batch, rows in block["timings"].items():
            for name, t in rows.items():
                ratio = block["ratios"][batch].get(name)
                lines.append(f"| {threads} | {batch} | {name} | {t['median_ms']:.1f} | "
                             f"{t['images_per_s']:.1f} | "
                             f"{'1.00' if ratio is None else f'{ratio:.2f}'}x |")
    lines.append("")
    for threads, block in result["threads"].items():
        onnx = [block["ratios"][b]["onnx"] for b in block["ratios"]]
        verdict = "met" if min(onnx) >= TARGET_RATIO else "missed"
        lines.append(f"- {threads} thread(s): target ORT >= {TARGET_RATIO}x PyTorch at batch 1 "
                     f"and 32 **{verdict}** (batch 1: {onnx[0]:.2f}x, batch 32: {onnx[1]:.2f}x).")
    lines += ["",
              f"Export (ONNX + FP16 + report, no explanations): {result['export_s']:.1f} s; "
              f"parity {json.dumps(result['agreement'])}.", "",
              "GPU comparison (eager FP32 vs AMP vs torch.compile vs ORT's best provider, lite0 "
              "and resnet50 at batch 256): **not run**, no GPU on this machine.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, "its run and bundle")
    parser.add_argument("--run", type=Path, help="Export this run instead of training one.")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    with bench_home(args.workspace, "shotlab-bench-") as home:
        run_dir = args.run or quick_run(home / "ws")
        result = measure(run_dir, home / "bundle", args.repeats)
    result.update({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "repeats": args.repeats, "run": str(args.run or "lite0 linear, 1 epoch"),
                   "machine": machine()})
    save_results("export_speed", result, markdown(result))


if __name__ == "__main__":
    main()
