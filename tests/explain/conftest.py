"""A bundle exported from the shared trained run, and colour images to explain with it."""

from __future__ import annotations

import pytest

from tests.train.trainsets import write_colour_tree


@pytest.fixture(scope="session")
def explain_bundle(trained_run, tmp_path_factory):
    """A bundle folder (ONNX) exported from `trained_run`; tests must not modify it."""
    from shotlab.export.exporter import export_run

    out = tmp_path_factory.mktemp("explain-bundle") / "bundle"
    return export_run(trained_run, out=out, explain=False, progress=False).path


@pytest.fixture
def colour_images(tmp_path):
    """Two readable colour photos per class (red, green, blue), as files."""
    root = write_colour_tree(tmp_path / "colours", counts={"test": 2}, seed=7)
    return sorted(root.rglob("*.png"))
