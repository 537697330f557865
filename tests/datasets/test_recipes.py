"""The dataset recipes: the sample set that ships, and the Fashion-MNIST few-shot builder."""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from shotlab.core.images import inspect_image

ROOT = Path(__file__).resolve().parents[2]


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "datasets" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_mnist(folder: Path, per_class: int) -> None:
    """IDX files in the real format, each image filled with its own class index."""
    folder.mkdir()
    for prefix in ("train", "t10k"):
        labels = np.repeat(np.arange(10), per_class)
        images = np.broadcast_to(labels[:, None, None], (len(labels), 28, 28))
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def test_fashion_mnist_recipe_is_stratified_disjoint_and_seeded(tmp_path):
    recipe = load_recipe("fashion_mnist")
    fake_fashion_mnist(tmp_path / "src", per_class=12)
    counts = recipe.build(tmp_path / "out", 5, 2, 3, seed=1, source=tmp_path / "src")
    assert counts == {"train": 50, "val": 20, "test": 30}
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        for index, name in enumerate(recipe.CLASSES):
            files = sorted((tmp_path / "out" / split / name).glob("*.png"))
            assert len(files) == n
            assert all(np.asarray(Image.open(f)).max() == index for f in files)  # right label
    train = {p.name[6:] for p in (tmp_path / "out" / "train").rglob("*.png")}
    val = {p.name[4:] for p in (tmp_path / "out" / "val").rglob("*.png")}
    assert not train & val  # indices into the same file never repeat across splits
    recipe.build(tmp_path / "again", 5, 2, 3, seed=1, source=tmp_path / "src")
    same = sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.png"))
    assert same == sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.png"))


def test_shipped_sample_set_is_valid_and_documented():
    sample = ROOT / "datasets" / "sample"
    with open(sample / "SOURCES.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 120 and {r["label"] for r in rows} == set(load_recipe("build_sample").CLASSES)
    for row in rows:
        facts = inspect_image(sample / row["file"])
        assert facts.format == "PNG" and max(facts.width, facts.height) <= 160
    total = sum(p.stat().st_size for p in sample.rglob("*") if p.is_file())
    assert total < 10 * 1024 * 1024
