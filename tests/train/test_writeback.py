"""The `predictions` field holds one run's predictions: nothing of an older run is left behind,
and a bundle's decisions written by `predict --dataset` are not a run's to clear."""

from __future__ import annotations

import pytest

from shotlab.core import store
from shotlab.curate.importer import import_path
from shotlab.train.writeback import PREDICTION_FIELD, write_predictions
from tests.imaging import write_class_tree

pytestmark = pytest.mark.fiftyone


def test_samples_a_later_run_leaves_out_lose_the_earlier_runs_prediction(tmp_path, dataset_name):
    write_class_tree(tmp_path / "src", {"cat": 3, "dog": 3})
    import_path(tmp_path / "src", dataset_name, progress=False)
    dataset = store.load(dataset_name)
    ids, labels = dataset.values("id"), store.sample_labels(dataset)
    probs = [[0.9, 0.1] if l == ("cat",) else [0.2, 0.8] for l in labels]
    write_predictions(dataset_name, ids, labels, probs, ["cat", "dog"], task="multiclass",
                      run="run-1", run_dir=tmp_path / "none")
    # a bundle's decision written by `predict --dataset` (no `run`) on the last sample
    fo = store.fiftyone()
    dataset.set_values(PREDICTION_FIELD, {ids[5]: fo.Classification(label="dog", bundle="b")},
                       key_field="id")
    # run 2 predicts four of the six (say two were excluded since): one of them wrongly
    kept = ids[:4]
    mistakes = write_predictions(dataset_name, kept, labels[:4], [[0.1, 0.9]] + probs[1:4],
                                 ["cat", "dog"], task="multiclass", run="run-2",
                                 run_dir=tmp_path / "none")
    dataset = store.load(dataset_name)
    runs = dict(zip(dataset.values("id"), dataset.values(f"{PREDICTION_FIELD}.run")))
    assert [runs[i] for i in kept] == ["run-2"] * 4
    assert runs[ids[4]] is None and dataset[ids[4]][PREDICTION_FIELD] is None
    assert dataset[ids[5]][PREDICTION_FIELD].bundle == "b"  # predict's decision is kept
    wrong = 1 if labels[0] == ("cat",) else 0
    assert mistakes == wrong and len(dataset.load_saved_view("mistakes")) == wrong
