"""Importing into the real FiftyOne store: fields, idempotence, bad files, every source format."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from shotlab.core import store
from shotlab.core.errors import InputError, StrictImportError
from shotlab.curate.importer import import_path
from tests.imaging import png_header_only, truncate, write_class_tree, write_image

pytestmark = pytest.mark.fiftyone


def by_name(name: str) -> dict[str, tuple]:
    """file name -> (labels, split) for every sample of the dataset."""
    dataset = store.load(name)
    return {Path(f).name: (labels, split) for f, labels, split in
            zip(dataset.values("filepath"), store.sample_labels(dataset), dataset.values("split"))}


def fingerprint(folder: Path) -> dict[str, tuple]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_folder_import_records_every_field(tmp_path, dataset_name):
    files = write_class_tree(tmp_path / "src", {"cat": 2, "Sports car": 1}, split="valid")
    report = import_path(tmp_path / "src", dataset_name, progress=False)
    assert (report.added, report.format, report.task, report.skipped) == (3, "folder", "multiclass", [])
    sample = store.load(dataset_name).match({"filepath": str(files[0].resolve())}).first()
    assert sample.ground_truth.label == "cat" and sample.split == "val"
    assert sample.sha256 == hashlib.sha256(files[0].read_bytes()).hexdigest()
    assert (sample.metadata.width, sample.metadata.height, sample.metadata.mime_type) == (32, 24, "image/png")
    assert (sample.import_format, sample.import_path) == ("folder", str(tmp_path / "src"))
    assert sample.imported_at is not None
    assert by_name(dataset_name)["Sports_car_0.png"] == (("Sports car",), "val")


def test_reimport_adds_nothing_and_new_files_only_once(tmp_path, dataset_name):
    write_class_tree(tmp_path, {"cat": 3, "dog": 2})
    import_path(tmp_path, dataset_name, progress=False)
    again = import_path(tmp_path, dataset_name, progress=False)
    assert (again.added, again.already_present) == (0, 5)
    write_image(tmp_path / "dog" / "new.png", seed=99)
    more = import_path(tmp_path, dataset_name, progress=False)
    assert (more.added, more.already_present, len(store.load(dataset_name))) == (1, 5, 6)
    # Stored files are not read again on re-import (that is `curate check`'s job), so a file
    # damaged since is still one of the samples, not a skip.
    truncate(tmp_path / "cat" / "cat_0.png")
    last = import_path(tmp_path, dataset_name, progress=False)
    assert (last.added, last.already_present, last.skipped) == (0, 6, [])


def test_reimport_with_other_labels_warns_and_changes_nothing(tmp_path, dataset_name):
    for i, name in enumerate("abc"):
        write_image(tmp_path / f"{name}.png", seed=i)
    (tmp_path / "l.csv").write_text("filepath,label,split\na.png,cat,train\nb.png,dog,\nc.png,,\n")
    import_path(tmp_path / "l.csv", dataset_name, progress=False)
    assert import_path(tmp_path / "l.csv", dataset_name, progress=False).warnings == []
    # b relabelled, c labelled in the source; a's row now leaves its label and split out
    (tmp_path / "l.csv").write_text("filepath,label,split\na.png,,\nb.png,cat,\nc.png,dog,\n")
    again = import_path(tmp_path / "l.csv", dataset_name, progress=False)
    assert (again.added, len(again.warnings)) == (0, 1)
    assert again.warnings[0].startswith(
        f"2 files already in '{dataset_name}' have other labels or another split in this source "
        f"(first: {tmp_path / 'b.png'}: dog / no split in the dataset, cat / no split here)")
    assert by_name(dataset_name) == {"a.png": (("cat",), "train"), "b.png": (("dog",), None),
                                     "c.png": ((), None)}


def test_exact_duplicates_are_both_kept_and_counted(tmp_path, dataset_name):
    write_image(tmp_path / "cat" / "a.png", seed=7)
    write_image(tmp_path / "dog" / "same-bytes.png", seed=7)  # same pixels, conflicting label
    write_image(tmp_path / "dog" / "b.png", seed=8)
    report = import_path(tmp_path, dataset_name, progress=False)
    assert (report.added, report.duplicate_groups, report.conflicting_groups) == (3, 1, 1)
    digests = store.load(dataset_name).values("sha256")
    assert len(set(digests)) == 2


def test_an_unlabeled_copy_is_a_duplicate_without_a_conflict(tmp_path, dataset_name):
    write_image(tmp_path / "boat.png", seed=7)
    write_image(tmp_path / "pool.png", seed=7)  # the same bytes, not labelled yet
    (tmp_path / "labels.csv").write_text("filepath,label\nboat.png,boat\npool.png,\n")
    report = import_path(tmp_path, dataset_name, progress=False)
    assert (report.added, report.duplicate_groups, report.conflicting_groups) == (2, 1, 0)


def make_bad_files(folder: Path) -> dict[str, str]:
    """Every kind of bad file, in a class folder; returns file name -> expected reason part."""
    write_image(folder / "good.png", seed=1)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    truncate(write_image(folder / "cut.jpg", size=(64, 64), seed=2))
    truncate(write_image(folder / "cut.png", size=(64, 64), seed=3))
    png_header_only(folder / "bomb.png", 50_000, 50_000)
    (folder / "link.png").symlink_to(folder / "nowhere.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")  # the folder walk raised ELOOP
    return {"empty.jpg": "empty file", "text.jpg": "not an image", "cut.jpg": "truncated",
            "cut.png": "truncated", "bomb.png": "decompression bomb", "link.png": "broken symlink",
            "loop.png": "broken symlink"}


def test_bad_files_are_skipped_named_and_never_touched(tmp_path, dataset_name):
    expected = make_bad_files(tmp_path / "src" / "cat")
    before = fingerprint(tmp_path / "src")
    report = import_path(tmp_path / "src", dataset_name, progress=False)
    assert report.added == 1
    found = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(found) == set(expected)
    for name, part in expected.items():
        assert part in found[name], (name, found[name])
    assert fingerprint(tmp_path / "src") == before
    assert list(by_name(dataset_name)) == ["good.png"]


def test_strict_import_fails_before_adding_anything(tmp_path, dataset_name):
    make_bad_files(tmp_path / "cat")
    with pytest.raises(StrictImportError, match="files would be skipped .* nothing was imported"):
        import_path(tmp_path, dataset_name, strict=True, progress=False)
    assert dataset_name not in store.list_datasets()


def test_multilabel_csv_and_task_mismatch(tmp_path, dataset_name):
    for i, name in enumerate("abc"):
        write_image(tmp_path / f"{name}.png", seed=i)
    (tmp_path / "labels.csv").write_text("filepath,cat,dog,split\na.png,1,1,train\nb.png,0,0,test\nc.png,0,1,\n")
    with pytest.raises(InputError, match="1 image has several labels .* import with --multilabel"):
        import_path(tmp_path / "labels.csv", dataset_name, progress=False)
    import_path(tmp_path / "labels.csv", dataset_name, multilabel=True, progress=False)
    assert by_name(dataset_name) == {"a.png": (("cat", "dog"), "train"), "b.png": ((), "test"),
                                     "c.png": (("dog",), None)}
    assert store.task_of(store.load(dataset_name)) == "multilabel"
    write_class_tree(tmp_path / "more", {"cat": 1})
    with pytest.raises(InputError, match="is multilabel; cannot add multiclass labels"):
        import_path(tmp_path / "more", dataset_name, progress=False)


def test_a_repeated_csv_row_is_named_by_its_row_and_the_one_used(tmp_path, dataset_name):
    for i, name in enumerate("ab"):
        write_image(tmp_path / f"{name}.png", seed=i)
    (tmp_path / "labels.csv").write_text("filepath,label\na.png,cat\nb.png,dog\n./a.png,dog\n"
                                         "b.png,dog\n")  # the same label: no disagreement
    report = import_path(tmp_path / "labels.csv", dataset_name, progress=False)
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("a.png", "row 4 of labels.csv: listed more than once; the first entry (row 2 of "
                  "labels.csv) was used, and they disagree: label 'dog' here, 'cat' kept"),
        ("b.png", "row 5 of labels.csv: listed more than once; the first entry (row 3 of "
                  "labels.csv) was used")]
    assert by_name(dataset_name) == {"a.png": (("cat",), None), "b.png": (("dog",), None)}


def test_a_csv_rows_unreadable_file_is_named_by_its_row(tmp_path, dataset_name):
    """A missing file said "(row N of labels.csv)"; a folder or a non-image a row names did
    not, so the row to mend had to be searched for."""
    write_image(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    (tmp_path / "note.png").write_text("not an image")
    (tmp_path / "labels.csv").write_text("filepath,label\na.png,cat\nsub,cat\nnote.png,dog\n")
    report = import_path(tmp_path / "labels.csv", dataset_name, progress=False)
    assert sorted((s.path, s.reason) for s in report.skipped) == [
        (f"{tmp_path / 'note.png'} (row 4 of labels.csv)", "not an image (format not recognised)"),
        (f"{tmp_path / 'sub'} (row 3 of labels.csv)", "is a directory, not a file")]


def test_a_label_with_the_separator_needs_multilabel(tmp_path, dataset_name):
    """'cat;dog' in a label column is two labels: refused without --multilabel, never a class
    named 'cat;dog'."""
    for i, name in enumerate("ab"):
        write_image(tmp_path / f"{name}.png", seed=i)
    (tmp_path / "labels.csv").write_text("filepath,label\na.png,cat;dog\nb.png,cat\n")
    with pytest.raises(InputError, match="1 image has several labels .* import with --multilabel"):
        import_path(tmp_path / "labels.csv", dataset_name, progress=False)


def roboflow_folder_zip(tmp_path: Path) -> Path:
    """A zip in Roboflow's `folder` export layout."""
    src = tmp_path / "rf"
    (src / "README.roboflow.txt").parent.mkdir(parents=True)
    (src / "README.roboflow.txt").write_text("exported via roboflow.com")
    seed = 0
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        for cls in ("Sports car", "truck"):
            for i in range(n):
                seed += 1
                write_image(src / split / cls / f"{cls[0]}{i}_jpg.rf.{split}{i}ab.jpg", seed=seed, fmt="JPEG")
    zip_path = tmp_path / "vehicles.v3i.folder.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for f in src.rglob("*"):
            if f.is_file():
                z.write(f, f.relative_to(src))
    return zip_path


