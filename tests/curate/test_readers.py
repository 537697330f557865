"""Readers turn a source into labelled paths, and report what they cannot follow."""

from __future__ import annotations

import zipfile

import pytest

from shotlab.core.errors import InputError
from shotlab.curate import archives
from shotlab.curate.readers.csvfile import read_table
from shotlab.curate.readers.folder import read_folder
from shotlab.curate.readers.roboflow import looks_like_roboflow, read_roboflow
from tests.imaging import write_class_tree, write_image


def labelled(scan) -> dict[str, tuple]:
    return {r.path.name: (r.labels, r.split) for r in scan.records}


def test_class_tree_keeps_names_and_nesting(tmp_path):
    write_class_tree(tmp_path, {"Sports car": 2, "truck": 1})
    write_image(tmp_path / "truck" / "night" / "deep.jpg")
    (tmp_path / "truck" / "notes.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    write_image(tmp_path / ".hidden" / "h.png")
    write_image(tmp_path / "loose.png")
    scan = read_folder(tmp_path)
    assert labelled(scan) == {"Sports_car_0.png": (("Sports car",), None),
                              "Sports_car_1.png": (("Sports car",), None),
                              "truck_0.png": (("truck",), None), "deep.jpg": (("truck",), None)}
    assert [p.name for p in scan.ignored] == ["notes.txt"]
    assert [(s.path.endswith("loose.png"), "no label" in s.reason) for s in scan.skipped] == [(True, True)]


def test_a_linked_folder_is_followed_and_a_loop_is_skipped_by_name(tmp_path):
    """`cat/more -> elsewhere` holds cat images (rglob passed it over and counted the link as a
    non-image); `cat/up -> ..` and `train/cat/top -> ../..` would walk forever, or back into
    every split: each is skipped, named."""
    write_class_tree(tmp_path / "src", {"cat": 1, "dog": 1})
    write_class_tree(tmp_path / "extra", {"more": 2}, seed=50)
    (tmp_path / "src" / "cat" / "more").symlink_to(tmp_path / "extra" / "more")
    (tmp_path / "src" / "cat" / "up").symlink_to("..")
    scan = read_folder(tmp_path / "src")
    assert labelled(scan) == {"cat_0.png": (("cat",), None), "more_0.png": (("cat",), None),
                              "more_1.png": (("cat",), None), "dog_0.png": (("dog",), None)}
    assert scan.ignored == []
    assert [(s.path, s.reason) for s in scan.skipped] == [(
        str(tmp_path / "src" / "cat" / "up"),
        f"a link to {tmp_path / 'src'}, a folder that holds it (a loop): not followed")]

    write_class_tree(tmp_path / "splits", {"cat": 1}, split="train")
    write_class_tree(tmp_path / "splits", {"cat": 1}, split="val", seed=9)
    (tmp_path / "splits" / "train" / "cat" / "top").symlink_to("../..")
    scan = read_folder(tmp_path / "splits")
    assert sorted((r.labels, r.split) for r in scan.records) == [(("cat",), "train"),
                                                                 (("cat",), "val")]
    assert [s.path for s in scan.skipped] == [str(tmp_path / "splits" / "train" / "cat" / "top")]


def test_a_folder_reached_again_by_a_link_is_walked_once(tmp_path):
    """Two links to one folder at each of 8 levels (a diamond) listed the last level's image
    256 times (2^depth walks, exponential in the depth); a link to a folder walked as itself
    listed its images again under another class. Each such link is skipped, named."""
    levels = [tmp_path / "levels" / str(k) for k in range(9)]
    for k, level in enumerate(levels):
        write_image(level / f"x{k}.png", seed=k)
        if k:
            for name in ("a", "b"):
                (levels[k - 1] / name).symlink_to(level)
    write_class_tree(tmp_path / "src", {"cat": 1})
    (tmp_path / "src" / "cat" / "levels").symlink_to(levels[0])
    (tmp_path / "src" / "dog").mkdir()
    (tmp_path / "src" / "dog" / "same").symlink_to(tmp_path / "src" / "cat")
    scan = read_folder(tmp_path / "src")
    assert sorted(r.path.name for r in scan.records) == sorted(
        ["cat_0.png", *(f"x{k}.png" for k in range(9))])
    assert {r.labels for r in scan.records} == {("cat",)}
    cat = tmp_path / "src" / "cat"
    assert sorted((s.path, s.reason) for s in scan.skipped) == sorted(
        [(str(cat / "levels" / ("a/" * k + "b")),
          f"a link to {levels[k + 1]}, a folder already walked: not followed again")
         for k in range(8)]
        + [(str(tmp_path / "src" / "dog" / "same"),
            f"a link to {cat}, a folder already walked: not followed again")])


@pytest.mark.parametrize("folder, split", [("train", "train"), ("val", "val"), ("valid", "val"),
                                           ("Validation", "val"), ("test", "test")])
def test_split_folders_are_normalised(tmp_path, folder, split):
    write_class_tree(tmp_path, {"cat": 1}, split=folder)
    assert labelled(read_folder(tmp_path)) == {"cat_0.png": (("cat",), split)}


def test_split_and_class_folders_mixed_is_an_error(tmp_path):
    write_class_tree(tmp_path, {"cat": 1}, split="train")
    write_class_tree(tmp_path, {"dog": 1})
    with pytest.raises(InputError, match="mixes split folders \\(train\\) with class folders \\(dog\\)"):
        read_folder(tmp_path)


def test_csv_with_label_and_split_columns(tmp_path):
    write_image(tmp_path / "img" / "a.png")
    write_image(tmp_path / "img" / "b.png", seed=1)
    (tmp_path / "labels.csv").write_text("filepath,label,split\nimg/a.png,cat,valid\nimg/b.png,dog,\n")
    assert labelled(read_table(tmp_path / "labels.csv", multilabel=False)) == {
        "a.png": (("cat",), "val"), "b.png": (("dog",), None)}


def test_csv_one_hot_and_multilabel_column(tmp_path):
    for i, name in enumerate("abc"):
        write_image(tmp_path / f"{name}.png", seed=i)
    (tmp_path / "onehot.csv").write_text("filename, cat, big dog\na.png, 1, 1\nb.png, 0, 0\nc.png, 0, 1\n")
    assert labelled(read_table(tmp_path / "onehot.csv", multilabel=True)) == {
        "a.png": (("cat", "big dog"), None), "b.png": ((), None), "c.png": (("big dog",), None)}
    (tmp_path / "multi.csv").write_text("filepath,labels\na.png,cat;dog\nb.png,\n")
    assert labelled(read_table(tmp_path / "multi.csv", multilabel=True)) == {
        "a.png": (("cat", "dog"), None), "b.png": ((), None)}


def test_csv_rows_outside_missing_or_malformed_are_reported(tmp_path):
    inside = tmp_path / "data"
    write_image(inside / "ok.png")
    write_image(tmp_path / "outside.png", seed=1)
    (inside / "labels.csv").write_text(
        f"filepath,cat,dog\nok.png,1,0\n../outside.png,1,0\n{tmp_path / 'outside.png'},0,1\n"
        "missing.png,1,0\nok.png,yes,0\n")
    scan = read_table(inside / "labels.csv", multilabel=False)
    assert [r.path.name for r in scan.records] == ["ok.png"]
    reasons = [(s.path, s.reason) for s in scan.skipped]
    assert reasons[0] == (f"{tmp_path / 'outside.png'} (row 3 of labels.csv)",
                          f"outside the CSV's folder {inside}; move the file under it")
    assert reasons[1][0].endswith("(row 4 of labels.csv)") and "outside" in reasons[1][1]
    assert reasons[2] == (f"{inside / 'missing.png'} (row 5 of labels.csv)", "file not found")
    assert reasons[3][1] == "row 6 of labels.csv: column 'cat' is 'yes', expected 0 or 1"


def test_a_csv_row_with_more_fields_than_the_header_is_skipped_by_row(tmp_path):
    """An unquoted comma in a file name shifts the row: its extra fields were dropped in
    silence and the rest imported, possibly under the wrong label."""
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name)
    (tmp_path / "labels.csv").write_text("filepath,label\na.png,bird,\nb.png,fish,extra1,extra2\n"
                                         '"b.png",fish\n')  # a trailing comma is fine
    scan = read_table(tmp_path / "labels.csv", multilabel=False)
    assert labelled(scan) == {"a.png": (("bird",), None), "b.png": (("fish",), None)}
    assert [(s.path, s.reason) for s in scan.skipped] == [
        ("row 3 of labels.csv", "4 fields, the header has 2 (filepath,label); quote a value "
                                "holding a comma, or remove the extra fields")]

