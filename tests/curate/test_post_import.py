"""Importing posts (image + caption) into the real FiftyOne store: fields, bad rows by line,
idempotence, JSONL, the dataset kind, and the CLI's detection of a posts CSV."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.curate.importer import import_path
from shotlab.curate.post_import import import_posts, looks_like_posts
from shotlab.runtime.text import MAX_TEXT_CHARS
from tests.imaging import truncate, write_class_tree

pytestmark = pytest.mark.fiftyone

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "sample"


def copy_images(folder: Path) -> list[str]:
    """Four real sample images under folder/images/; their paths relative to `folder`."""
    names = []
    for source in sorted((SAMPLE / "train" / "bird").glob("*.png"))[:2] + \
            sorted((SAMPLE / "train" / "boat").glob("*.png"))[:2]:
        target = folder / "images" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        names.append(f"images/{source.name}")
    return names


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_bytes(b"".join(line.encode() if isinstance(line, str) else line
                              for line in lines))
    return path


def good_and_bad(tmp_path) -> Path:
    images = copy_images(tmp_path)
    truncate(tmp_path / images[3], 0.3)  # a corrupt image
    return write_csv(tmp_path / "posts.csv", [
        "image_path,text,label,split\n",                          # line 1
        f"{images[0]},What a lovely bird,on_topic,train\n",         # 2 good
        f"{images[1]},\"For sale, 20 euros\",off_topic,val\n",      # 3 good (quoted comma)
        f"{images[2]},,off_topic,train\n",                          # 4 empty caption
        f"{images[3]},A boat,off_topic,train\n",                    # 5 corrupt image
        "images/missing.png,Where is it,on_topic,train\n",          # 6 missing image
        ",No picture here,on_topic,train\n",                        # 7 no image path
        f"{images[2]},{'x' * (MAX_TEXT_CHARS + 1)},on_topic,test\n",  # 8 over-long caption
        b"images/a.png,caf\xe9 latte,on_topic,train\n",               # 9 not UTF-8
        f"{images[2]},Nice boat,off_topic,test\n",                  # 10 good
        f"{images[0]},A lovely bird,on_topic,Training\n",           # 11 unknown split
    ])


def test_posts_import_with_every_bad_row_reported_by_line(tmp_path, dataset_name):
    csv_path = good_and_bad(tmp_path)
    report = import_posts(csv_path, dataset_name, progress=False)
    assert (report.added, report.format, report.task) == (3, "posts", "multiclass")
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in report.skipped}
    assert "empty" in reasons["posts.csv:4"]
    corrupt = next(s for s in report.skipped if "line 5 " in s.path)
    assert corrupt.path.endswith(".png (line 5 of posts.csv)") and corrupt.reason
    missing = next(s for s in report.skipped if "missing.png" in s.path)
    assert "line 6" in missing.path and "not found" in missing.reason
    assert any("line 7" in s.path and "no image path" in s.reason for s in report.skipped)
    assert f"limit of {MAX_TEXT_CHARS}" in reasons["posts.csv:8"]
    assert "UTF-8" in reasons["posts.csv:9"]
    assert reasons["posts.csv:11"] == ("unknown split 'Training'; expected one of train, val, "
                                       "valid, validation, test, or empty for unassigned")
    assert len(report.skipped) == 7  # lines 4 to 9, and 11

    dataset = store.load(dataset_name)
    assert dataset.info["kind"] == "post"
    sample = dataset.match({"source_line": 3}).first()
    image = (tmp_path / "images").resolve() / Path(sample.filepath).name
    assert sample.filepath == str(image) and sample.text == "For sale, 20 euros"
    assert sample.text_sha256 == hashlib.sha256("For sale, 20 euros".encode()).hexdigest()
    assert sample.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    assert (sample.ground_truth.label, sample.split) == ("off_topic", "val")


def test_a_posts_file_without_a_text_column_names_the_column_on_each_row(tmp_path, dataset_name):
    """Every row read "the text is not a string (NoneType)" where the captions' column was
    called 'caption'."""
    images = copy_images(tmp_path)
    csv_path = write_csv(tmp_path / "posts.csv", ["image_path,caption,label\n",
                                                  f"{images[0]},A bird,on_topic\n"])
    report = import_posts(csv_path, dataset_name, progress=False, allow_empty=True)
    (skipped,) = report.skipped
    assert skipped.reason == ("no 'text' field (the row has image_path, caption, label); name "
                              "the captions' column 'text'")


def test_reimport_adds_nothing_and_a_repeated_image_is_skipped(tmp_path, dataset_name):
    images = copy_images(tmp_path)
    csv_path = write_csv(tmp_path / "posts.csv", [
        "image_path,text,label\n", f"{images[0]},first caption,a\n",
        f"{images[0]},second caption,b\n", f"{images[1]},another,b\n"])
    first = import_posts(csv_path, dataset_name, progress=False)
    assert first.added == 2
    assert [s.reason for s in first.skipped] == [
        "line 3 of posts.csv: listed more than once; the first entry (line 2 of posts.csv) was "
        "used, and they disagree: label 'b' here, 'a' kept"]
    again = import_posts(csv_path, dataset_name, progress=False)
    assert (again.added, again.already_present) == (0, 2)
    assert sorted(store.load(dataset_name).values("text")) == ["another", "first caption"]


def test_jsonl_posts_with_multilabel_labels(tmp_path, dataset_name):
    images = copy_images(tmp_path)
    rows = [{"image": images[0], "text": "sale and a bird", "labels": ["sale", "animal"]},
            {"image": images[2], "text": "just a boat", "labels": "vehicle"}]
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = import_posts(path, dataset_name, multilabel=True, progress=False)
    assert (report.added, report.task, report.skipped) == (2, "multilabel", [])
    assert sorted(map(sorted, store.sample_labels(store.load(dataset_name)))) == \
        [["animal", "sale"], ["vehicle"]]


def test_a_caption_with_a_lone_surrogate_is_skipped_by_line(tmp_path, dataset_name):
    """`\\ud800` with no pair is valid JSON but no text: hashing the caption crashed the
    import (UnicodeEncodeError); it is a bad row like an empty caption."""
    images = copy_images(tmp_path)
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"image": images[0], "text": "a bird", "label": "animal"}) + "\n"
                    + json.dumps({"image": images[2], "text": "boat \ud800", "label": "x"})
                    + "\n")
    report = import_posts(path, dataset_name, progress=False)
    assert report.added == 1
    (skipped,) = report.skipped
    assert skipped.path == f"{path}:2" and "holds a lone surrogate" in skipped.reason


def test_jsonl_label_lists_read_like_comment_imports(tmp_path, dataset_name):
    """A repeated class counts once and a null item is no class (it was a class named 'None'),
    as in comment imports (one function, `label_values`, for both)."""
    images = copy_images(tmp_path)
    rows = [{"image": images[0], "text": "a bird", "labels": ["animal", "animal", None]},
            {"image": images[2], "text": "a boat", "labels": ["vehicle"]}]
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = import_posts(path, dataset_name, progress=False)
    assert (report.added, report.task, report.skipped) == (2, "multiclass", [])
    assert sorted(store.sample_labels(store.load(dataset_name))) == [("animal",), ("vehicle",)]


def test_posts_are_refused_into_an_image_dataset(tmp_path, dataset_name):
    write_class_tree(tmp_path / "tree", {"cat": 1, "dog": 1})
    import_path(tmp_path / "tree", dataset_name, progress=False)
    images = copy_images(tmp_path)
    csv_path = write_csv(tmp_path / "posts.csv",
                         ["image_path,text,label\n", f"{images[0]},hello,cat\n"])
    with pytest.raises(InputError, match=f"dataset '{dataset_name}' holds image samples, not posts"):
        import_posts(csv_path, dataset_name, progress=False)


def test_cli_detects_a_posts_csv(tmp_path, dataset_name):
    from shotlab.cli import cli as main

    images = copy_images(tmp_path)
    csv_path = write_csv(tmp_path / "posts.csv", [
        "image_path,text,label\n", f"{images[0]},a bird,on_topic\n", f"{images[2]},,x\n"])
    plain = write_csv(tmp_path / "labels.csv", ["filepath,label\n", f"{images[0]},bird\n"])
    assert looks_like_posts(csv_path) and not looks_like_posts(plain)
    result = CliRunner().invoke(main, ["curate", "import", str(csv_path), "--name", dataset_name,
                                       "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["added"], data["format"]) == (1, "posts")
    assert data["skipped"] == [{"path": f"{csv_path}:3",
                                "reason": "the text is empty; fill it in or leave it out"}]


def test_a_posts_csv_the_reader_refuses_is_told_why_not_taken_for_an_image_csv(
        tmp_path, dataset_name):
    """It was sent to the image CSV reader, which said it had no file path column."""
    from shotlab.cli import cli as main

    images = copy_images(tmp_path)
    csv_path = write_csv(tmp_path / "posts.csv", [
        "image_path,text,label,note,Note\n", f"{images[0]},a bird,on_topic,x,y\n"])
    twice = write_csv(tmp_path / "twice.csv", [
        "image_path,text,label,Image_Path\n", f"{images[0]},a bird,on_topic,{images[1]}\n"])
    assert looks_like_posts(csv_path) and looks_like_posts(twice)
    result = CliRunner().invoke(main, ["curate", "import", str(csv_path), "--name", dataset_name])
    assert result.exit_code == 0, result.output  # columns nobody reads may repeat
    result = CliRunner().invoke(main, ["curate", "import", str(twice), "--name", dataset_name])
    assert result.exit_code == 2
    assert "the header names column 'Image_Path' twice (columns 1 and 4)" in result.output


def test_one_picture_under_two_captions_is_no_duplicate(tmp_path, dataset_name):
    """Copies of one picture with different captions (and labels) were reported as 'identical
    files with conflicting labels': for a post, the caption may be what makes it unsafe."""
    images = copy_images(tmp_path)
    shutil.copyfile(tmp_path / images[0], tmp_path / "images" / "copy0.png")
    shutil.copyfile(tmp_path / images[1], tmp_path / "images" / "copy1.png")
    csv_path = write_csv(tmp_path / "posts.csv", [
        "image_path,text,label\n", f"{images[0]},a lovely bird,safe\n",
        "images/copy0.png,this bird will hunt you down,threat\n",  # another post
        f"{images[1]},same words,safe\n", "images/copy1.png,same words,threat\n"])  # one post
    report = import_posts(csv_path, dataset_name, progress=False)
    assert report.added == 4
    assert (report.duplicate_groups, report.conflicting_groups) == (1, 1)


