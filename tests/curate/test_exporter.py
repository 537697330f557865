"""An export re-imports to the same labels and splits, in every format."""

from __future__ import annotations

from collections import Counter

import pytest

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.curate.exporter import export_dataset
from shotlab.curate.importer import import_path
from tests.imaging import write_class_tree, write_image

pytestmark = pytest.mark.fiftyone


def contents(name: str) -> Counter:
    """(sha256, labels, split) of every sample: what must survive a round trip."""
    dataset = store.load(name)
    return Counter(zip(dataset.values("sha256"), map(frozenset, store.sample_labels(dataset)),
                       dataset.values("split")))


@pytest.fixture
def roundtrip(dataset_name):
    created = []

    def run(out, fmt, *, multilabel=False):
        assert export_dataset(dataset_name, out, fmt) == len(store.load(dataset_name))
        target = f"{dataset_name}-back-{fmt}"
        created.append(target)
        import_path(out, target, multilabel=multilabel, progress=False)
        assert contents(target) == contents(dataset_name)

    yield run
    for name in created:
        if name in store.list_datasets():
            store.delete(name)


def split_dataset(root, name):
    write_class_tree(root, {"cat": 2, "big dog": 2}, split="train")
    write_class_tree(root, {"cat": 1, "big dog": 1}, split="test", seed=50)
    write_image(root / "train" / "cat" / "other" / "cat_0.png", seed=77)  # a clashing file name
    import_path(root, name, progress=False)


@pytest.mark.parametrize("fmt", ["folder", "csv", "fiftyone"])
def test_multiclass_round_trip(tmp_path, dataset_name, roundtrip, fmt):
    split_dataset(tmp_path / "src", dataset_name)
    roundtrip(tmp_path / "out", fmt)


@pytest.mark.parametrize("fmt", ["folder", "csv", "fiftyone"])
def test_an_excluded_sample_does_not_come_back_as_training_data(tmp_path, dataset_name, fmt):
    """The folder and CSV layouts wrote it as an ordinary labelled image and the fiftyone
    import dropped its tag: after a round trip the junk an annotator excluded was trained on."""
    from click.testing import CliRunner

    from shotlab.cli import cli

    split_dataset(tmp_path / "src", dataset_name)
    dataset = store.load(dataset_name)
    junk = dataset.match({"split": "train"}).first()
    junk.tags.append("exclude")
    junk.save()
    out, back = tmp_path / "out", f"{dataset_name}-back-{fmt}"
    result = CliRunner().invoke(cli, ["curate", "export", dataset_name, str(out), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert "1 sample(s) tagged 'exclude'" in result.output
    try:
        import_path(out, back, progress=False)
        assert junk.sha256 not in store.load(back).values("sha256")
        assert len(store.load(back)) == len(dataset) - 1
    finally:
        store.delete(back)

@pytest.mark.parametrize("fmt", ["csv", "fiftyone"])
def test_multilabel_round_trip_with_unlabeled_and_unassigned(tmp_path, dataset_name, roundtrip, fmt):
    for i, name in enumerate("abc"):
        write_image(tmp_path / f"{name}.png", seed=i)
    (tmp_path / "l.csv").write_text("filepath,cat,dog,split\na.png,1,1,train\nb.png,0,0,\nc.png,0,1,val\n")
    import_path(tmp_path / "l.csv", dataset_name, multilabel=True, progress=False)
    roundtrip(tmp_path / "out", fmt, multilabel=True)


def test_folder_export_refuses_what_a_tree_cannot_hold(tmp_path, dataset_name):
    split_dataset(tmp_path / "src", dataset_name)
    write_class_tree(tmp_path / "more", {"cat": 1}, seed=90)
    import_path(tmp_path / "more", dataset_name, progress=False)  # no split for this one
    with pytest.raises(InputError, match="1 samples without a split.*--format csv or fiftyone"):
        export_dataset(dataset_name, tmp_path / "out", "folder")
    assert not (tmp_path / "out").exists()


def test_export_never_writes_into_a_non_empty_folder(tmp_path, dataset_name):
    split_dataset(tmp_path / "src", dataset_name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="exists and is not an empty folder"):
        export_dataset(dataset_name, tmp_path / "out", "csv")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("label", ["../../victim", "n/a", ".misc", "train"])
def test_folder_export_refuses_a_class_that_is_no_plain_folder_name(tmp_path, dataset_name, label):
    """A CSV label is free text: as a folder it could climb out of OUT (overwriting a user's
    file), nest, hide, or read back as a split; none of that is written."""
    write_image(tmp_path / "src" / "y.png", seed=1)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "y.png").write_text("precious")
    (tmp_path / "src" / "l.csv").write_text(f"filepath,label\ny.png,{label}\n")
    import_path(tmp_path / "src" / "l.csv", dataset_name, progress=False)
    with pytest.raises(InputError, match="cannot hold as a folder name.*--format csv"):
        export_dataset(dataset_name, tmp_path / "out" / "x", "folder")
    assert (tmp_path / "victim" / "y.png").read_text() == "precious"
    assert not (tmp_path / "out" / "x").exists()


def test_csv_export_refuses_a_class_its_label_column_would_split(tmp_path, dataset_name):
    """A folder named 'a;b' is one class; the CSV's label column reads 'a;b' as two labels."""
    write_image(tmp_path / "src" / "a;b" / "y.png", seed=1)
    write_image(tmp_path / "src" / "c" / "z.png", seed=2)
    import_path(tmp_path / "src", dataset_name, progress=False)
    with pytest.raises(InputError, match="class 'a;b', which a CSV label column reads back as 2"):
        export_dataset(dataset_name, tmp_path / "out", "csv")
    assert not (tmp_path / "out").exists()
    assert export_dataset(dataset_name, tmp_path / "tree", "folder") == 2  # a tree holds it


@pytest.mark.parametrize("name", ["label", "Labels", "split", "filepath"])
def test_csv_export_refuses_a_multilabel_class_an_import_reads_as_another_column(
        tmp_path, dataset_name, name):
    """A one-hot column 'label' was read back as the label column (classes '0' and '1'), and
    'split' refused the file it wrote: a class named as a column an import finds is refused."""
    for i, image in enumerate("ab"):
        write_image(tmp_path / f"{image}.png", seed=i)
    (tmp_path / "l.csv").write_text(f"filepath,labels\na.png,{name}\nb.png,{name};cat\n")
    import_path(tmp_path / "l.csv", dataset_name, multilabel=True, progress=False)
    with pytest.raises(InputError, match=f"class '{name}', which a CSV import reads as its "
                                         f"'{name.lower()}' column; rename the class first, or "
                                         f"export --format fiftyone$"):
        export_dataset(dataset_name, tmp_path / "out", "csv")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["group", "image", "path", "text"])
