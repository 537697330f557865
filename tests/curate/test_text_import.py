"""Importing comments (CSV and JSONL) into the real store: content-hash identity, idempotent
re-import, bad rows by line, conflicts, the source folder untouched, the CLI."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core import store
from shotlab.core.errors import InputError, StrictImportError
from shotlab.curate.importer import import_path
from shotlab.curate.text_import import is_text_table, text_path
from shotlab.runtime.text import MAX_TEXT_CHARS

pytestmark = pytest.mark.fiftyone

GOOD = ("text,label,split,group\n"
        "this joke kills me,ok,train,t1\n"
        "\"I will find you, and hurt you\",violence,val,t1\n"
        "nobody likes you,harassment,,t2\n")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def fingerprint(folder: Path) -> dict[str, tuple]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def by_text(name: str) -> dict[str, tuple]:
    dataset = store.load(name)
    return {t: (labels, split, group) for t, labels, split, group in zip(
        dataset.values("text"), store.sample_labels(dataset), dataset.values("split"),
        dataset.values("group"))}


def test_comments_are_stored_by_content_hash_with_every_field(tmp_path, dataset_name):
    source = write(tmp_path / "src" / "comments.csv", GOOD)
    report = import_path(source, dataset_name, progress=False)
    assert (report.added, report.format, report.kind, report.skipped) == (3, "text", "text", [])
    dataset = store.load(dataset_name)
    assert dataset.info["kind"] == "text" and store.kind_of(dataset) == "text"
    text = "I will find you, and hurt you"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    sample = dataset.match({"sha256": digest}).first()
    assert sample.filepath == str(text_path(digest))
    assert Path(sample.filepath).parent.parent.name == "texts"
    assert Path(sample.filepath).name == f"{digest}.txt"
    assert Path(sample.filepath).read_bytes() == text.encode("utf-8")
    assert stat.S_IMODE(Path(sample.filepath).stat().st_mode) == 0o600
    assert (sample.text, sample.ground_truth.label, sample.split, sample.group) == (
        text, "violence", "val", "t1")
    assert (sample.source_line, sample.import_format, sample.applied_label) == (3, "text",
                                                                               ["violence"])
    assert by_text(dataset_name)["nobody likes you"] == (("harassment",), None, "t2")
    assert "text" in dataset.app_config.active_fields.paths


def test_reimport_adds_nothing_and_the_same_text_elsewhere_is_the_same_sample(tmp_path,
                                                                              dataset_name):
    source = write(tmp_path / "a.csv", GOOD)
    import_path(source, dataset_name, progress=False)
    again = import_path(source, dataset_name, progress=False)
    assert (again.added, again.already_present, again.skipped) == (0, 3, [])
    # Another file, another format, one text already known and one new: identity is the content.
    other = write(tmp_path / "b.jsonl", json.dumps({"text": "this joke kills me", "label": "ok"})
                  + "\n\n" + json.dumps({"text": "see you at lunch", "label": "ok"}) + "\n")
    more = import_path(other, dataset_name, progress=False)
    assert (more.added, more.already_present, len(store.load(dataset_name))) == (1, 1, 4)


def test_bad_rows_are_reported_by_line_with_the_reason(tmp_path, dataset_name):
    long = "x" * (MAX_TEXT_CHARS + 1)
    source = write(tmp_path / "bad.csv",
                   b"text,label,split\n"
                   b"fine comment,ok,train\n"              # 2
                   b",ok,\n"                               # 3 empty text
                   b"caf\xe9 latin-1 bytes,ok,\n"          # 4 not UTF-8
                   + f"{long},ok,\n".encode() +           # 5 too long
                   b"no label column\n"                    # 6 short row
                   b"odd split,ok,holdout\n"               # 7 unknown split
                   b"\"a comment\nover two lines\",harassment,test\n"  # 8-9 fine
                   b"a,b,c,d\n")                           # 10 too many fields
    report = import_path(source, dataset_name, progress=False)
    reasons = {s.path: s.reason for s in report.skipped}
    assert report.added == 2
    assert list(reasons) == [f"line {n} of bad.csv" for n in (3, 4, 5, 6, 7, 10)]
    assert "empty" in reasons["line 3 of bad.csv"]
    assert "not UTF-8" in reasons["line 4 of bad.csv"]
    assert f"over the limit of {MAX_TEXT_CHARS}" in reasons["line 5 of bad.csv"]
    assert "missing column 'label'" in reasons["line 6 of bad.csv"]
    assert "unknown split 'holdout'" in reasons["line 7 of bad.csv"]
    assert "fields but the header has" in reasons["line 10 of bad.csv"]
    assert by_text(dataset_name)["a comment\nover two lines"][:2] == (("harassment",), "test")


def test_jsonl_rows_missing_text_or_not_strings_are_skipped(tmp_path, dataset_name):
    source = write(tmp_path / "c.jsonl", "\n".join([
        json.dumps({"text": "hello", "label": "ok"}),
        json.dumps({"body": "no text key", "label": "ok"}),
        json.dumps({"text": 42, "label": "ok"}),
        "{not json",
        json.dumps({"text": "bye", "label": None}),
        json.dumps({"text": "lone \ud800 surrogate", "label": "ok"})]) + "\n")  # valid JSON
    report = import_path(source, dataset_name, progress=False)
    reasons = {s.path: s.reason for s in report.skipped}
    assert report.added == 2 and list(reasons) == ["line 2 of c.jsonl", "line 3 of c.jsonl",
                                                   "line 4 of c.jsonl", "line 6 of c.jsonl"]
    assert "not valid Unicode text: it holds a lone surrogate ('\\ud800' at character 6" \
        in reasons["line 6 of c.jsonl"]
    assert "no 'text' field" in reasons["line 2 of c.jsonl"]
    assert "not a string" in reasons["line 3 of c.jsonl"]
    assert "not valid JSON" in reasons["line 4 of c.jsonl"]
    assert by_text(dataset_name)["bye"][0] == ()  # unlabeled


def test_jsonl_rows_that_spell_the_label_key_differently_keep_their_labels(tmp_path,
                                                                          dataset_name):
    """One row's 'Label' made the other rows' 'label' unread: imported unlabeled, no word."""
    source = write(tmp_path / "m.jsonl", "\n".join(json.dumps(row) for row in [
        {"text": "p1", "label": "x"}, {"text": "r1", "Label": "y"},
        {"text": "p2", "labels": "x"}, {"text": "u1"}]) + "\n")
    report = import_path(source, dataset_name, progress=False)
    assert report.added == 4 and report.skipped == []
    assert {text: labels for text, (labels, _, _) in by_text(dataset_name).items()} == {
        "p1": ("x",), "r1": ("y",), "p2": ("x",), "u1": ()}


def test_same_text_with_different_labels_is_a_conflict(tmp_path, dataset_name):
    source = write(tmp_path / "c.csv", "text,label\nthis joke kills me,ok\nhi,ok\n"
                                       "this joke kills me,violence\nhi,ok\n")
    report = import_path(source, dataset_name, progress=False)
    assert (report.added, report.duplicate_groups, report.conflicting_groups) == (2, 2, 1)
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons["line 4 of c.csv"].startswith("conflict: same text as line 2")
    assert reasons["line 5 of c.csv"] == "same text as line 3; imported once"
    assert by_text(dataset_name)["this joke kills me"][0] == ("ok",)
    # Against the dataset: the stored label is kept and the conflict named.
    later = write(tmp_path / "later.csv", "text,label\nthis joke kills me,violence\n")
    report = import_path(later, dataset_name, progress=False)
    assert (report.added, report.already_present, report.conflicting_groups) == (0, 1, 1)
    assert "already in" in report.warnings[0] and "line 2 of later.csv" in report.warnings[0]
    assert by_text(dataset_name)["this joke kills me"][0] == ("ok",)


def test_an_unlabeled_repeat_is_no_conflict_and_the_label_is_kept(tmp_path, dataset_name):
    """The text import kept its own duplicate rule: an unlabeled repeat of a labelled comment
    was a "conflict", and an unlabeled line first won, losing the label. In a multiclass import
    no label is no answer yet (`duplicates.disagree`, as for images)."""
    source = write(tmp_path / "c.csv", "text,label\nhi,\nhi,ok\nbye,spam\nbye,\n")
    report = import_path(source, dataset_name, progress=False)
    assert (report.added, report.duplicate_groups, report.conflicting_groups) == (2, 2, 0)
    assert {s.path: s.reason for s in report.skipped} == {
        "line 2 of c.csv": "same text as line 3; imported once, labelled ok as there",
        "line 5 of c.csv": "same text as line 4; imported once, labelled spam as there"}
    assert {t: v[0] for t, v in by_text(dataset_name).items()} == {"hi": ("ok",),
                                                                   "bye": ("spam",)}
    # Against the dataset: an unlabeled row takes nothing away; a label the dataset lacks is
    # still named, since a re-import never changes a sample.
    write(tmp_path / "later.csv", "text,label\nhi,\nnew,\n")
    report = import_path(tmp_path / "later.csv", dataset_name, progress=False)
    assert (report.added, report.conflicting_groups, report.warnings) == (1, 0, [])
    write(tmp_path / "last.csv", "text,label\nnew,ok\n")
    report = import_path(tmp_path / "last.csv", dataset_name, progress=False)
    assert report.conflicting_groups == 1 and "labelled (unlabeled), this row says ok" in \
        report.warnings[0]


def test_an_unlabeled_repeat_conflicts_in_a_multilabel_import(tmp_path, dataset_name):
    """With --multilabel no labels is a negative for every class: an answer, which conflicts."""
    source = write(tmp_path / "c.csv", "text,labels\nhi,\nhi,ok\n")
    report = import_path(source, dataset_name, multilabel=True, progress=False)
    assert (report.added, report.conflicting_groups) == (1, 1)
    assert report.skipped[0].reason.startswith("conflict: same text as line 2, labelled "
                                               "(unlabeled) there and ok here")
    assert by_text(dataset_name)["hi"][0] == ()


def test_multilabel_one_hot_columns_and_lists(tmp_path, dataset_name):
    source = write(tmp_path / "tags.csv", "text,violence,harassment\nboth,1,1\nnone,0,0\n"
                                          "one,true,\nbad,2,0\n")
    with pytest.raises(InputError, match=r"1 row with several labels.*line 2.*--multilabel"):
        import_path(source, dataset_name, progress=False)
    report = import_path(source, dataset_name, multilabel=True, progress=False)
    assert report.added == 3 and "column 'violence' is '2'" in report.skipped[0].reason
    assert sorted(by_text(dataset_name)["both"][0]) == ["harassment", "violence"]
    listed = write(tmp_path / "l.jsonl", json.dumps({"text": "listed", "labels": ["violence",
                                                                                  "harassment"]}))
    import_path(listed, dataset_name, multilabel=True, progress=False)
    assert sorted(by_text(dataset_name)["listed"][0]) == ["harassment", "violence"]


def test_strict_and_empty_imports_write_nothing(tmp_path, dataset_name):
    source = write(tmp_path / "c.csv", "text,label\nfine,ok\n,ok\n")
    with pytest.raises(StrictImportError, match="line 3 of c.csv"):
        import_path(source, dataset_name, strict=True, progress=False)
    assert store.find(dataset_name) is None
    empty = write(tmp_path / "e.csv", "text,label\n")
    with pytest.raises(InputError, match="no rows with a comment.*--allow-empty"):
        import_path(empty, dataset_name, progress=False)
    report = import_path(empty, dataset_name, allow_empty=True, progress=False)
    assert report.added == 0 and store.kind_of(store.load(dataset_name)) == "text"


@pytest.mark.parametrize("name, content, expected", [
    ("c.csv", "comment,label\nhello,ok\n",
     "no file path column in ['comment', 'label']; name one 'filepath' (or filename, file, path, "
     "image), or, for a file of comments, name the comments' column 'text'"),
    ("c.csv", "text;label\nhello;ok\n",
     "no file path column in ['text;label']; the header holds a ';': the file seems to use "
     "another delimiter than a comma; save it comma-separated"),
    ("c.csv", "text\tlabel\nhello\tok\n", "the header holds a '\\t': the file seems to use"),
    ("c.csv", "text,label\nhello,ok\n".encode("utf-16"), "c.csv: the file is UTF-16; save it "
                                                        "as UTF-8"),
    ("c.csv", b"\xfe\xff" + "text,label\n".encode("utf-16-be"), "c.csv: the file is UTF-16"),
    ("c.jsonl", '{"text": "hi"}\n'.encode("utf-16"), "c.jsonl: the file is UTF-16"),
    ("c.jsonl", '{"comment": "hi"}\n', "no 'text' key in its first object (['comment'])"),
], ids=["comment-column", "semicolons", "tabs", "utf16-le", "utf16-be", "utf16-jsonl",
        "jsonl-no-text"])
def test_a_comments_file_in_another_shape_is_told_what_to_fix(tmp_path, dataset_name, name,
                                                              content, expected):
    """These were read as image CSVs, told to name a file path column, or for UTF-16, shown
    the UTF-8 codec's own error."""
    with pytest.raises(InputError) as caught:
        import_path(write(tmp_path / name, content), dataset_name, progress=False)
    assert expected in str(caught.value)
    assert store.find(dataset_name) is None


