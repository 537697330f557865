"""Datasets shared by the training tests."""

from __future__ import annotations

import pytest

from shotlab.core import workspace
from shotlab.curate.importer import import_path
from tests.train.trainsets import write_colour_tree


@pytest.fixture
def colours(tmp_path, dataset_name):
    """Three classes told apart by colour, imported with train/val/test splits (6/4/4)."""
    root = write_colour_tree(tmp_path / "colours", counts={"train": 6, "val": 4, "test": 4})
    import_path(root, dataset_name, progress=False)
    return dataset_name


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """The workspace's runs folder moved to an empty `tmp_path/runs` for this test."""
    folder = tmp_path / "runs"
    monkeypatch.setattr(workspace.Workspace, "runs_dir", property(lambda self: folder))
    return folder
