"""Augmentation preview: a grid of augmented variants of real samples, written as a PNG.

Each row is one sample: first the original as the model sees it at evaluation (resized and
cropped), then `per_sample` augmented variants. The augmentation comes in as a callable
`augment(PIL image) -> uint8 (H, W, 3) array`, so this module does not depend on training code;
the CLI hands it the training presets (`shotlab.train.augment`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.core.images import load_rgb
from shotlab.curate.review import EXCLUDE_TAG

PAD = 4  # pixels between tiles
CAPTION = 14  # pixels above each row for the class name and file name
BACKGROUND = (200, 200, 200)  # grey, so white-background images show their edges


def grid_size(rows: int, columns: int, tile: tuple[int, int]) -> tuple[int, int]:
    """(width, height) in pixels of a grid of `rows` x `columns` tiles of (height, width)."""
    height, width = tile
    return (PAD + columns * (width + PAD), PAD + rows * (CAPTION + height + PAD))


def build_grid(images: list[Image.Image], captions: list[str],
               original: Callable[[Image.Image], np.ndarray],
               augment: Callable[[Image.Image], np.ndarray], per_sample: int) -> Image.Image:
    """One row per image: `original(image)`, then `per_sample` calls of `augment(image)`."""
    if not images:
        raise InputError("no images to preview")
    first = np.asarray(original(images[0]))
    tile = first.shape[:2]
    canvas = Image.new("RGB", grid_size(len(images), 1 + per_sample, tile), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for row, (image, caption) in enumerate(zip(images, captions)):
        top = PAD + row * (CAPTION + tile[0] + PAD)
        draw.text((PAD, top), caption[:80], fill=(0, 0, 0))
        tiles = [original(image)] + [augment(image) for _ in range(per_sample)]
        for column, pixels in enumerate(tiles):
            pixels = np.asarray(pixels, dtype=np.uint8)
            if pixels.shape[:2] != tile:
                raise InputError(f"augmentation produced a {pixels.shape[1]}x{pixels.shape[0]} "
                                 f"image; expected the model's {tile[1]}x{tile[0]}")
            canvas.paste(Image.fromarray(pixels), (PAD + column * (tile[1] + PAD), top + CAPTION))
    return canvas


def pick_samples(name: str, count: int, seed: int) -> list[tuple[str, str]]:
    """(filepath, caption) of up to `count` samples of dataset `name`, classes taken in turn.

    Samples tagged `exclude` are skipped: they are not trained on. The same seed picks the same.
    """
    dataset = store.load(name)
    rows = [(f, ",".join(l) or "(unlabeled)") for f, l, t in
            zip(dataset.values("filepath"), store.sample_labels(dataset), dataset.values("tags"))
            if EXCLUDE_TAG not in (t or [])]
    if not rows:
        raise InputError(f"dataset '{name}' has no samples to preview (all excluded or empty)")
    rng = random.Random(seed)
    by_class: dict[str, list] = {}
    for row in rows:
        by_class.setdefault(row[1], []).append(row)
    for members in by_class.values():
        rng.shuffle(members)
    picked, queues = [], [by_class[c] for c in sorted(by_class)]
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop())
    return [(f, f"{label}  {Path(f).name}") for f, label in picked]


def write_preview(name: str, out: Path, *, original, augment, samples: int, per_sample: int,
                  seed: int) -> Path:
    """Write the grid PNG for dataset `name` to `out` and return its path."""
    picked = pick_samples(name, samples, seed)
    images = [load_rgb(f) for f, _ in picked]
    grid = build_grid(images, [c for _, c in picked], original, augment, per_sample)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out, optimize=True)
    return out
