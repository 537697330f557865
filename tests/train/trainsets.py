"""Synthetic labelled image sets for training tests: classes told apart by colour.

Each image is a solid colour with per-pixel noise and a random brightness shift, so the classes
are clearly separable (even through a randomly initialised backbone) yet no two files share bytes.
Images are small (48x48 by default) so a few epochs of the tiny test backbone take seconds.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

# Far apart in RGB: a linear probe on any reasonable features separates them.
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 220, 30), "grey": (128, 128, 128)}
SPLITS = {"train": 8, "val": 4, "test": 4}


def noisy_colour(rgb, rng, size: int = 48, noise: float = 18.0) -> np.ndarray:
    """An (size, size, 3) uint8 image of colour `rgb`, shifted and speckled at random."""
    shift = rng.normal(0, 12, size=3)
    pixels = np.asarray(rgb, np.float32) + shift + rng.normal(0, noise, size=(size, size, 3))
    return pixels.clip(0, 255).astype(np.uint8)


def write_colour_tree(root: Path, classes=("red", "green", "blue"), counts: dict | None = None,
                      *, size: int = 48, seed: int = 0) -> Path:
    """`root/split/class/class_i.png` with `counts[split]` images per class (or a dict per class).

    `counts` maps a split to an int (same for every class) or to {class: count}.
    """
    counts = SPLITS if counts is None else counts
    rng = np.random.default_rng(seed)
    for split, per_class in counts.items():
        for name in classes:
            n = per_class[name] if isinstance(per_class, dict) else per_class
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = noisy_colour(COLOURS[name], rng, size)
                Image.fromarray(image).save(folder / f"{name}_{i}.png")
    return root


def two_patch_image(present: tuple[str, ...], rng, size: int = 48) -> np.ndarray:
    """Grey background with a coloured left half for 'red' and a coloured right half for 'blue'."""
    pixels = noisy_colour(COLOURS["grey"], rng, size)
    half = size // 2
    if "red" in present:
        pixels[:, :half] = noisy_colour(COLOURS["red"], rng, size)[:, :half]
    if "blue" in present:
        pixels[:, half:] = noisy_colour(COLOURS["blue"], rng, size)[:, half:]
    return pixels


MULTILABEL_PATTERNS = ((), ("red",), ("blue",), ("red", "blue"))


def write_multilabel_csv(root: Path, *, per_pattern: dict | None = None, size: int = 48,
                         seed: int = 0) -> Path:
    """Images with a red and/or blue half and `root/labels.csv` (`filepath,labels,split`,
    labels joined by ';'), `per_pattern[split]` images of each of the four label patterns."""
    per_pattern = per_pattern or {"train": 4, "val": 2, "test": 2}
    rng = np.random.default_rng(seed)
    rows = []
    root.mkdir(parents=True, exist_ok=True)
    for split, n in per_pattern.items():
        for pattern in MULTILABEL_PATTERNS:
            for i in range(n):
                name = f"{split}_{'_'.join(pattern) or 'none'}_{i}.png"
                Image.fromarray(two_patch_image(pattern, rng, size)).save(root / name)
                rows.append((name, ";".join(pattern), split))
    csv_path = root / "labels.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", "labels", "split"])
        writer.writerows(rows)
    return csv_path


def import_colour_set(tmp_path: Path, name: str, **options):
    """Write a colour tree under `tmp_path`, import it as dataset `name`, return its manifest."""
    from shotlab.curate.importer import import_path
    from shotlab.train.manifest import freeze

    root = write_colour_tree(tmp_path / "colours", **options)
    import_path(root, name, progress=False, workers=2)
    return freeze(name)
