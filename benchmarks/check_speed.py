"""Scan speed of the quality and duplicate checks (no embeddings), per CPU core, beside decoding.

    .venv/bin/python benchmarks/check_speed.py [--images 2000] [--rounds 5]

On two image sets, 2,000 generated images (the `import_speed.py` recipe: 64x64 to 128x96, half
PNG, half JPEG) and `datasets/sample` (120 clip-art PNGs up to 160 px), interleaved rounds time:

- decode only: read the file and decode every pixel with PIL (`Image.open(...).load()`), the
  floor any scan that looks at pixels pays;
- scan before: the previous implementation, kept here for the comparison (`load_rgb`, a
  256 px thumbnail, numpy statistics, `imagehash.phash`, then `sha256_file`);
- scan now: `image_stats` in this process, then the pairing, clusters and quality cuts;
- with workers: `image_stats` in worker processes (one per core; CPU time of the workers counted);
- re-check: `image_stats` again with its cache warm (the store's sha256s given).

Images per core are images per CPU second of the process (plus its workers), so a busy machine
inflates wall time more than the figure, though not nothing: caches and memory bandwidth are
shared, and runs at load 5 and 0.7 moved the scans by a quarter and decoding by 4%. BLAS and
OpenMP are pinned to one thread. Target: at least
500 images/s per core and at least 0.8 of decode-only. Writes results/check_speed.{json,md}.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: one core's figure

import argparse  # noqa: E402
import io  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "datasets" / "sample"
SIZES = [(64, 64), (80, 64), (96, 64), (96, 80), (96, 96), (112, 80), (128, 80), (128, 96)]
TARGET_PER_CORE, TARGET_RATIO = 500, 0.8


def make_images(root: Path, count: int, seed: int = 20240601) -> list[str]:
    """`import_speed.py`'s images: a smooth random colour grid plus noise, half PNG, half JPEG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        width, height = SIZES[rng.integers(len(SIZES))]
        grid = rng.integers(0, 256, size=(rng.integers(3, 9), rng.integers(3, 9), 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(grid).resize((width, height), Image.BILINEAR), np.int16)
        image = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
        path = root / f"img_{index:05d}.{'jpg' if index % 2 else 'png'}"
        image.save(path, "JPEG" if index % 2 else "PNG", **({"quality": 90} if index % 2 else {}))
        paths.append(str(path))
    return paths


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the scan's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(function, *args, **kwargs) -> dict:
    wall, cpu = time.perf_counter(), cpu_seconds()
    function(*args, **kwargs)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}


def decode_only(paths: list[str]) -> None:
    from PIL import Image

    for path in paths:
        with Image.open(io.BytesIO(Path(path).read_bytes())) as image:
            image.load()


def scan_before(paths: list[str]) -> None:
    """The scan as it was before issue 18 (shotlab 0.x): full decode, thumbnail, numpy, imagehash."""
    import imagehash

    from shotlab.core.errors import BadImageError
    from shotlab.core.images import load_rgb, sha256_file

    weights = np.array([0.299, 0.587, 0.114], np.float32)
    for path in paths:
        try:
            image = load_rgb(path)
        except BadImageError:
            continue
        image.thumbnail((256, 256), reducing_gap=2.0)
        rgb = np.asarray(image, dtype=np.float32)
        gray = rgb @ weights
        (np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean()) / 2
        lap = (gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1]
               - 4 * gray[1:-1, 1:-1])
        lap.var(), gray.var(), gray.mean()
        counts = np.bincount(gray.astype(np.uint8).ravel(), minlength=256)
        p = counts[counts > 0] / counts.sum()
        -(p * np.log2(p)).sum()
        imagehash.phash(image, hash_size=8).hash.ravel()
        sha256_file(Path(path))


def scan_now(paths: list[str], digests: list[str], workers: int = 0, cache=None) -> None:
    from shotlab.curate.checks.duplicates import find_duplicates
    from shotlab.curate.checks.image_stats import image_stats
    from shotlab.curate.checks.quality import find_quality_issues

    stats = image_stats(paths, sha256s=digests, cache=cache, workers=workers, progress=False)
    find_duplicates(digests, [()] * len(paths), phashes=stats.phashes)
    find_quality_issues(stats)


