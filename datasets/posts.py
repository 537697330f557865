"""A small posts example (image + caption) for the docs: `datasets/sample` images with captions.

    .venv/bin/python datasets/posts.py ~/data/posts          # writes posts.csv + images/
    .venv/bin/shotlab curate import ~/data/posts/posts.csv --name posts

The setting (illustrative, written for the docs): a wildlife forum. A post is `off_topic` (the
unsafe class a moderator reviews) when its picture is not an animal (a boat, a flower, fruit, a
house) OR its caption sells something; it is `on_topic` when an animal picture comes with a
chatty caption. So some flags come from the picture, some from the words, some from both:
what the modality split (docs/text.md) should show.

Images: every bird and fish of `datasets/sample` (openclipart, public domain; see
datasets/sample/SOURCES.csv) and as many of the other classes, per split. Captions: the short
lists below, written for this example; each image gets one in a seeded draw (a sale caption
with probability `SALE_SHARE`). The images are copied under the output folder (a posts CSV
names images under its own folder). Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "sample"
ANIMALS = ("bird", "fish")
OTHERS = ("boat", "flower", "fruit", "house")
SPLITS = ("train", "val", "test")
SALE_SHARE = 0.3
CLASSES = ("off_topic", "on_topic")

CHAT = (
    "Look what I spotted on my walk this morning",
    "Isn't this lovely? Made my whole day",
    "My drawing from last weekend, what do you think",
    "Saw this by the lake, so peaceful",
    "Can anyone tell me what this is called",
    "Sharing a favourite from my sketchbook",
    "This one always makes me smile",
    "Found this in my grandmother's old album",
    "First try at drawing this, be kind",
    "The colours on this are beautiful",
    "We watched this for an hour today",
    "Happy Sunday everyone, here is my find",
)
SALE = (
    "For sale: only 20 euros, message me now",
    "Buy now at half price, limited stock",
    "Cheap! DM me for the price, shipping worldwide",
    "Selling this today, best offer wins, pay by transfer",
    "Huge discount this week only, order from my shop",
    "Bargain price, cash only, first come first served",
)


def label_of(image_class: str, sale: bool) -> str:
    return "off_topic" if sale or image_class not in ANIMALS else "on_topic"


def sample_images(split: str, sample: Path = SAMPLE, per_class: int | None = None) -> list:
    """[(class, image path)] of `split`: each animal's images (at most `per_class`), and as many
    others, taken in turn from the other classes."""
    def images(name):
        return sorted((sample / split / name).glob("*.png"))

    animals = [(c, p) for c in ANIMALS for p in images(c)[:per_class]]
    pools = [[(c, p) for p in images(c)] for c in OTHERS]
    others = [item for group in zip(*pools) for item in group][:len(animals)]
    return animals + others


def build_posts(out: Path, *, seed: int = 0, per_class: int | None = None,
                sample: Path = SAMPLE) -> list[dict]:
    """Copy the images under `out/images/` and return the rows (image_path, text, label,
    split, image_class); `per_class` caps the images of each animal class per split."""
    rng = random.Random(seed)
    rows = []
    for split in SPLITS:
        for image_class, path in sample_images(split, sample, per_class):
            sale = rng.random() < SALE_SHARE
            text = rng.choice(SALE if sale else CHAT)
            target = out / "images" / split / image_class / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            rows.append({"image_path": str(target.relative_to(out)), "text": text,
                         "label": label_of(image_class, sale), "split": split,
                         "image_class": image_class})
    return rows


def write_posts(out: Path, rows: list[dict], name: str = "posts.csv") -> Path:
    path = out / name
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write posts.csv and images/ into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=None,
                        help="at most this many images of each animal class per split")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = build_posts(args.out, seed=args.seed, per_class=args.per_class)
    path = write_posts(args.out, rows)
    counts = {c: sum(r["label"] == c for r in rows) for c in CLASSES}
    print(f"{path}: {len(rows)} posts ({', '.join(f'{c} {n}' for c, n in counts.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