def test_csv_unknown_split_is_skipped_by_row_and_several_labels_stay_several(tmp_path):
    for name in "abc":
        write_image(tmp_path / f"{name}.png")
    (tmp_path / "labels.csv").write_text("filepath,label,split\na.png,dog,Training\n"
                                         "b.png,cat;dog,test\nc.png,dog,\n")
    scan = read_table(tmp_path / "labels.csv", multilabel=False)
    assert labelled(scan) == {"b.png": (("cat", "dog"), "test"), "c.png": (("dog",), None)}
    assert [s.reason for s in scan.skipped] == [
        "row 2 of labels.csv: unknown split 'Training'; expected one of train, val, valid, "
        "validation, test, or empty for unassigned"]


def test_images_a_csv_does_not_list_are_counted_by_name(tmp_path):
    """A truncated label file lost the images it no longer named without trace; rows skipped
    for a bad label or split still name theirs, and other files are not images. Only the
    rows' own folders are looked at, not the folders below them."""
    write_class_tree(tmp_path, {"a": 4})
    write_image(tmp_path / "a" / "deep" / "z.png")
    write_image(tmp_path / "b" / "y.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "labels.csv").write_text("filepath,label,split\na/a_0.png,a,\n./a/a_1.png,a,\n"
                                         "a/a_2.png,a,holdout\n")
    scan = read_table(tmp_path / "labels.csv", multilabel=False)
    assert [r.path.name for r in scan.records] == ["a_0.png", "a_1.png"]
    assert [(u.path, u.listing) for u in scan.unlisted] == [
        (tmp_path / "a" / "a_3.png", tmp_path / "labels.csv")]


