"""The fortunes recipe: real topic files become a labelled, split, deduplicated text set."""

from __future__ import annotations

import csv

import pytest

from tests.datasets.test_recipes import load_recipe

fortunes = load_recipe("fortunes")


def write_topic(folder, name, entries):
    (folder / name).write_text("\n%\n".join(entries) + "\n%\n")


def test_entries_are_joined_filtered_deduplicated_and_split(tmp_path):
    long = "word " * 100
    write_topic(tmp_path, "food", ["An apple a day keeps\n\tthe doctor away.", "short",
                                   "An apple a day keeps the doctor away.", long]
                + [f"Food entry number {i} is about bread." for i in range(9)])
    write_topic(tmp_path, "love", [f"Love entry number {i} is about hearts." for i in range(10)])
    rows = fortunes.build_rows(("food", "love"), per_class=10, folder=tmp_path)
    food = [r for r in rows if r["label"] == "food"]
    assert "An apple a day keeps the doctor away." in [r["text"] for r in food]
    assert len(food) == 10 and len({r["text"] for r in rows}) == len(rows)
    assert all(fortunes.MIN_CHARS <= len(r["text"]) <= fortunes.MAX_CHARS for r in rows)
    assert [sum(r["split"] == s for r in food) for s in ("train", "val", "test")] == [6, 2, 2]
    assert rows == fortunes.build_rows(("food", "love"), per_class=10, folder=tmp_path)


def test_a_missing_package_names_it(tmp_path):
    with pytest.raises(SystemExit, match="apt-get install fortunes"):
        fortunes.read_topic("computers", tmp_path)


@pytest.mark.skipif(not fortunes.FORTUNES.is_dir(), reason="Debian's fortunes is not installed")
def test_the_installed_collection_gives_every_topic(tmp_path):
    out = tmp_path / "f.csv"
    assert fortunes.main([str(out), "--per-class", "40"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["label"] for r in rows} == set(fortunes.TOPICS) and len(rows) == 40 * 7
