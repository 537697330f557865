"""Scan speed of the quality and duplicate checks (no embeddings), per CPU core.

    .venv/bin/python benchmarks/check_speed.py [--images 400] [--rounds 3]

Runs what `shotlab curate check --checks quality,duplicates` does per image on real files
(openclipart PNGs from Debian's `openclipart-png`, picked with a fixed seed): decode, pixel
statistics and 64-bit pHash (`image_stats`), the sha256 of the file, then the pairwise pHash
comparison, the union-find clusters and the adaptive quality cuts. One process with BLAS and
OpenMP pinned to one thread, so the time is one core's; CPU time (process_time) is reported
beside wall time because a shared machine inflates wall time. For reference, fastdup reports about
2 ms per image per core. Writes results/check_speed.{json,md}.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: one core's figure

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
RESULTS = Path(__file__).parent / "results"
SOURCE = Path("/usr/share/openclipart/png")
FASTDUP_MS_PER_IMAGE_CORE = 2.0  # fastdup's README figure


def pick_images(count: int, seed: int = 0) -> list[str]:
    paths = sorted(str(p) for p in SOURCE.rglob("*.png"))
    rng = np.random.default_rng(seed)
    return [paths[i] for i in sorted(rng.choice(len(paths), min(count, len(paths)), replace=False))]


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - wall, time.process_time() - cpu


def one_round(paths: list[str]) -> dict:
    from shotlab.core.images import sha256_file
    from shotlab.curate.checks.duplicates import find_duplicates
    from shotlab.curate.checks.image_stats import image_stats
    from shotlab.curate.checks.quality import find_quality_issues

    stats, stats_wall, stats_cpu = timed(image_stats, paths, progress=False)
    sha, sha_wall, sha_cpu = timed(lambda: [sha256_file(Path(p)) for p in paths])
    labels = [()] * len(paths)
    _, pair_wall, pair_cpu = timed(find_duplicates, sha, labels, phashes=stats.phashes)
    _, quality_wall, quality_cpu = timed(find_quality_issues, stats)
    stages = {"decode+stats+phash": (stats_wall, stats_cpu), "sha256": (sha_wall, sha_cpu),
              "pairs+clusters": (pair_wall, pair_cpu), "quality cuts": (quality_wall, quality_cpu)}
    return {name: {"wall_s": w, "cpu_s": c} for name, (w, c) in stages.items()}


def summarize(rounds: list[dict], images: int) -> dict:
    stages = {}
    for name in rounds[0]:
        cpu = statistics.median(r[name]["cpu_s"] for r in rounds)
        wall = statistics.median(r[name]["wall_s"] for r in rounds)
        stages[name] = {"cpu_ms_per_image": round(1000 * cpu / images, 3),
                        "wall_ms_per_image": round(1000 * wall / images, 3)}
    cpu_total = sum(s["cpu_ms_per_image"] for s in stages.values())
    wall_total = sum(s["wall_ms_per_image"] for s in stages.values())
    return {"stages": stages, "cpu_ms_per_image": round(cpu_total, 3),
            "wall_ms_per_image": round(wall_total, 3),
            "images_per_s_per_core": round(1000 / cpu_total, 1),
            "vs_fastdup": round(cpu_total / FASTDUP_MS_PER_IMAGE_CORE, 2)}


def markdown(result: dict) -> str:
    from benchmarks.common import busy_note

    s = result["summary"]
    lines = ["# Check scan speed: quality + duplicates (pHash, sha256), one core", "",
             *busy_note(result),
             f"{result['images']} openclipart PNGs (median {result['median_pixels']:,} pixels), "
             f"median of {result['rounds']} rounds, BLAS/OpenMP pinned to one thread.", "",
             "| stage | CPU ms/image | wall ms/image |", "|---|---|---|"]
    lines += [f"| {name} | {v['cpu_ms_per_image']:.2f} | {v['wall_ms_per_image']:.2f} |"
              for name, v in s["stages"].items()]
    lines += [f"| **total** | **{s['cpu_ms_per_image']:.2f}** | {s['wall_ms_per_image']:.2f} |", "",
              f"**{s['images_per_s_per_core']} images/s per core** "
              f"({s['cpu_ms_per_image']:.2f} ms CPU per image), {s['vs_fastdup']}x fastdup's reported "
              f"{FASTDUP_MS_PER_IMAGE_CORE} ms/image/core (a dedicated C++ tool). Embeddings "
              f"(label, near duplicates by cosine, outliers) are not included: see "
              f"embedding_speed.md."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from benchmarks.common import machine, save_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not SOURCE.is_dir():
        raise SystemExit(f"{SOURCE} not found: install Debian's openclipart-png package")
    from PIL import Image

    paths = pick_images(args.images)
    pixels = [Image.open(p).size for p in paths]
    one_round(paths[:10])  # warm imports and the page cache
    rounds = [one_round(paths) for _ in range(args.rounds)]
    result = {"benchmark": "check_speed", "images": len(paths), "rounds": args.rounds,
              "median_pixels": int(statistics.median(w * h for w, h in pixels)),
              "summary": summarize(rounds, len(paths)), "rounds_raw": rounds,
              "fastdup_ms_per_image_core": FASTDUP_MS_PER_IMAGE_CORE,
              "machine": machine(), "load_average_1m": {"end": os.getloadavg()[0]}}
    save_results("check_speed", result, markdown(result))


if __name__ == "__main__":
    main()
