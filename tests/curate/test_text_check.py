"""`curate check`, `split`, `apply` and `suggest` on a text dataset: real MiniLM embeddings, real
cleanlab, real store. Injected near duplicates (across splits) and flipped labels are found; the
pixel checks are skipped with one line; groups stay in one split; review tags are applied."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core import store
from shotlab.curate.importer import import_path

pytestmark = pytest.mark.fiftyone

COMMENTS = {
    "food": ["This pasta sauce needs more garlic and basil.",
             "I baked sourdough bread this morning, the crust is perfect.",
             "The curry at that restaurant was too spicy for me.",
             "Try roasting the carrots with honey and thyme.",
             "My grandmother's apple pie recipe uses brown sugar.",
             "The soup tastes better the next day after reheating.",
             "Fresh strawberries with cream make a great dessert.",
             "Grilled salmon with lemon is my favourite dinner.",
             "Add a pinch of salt to the boiling pasta water.",
             "These chocolate cookies came out of the oven too soft.",
             "We made dumplings from scratch with pork and ginger.",
             "The pancakes were fluffy with maple syrup on top."],
    "weather": ["It has been raining all week and the streets are flooded.",
                "Heavy snow is expected tonight in the mountains.",
                "The forecast says sunshine and 25 degrees tomorrow.",
                "A thunderstorm knocked out the power last night.",
                "The wind is so strong that the trees are bending.",
                "Morning fog made the drive to work very slow.",
                "This heatwave is the hottest summer on record.",
                "Hail the size of marbles fell on the car park.",
                "The temperature dropped below freezing overnight.",
                "Clear skies tonight, perfect for seeing the stars.",
                "A light drizzle started just as we left the house.",
                "The hurricane is moving north along the coast."],
    "sport": ["The striker scored twice in the second half.",
              "Our team lost the final on penalties again.",
              "She ran the marathon in under three hours.",
              "The tennis match went to a fifth set tiebreak.",
              "The goalkeeper saved a penalty in the last minute.",
              "He won gold in the 100 metres sprint.",
              "The basketball game went into double overtime.",
              "The cyclist attacked on the final mountain climb.",
              "Our coach made three substitutions at half time.",
              "The swimmer broke the world record in the relay.",
              "The referee showed a red card after the foul.",
              "The batter hit a home run in the ninth inning."],
}
FLIPPED = {"The hurricane is moving north along the coast.": "food",
           "The striker scored twice in the second half.": "weather"}
NEAR = ("I baked sourdough bread this morning, the crust is perfect.",
        "i baked sourdough bread this morning!! the crust is perfect :)")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_comments(path) -> None:
    """The comments as JSONL: the flipped ones mislabelled, one edited copy of a food comment
    in test while the original is in train, and the weather comments in two reply threads."""
    rows = []
    for label, texts in COMMENTS.items():
        for i, text in enumerate(texts):
            rows.append({"text": text, "label": FLIPPED.get(text, label),
                         "split": "train" if i < 8 else "val",
                         "group": f"thread-{i % 2}" if label == "weather" else None})
    rows.append({"text": NEAR[1], "label": "food", "split": "test", "group": None})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """One imported and checked text dataset shared by the module (MiniLM loads once)."""
    import uuid

    folder = tmp_path_factory.mktemp("comments")
    write_comments(folder / "comments.jsonl")
    name = f"t-text-check-{uuid.uuid4().hex[:6]}"
    import_path(folder / "comments.jsonl", name, progress=False)
    result = run("curate", "check", name, "--json")
    assert result.exit_code == 0, result.output
    yield name, json.loads(result.output)
    store.delete(name)


def flagged(name: str, field: str) -> set[str]:
    dataset = store.load(name)
    return {t for t, f in zip(dataset.values("text"), dataset.values(field)) if f}


def test_flipped_labels_are_found_with_the_right_suggestion(checked):
    name, summary = checked
    found = flagged(name, "is_label_issue")
    assert set(FLIPPED) <= found and len(found) <= 4, found
    dataset = store.load(name)
    suggestion = dict(zip(dataset.values("text"), dataset.values("label_suggestion")))
    assert suggestion["The hurricane is moving north along the coast."] == "weather"
    assert suggestion["The striker scored twice in the second half."] == "sport"
    assert summary["checks"]["label"]["count"] == len(found)


def test_near_duplicates_across_splits_are_a_cluster_and_leak(checked):
    name, summary = checked
    assert flagged(name, "is_duplicate_issue") == set(NEAR)
    assert flagged(name, "is_leakage_issue") == set(NEAR)
    dataset = store.load(name)
    clusters = {c for t, c in zip(dataset.values("text"), dataset.values("duplicate_cluster"))
                if t in NEAR}
    assert len(clusters) == 1 and None not in clusters
    assert summary["checks"]["duplicate"]["details"]["min_cosine"] == 0.9
    assert set(summary["checks"]["duplicate"]["top_texts"]) == set(NEAR)


def test_pixel_checks_are_skipped_with_one_line_and_the_rest_run(checked):
    name, summary = checked
    assert list(summary["skipped"]) == ["quality"]
    assert "applies to image datasets" in summary["skipped"]["quality"]
    assert {"label", "duplicate", "leakage", "outlier", "balance"} <= set(summary["checks"])
    assert "quality_score" not in store.load(name).get_field_schema()
    report = open(summary["report"], encoding="utf-8").read()
    assert "The hurricane is moving north along the coast." in report and "<img" not in report


def test_the_balance_check_counts_comments_not_images(checked):
    name, _ = checked
    result = run("curate", "check", name, "--checks", "balance", "--min-per-class", "100",
                 "--json")
    assert result.exit_code == 0, result.output
    notes = json.loads(result.output)["checks"]["balance"]["notes"]
    assert any("comments (fewer than 100)" in note for note in notes), notes
    assert not any("image" in note for note in notes), notes


def test_terminal_summary_quotes_the_comments(checked):
    name, _ = checked
    result = run("curate", "check", name, "--checks", "duplicates,quality")
    assert result.exit_code == 0, result.output
    assert "quality: skipped: applies to image datasets, this one holds text" in result.output
    assert "'i baked sourdough bread" in result.output


def test_an_image_backbone_is_refused_for_text(checked):
    name, _ = checked
    result = run("curate", "check", name, "--checks", "label", "--backbone", "lite0")
    assert result.exit_code == 2 and "text encoder 'minilm'" in result.output


def test_embeddings_are_cached_by_text_hash(checked):
    from shotlab.commands.text_embeddings import cache_folder, embed_cached

    name, _ = checked
    dataset = store.load(name)
    digests = dataset.values("sha256")
    assert {p.stem for p in cache_folder().glob("*.npy")} >= set(digests)
    texts = dataset.values("text")
    again = embed_cached(["(never read: cached)"] * 2, digests[:2])
    from shotlab.train.text_model import embed_texts

    assert np.allclose(again, embed_texts(texts[:2]), atol=1e-5)


def test_split_keeps_groups_together_and_review_applies(checked):
    name, _ = checked
    result = run("curate", "split", name, "--overwrite", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    dataset = store.load(name)
    by_group: dict[str, set] = {}
    for group, split in zip(dataset.values("group"), dataset.values("split")):
        if group:
            by_group.setdefault(group, set()).add(split)
    assert set(by_group) == {"thread-0", "thread-1"}
    assert all(len(splits) == 1 for splits in by_group.values())
    near = [s for t, s in zip(dataset.values("text"), dataset.values("split")) if t in NEAR]
    assert len(near) == 2 and len(set(near)) == 1  # the near-duplicate pair no longer leaks
    # The review loop: tag the flipped sample as an annotator would in the App, apply, log.
    hurricane = dataset.match({"text": "The hurricane is moving north along the coast."}).first()
    hurricane.tags.append("relabel:weather")
    hurricane.save()
    result = run("curate", "apply", name)
    assert result.exit_code == 0 and "Applied 1 change" in result.output, result.output
    assert store.load(name).match({"text": hurricane.text}).first().ground_truth.label == "weather"
    history = run("curate", "history", name, "--json")
    entries = json.loads(history.output)
    assert entries[0]["old"] == ["food"] and entries[0]["new"] == ["weather"]
    assert entries[1]["kind"] == "split"


def test_suggest_ranks_unlabeled_comments(checked, tmp_path):
    name, _ = checked
    pool = tmp_path / "pool.csv"
    pool.write_text("text,label\nThe rain turned to sleet by noon.,\nPour the batter into the pan.,\n")
    import_path(pool, name, progress=False)
    result = run("curate", "suggest", name, "--budget", "2", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["suggested"]) == 2


SAMPLES_QUERY = ('query { samples(dataset: "%s", view: [], first: 100) { ... on '
                 'SampleItemStrConnection { edges { node { __typename ... on UnknownSample '
                 '{ sample } } } } } dataset(name: "%s") { appConfig { activeFields { paths } } } }')


@pytest.mark.slow
def test_the_app_serves_the_comments_with_their_text_field(checked, tmp_path):
    """FiftyOne has no .txt viewer (the samples' media type is 'unknown'); the App's server
    hands each sample's `text` to the page, where the sidebar shows it switched on."""
    import requests

    from shotlab.core.addresses import free_port
    from tests.curate.test_app import RunningApp

    name, _ = checked
    port = free_port()
    app = RunningApp(name, port, tmp_path)
    try:
        app.wait_until_serving(timeout=180)  # a busy CI machine starts it slowly
        answer = requests.post(f"http://127.0.0.1:{port}/graphql",
                               json={"query": SAMPLES_QUERY % (name, name)}, timeout=60).json()
        assert "errors" not in answer, answer
        nodes = [e["node"] for e in answer["data"]["samples"]["edges"]]
        assert {n["__typename"] for n in nodes} == {"UnknownSample"}
        assert set(NEAR) <= {n["sample"]["text"] for n in nodes}
        assert "text" in answer["data"]["dataset"]["appConfig"]["activeFields"]["paths"]
        assert app.stop(signal.SIGTERM) == 0
    finally:
        app.kill()
