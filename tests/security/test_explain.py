"""The explanation store: read-only commands only read, a damaged store is named in one line,
and writes are all-or-nothing (issue #11, items 11 and 12)."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from tests.security.common import one_line_error, run
from shotlab.core.errors import InputError
from shotlab.explain.store import ExplanationStore

PAGE = 4096  # SQLite's default page size




def filled_store(path, n: int = 40):
    """A store with `n` decisions d0.. each with a Grad-CAM map: many pages."""
    rng = np.random.default_rng(0)
    with ExplanationStore(path) as store:
        for i in range(n):
            store.add_decision({"decision_id": f"d{i}", "path": f"/images/{i}.png",
                                "scores": {"red": 0.9, "blue": 0.1}, "flagged": ["red"]},
                               bundle_path="/bundles/b")
            store.put(f"d{i}", "gradcam", rng.random((64, 64)), target="red")
    return path


def damage_tables(path):
    """Garbage over the root page of every table and index: the middle of the file, where any
    read or insert starts."""
    with sqlite3.connect(path) as db:
        roots = [row[0] for row in db.execute("SELECT rootpage FROM sqlite_master "
                                              "WHERE rootpage > 1")]
    db.close()
    garbage = np.random.default_rng(1).integers(0, 256, PAGE, dtype=np.uint8).tobytes()
    with open(path, "r+b") as f:
        for page in roots:
            f.seek((page - 1) * PAGE)
            f.write(garbage)
    return path


def state(folder) -> dict:
    """Every file in `folder` with its bytes and mtime: what a read-only command must keep."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", [["explain", "show", "d1", "--store", "{store}"],
                                     ["explain", "show", "d1", "--json", "--store", "{store}"],
                                     ["explain", "appeal", "{store}", "d1"],
                                     ["explain", "--pending", "{store}"]])
def test_a_zero_byte_file_is_not_a_store_and_stays_zero_bytes(command, tmp_path):
    store = tmp_path / "explanations.sqlite"
    store.touch()
    os.utime(store, ns=(1_000_000_000, 1_000_000_000))
    before = state(tmp_path)
    line = one_line_error(run(*[a.format(store=store) for a in command]))
    assert f"{store}: not an explanation store (no decisions or explanations tables)" in line
    assert state(tmp_path) == before


def test_show_only_reads_the_store(tmp_path):
    store = filled_store(tmp_path / "explanations.sqlite", n=3)
    os.utime(store, ns=(1_000_000_000, 1_000_000_000))
    before = state(tmp_path)
    for args in ([], ["--json"]):
        result = run("explain", "show", "d1", "--store", store, *args)
        assert result.exit_code == 0 and "gradcam" in result.output, result.output
    assert one_line_error(run("explain", "show", "d404", "--store", store))
    assert state(tmp_path) == before  # no journal left, no byte or mtime changed


def test_show_never_draws_over_the_store(tmp_path):
    store = filled_store(tmp_path / "explanations.sqlite", n=2)
    before = state(tmp_path)
    line = one_line_error(run("explain", "show", "d1", "--store", store, "--out", store))
    assert f"--out {store} is the explanation store; give a new .png path" in line
    assert state(tmp_path) == before


def stored_comment(path, decision_id: str = "c1"):
    """A comment's decision with one stored word row: `show --out` writes its page."""
    from shotlab.explain.text_store import put_words
    from shotlab.explain.text_words import Comment, WordScores

    comment = Comment("this joke kills me", ["this", "joke", "kills", "me"],
                      [(0, 4), (5, 9), (10, 15), (16, 18)], [[1], [2], [3], [4]])
    words = WordScores(comment, 1, "violent", "ig", np.array([0.0, 0.1, 0.9, 0.0], np.float32))
    with ExplanationStore(path) as store:
        store.add_decision({"decision_id": decision_id, "flagged": ["violent"],
                            "scores": {"fine": 0.1, "violent": 0.9}}, bundle_path="/bundles/t")
        put_words(store, decision_id, words)
    return path


