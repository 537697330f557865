"""`shotlab predict` replaces its decisions only when a whole run succeeds, refuses an empty
input, and never writes over a file it did not write (issue #11, items 9 and 11)."""

from __future__ import annotations

import json

import pytest

from tests.imaging import write_image
from tests.security.common import one_line_error, run
from tests.security.test_explain import damage_tables, filled_store, state
from tests.train.trainsets import write_colour_tree



@pytest.fixture
def earlier(tmp_path):
    """An output folder holding the decisions and review queue of an earlier run."""
    out = tmp_path / "out"
    out.mkdir()
    decision = {"decision_id": "earlier", "path": "/images/a.png", "flagged": ["red"],
                "needs_review": False}
    for name in ("decisions.jsonl", "review_queue.jsonl"):
        (out / name).write_text(json.dumps(decision) + "\n")
    return out


def test_an_empty_folder_keeps_the_decisions(exported, earlier, tmp_path):
    empty = tmp_path / "incoming"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    before = state(earlier)
    line = one_line_error(run("predict", exported.path, empty, "--out",
                              earlier / "decisions.jsonl"))
    assert f"{empty}: no image file there; nothing was predicted and the decisions were left " \
           f"as they were" in line and "--allow-empty" in line
    assert state(earlier) == before
    allowed = run("predict", exported.path, empty, "--out", earlier / "decisions.jsonl",
                  "--allow-empty")
    assert allowed.exit_code == 0, allowed.output
    assert (earlier / "decisions.jsonl").read_text() == ""
    assert (earlier / "review_queue.jsonl").read_text() == ""


def test_unreadable_images_only_keep_the_decisions(exported, earlier, tmp_path):
    (tmp_path / "broken.png").write_text("no")
    before = state(earlier)
    line = one_line_error(run("predict", exported.path, tmp_path / "broken.png", "--out",
                              earlier / "decisions.jsonl"))
    assert "none of the 1 image files could be read (first: " in line
    assert state(earlier) == before


def test_a_damaged_store_keeps_the_decisions(exported, earlier, tmp_path):
    images = write_colour_tree(tmp_path / "images", counts={"new": 2}, seed=11)  # red: flagged
    store = damage_tables(filled_store(earlier / "explanations.sqlite"))
    before = state(earlier)
    line = one_line_error(run("predict", exported.path, images, "--out",
                              earlier / "decisions.jsonl", "--explain"))
    assert f"{store}: the explanation store cannot be read or written" in line
    assert state(earlier) == before  # decisions, review queue and store as they were


@pytest.mark.parametrize("out, victim", [("notes.txt", "notes.txt"),
                                         ("decisions.jsonl", "review_queue.jsonl"),
                                         ("photo.png", "photo.png")])
def test_out_replaces_only_decisions(out, victim, exported, earlier):
    photo = write_image(earlier / "photo.png", seed=3)
    if victim != "photo.png":
        (earlier / victim).write_text("my own notes\n")
    before = state(earlier)
    line = one_line_error(run("predict", exported.path, photo, "--out", earlier / out))
    assert f"{earlier / victim} exists and is not a decisions file that shotlab predict " \
           f"wrote" in line
    assert state(earlier) == before