def test_images_another_csv_beside_it_lists_are_not_unlisted(tmp_path):
    """data/train.csv and data/val.csv share data/images/: importing train.csv warned that
    every val image was "not listed ... add a row for each", and walked every folder under
    data/ (a CSV at ~ walked the home tree). Only the image no CSV names is counted."""
    data = tmp_path / "data"
    write_class_tree(data / "images", {"x": 4})
    write_image(data / "images" / "old" / "z.png")
    write_image(data / "other" / "q.png")
    (data / "train.csv").write_text("filepath,label\nimages/x/x_0.png,a\nimages/x/x_1.png,b\n")
    (data / "val.csv").write_text("image,label\nimages/x/x_2.png,a\n")
    (data / "stats.csv").write_text("metric,value\nf1,0.5\n")  # no path column: names none
    scan = read_table(data / "train.csv", multilabel=False)
    assert [(u.path, u.listing) for u in scan.unlisted] == [
        (data / "images" / "x" / "x_3.png", data / "train.csv")]


def test_csv_without_a_path_column(tmp_path):
    (tmp_path / "x.csv").write_text("name,label\na.png,cat\n")
    with pytest.raises(InputError, match="x.csv: no file path column in \\['name', 'label'\\]"):
        read_table(tmp_path / "x.csv", multilabel=False)


def test_roboflow_multiclass_layout(tmp_path):
    for split in ("train", "valid"):
        write_image(tmp_path / split / "a_jpg.rf.0123.jpg")
        write_image(tmp_path / split / "b_jpg.rf.4567.jpg", seed=1)
        (tmp_path / split / "_classes.csv").write_text(
            "filename, Sports car, Truck\na_jpg.rf.0123.jpg, 1, 0\nb_jpg.rf.4567.jpg, 0, 0\n")
    assert looks_like_roboflow(tmp_path)
    scan = read_roboflow(tmp_path, multilabel=True)
    assert sorted((r.path.parent.name, r.path.name, r.labels, r.split) for r in scan.records) == [
        ("train", "a_jpg.rf.0123.jpg", ("Sports car",), "train"),
        ("train", "b_jpg.rf.4567.jpg", (), "train"),
        ("valid", "a_jpg.rf.0123.jpg", ("Sports car",), "val"),
        ("valid", "b_jpg.rf.4567.jpg", (), "val")]


