"""Build a few-shot Fashion-MNIST image folder from Debian's `dataset-fashion-mnist` package.

    sudo apt-get install dataset-fashion-mnist
    .venv/bin/python datasets/fashion_mnist.py OUT --train-per-class 20 --test-per-class 200

Writes `OUT/{train,val,test}/<class name>/<index>.png` (28x28 grayscale PNGs), which
`shotlab curate import OUT` reads as a split/class/image tree. Train and val images come from the
60k training file, test images from the separate 10k test file, so no image is in two splits.
Sampling is stratified and seeded: the same arguments write the same files.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path("/usr/share/datasets/fashion-mnist")
# The standard class order of the label files; '/' cannot be in a folder name.
CLASSES = ["T-shirt-top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (the MNIST format): magic, dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(kind: str, source: Path = SOURCE) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if kind == "train" else "t10k"
    images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
    return images, labels


def pick(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """`per_class` random indices of each class, class by class."""
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                           for c in range(len(CLASSES))])


def write(out: Path, split: str, images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> None:
    for i in idx:
        dest = out / split / CLASSES[labels[i]] / f"{split}-{i:05d}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i], mode="L").save(dest)


def build(out: Path, train_per_class: int, val_per_class: int, test_per_class: int,
          seed: int = 0, source: Path = SOURCE) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    if out.exists():
        shutil.rmtree(out)
    images, labels = load("train", source)
    chosen = pick(labels, train_per_class + val_per_class, rng).reshape(len(CLASSES), -1)
    write(out, "train", images, labels, chosen[:, :train_per_class].ravel())
    write(out, "val", images, labels, chosen[:, train_per_class:].ravel())
    test_images, test_labels = load("test", source)
    write(out, "test", test_images, test_labels, pick(test_labels, test_per_class, rng))
    return {"train": train_per_class * 10, "val": val_per_class * 10, "test": test_per_class * 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train-per-class", type=int, default=20)
    parser.add_argument("--val-per-class", type=int, default=5)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not SOURCE.is_dir():
        raise SystemExit(f"{SOURCE} not found: install Debian's dataset-fashion-mnist package")
    counts = build(args.out, args.train_per_class, args.val_per_class, args.test_per_class, args.seed)
    print(f"wrote {counts} images to {args.out}")


if __name__ == "__main__":
    main()
