"""Image files for tests, generated on the spot: valid ones in every awkward mode, and bad ones."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, *, seed: int = 0, size: tuple[int, int] = (32, 24), mode: str = "RGB",
                fmt: str | None = None, **save_args) -> Path:
    """A random-pattern image (distinct per seed, so files never collide by accident)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt, **save_args)
    return path


def write_class_tree(root: Path, classes: dict[str, int], *, split: str | None = None,
                     seed: int = 0, ext: str = ".png") -> list[Path]:
    """`root/[split/]class/class_i.ext` for each class and count; returns the files written."""
    files = []
    for c, (name, count) in enumerate(classes.items()):
        for i in range(count):
            base = root / split if split else root
            files.append(write_image(base / name / f"{name.replace(' ', '_')}_{i}{ext}",
                                     seed=seed + 1000 * c + i))
    return files


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height, with a tiny data stream: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