def test_zip_is_extracted_once_into_the_workspace(tmp_path):
    source = tmp_path / "src"
    write_class_tree(source, {"cat": 2}, split="train")
    zip_path = tmp_path / "export.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for f in source.rglob("*.png"):
            z.write(f, f"export/{f.relative_to(source)}")
    media = tmp_path / "media"
    first = archives.extract(zip_path, media)
    assert first.parent == media and (first / "export" / "train" / "cat" / "cat_0.png").is_file()
    assert archives.unwrap(first) == first / "export"  # not into train/ nor cat/
    assert archives.unwrap(first / "export" / "train") == first / "export" / "train"
    stamp = (first / "export" / "train" / "cat" / "cat_0.png").stat().st_mtime_ns
    assert archives.extract(zip_path, media) == first
    assert (first / "export" / "train" / "cat" / "cat_0.png").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("entry", ["../evil.png", "a/../../evil.png", "/abs/evil.png"])
def test_zip_entries_escaping_the_folder_are_refused(tmp_path, entry):
    zip_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        z.writestr("ok/a.png", b"x")
        z.writestr(entry, b"x")
    with pytest.raises(InputError, match="would be written outside the extraction folder"):
        archives.extract(zip_path, tmp_path / "media")
    assert not (tmp_path / "media").exists() and not (tmp_path / "evil.png").exists()


@pytest.mark.parametrize("folders", [[], ["train/", "train/cat/"]])
def test_a_zip_of_no_files_is_refused_in_one_line(tmp_path, folders):
    """An empty zip was a FileNotFoundError traceback (its extraction folder never made)."""
    zip_path = tmp_path / "empty.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for folder in folders:
            z.writestr(folder, b"")
    with pytest.raises(InputError, match="empty.zip: the zip holds no files, so there is "
                                         "nothing to import"):
        archives.extract(zip_path, tmp_path / "media")
    assert not (tmp_path / "media").exists()


@pytest.mark.parametrize("content, message", [
    # the second 'label' silently won: imported as 'dog'
    (b"filepath,label,label\na.png,cat,dog\n",
     "the header names column 'label' twice (columns 2 and 3); rename or remove one"),
    # one-hot: 'cat' counted twice, and the fix offered was --multilabel
    (b"filepath,cat,cat\na.png,1,0\n", "the header names column 'cat' twice"),
    # the roles are found whatever their case: 'Label' would win the same way
    (b"filepath,label,Label\na.png,cat,dog\n", "the header names column 'Label' twice"),
    # refused whole, with the codec's words and no line
    (b"filepath,label\na.png,cat\nsp\xe9.png,cat\n",
     "line 3 is not UTF-8 (byte 3 of the line); save the file as UTF-8"),
    # after a BOM (it was counted, and the line said 1), and in an old Mac's CR-only lines
    (b"\xef\xbb\xbffilepath,label\n\xe9.png,x\n", "line 2 is not UTF-8 (byte 1 of the line)"),
    (b"filepath,label\ra.png,cat\r\xe9.png,x\r", "line 3 is not UTF-8 (byte 1 of the line)"),
])
def test_a_label_csv_that_cannot_be_read_as_meant_is_refused_naming_why(tmp_path, content,
                                                                        message):
    write_image(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_table(tmp_path / "labels.csv", multilabel=False)
    assert str(caught.value).startswith(f"{tmp_path / 'labels.csv'}: {message}")


def test_a_repeated_column_nobody_reads_is_fine(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("filepath,label,notes,notes\na.png,cat,x,y\n")
    assert [r.labels for r in read_table(tmp_path / "labels.csv", multilabel=False).records] \
        == [("cat",)]


def test_csv_row_without_its_label_field_names_the_file_and_line(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", seed=1)
    (tmp_path / "labels.csv").write_text("filepath,label\na.png,cat\n\nb.png\n")
    with pytest.raises(InputError, match=r"labels.csv: line 4 has 1 fields, no 'label' \(the header "
                                         r"has 2: filepath,label\); complete the row"):
        read_table(tmp_path / "labels.csv", multilabel=False)
    (tmp_path / "onehot.csv").write_text("filepath,cat,dog\na.png,1,0\nb.png,1\n")
    with pytest.raises(InputError, match="onehot.csv: line 3 has 2 fields, no 'dog'"):
        read_table(tmp_path / "onehot.csv", multilabel=True)