def test_roboflow_zip_imports_from_the_workspace_copy(tmp_path, dataset_name):
    zip_path = roboflow_folder_zip(tmp_path)
    zip_bytes = zip_path.read_bytes()
    report = import_path(zip_path, dataset_name, progress=False)
    assert (report.format, report.added, report.ignored) == ("roboflow", 8, 1)
    assert zip_path.read_bytes() == zip_bytes
    labels = by_name(dataset_name)
    assert labels["S0_jpg.rf.valid0ab.jpg"] == (("Sports car",), "val")
    assert labels["t0_jpg.rf.test0ab.jpg"] == (("truck",), "test")
    counts = store.class_counts(store.load(dataset_name))
    assert {k: dict(v) for k, v in counts.items()} == {
        "Sports car": {"train": 2, "val": 1, "test": 1}, "truck": {"train": 2, "val": 1, "test": 1}}
    assert import_path(zip_path, dataset_name, progress=False).added == 0


def test_fiftyone_export_directories(tmp_path, dataset_name, capfd):
    fo = store.fiftyone()
    write_class_tree(tmp_path / "src", {"cat": 2, "dog": 1}, split="train")
    import_path(tmp_path / "src", dataset_name, progress=False)
    source = store.load(dataset_name)
    source.export(export_dir=str(tmp_path / "fo-classification"), label_field="ground_truth",
                  dataset_type=fo.types.FiftyOneImageClassificationDataset)
    source.export(export_dir=str(tmp_path / "fo-dataset"), dataset_type=fo.types.FiftyOneDataset)
    for kind in ("fo-classification", "fo-dataset"):
        target = f"{dataset_name}-{kind}"
        try:
            capfd.readouterr()
            report = import_path(tmp_path / kind, target, progress=False)
            assert (report.format, report.added) == ("fiftyone", 3)
            assert "Importing samples" not in "".join(capfd.readouterr())  # FiftyOne's INFO
            labels = sorted(store.sample_labels(store.load(target)))
            assert labels == [("cat",), ("cat",), ("dog",)]
            if kind == "fo-dataset":  # the full format keeps every field, the split included
                assert store.load(target).values("split") == ["train"] * 3
        finally:
            if fo.dataset_exists(target):
                fo.delete_dataset(target)