def posts_of(name: str) -> list[tuple]:
    dataset = store.load(name)
    return sorted(zip(dataset.values("text"), map(tuple, map(sorted, store.sample_labels(dataset))),
                      dataset.values("split"), dataset.values("sha256")))


def test_export_reads_back_as_the_same_posts(tmp_path, dataset_name):
    """`curate export --format csv` wrote labels.csv without the captions: a posts dataset came
    back as plain images. It writes posts.csv beside the images, which imports as the same posts."""
    from shotlab.curate.exporter import export_dataset

    images = copy_images(tmp_path)
    shutil.copyfile(tmp_path / images[0], tmp_path / "images" / "again.png")
    source = write_csv(tmp_path / "posts.csv", [
        "image_path,text,label,split\n", f"{images[0]},\"A bird, for sale\",sale;animal,train\n",
        "images/again.png,the same picture,animal,val\n", f"{images[2]},just a boat,,test\n",
        f"{images[3]},\"line one\nline two\",vehicle,\n"])
    assert import_posts(source, dataset_name, multilabel=True, progress=False).added == 4
    with pytest.raises(InputError, match="holds posts .*; export it with --format csv"):
        export_dataset(dataset_name, tmp_path / "folder-out", "folder")
    assert export_dataset(dataset_name, tmp_path / "out", "csv") == 4
    again = f"{dataset_name}-back"
    try:
        report = import_posts(tmp_path / "out" / "posts.csv", again, multilabel=True,
                              progress=False)
        assert (report.added, report.skipped) == (4, [])
        assert store.kind_of(store.load(again)) == "post"
        assert posts_of(again) == posts_of(dataset_name)
    finally:
        store.delete(again)
