"""Datasets shared by the training tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shotlab.curate.importer import import_path

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


@pytest.fixture
def colours(tmp_path, dataset_name):
    """Three classes told apart by colour, with train/val/test folders (6/4/4 per class)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 4), ("test", 4)):
        for name, colour in COLOURS.items():
            for i in range(n):
                noise = rng.normal(0, 25, (40, 40, 3))
                pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
                path = tmp_path / "colours" / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
    import_path(tmp_path / "colours", dataset_name, progress=False)
    return dataset_name
