"""`curate info`'s headline counts classes, not the bucket of unlabeled samples."""

from __future__ import annotations

from shotlab.core import store
from shotlab.curate.summary import DatasetSummary


def test_unlabeled_samples_are_not_a_class():
    summary = DatasetSummary("d", "multiclass", 18, {
        "blue": {"train": 3}, "green": {"train": 3}, "red": {"train": 3},
        store.UNLABELED: {store.UNASSIGNED: 9}}, {"train": 9, store.UNASSIGNED: 9}, 1.0)
    assert "18 samples, 3 classes," in summary.render()
