"""Per-image numbers the quality and duplicate checks need, from one read of each file.

Each file is read once and decoded once, at reduced size where the format allows
(`core.images.load_thumbnail`: at most `STATS_SIDE` pixels on the long side, a JPEG decoded at
1/2 to 1/8 scale), and every number comes from that one small image: the pixel statistics and the
perceptual hash. So a 40-megapixel photo costs about what a thumbnail does, and blur is measured
at a comparable scale across image sizes; width and height are the file's own.

Files are scanned in worker processes when there are enough to pay for starting them, and the
results can be cached by the file's sha256 (`stats_cache`), so a re-check of unchanged images
decodes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotlab.core.errors import BadImageError
from shotlab.core.images import load_thumbnail
from shotlab.core.progress import progress_bar
from shotlab.curate.duplicates import phash_coefficients, phash_from_coefficients

STATS_SIDE = 256  # px, long side: enough detail for blur, fast on a CPU
GRAY_TOLERANCE = 3.0  # mean |R-G|, |G-B| in 0-255 below which an image has no colour
STAT_NAMES = ("brightness", "sharpness", "entropy", "width", "height", "colourfulness")
# Files per task sent to a worker: large enough that the hand-over is noise (about 30 ms of work
# for small images), small enough that the last task does not leave the other cores idle long.
CHUNK = 64
# A spawned worker pays for an interpreter, numpy, PIL and OpenCV before its first file: about
# 0.7 s of CPU measured (benchmarks/check_speed.py), the time to scan some 600 small images. Below
# this many files per worker the start-up would be more than a quarter of the work.
FILES_PER_WORKER = 2500
# Bump when a measure changes (its formula, its input image): cached results of another version
# are not used. 2: one decode at reduced size (issue 18). 3: 32-bit and float greyscale scaled
# to their range (they were clipped: black or white).
VERSION = 3


@dataclass
class ImageStats:
    values: dict[str, np.ndarray]  # STAT_NAMES -> (n,) float; NaN for unreadable files
    phashes: np.ndarray  # (n, 64) bool; all False for unreadable files
    unreadable: dict[int, str]  # position -> reason


@dataclass
class Scanned:
    """What one scan of some files found, in their order (the unit sent to and from a worker)."""

    values: np.ndarray  # (n, len(STAT_NAMES)) float64; NaN rows for unreadable files
    phashes: np.ndarray  # (n, 64) bool
    sha256s: list[str | None]  # of the bytes decoded; None where the file could not be read
    unreadable: dict[int, str]


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurry (and for low-contrast) images."""
    import cv2

    if min(gray.shape) < 3:
        return 0.0
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=1)[1:-1, 1:-1]  # kernel [0 1 0; 1 -4 1; 0 1 0]
    return float(cv2.meanStdDev(lap)[1][0, 0] ** 2)