def test_a_file_that_is_not_utf8_is_told_so_without_other_advice(tmp_path, dataset_name):
    """'Check the path and --format, or pass --allow-empty' led away from the one fix."""
    source = write(tmp_path / "c.csv", b"text,label\ncaf\xe9 latte,ok\nna\xefve,ok\n")
    with pytest.raises(InputError) as caught:
        import_path(source, dataset_name, progress=False)
    assert str(caught.value) == (f"{source}: 2 rows skipped (first: line 2 of c.csv: not UTF-8 "
                                 f"(byte 4 of the line); save the file as UTF-8); nothing was "
                                 f"imported")


def test_text_and_images_never_share_a_dataset(tmp_path, dataset_name):
    from tests.imaging import write_class_tree

    write(tmp_path / "c.csv", GOOD)
    import_path(tmp_path / "c.csv", dataset_name, progress=False)
    write_class_tree(tmp_path / "imgs", {"cat": 1})
    with pytest.raises(InputError, match="holds comments"):
        import_path(tmp_path / "imgs", dataset_name, progress=False)


def test_half_made_dataset_is_completed_as_text(tmp_path, dataset_name):
    store.fiftyone().Dataset(dataset_name, persistent=True)  # an import that died at birth
    report = import_path(write(tmp_path / "c.csv", GOOD), dataset_name, progress=False)
    dataset = store.load(dataset_name)
    assert report.added == 3 and store.kind_of(dataset) == "text"


