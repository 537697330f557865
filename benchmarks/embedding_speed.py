"""Embedding throughput: the whole pipeline vs the bare model forward, side by side.

    .venv/bin/python benchmarks/embedding_speed.py [--images 256] [--rounds 3] [--backbone lite0]

Bare forward: the backbone on tensors decoded and preprocessed beforehand (the model's own rate).
Pipeline: `shotlab.train.embeddings.extract` from image files (decode, EXIF, resize, crop,
normalise in DataLoader workers, then the same forward), cache off (no earlier embeddings are
read; `extract` still writes its per-batch `.npy` files and reads them back, under 1% of the
time, and that is counted). Rounds alternate the two, so
a busy machine slows both alike. Target: the pipeline reaches at least 90% of the bare rate,
i.e. decoding and resizing are not the bottleneck. Writes results/embedding_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

RESULTS = Path(__file__).parent / "results"


def write_images(folder: Path, count: int) -> list[Path]:
    """Photo-sized JPEGs (640x480), so decoding and resizing cost what they cost for users."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        base = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((640, 480), Image.Resampling.BICUBIC)
        path = folder / f"{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def bare_forward(model, batches) -> float:
    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            model(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backbone", default="lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shotlab-bench-embed-") as tmp:
        from shotlab.core import workspace

        workspace.activate(Path(tmp) / "workspace")
        import torch

        from shotlab.core.images import load_rgb, sha256_file
        from shotlab.train.backbones import create_model
        from shotlab.train.embeddings import default_workers, extract

        paths = write_images(Path(tmp), args.images)
        created = create_model(args.backbone, num_classes=0)
        model = created.model.eval()
        arrays = np.stack([created.preprocessing.to_array(load_rgb(p)) for p in paths])
        batches = list(torch.as_tensor(arrays).split(args.batch_size))
        digests = [sha256_file(p) for p in paths]
        bare_forward(model, batches[:1])  # warm-up
        bare, pipeline = [], []
        for _ in range(args.rounds):
            bare.append(args.images / bare_forward(model, batches))
            start = time.perf_counter()
            extract(created, [str(p) for p in paths], digests, batch_size=args.batch_size,
                    use_cache=False, progress=False)
            pipeline.append(args.images / (time.perf_counter() - start))
    result = {"backbone": args.backbone, "images": args.images, "rounds": args.rounds,
              "batch_size": args.batch_size, "workers": default_workers(),
              "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "bare_images_per_s": bare, "pipeline_images_per_s": pipeline,
              "bare_median": statistics.median(bare), "pipeline_median": statistics.median(pipeline),
              "python": platform.python_version(), "load_average": os.getloadavg()}
    result["ratio"] = result["pipeline_median"] / result["bare_median"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embedding_speed.json").write_text(json.dumps(result, indent=1))
    verdict = "meets" if result["ratio"] >= 0.9 else "misses"
    md = (f"# Embedding throughput ({args.backbone}, CPU)\n\n"
          f"{args.images} JPEGs of 640x480, batch {args.batch_size}, median of {args.rounds} "
          f"interleaved rounds, {result['cpus']} CPUs, {result['workers']} DataLoader worker(s), "
          f"{result['torch_threads']} torch threads.\n\n"
          f"| | images/s |\n|---|---:|\n"
          f"| bare forward on pre-decoded tensors | {result['bare_median']:.1f} |\n"
          f"| pipeline from files (`embeddings.extract`) | {result['pipeline_median']:.1f} |\n\n"
          f"Pipeline / bare: **{result['ratio']:.2f}** (target at least 0.90: {verdict}).\n")
    (RESULTS / "embedding_speed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
