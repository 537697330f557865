"""Per-image numbers the quality and duplicate checks need, from one decode of each file.

Pixel statistics are taken on a copy shrunk to at most `STATS_SIDE` pixels on its long side, so a
40-megapixel photo costs about what a thumbnail does and blur is measured at a comparable scale
across image sizes; width and height are the file's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shotlab.core.errors import BadImageError
from shotlab.core.images import load_rgb
from shotlab.core.progress import progress_bar
from shotlab.curate.duplicates import phash_bits

STATS_SIDE = 256  # px, long side: enough detail for blur, fast on a CPU
GRAY_TOLERANCE = 3.0  # mean |R-G|, |G-B| in 0-255 below which an image has no colour
STAT_NAMES = ("brightness", "sharpness", "entropy", "width", "height", "colourfulness")


@dataclass
class ImageStats:
    values: dict[str, np.ndarray]  # STAT_NAMES -> (n,) float; NaN for unreadable files
    phashes: np.ndarray  # (n, 64) bool; all False for unreadable files
    unreadable: dict[int, str]  # position -> reason


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurry (and for low-contrast) images."""
    lap = (gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1]
           - 4 * gray[1:-1, 1:-1])
    return float(lap.var()) if lap.size else 0.0


def entropy_bits(gray: np.ndarray) -> float:
    """Shannon entropy of the 256-bin grey histogram, 0-8 bits: low for near-blank images."""
    counts = np.bincount(gray.astype(np.uint8).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def pixel_stats(small) -> dict[str, float]:
    """Brightness (0-1), sharpness (Laplacian variance / grey variance), entropy and
    colourfulness (mean |R-G|, |G-B|) of a PIL RGB image (already shrunk)."""
    rgb = np.asarray(small, dtype=np.float32)
    gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    colour = (np.abs(rgb[..., 0] - rgb[..., 1]).mean()
              + np.abs(rgb[..., 1] - rgb[..., 2]).mean()) / 2
    # Sharpness relative to contrast, so a dark or faded image is not also called blurry.
    sharpness = laplacian_variance(gray) / (float(gray.var()) + 1e-6)
    return {"brightness": float(gray.mean() / 255), "sharpness": sharpness,
            "entropy": entropy_bits(gray), "colourfulness": float(colour)}


def image_stats(paths: list[str], *, progress: bool | None = None) -> ImageStats:
    """Statistics and 64-bit perceptual hashes of every image, in order."""
    values = {k: np.full(len(paths), np.nan) for k in STAT_NAMES}
    phashes = np.zeros((len(paths), 64), bool)
    unreadable: dict[int, str] = {}
    for i, path in enumerate(progress_bar(paths, enabled=progress, unit="img", desc="Scanning")):
        try:
            image = load_rgb(path)
        except BadImageError as exc:
            unreadable[i] = exc.reason
            continue
        values["width"][i], values["height"][i] = image.size
        # In place (load_rgb's image is ours); reducing_gap: a fast box reduction first, then
        # an antialiased resize, indistinguishable at this size and several times faster.
        image.thumbnail((STATS_SIDE, STATS_SIDE), reducing_gap=2.0)
        for key, value in pixel_stats(image).items():
            values[key][i] = value
        phashes[i] = phash_bits(image)  # pHash shrinks to 32x32 anyway: the thumbnail suffices
    return ImageStats(values, phashes, unreadable)