def test_detection_and_the_source_folder_is_never_written(tmp_path, dataset_name):
    folder = tmp_path / "src"
    write(folder / "comments.csv", GOOD)
    write(folder / "posts.csv", "image_path,text,label\na.png,hi,ok\n")
    assert is_text_table(folder / "comments.csv") and not is_text_table(folder / "posts.csv")
    (tmp_path / "old-mac.csv").write_bytes(b"text,label\rhello there,ok\r")  # CR line ends
    assert is_text_table(tmp_path / "old-mac.csv")  # was taken for an image CSV
    before = fingerprint(folder)
    result = CliRunner().invoke(cli, ["curate", "import", str(folder / "comments.csv"),
                                      "--name", dataset_name])
    assert result.exit_code == 0, result.output
    assert "Imported 3 new samples" in result.output and "[text]" in result.output
    assert fingerprint(folder) == before


def test_cli_reports_bad_rows_and_refuses_a_file_without_text(tmp_path, dataset_name):
    write(tmp_path / "c.csv", "text,label\nfine,ok\n,ok\n")
    result = CliRunner().invoke(cli, ["curate", "import", str(tmp_path / "c.csv"),
                                      "--name", dataset_name, "--format", "text"])
    assert result.exit_code == 0 and "skipped line 3 of c.csv: the text is empty" in result.output
    write(tmp_path / "n.csv", "body,label\nfine,ok\n")
    result = CliRunner().invoke(cli, ["curate", "import", str(tmp_path / "n.csv"),
                                      "--name", dataset_name, "--format", "text"])
    assert result.exit_code == 2 and "no 'text' column" in result.output