def one_round(paths: list[str], digests: list[str], cache: Path, workers: int) -> dict:
    cache.unlink(missing_ok=True)
    times = {"decode only": timed(decode_only, paths),
             "scan before": timed(scan_before, paths),
             "scan now": timed(scan_now, paths, digests)}
    if workers > 1:
        times[f"scan now, {workers} workers"] = timed(scan_now, paths, digests, workers)
    scan_now(paths, digests, cache=cache)  # fills the cache
    times["re-check (cache warm)"] = timed(scan_now, paths, digests, cache=cache)
    return times


def summarize(rounds: list[dict], images: int) -> dict:
    rows = {}
    for name in rounds[0]:
        cpu = statistics.median(r[name]["cpu_s"] for r in rounds)
        wall = statistics.median(r[name]["wall_s"] for r in rounds)
        rows[name] = {"images_per_cpu_s": round(images / cpu, 1),
                      "images_per_wall_s": round(images / wall, 1)}
    floor = rows["decode only"]["images_per_cpu_s"]
    for row in rows.values():
        row["of_decode_only"] = round(row["images_per_cpu_s"] / floor, 3)
    return rows


def measure_set(name: str, paths: list[str], rounds: int, workers: int, tmp: Path) -> dict:
    from shotlab.core.images import sha256_file

    digests = [sha256_file(Path(p)) for p in paths]  # the store's, computed at import
    cache = tmp / f"{name}.sqlite3"
    one_round(paths[:50], digests[:50], cache, 0)  # warm imports and the page cache
    raw = [one_round(paths, digests, cache, workers) for _ in range(rounds)]
    return {"images": len(paths), "summary": summarize(raw, len(paths)), "rounds_raw": raw}


def markdown(result: dict) -> str:
    from benchmarks.common import busy_note

    lines = ["# Check scan speed: quality + duplicates (pHash, sha256), per core", "",
             *busy_note(result),
             f"Median of {result['rounds']} interleaved rounds; images per CPU second of the "
             f"process and its workers (BLAS/OpenMP pinned to one thread); "
             f"{result['machine']['cpu_count']} CPUs, load average "
             f"{result['load_average_1m']['before']:.1f} at the start.", ""]
    for name, data in result["sets"].items():
        lines += [f"## {name} ({data['images']:,} images)", "",
                  "| | images/s per core | of decode only | images/s (wall) |", "|---|---:|---:|---:|"]
        lines += [f"| {row} | {v['images_per_cpu_s']:,.0f} | {v['of_decode_only']:.2f} | "
                  f"{v['images_per_wall_s']:,.0f} |" for row, v in data["summary"].items()]
        now = data["summary"]["scan now"]
        lines += ["", f"Scan now: **{now['images_per_cpu_s']:,.0f} images/s per core** (target "
                  f"{TARGET_PER_CORE}: {'met' if now['images_per_cpu_s'] >= TARGET_PER_CORE else 'missed'}), "
                  f"**{now['of_decode_only']:.2f} of decode only** (target {TARGET_RATIO}: "
                  f"{'met' if now['of_decode_only'] >= TARGET_RATIO else 'missed'}).", ""]
    return "\n".join(lines)


def main() -> None:
    from benchmarks.common import machine, save_results
    from shotlab.core import workspace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="shotlab-bench-check-") as tmp:
        workspace.activate(Path(tmp) / "workspace")
        generated = make_images(Path(tmp) / "generated", args.images)
        sample = sorted(str(p) for p in SAMPLE.rglob("*.png"))
        sets = {"generated": measure_set("generated", generated, args.rounds, args.workers,
                                         Path(tmp)),
                "sample set": measure_set("sample", sample, args.rounds, args.workers, Path(tmp))}
    result = {"benchmark": "check_speed", "rounds": args.rounds, "workers": args.workers,
              "sets": sets, "machine": machine(),
              "load_average_1m": {"before": load_before, "end": os.getloadavg()[0]}}
    save_results("check_speed", result, markdown(result))


if __name__ == "__main__":
    main()