def entropy_bits(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy of (n, 256) grey histograms, 0-8 bits: low for near-blank images."""
    p = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log2(p), 0.0).sum(1)


def pixel_stats(small) -> tuple[list[float], np.ndarray, np.ndarray]:
    """From a PIL RGB image (already shrunk): [brightness (0-1), sharpness (Laplacian variance /
    grey variance), colourfulness (mean |R-G|, |G-B|)], the 256-bin grey histogram (entropy is
    computed for many at once) and the 64 pHash coefficients."""
    import cv2

    rgb = np.asarray(small)
    red, green, blue = cv2.split(rgb)
    colour = (cv2.norm(red, green, cv2.NORM_L1) + cv2.norm(green, blue, cv2.NORM_L1)) / (2 * red.size)
    floats = rgb.astype(np.float32)
    gray = cv2.cvtColor(floats, cv2.COLOR_RGB2GRAY)  # 0.299 R + 0.587 G + 0.114 B, in float
    mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(gray))
    # Sharpness relative to contrast, so a dark or faded image is not also called blurry.
    sharpness = laplacian_variance(gray) / (std * std + 1e-6)
    histogram = np.bincount(gray.astype(np.uint8).ravel(), minlength=256)  # bins of floor(grey)
    return [mean / 255, sharpness, colour], histogram, phash_coefficients(small)


def scan_files(paths: list[str]) -> Scanned:
    """Read, decode and measure each file once (run in a worker process for large sets)."""
    n = len(paths)
    values = np.full((n, len(STAT_NAMES)), np.nan)
    histograms = np.zeros((n, 256))
    coefficients = np.zeros((n, 64), np.float32)
    sha256s: list[str | None] = [None] * n
    unreadable: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            thumb = load_thumbnail(path, STATS_SIDE)
        except BadImageError as exc:
            unreadable[i] = exc.reason
            continue
        (brightness, sharpness, colour), histograms[i], coefficients[i] = pixel_stats(thumb.image)
        values[i] = brightness, sharpness, 0.0, thumb.width, thumb.height, colour
        sha256s[i] = thumb.sha256
    readable = np.isfinite(values[:, 0])
    values[readable, STAT_NAMES.index("entropy")] = entropy_bits(histograms[readable])
    phashes = phash_from_coefficients(coefficients) & readable[:, None]
    return Scanned(values, phashes, sha256s, unreadable)


def default_workers(files: int) -> int:
    """Worker processes worth starting for `files` files: 0 (scan here) on small sets."""
    from shotlab.core.cpus import usable_cpus

    workers = min(usable_cpus(), files // FILES_PER_WORKER)
    return workers if workers > 1 else 0


def scan(paths: list[str], *, workers: int | None = None, progress: bool | None = None) -> Scanned:
    """`scan_files` over all `paths`, in chunks, in `workers` processes (0: in this one)."""
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    workers = default_workers(len(paths)) if workers is None else workers
    with progress_bar(total=len(paths), enabled=progress, unit="img", desc="Scanning") as bar:
        if workers > 1 and len(chunks) > 1:
            parts = list(map_in_workers(chunks, workers, bar))
        else:
            parts = list(map_here(chunks, bar))
    return join(parts)


def map_here(chunks: list[list[str]], bar):
    """scan_files over `chunks` in this process, the bar advanced after each. (It was
    `bar.update(n) or scan_files(c)`: tqdm's update returns True when it redraws, on a
    terminal, and that True stood in for the chunk's scan: a traceback on 65+ images.)"""
    for chunk in chunks:
        part = scan_files(chunk)
        bar.update(len(chunk))
        yield part


def map_in_workers(chunks: list[list[str]], workers: int, bar):
    """scan_files over `chunks` in spawned processes (the caller may hold database threads,
    which a fork would copy in whatever state they are), results in order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
        for chunk, part in zip(chunks, pool.map(scan_files, chunks)):
            bar.update(len(chunk))
            yield part


def join(parts: list[Scanned]) -> Scanned:
    if not parts:
        return Scanned(np.zeros((0, len(STAT_NAMES))), np.zeros((0, 64), bool), [], {})
    offsets = np.cumsum([0] + [len(p.sha256s) for p in parts])
    return Scanned(np.concatenate([p.values for p in parts]),
                   np.concatenate([p.phashes for p in parts]),
                   [s for p in parts for s in p.sha256s],
                   {int(start) + i: reason for start, p in zip(offsets, parts)
                    for i, reason in p.unreadable.items()})


def scan_settings() -> str:
    """What cached results depend on: a cache entry is reused only under the same settings."""
    return f"v{VERSION} side={STATS_SIDE} stats={','.join(STAT_NAMES)} phash=64"


def image_stats(paths: list[str], *, sha256s: list[str] | None = None, cache: Path | None = None,
                workers: int | None = None, progress: bool | None = None) -> ImageStats:
    """Statistics and 64-bit perceptual hashes of every image, in order.

    With `cache` (a file, see `stats_cache`) and the files' `sha256s` (the store's), images
    measured before are not read at all; the others are measured and added to it.
    """
    from shotlab.curate.checks import stats_cache

    settings = scan_settings()
    known = (stats_cache.lookup(cache, settings, sha256s, len(STAT_NAMES))
             if cache and sha256s else {})
    todo = [i for i in range(len(paths)) if sha256s is None or sha256s[i] not in known]
    scanned = scan([paths[i] for i in todo], workers=workers, progress=progress)
    if cache:
        stats_cache.store(cache, settings, scanned)
    values = np.full((len(paths), len(STAT_NAMES)), np.nan)
    phashes = np.zeros((len(paths), 64), bool)
    for i, digest in enumerate(sha256s or ()):
        if digest in known:
            values[i], phashes[i] = known[digest]
    values[todo], phashes[todo] = scanned.values, scanned.phashes
    unreadable = {todo[k]: reason for k, reason in scanned.unreadable.items()}
    return ImageStats({name: values[:, j] for j, name in enumerate(STAT_NAMES)}, phashes,
                      unreadable)
