"""Rebuild `datasets/sample/` from Debian's `openclipart-png` package.

    sudo apt-get install openclipart-png
    .venv/bin/python datasets/build_sample.py

Takes the first PER_CLASS usable PNGs (sorted by name) of six openclipart category folders,
flattens transparency onto white, shrinks each to fit in MAX_SIDE pixels and writes
`sample/<split>/<class>/<name>.png` (SPLIT images per class to train/val/test, assigned by a
seeded shuffle) plus `sample/SOURCES.csv` (each file's original path and split).
The result is deterministic: running it twice writes the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

from PIL import Image

OPENCLIPART = Path("/usr/share/openclipart/png")
CLASSES = {  # class name -> openclipart folder
    "bird": "animals/birds",
    "boat": "transportation/boating",
    "fish": "animals/fish",
    "flower": "plants/flowers",
    "fruit": "food/fruit",
    "house": "buildings/homes",
}
PER_CLASS = 20  # enough for a 3-way split with a few images per class in val and test
MAX_SIDE = 160  # keeps the whole set near 2 MB while staying larger than any model input crop
MIN_SIDE = 48  # smaller originals are icons, not pictures
SPLIT = {"train": 12, "val": 4, "test": 4}  # enough val/test images per class to measure at all
Image.MAX_IMAGE_PIXELS = None  # trusted Debian source: some clip-art renders are very large


def flatten(image: Image.Image) -> Image.Image:
    """RGB on a white background (clip-art is mostly transparent PNG)."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def usable(path: Path) -> bool:
    with Image.open(path) as im:
        return min(im.size) >= MIN_SIDE


def build(out: Path, source_root: Path = OPENCLIPART) -> int:
    if out.exists():
        shutil.rmtree(out)
    rows = []
    for name, folder in CLASSES.items():
        picked = [src for src in sorted((source_root / folder).glob("*.png")) if usable(src)]
        if len(picked) < PER_CLASS:
            raise SystemExit(f"{source_root / folder}: only {len(picked)} usable PNGs, need {PER_CLASS}")
        picked = picked[:PER_CLASS]
        random.Random(name).shuffle(picked)  # seeded per class: the same split on every run
        splits = [s for s, n in SPLIT.items() for _ in range(n)]
        for src, split in zip(picked, splits):
            with Image.open(src) as im:
                rgb = flatten(im)
            rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            dest = out / split / name / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            rgb.save(dest, optimize=True)
            rows.append({"file": f"{split}/{name}/{src.name}", "source": str(src), "label": name,
                         "split": split})
    with open(out / "SOURCES.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "source", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "sample")
    args = parser.parse_args()
    if not OPENCLIPART.is_dir():
        raise SystemExit(f"{OPENCLIPART} not found: install Debian's openclipart-png package")
    print(f"wrote {build(args.out)} images to {args.out}")


if __name__ == "__main__":
    main()
