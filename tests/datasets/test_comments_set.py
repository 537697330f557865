"""The illustrative comment set of the docs imports whole, and holds the case it was written for."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotlab.core import store
from shotlab.curate.importer import import_path

COMMENTS = Path(__file__).resolve().parents[2] / "datasets" / "comments" / "comments.csv"


@pytest.mark.fiftyone
def test_the_comment_set_imports_without_a_skip(dataset_name):
    report = import_path(COMMENTS, dataset_name, progress=False)
    assert (report.format, report.added, report.skipped, report.duplicate_groups) == (
        "text", 72, [], 0)
    dataset = store.load(dataset_name)
    assert store.class_counts(dataset).keys() == {"ok", "violence", "harassment"}
    labels = dict(zip(dataset.values("text"), dataset.values("ground_truth.label")))
    assert labels["this joke kills me"] == "ok"