def test_show_out_replaces_only_a_figure_or_page_it_wrote(tmp_path):
    """`show --out victim.csv` turned a user's CSV into a PNG (or a comment's HTML page),
    exit 0; `--out post.html` for a picture's maps wrote PNG bytes under an .html name."""
    store = stored_comment(filled_store(tmp_path / "explanations.sqlite", n=2))
    users = {"victim.csv": b"id,text\n1,hello\n", "victim.png": b"\x89PNG\r\n\x1a\nmine",
             "victim.html": b"<!DOCTYPE html>\n<p>my notes</p>\n"}
    for name, data in users.items():
        (tmp_path / name).write_bytes(data)
    for decision_id, name, says in (
            ("d1", "victim.csv", "decision d1 is drawn as a PNG figure of its maps; give a .png"),
            ("d1", "victim.html", "decision d1 is drawn as a PNG figure of its maps; give a .png"),
            ("d1", "victim.png", "the file exists and is not a figure `shotlab explain` wrote"),
            ("c1", "victim.csv", "decision c1 is drawn as an HTML page of the comment's words; "
                                 "give a .html path"),
            ("c1", "victim.png", "decision c1 is drawn as an HTML page"),
            ("c1", "victim.html", "the file exists and is not a page `shotlab explain` wrote")):
        out = tmp_path / name
        line = one_line_error(run("explain", "show", decision_id, "--store", store, "--out", out))
        assert f"--out {out}" in line and says in line, line
    assert {name: (tmp_path / name).read_bytes() for name in users} == users
    for decision_id, name, head in (("d1", "d1.png", b"\x89PNG"), ("d1", "d1.PNG", b"\x89PNG"),
                                    ("c1", "c1.html", b"<!DOCTYPE html>")):
        for _ in range(2):  # the second run replaces the file the first one wrote
            result = run("explain", "show", decision_id, "--store", store, "--out",
                         tmp_path / name)
            assert result.exit_code == 0, result.output
        assert (tmp_path / name).read_bytes().startswith(head)


def test_a_damaged_row_is_named_by_table_and_row(tmp_path):
    store = filled_store(tmp_path / "explanations.sqlite", n=3)
    with sqlite3.connect(store) as db:
        db.execute("UPDATE explanations SET map = ? WHERE decision_id = 'd1'", (b"\x00garbage",))
        db.execute("UPDATE decisions SET scores = '{\"red\": 0.' WHERE decision_id = 'd2'")
    db.close()
    line = one_line_error(run("explain", "show", "d1", "--store", store))
    assert f"{store}: row 2 of table explanations (decision d1) is damaged" in line
    assert "move it aside" in line and "sqlite3 STORE .recover" in line
    line = one_line_error(run("explain", "show", "d2", "--store", store))
    assert "row 3 of table decisions (decision d2) is damaged" in line
    assert run("explain", "show", "d0", "--store", store).exit_code == 0  # the rest reads


@pytest.mark.parametrize("command", [["explain", "show", "d5", "--store", "{store}"],
                                     ["explain", "appeal", "{store}", "d5"],
                                     ["explain", "--pending", "{store}"]])
def test_garbage_in_the_middle_of_the_store_is_one_line(command, tmp_path):
    store = filled_store(tmp_path / "explanations.sqlite")
    damage_tables(store)
    line = one_line_error(run(*[a.format(store=store) for a in command]))
    assert f"{store}: the explanation store cannot be read or written (database disk image " \
           f"is malformed)" in line


def test_a_transaction_stores_everything_or_nothing(tmp_path):
    store_path = filled_store(tmp_path / "explanations.sqlite", n=1)
    with ExplanationStore(store_path) as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.add_decision({"decision_id": "new", "scores": {"red": 1.0}})
            store.put("new", "gradcam", np.zeros((8, 8)))
            raise RuntimeError("failed half-way")
        assert store.decision("new") is None and store.count() == 1
        with store.transaction():
            store.put("d0", "lime", np.zeros((8, 8)))
        assert store.count() == 2


def test_a_damaged_store_refuses_writes_in_one_line(tmp_path):
    store_path = damage_tables(filled_store(tmp_path / "explanations.sqlite"))
    with ExplanationStore(store_path) as store:
        with pytest.raises(InputError, match="database disk image is malformed"):
            store.put("d99", "gradcam", np.zeros((8, 8)))


def test_html_never_replaces_a_file_explain_did_not_write(tmp_path):
    """`explain --html comments.csv` replaced the comments with the page."""
    from shotlab.core.errors import InputError
    from shotlab.explain.text_cli import check_page_target
    from shotlab.explain.text_render import GENERATOR

    comments = tmp_path / "comments.csv"
    comments.write_text("text,label\nhello,ok\n")
    with pytest.raises(InputError, match="is not a page `shotlab explain` wrote"):
        check_page_target(comments)
    assert comments.read_text() == "text,label\nhello,ok\n"
    page = tmp_path / "why.html"
    page.write_text(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{GENERATOR}')
    check_page_target(page)  # its own page, from an earlier run: replaced
    check_page_target(tmp_path / "new" / "why.html")