def test_a_fiftyone_export_with_an_unknown_split_skips_that_sample(tmp_path, dataset_name):
    """Not 'unassigned' in silence: the sample is skipped by name with the reason, as a CSV row
    with an unknown split is."""
    fo = store.fiftyone()
    write_class_tree(tmp_path / "src", {"cat": 2, "dog": 1}, split="train")
    import_path(tmp_path / "src", dataset_name, progress=False)
    source = store.load(dataset_name)
    odd = source.first()
    odd["split"] = "holdout"
    odd.save()
    source.export(export_dir=str(tmp_path / "fo-dataset"), dataset_type=fo.types.FiftyOneDataset)
    target = f"{dataset_name}-fo"
    try:
        report = import_path(tmp_path / "fo-dataset", target, progress=False)
        assert report.added == 2 and len(report.skipped) == 1
        assert report.skipped[0].path.endswith(Path(odd.filepath).name)
        assert report.skipped[0].reason.startswith("unknown split 'holdout'; expected one of")
        assert store.load(target).values("split") == ["train"] * 2
    finally:
        if fo.dataset_exists(target):
            fo.delete_dataset(target)


def test_a_broken_fiftyone_export_is_one_line_and_imports_nothing(tmp_path, dataset_name):
    """A cut samples.json (and --format fiftyone on a plain folder tree) ended in FiftyOne's
    ValueError traceback."""
    from click.testing import CliRunner

    from shotlab.cli import cli

    write_class_tree(tmp_path / "src", {"cat": 2, "dog": 1}, split="train")
    import_path(tmp_path / "src", dataset_name, progress=False)
    store.load(dataset_name).export(export_dir=str(tmp_path / "fo"),
                                    dataset_type=store.fiftyone().types.FiftyOneDataset)
    samples = tmp_path / "fo" / "samples.json"
    samples.write_bytes(samples.read_bytes()[:200])
    for source, extra in ((tmp_path / "fo", []), (tmp_path / "src", ["--format", "fiftyone"])):
        result = CliRunner().invoke(cli, ["curate", "import", str(source), "--name",
                                          f"{dataset_name}-x", *extra])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"{source}: not a readable FiftyOne export" in result.output
        assert f"{dataset_name}-x" not in store.list_datasets()
    # a labels.json of another shape (a list) was an AttributeError traceback; the fix it gives
    # (--format folder) imports the images
    write_class_tree(tmp_path / "listed", {"data": 2})  # FiftyOne's layout: data/, labels.json
    (tmp_path / "listed" / "labels.json").write_text("[]")
    result = CliRunner().invoke(cli, ["curate", "import", str(tmp_path / "listed"), "--name",
                                      f"{dataset_name}-y"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "not a readable FiftyOne export (AttributeError" in result.output
    assert "import its images with --format folder" in " ".join(result.output.split())
    folder = CliRunner().invoke(cli, ["curate", "import", str(tmp_path / "listed"), "--name",
                                      f"{dataset_name}-y", "--format", "folder"])
    assert folder.exit_code == 0 and "Imported 2 new samples" in folder.output, folder.output
    store.delete(f"{dataset_name}-y")

def test_an_empty_source_is_refused_unless_allowed(tmp_path, dataset_name):
    from click.testing import CliRunner

    from shotlab.cli import cli

    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    result = CliRunner().invoke(cli, ["curate", "import", str(tmp_path / "empty"), "--name", dataset_name])
    assert result.exit_code == 2, result.output
    assert "no image files (1 other files ignored); nothing was imported" in result.output
    assert "--allow-empty" in result.output
    assert dataset_name not in store.list_datasets()
    make_bad_files(tmp_path / "bad" / "cat")
    (tmp_path / "bad" / "cat" / "good.png").unlink()
    with pytest.raises(InputError, match="7 files skipped .*nothing was imported"):
        import_path(tmp_path / "bad", dataset_name, progress=False)
    assert dataset_name not in store.list_datasets()
    report = import_path(tmp_path / "empty", dataset_name, allow_empty=True, progress=False)
    assert report.added == 0 and len(store.load(dataset_name)) == 0


def test_an_image_over_the_default_limit_imported_with_max_pixels_is_warned_about(
        tmp_path, dataset_name):
    """--max-pixels let a 90-megapixel image in, and training then refused it as a bomb with
    nothing said at import."""
    from PIL import Image

    from shotlab.core.images import DEFAULT_MAX_PIXELS

    folder = tmp_path / "tree" / "train" / "pano"
    folder.mkdir(parents=True)
    Image.new("L", (9500, 9420)).save(folder / "huge.png")  # 89,490,000 pixels
    write_image(folder / "small.png")
    report = import_path(tmp_path / "tree", dataset_name, progress=False,
                         max_pixels=2 * DEFAULT_MAX_PIXELS)
    assert report.added == 2
    (warning,) = [w for w in report.warnings if "over 89,478,485 pixels" in w]
    assert "huge.png" in warning and "only predict and serve take --max-pixels" in warning
    plain = import_path(tmp_path / "tree", f"{dataset_name}-b", progress=False)
    assert not any("89,478,485" in w for w in plain.warnings)  # refused there, as a bomb
    store.delete(f"{dataset_name}-b")


def test_a_file_wins_over_a_link_to_it_found_first(tmp_path, dataset_name):
    """A folder with `a_link.png` -> `z_real.png`: the link (first by name) was imported and the
    real file reported as "listed more than once"."""
    folder = tmp_path / "src" / "cat"
    write_image(folder / "z_real.png", seed=4)
    write_image(folder / "other.png", seed=5)
    (folder / "a_link.png").symlink_to(folder / "z_real.png")
    report = import_path(tmp_path / "src", dataset_name, progress=False)
    assert report.added == 2
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("a_link.png", f"the same file as {folder / 'z_real.png'}, imported once, under that "
                       f"name")]
    assert {Path(p).name for p in store.load(dataset_name).values("filepath")} == \
        {"z_real.png", "other.png"}


def test_images_the_label_file_does_not_list_are_counted_and_named(tmp_path, dataset_name):
    """A Roboflow `_classes.csv` listing 2 of 5 images imported 2 and counted the other 3
    nowhere ("0 ignored"): a truncated label file lost them without trace."""
    from click.testing import CliRunner

    from shotlab.cli import cli

    write_class_tree(tmp_path / "rf" / "train", {"x": 5})
    (tmp_path / "rf" / "train" / "_classes.csv").write_text(
        "filename, boat, fish\nx/x_0.png, 1, 0\nx/x_1.png, 0, 1\n")
    result = CliRunner().invoke(cli, ["curate", "import", str(tmp_path / "rf"), "--name",
                                      dataset_name])
    assert result.exit_code == 0, result.output
    assert ("Imported 2 new samples" in result.output
            and "0 skipped, 0 ignored (not image files), 3 not listed in their label file."
            in result.output)
    # the folder named is the images' own (it was the label file's, a level up)
    assert (f"warning: 3 images in {tmp_path / 'rf' / 'train' / 'x'} are not listed in "
            f"_classes.csv (first: {tmp_path / 'rf' / 'train' / 'x' / 'x_2.png'}); not imported: "
            f"add a row for each (unlabeled: an empty label, or all zeros) and import again"
            in result.output)
    assert import_path(tmp_path / "rf", dataset_name, progress=False).unlisted == 3
    # a split folder whose _classes.csv is missing lost its images with "0 ignored"
    write_class_tree(tmp_path / "rf" / "test", {"t": 2})
    for image in (tmp_path / "rf" / "test" / "t").iterdir():
        image.rename(tmp_path / "rf" / "test" / image.name)
    again = CliRunner().invoke(cli, ["curate", "import", str(tmp_path / "rf"), "--name",
                                     dataset_name])
    assert again.exit_code == 0 and "5 not listed in their label file" in again.output
    assert (f"warning: 2 images in {tmp_path / 'rf' / 'test'} are in no label file (no "
            f"{tmp_path / 'rf' / 'test' / '_classes.csv'} beside them; first: "
            f"{tmp_path / 'rf' / 'test' / 't_0.png'}); not imported: restore the export's "
            f"_classes.csv there and import again") in " ".join(again.output.split())


def test_an_import_stopped_part_way_is_said_until_one_finishes(tmp_path, dataset_name):
    """Ctrl-C during the add loop printed a bare "Aborted!" and left a dataset that looked
    complete (500 of 1,200 images, nothing said). An import now records itself on the dataset
    while it adds; a process that stops part way (here: one that exits between the record and
    the end, as a killed one does) leaves it, `curate info` says so, and the next import of the
    same source clears it."""
    import os
    import subprocess
    import sys

    from click.testing import CliRunner

    from shotlab.cli import cli

    root = tmp_path / "src"
    write_class_tree(root, {"cat": 3, "dog": 3})
    import_path(root, dataset_name, progress=False)
    stopped = (f"from shotlab.core import store\n"
               f"from shotlab.curate.import_common import start_import\n"
               f"start_import(store.load({dataset_name!r}), {str(root)!r}, 40)\n")
    subprocess.run([sys.executable, "-c", stopped], check=True, env={**os.environ})
    info = CliRunner().invoke(cli, ["curate", "info", dataset_name])
    assert info.exit_code == 0, info.output
    assert f"an import of {root} (40 new files" in info.output and "stopped part way" in info.output
    assert f"shotlab curate import {root} --name {dataset_name}" in info.output
    write_image(root / "cat" / "late.png", seed=77)
    import_path(root, dataset_name, progress=False)
    again = CliRunner().invoke(cli, ["curate", "info", dataset_name])
    assert "stopped part way" not in again.output, again.output


def test_a_file_moved_to_another_class_folder_is_named_at_reimport(tmp_path, dataset_name):
    """Moving a file to another class folder (a relabel by hand) and importing again added it
    under its new label and kept the old sample, said to be "a copy with conflicting labels";
    train and export then refused the missing file. The re-import names the gone file."""
    root = tmp_path / "src"
    write_class_tree(root, {"boat": 3, "house": 3})
    import_path(root, dataset_name, progress=False)
    moved = root / "boat" / "boat_0.png"
    moved.rename(root / "house" / "boat_0.png")
    report = import_path(root, dataset_name, progress=False)
    assert report.added == 1
    (warning,) = [w for w in report.warnings if "gone" in w]
    assert f"1 sample of '{dataset_name}' from {root} has a file that is gone (first: {moved})" \
        in warning and "tag the old ones 'exclude'" in warning
    dataset = store.load(dataset_name)
    old = dataset.match({"filepath": str(moved)}).first()
    old.tags.append("exclude")
    old.save()
    again = import_path(root, dataset_name, progress=False)  # dealt with: not said again
    assert not [w for w in again.warnings if "gone" in w]