def test_export_as_csv_reads_back_as_the_same_comments(tmp_path, dataset_name):
    from shotlab.curate.exporter import export_dataset

    import_path(write(tmp_path / "c.csv", GOOD + "\"quoted \"\"word\"\", and comma\",ok,test,\n"),
                dataset_name, progress=False)
    with pytest.raises(InputError, match="holds comments; export it with --format csv"):
        export_dataset(dataset_name, tmp_path / "folder-out", "folder")
    assert export_dataset(dataset_name, tmp_path / "out", "csv") == 4
    again = f"{dataset_name}-back"
    try:
        report = import_path(tmp_path / "out" / "comments.csv", again, progress=False)
        assert (report.added, report.skipped) == (4, [])
        assert by_text(again) == by_text(dataset_name)
        # Same comments, same files: the copy's samples point at the same content-addressed files.
        assert sorted(store.load(again).values("filepath")) == sorted(
            store.load(dataset_name).values("filepath"))
    finally:
        if again in store.list_datasets():
            store.delete(again)


def test_multilabel_comments_whose_classes_differ_in_case_read_back(tmp_path, dataset_name):
    """One-hot classes 'Cat' and 'cat' are two columns; a class named 'group' is a column of
    the comments CSV, refused with no other format to offer (comments export as csv alone)."""
    from shotlab.curate.exporter import export_dataset

    rows = [{"text": "a", "labels": ["Cat"]}, {"text": "b", "labels": ["cat"]},
            {"text": "c", "labels": ["Cat", "cat"]}]
    import_path(write(tmp_path / "m.jsonl", "\n".join(map(json.dumps, rows)) + "\n"),
                dataset_name, multilabel=True, progress=False)
    assert export_dataset(dataset_name, tmp_path / "out", "csv") == 3
    again = f"{dataset_name}-back"
    try:
        import_path(tmp_path / "out" / "comments.csv", again, multilabel=True, progress=False)
        assert by_text(again) == by_text(dataset_name)
    finally:
        if again in store.list_datasets():
            store.delete(again)
    grouped = f"{dataset_name}-g"
    try:
        import_path(write(tmp_path / "g.jsonl", json.dumps({"text": "d", "labels": ["Group"]})
                          + "\n"), grouped, multilabel=True, progress=False)
        with pytest.raises(InputError, match=r"class 'Group', which a CSV import reads as its "
                                             r"'group' column; rename the class first$"):
            export_dataset(grouped, tmp_path / "g-out", "csv")
    finally:
        if grouped in store.list_datasets():
            store.delete(grouped)


