"""Concurrent and interrupted imports never corrupt a dataset (issue #11, items 7 and 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core import store
from shotlab.curate.importer import import_path
from tests.imaging import write_class_tree

pytestmark = pytest.mark.fiftyone


def start_import(source, name: str) -> subprocess.Popen:
    """`shotlab curate import` in its own process, against the test workspace (SHOTLAB_HOME)."""
    return subprocess.Popen([sys.executable, "-m", "shotlab", "curate", "import", str(source),
                             "--name", name, "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def test_two_concurrent_imports_add_each_file_once(tmp_path, dataset_name):
    """Both create the same new dataset and add the same 300 files at the same time."""
    write_class_tree(tmp_path / "src", {"cat": 150, "dog": 150})
    procs = [start_import(tmp_path / "src", dataset_name) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert "Traceback" not in err, err
    reports = [json.loads(out) for _, out, _ in results]
    assert sum(r["added"] for r in reports) == 300
    assert all(r["added"] + r["already_present"] == 300 for r in reports)
    dataset = store.load(dataset_name)
    paths = dataset.values("filepath")
    assert len(paths) == len(set(paths)) == 300


def test_the_database_refuses_a_second_sample_for_one_path(tmp_path, dataset_name):
    """The identity by path holds in the database itself, whatever process adds the sample."""
    files = write_class_tree(tmp_path, {"cat": 1})
    import_path(tmp_path, dataset_name, progress=False)
    fo = store.fiftyone()
    with pytest.raises(ValueError, match="duplicate key"):
        store.load(dataset_name).add_sample(fo.Sample(filepath=str(files[0].resolve())))
    assert len(store.load(dataset_name)) == 1


def half_made(name: str) -> None:
    """What a `kill -9` between FiftyOne's dataset creation and shotlab's fields leaves."""
    store.fiftyone().Dataset(name, persistent=True)


def test_a_half_made_dataset_is_completed_by_the_next_import(tmp_path, dataset_name):
    half_made(dataset_name)
    write_class_tree(tmp_path, {"cat": 2, "dog": 1})
    report = import_path(tmp_path, dataset_name, multilabel=True, progress=False)
    assert report.added == 3
    dataset = store.load(dataset_name)
    assert store.task_of(dataset) == "multilabel"
    assert sorted(store.sample_labels(dataset)) == [("cat",), ("cat",), ("dog",)]
    assert "applied_label" in dataset.get_field_schema()


def test_a_half_made_dataset_is_reported_with_the_fix(dataset_name):
    half_made(dataset_name)
    runner = CliRunner()
    info = runner.invoke(cli, ["curate", "info", dataset_name])
    assert info.exit_code == 2, info.output
    assert len(info.output.strip().splitlines()) == 1
    assert f"dataset '{dataset_name}' was left half-created" in info.output
    assert f"shotlab curate delete {dataset_name} --yes" in info.output
    listing = runner.invoke(cli, ["curate", "list", "--json"])
    assert listing.exit_code == 0, listing.output
    assert {"name": dataset_name, "task": "half-made", "samples": 0} in json.loads(listing.output)
    deleted = runner.invoke(cli, ["curate", "delete", dataset_name, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert dataset_name not in store.list_datasets()


def test_losing_the_creation_race_returns_the_winners_dataset(tmp_path, dataset_name):
    """`create` when another process made the dataset just before: no traceback, one dataset."""
    half_made(dataset_name)
    dataset = store.create(dataset_name, "multiclass")
    assert store.task_of(dataset) == "multiclass" and not store.is_half_made(dataset)
    again = store.create(dataset_name, "multiclass")
    assert again.name == dataset_name and store.list_datasets().count(dataset_name) == 1


def test_a_dataset_with_repeated_paths_is_imported_into_with_a_warning(tmp_path, dataset_name):
    """Left by an older shotlab's concurrent imports: the unique index cannot be built, so the
    import says it is not guarded instead of failing or pretending."""
    files = write_class_tree(tmp_path, {"cat": 1})
    fo = store.fiftyone()
    dataset = store.create(dataset_name, "multiclass")
    dataset.create_index("filepath", force=True)  # as an older shotlab made it: not unique
    path = str(files[0].resolve())
    dataset.add_samples([fo.Sample(filepath=path), fo.Sample(filepath=path)])
    write_class_tree(tmp_path, {"dog": 1})
    report = import_path(tmp_path, dataset_name, progress=False)
    assert (report.added, report.already_present) == (1, 1)
    assert len(report.warnings) == 2 and "are not guarded" in report.warnings[0]
    # the source labels the stored file 'cat'; the samples made above have no label
    assert report.warnings[1].startswith(f"1 file already in '{dataset_name}' has other labels")
