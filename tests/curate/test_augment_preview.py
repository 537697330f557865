"""Augmentation preview: a grid of real samples through the training presets."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from shotlab.cli import cli
from shotlab.core.errors import InputError
from shotlab.curate.augment_preview import CAPTION, PAD, build_grid, grid_size
from tests.imaging import write_class_tree


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def solid(value: int, size=(20, 10)) -> Image.Image:
    return Image.new("RGB", size, (value, value, value))


def test_grid_puts_the_original_first_then_the_variants():
    calls = []

    def augment(image):
        calls.append(image)
        return np.full((8, 12, 3), 200, np.uint8)

    grid = build_grid([solid(10), solid(90)], ["a", "b"], lambda im: np.asarray(im.resize((12, 8))),
                      augment, per_sample=3)
    assert grid.size == grid_size(2, 4, (8, 12)) == (PAD + 4 * 16, PAD + 2 * (CAPTION + 8 + PAD))
    assert len(calls) == 6
    pixels = np.asarray(grid)
    top = PAD + CAPTION
    assert pixels[top, PAD, 0] == 10 and pixels[top, PAD + 16, 0] == 200
    assert pixels[top + 8 + PAD + CAPTION, PAD, 0] == 90


def test_grid_refuses_variants_of_another_size():
    with pytest.raises(InputError, match="expected the model's 12x8"):
        build_grid([solid(1)], ["a"], lambda im: np.zeros((8, 12, 3), np.uint8),
                   lambda im: np.zeros((9, 12, 3), np.uint8), per_sample=1)


@pytest.mark.fiftyone
def test_augment_preview_writes_the_grid_png(tmp_path, dataset_name):
    write_class_tree(tmp_path / "src", {"cat": 3, "dog": 3})
    assert run("curate", "import", tmp_path / "src", "--name", dataset_name).exit_code == 0
    out = tmp_path / "preview" / "grid.png"
    result = run("curate", "augment-preview", dataset_name, "--preset", "strong", "--samples", 4,
                 "--per-sample", 3, "--backbone", "tiny-test", "--out", out, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == grid_size(4, 4, (64, 64))
        first = np.asarray(image)
    run("curate", "augment-preview", dataset_name, "--preset", "strong", "--samples", 4,
        "--per-sample", 3, "--backbone", "tiny-test", "--out", out, "--seed", 1)
    assert np.array_equal(np.asarray(Image.open(out)), first)  # seeded: the same grid again


@pytest.mark.fiftyone
def test_augment_preview_bad_input(tmp_path, dataset_name):
    bad = run("curate", "augment-preview", dataset_name, "--preset", "wild")
    assert bad.exit_code == 2 and "'wild' is not one of" in bad.output
    assert "'none', 'light', 'standard', 'strong'" in bad.output
    missing = run("curate", "augment-preview", dataset_name, "--preset", "light",
                  "--backbone", "tiny-test", "--out", tmp_path / "x.png")
    assert missing.exit_code == 2 and f"no dataset named '{dataset_name}'" in missing.output


def test_augment_preview_help():
    result = run("curate", "augment-preview", "--help")
    assert result.exit_code == 0 and "--per-sample" in result.output