@pytest.mark.slow
def test_two_concurrent_imports_add_each_comment_once(tmp_path, dataset_name):
    import subprocess
    import sys

    rows = "".join(f"comment number {i},ok\n" for i in range(300))
    source = write(tmp_path / "c.csv", "text,label\n" + rows)
    command = [sys.executable, "-m", "shotlab", "curate", "import", str(source), "--name",
               dataset_name, "--json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert sum(r["added"] for r in reports) == 300
    assert all(r["added"] + r["already_present"] == 300 for r in reports)
    dataset = store.load(dataset_name)
    assert len(dataset) == len(set(dataset.values("filepath"))) == 300


def test_labels_differing_only_in_letter_case_are_warned_on_import_and_in_info(tmp_path,
                                                                               dataset_name):
    """'Hate', 'hate ' and 'hate' became two classes (spaces trimmed, case kept) in silence."""
    rows = write(tmp_path / "src" / "messy.csv",
                 "text,label\nyou people are vermin,Hate\nthose people are vermin,hate \n"
                 "they are all vermin,hate\nlovely weather,ok\nnice soup, OK\n")
    result = CliRunner().invoke(cli, ["curate", "import", str(rows), "--name", dataset_name])
    assert result.exit_code == 0, result.output
    assert "classes 'Hate', 'hate' differ only in letter case" in result.stderr
    assert "classes 'OK', 'ok' differ only in letter case" in result.stderr
    info = CliRunner().invoke(cli, ["curate", "info", dataset_name, "--json"])
    warnings = json.loads(info.stdout)["warnings"]
    assert any("'Hate', 'hate'" in w for w in warnings)
    assert "class 'Hate' has only 1 comment (fewer than 5); add more before training" in warnings