def test_a_multilabel_class_named_as_a_column_of_another_kind_round_trips(
        tmp_path, dataset_name, roundtrip, name):
    """Only the columns of the file written are refused: an image CSV has no 'group'."""
    for i, image in enumerate("ab"):
        write_image(tmp_path / f"{image}.png", seed=i)
    (tmp_path / "l.csv").write_text(f"filepath,labels\na.png,{name}\nb.png,{name};cat\n")
    import_path(tmp_path / "l.csv", dataset_name, multilabel=True, progress=False)
    roundtrip(tmp_path / "out", "csv", multilabel=True)


def test_csv_export_refuses_a_class_with_spaces_at_its_ends(tmp_path, dataset_name):
    """A folder 'cat ' is its own class; a CSV import strips the value and read back 'cat'."""
    write_image(tmp_path / "src" / "cat " / "y.png", seed=1)
    write_image(tmp_path / "src" / "dog" / "z.png", seed=2)
    import_path(tmp_path / "src", dataset_name, progress=False)
    with pytest.raises(InputError, match="class 'cat ', with spaces at its ends that a CSV "
                                         "import drops"):
        export_dataset(dataset_name, tmp_path / "out", "csv")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["folder", "csv"])
def test_identical_files_of_one_name_are_each_exported(tmp_path, dataset_name, roundtrip, fmt):
    for sub in "pqr":
        write_image(tmp_path / "src" / "cat" / sub / "x.png", seed=5)  # same name, same bytes
    write_image(tmp_path / "src" / "dog" / "d.png", seed=6)
    import_path(tmp_path / "src", dataset_name, progress=False)
    assert len(store.load(dataset_name)) == 4
    roundtrip(tmp_path / "out", fmt)


def test_a_missing_source_file_is_named_and_nothing_is_written(tmp_path, dataset_name):
    split_dataset(tmp_path / "src", dataset_name)
    gone = tmp_path / "src" / "test" / "cat" / "cat_0.png"
    gone.unlink()
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match=f"are gone \\(first: {gone}\\); restore them"):
        export_dataset(dataset_name, tmp_path / "out", "csv")
    assert list((tmp_path / "out").iterdir()) == []
