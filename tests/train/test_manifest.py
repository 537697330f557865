"""The frozen manifest read from the real store: entries, exclusions, hash, file round trip."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from shotlab.core import store
from shotlab.core.errors import DatasetNotFoundError, InputError
from shotlab.curate.importer import import_path
from shotlab.train.manifest import Entry, Manifest, freeze
from tests.imaging import write_class_tree
from tests.train.trainsets import MULTILABEL_PATTERNS, write_multilabel_csv

pytestmark = pytest.mark.fiftyone

COUNTS = {"train": {"cat": 3, "dog": 2}, "val": {"cat": 1, "dog": 1}, "test": {"cat": 1, "dog": 1}}


@pytest.fixture
def imported(tmp_path, dataset_name):
    for split, classes in COUNTS.items():
        write_class_tree(tmp_path / "src", classes, split=split, seed=100 * len(split))
    import_path(tmp_path / "src", dataset_name, progress=False, workers=2)
    return dataset_name


def test_freeze_reads_classes_entries_and_splits(imported, tmp_path):
    manifest = freeze(imported)
    assert (manifest.dataset, manifest.task, manifest.classes) == (imported, "multiclass", ("cat", "dog"))
    assert len(manifest.entries) == 9
    assert manifest.left_out == {"unlabeled": 0, "excluded": 0, "no_split": 0}
    for split, classes in COUNTS.items():
        entries = manifest.split(split)
        assert sorted(e.labels[0] for e in entries) == sorted(
            c for c, n in classes.items() for _ in range(n))
    dataset = store.load(imported)
    ids = set(dataset.values("id"))
    for entry in manifest.entries:
        assert entry.sample_id in ids
        path = Path(entry.filepath)
        assert path.is_file() and path.parent.name == entry.labels[0]
        assert path.parent.parent.name == entry.split
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_excluded_samples_are_left_out_and_counted(imported):
    before = freeze(imported)
    sample = store.load(imported).match({"split": "train"}).first()
    sample.tags.append("exclude")
    sample.save()
    after = freeze(imported)
    assert len(after.entries) == len(before.entries) - 1
    assert sample.id not in {e.sample_id for e in after.entries}
    assert after.left_out == {"unlabeled": 0, "excluded": 1, "no_split": 0}
    assert after.hash != before.hash


def test_unlabeled_multiclass_samples_are_left_out_and_counted(imported):
    sample = store.load(imported).match({"split": "val"}).first()
    sample.ground_truth = None
    sample.save()
    manifest = freeze(imported)
    assert manifest.left_out == {"unlabeled": 1, "excluded": 0, "no_split": 0}
    assert len(manifest.entries) == 8


def test_labelled_samples_without_a_split_are_counted_and_named_in_one_line(imported):
    """A sample labelled after `curate split` (a relabel: tag on an unlabeled one) has no split:
    no run reads it, so the manifest counts it and the run says so (it kept its entry: the
    dataset version's hash is as before)."""
    from shotlab.train.manifest import unsplit_note

    before = freeze(imported)
    assert unsplit_note(before) is None
    dataset = store.load(imported)
    for sample in dataset.match({"split": "train"}).limit(2):
        sample.split = None
        sample.save()
    manifest = freeze(imported)
    assert manifest.left_out == {"unlabeled": 0, "excluded": 0, "no_split": 2}
    assert len(manifest.entries) == 9 and len(manifest.split("train")) == 3
    assert unsplit_note(manifest) == (
        f"2 labelled samples have no split and were not used; run `shotlab curate split "
        f"{imported}` (it keeps existing splits and assigns the rest)")


def test_excluding_a_whole_class_removes_it_from_classes(imported):
    dataset = store.load(imported)
    for sample in dataset.match({"ground_truth.label": "dog"}):
        sample.tags.append("exclude")
        sample.save()
    manifest = freeze(imported)
    assert manifest.classes == ("cat",)
    assert manifest.left_out["excluded"] == 4


def test_hash_is_stable_and_follows_labels(imported):
    first = freeze(imported)
    assert freeze(imported).hash == first.hash == first.hash
    assert len(first.hash) == 64
    # Entry order does not matter, only content.
    shuffled = Manifest(first.dataset, first.task, first.classes, first.entries[::-1], first.left_out)
    assert shuffled.hash == first.hash
    sample = store.load(imported).match({"ground_truth.label": "cat"}).first()
    sample.ground_truth.label = "dog"
    sample.save()
    relabelled = freeze(imported)
    assert relabelled.hash != first.hash
    sample.ground_truth.label = "cat"
    sample.save()
    assert freeze(imported).hash == first.hash  # the same data, the same version


def test_hash_changes_with_split(imported):
    first = freeze(imported)
    sample = store.load(imported).match({"split": "test"}).first()
    sample.split = "train"
    sample.save()
    assert freeze(imported).hash != first.hash


def test_save_load_round_trip(imported, tmp_path):
    manifest = freeze(imported)
    path = tmp_path / "manifest.json"
    manifest.save(path)
    data = json.loads(path.read_text())
    assert data["hash"] == manifest.hash and data["classes"] == ["cat", "dog"]
    loaded = Manifest.load(path)
    assert loaded == manifest
    assert loaded.hash == manifest.hash
    assert all(isinstance(e.labels, tuple) for e in loaded.entries)


def test_hand_edited_manifest_fails_to_load(imported, tmp_path):
    path = tmp_path / "manifest.json"
    freeze(imported).save(path)
    data = json.loads(path.read_text())
    entry = next(e for e in data["entries"] if e["labels"] == ["cat"])
    entry["labels"] = ["dog"]
    path.write_text(json.dumps(data, indent=1))
    with pytest.raises(InputError) as info:
        Manifest.load(path)
    assert str(path) in str(info.value) and "hash" in str(info.value)


def test_freezing_an_unknown_dataset_names_it():
    with pytest.raises(DatasetNotFoundError, match="no-such-dataset-xyz"):
        freeze("no-such-dataset-xyz")


def test_multiclass_targets_are_class_indices(imported):
    manifest = freeze(imported)
    train = manifest.split("train")
    y = manifest.targets(train)
    assert y.dtype == np.int64 and y.shape == (5,)
    assert [manifest.classes[i] for i in y] == [e.labels[0] for e in train]


def test_multilabel_freeze_and_targets(tmp_path, dataset_name):
    csv_path = write_multilabel_csv(tmp_path / "ml", per_pattern={"train": 2, "val": 1})
    import_path(csv_path, dataset_name, multilabel=True, progress=False, workers=2)
    manifest = freeze(dataset_name)
    assert manifest.task == "multilabel" and manifest.classes == ("blue", "red")
    # A multilabel sample with no labels is a negative for every class, not "unlabeled".
    assert len(manifest.entries) == 3 * len(MULTILABEL_PATTERNS)
    assert manifest.left_out == {"unlabeled": 0, "excluded": 0, "no_split": 0}
    y = manifest.targets(manifest.split("train"))
    assert y.shape == (8, 2) and set(np.unique(y)) == {0, 1}
    for entry, row in zip(manifest.split("train"), y):
        assert {manifest.classes[k] for k in np.flatnonzero(row)} == set(entry.labels)
    assert sorted(map(tuple, y.tolist())) == sorted([(0, 0), (0, 1), (1, 0), (1, 1)] * 2)


def test_targets_of_hand_built_manifest():
    entries = (Entry("1", "/a.png", "x", ("b",), "train"), Entry("2", "/b.png", "y", ("a", "c"), "train"))
    multilabel = Manifest("d", "multilabel", ("a", "b", "c"), entries, {})
    np.testing.assert_array_equal(multilabel.targets(list(entries)), [[0, 1, 0], [1, 0, 1]])
    multiclass = Manifest("d", "multiclass", ("a", "b"), entries[:1], {})
    np.testing.assert_array_equal(multiclass.targets(list(entries[:1])), [1])
    assert multiclass.targets([]).shape == (0,)


def test_a_file_edited_after_import_is_frozen_with_its_current_sha256(imported):
    from PIL import Image

    from shotlab.core.images import sha256_file

    entry = freeze(imported).split("train")[0]
    Image.new("RGB", (40, 30), (9, 9, 9)).save(entry.filepath)  # other bytes, other size
    fresh = freeze(imported)
    edited = next(e for e in fresh.entries if e.sample_id == entry.sample_id)
    assert edited.sha256 == sha256_file(Path(entry.filepath)) != entry.sha256
    assert store.load(imported)[entry.filepath].sha256 == edited.sha256
    others = {e.sample_id: e.sha256 for e in fresh.entries if e.sample_id != entry.sample_id}
    assert others == {e.sample_id: e.sha256 for e in freeze(imported).entries
                      if e.sample_id != entry.sample_id}


def test_samples_that_belong_together_carry_their_group(imported, tmp_path):
    """Duplicates `curate check` clustered share a group key; a sample alone has none, so a
    dataset without groups keeps the manifest (and hash) it had before groups existed."""
    alone = freeze(imported)
    assert all(e.group is None for e in alone.entries)
    assert alone.groups(alone.split("train")) is None
    assert all("group" not in e for e in json.loads(alone.canonical())["entries"])
    dataset = store.load(imported)
    train = dataset.match({"split": "train"})
    twins = train.values("id")[:2]
    dataset.set_values("duplicate_cluster", {i: "dup-0000" for i in twins}, key_field="id")
    grouped = freeze(imported)
    keys = {e.sample_id: e.group for e in grouped.entries}
    assert keys[twins[0]] == keys[twins[1]] == twins[0]
    assert sum(k is not None for k in keys.values()) == 2 and grouped.hash != alone.hash
    numbers = grouped.groups(grouped.split("train"))
    ids = [e.sample_id for e in grouped.split("train")]
    assert numbers[ids.index(twins[0])] == numbers[ids.index(twins[1])]
    assert len(set(numbers.tolist())) == len(ids) - 1
    grouped.save(tmp_path / "manifest.json")
    assert Manifest.load(tmp_path / "manifest.json") == grouped
    twin = dataset.select(twins[1]).first()
    twin.tags.append("exclude")  # the usual fix for a duplicate: its original stands alone
    twin.save()
    assert all(e.group is None for e in freeze(imported).entries)
