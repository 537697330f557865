"""Predict: decisions and the review queue from a bundle, bad files skipped by name."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from shotlab.core.images import sha256_file
from shotlab.runtime.kinds import load_inputs
from shotlab.export.predict import collect_paths, predict_paths, write_decisions
from shotlab.runtime.bundle import load_bundle
from shotlab.runtime.runners import OnnxRunner
from tests.imaging import truncate
from tests.train.trainsets import write_colour_tree


@pytest.fixture
def inbox(tmp_path):
    """Nine good colour images in nested folders, a truncated PNG and a text file named .jpg."""
    root = write_colour_tree(tmp_path / "inbox", counts={"new": 3}, seed=7)
    shutil.copy(next((root / "new" / "red").glob("*.png")), root / "bad_truncated.png")
    truncate(root / "bad_truncated.png", keep=0.4)
    (root / "bad_text.jpg").write_text("not an image")
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_folder_with_bad_files(exported, inbox):
    bundle = load_bundle(exported.path)
    files = collect_paths([inbox])
    assert len(files) == 11 and not any(p.suffix == ".txt" for p in files)
    result = predict_paths(bundle, files, batch_size=4, progress=False)
    assert len(result.decisions) == 9
    assert sorted((p.split("/")[-1], reason.split(" (")[0]) for p, reason in result.bad) == [
        ("bad_text.jpg", "not an image"), ("bad_truncated.png", "truncated or corrupt image data")]
    assert {d["labels"][0] for d in result.decisions} == {"blue", "green", "red"}
    by_colour = {d["path"].split("/")[-2]: d["labels"] for d in result.decisions}
    assert by_colour == {"blue": ["blue"], "green": ["green"], "red": ["red"]}


def test_a_linked_folder_is_walked_and_a_loop_is_named_not_walked(exported, inbox, tmp_path):
    """Images under a symlinked folder inside PATHS were passed over without a word (`rglob`
    does not follow links, `curate import` does); a loop of links is named among the skipped."""
    from click.testing import CliRunner

    from shotlab.cli import cli

    elsewhere = write_colour_tree(tmp_path / "elsewhere", counts={"more": 1}, seed=11)
    (inbox / "linked").symlink_to(elsewhere / "more")
    (inbox / "new" / "up").symlink_to(inbox)
    (inbox / "zz-latest").symlink_to(inbox / "new")  # an alias: harmless, not named
    (inbox / "self.png").symlink_to(inbox / "self.png")  # a link to itself: a bad file
    linked = sorted((elsewhere / "more").rglob("*.png"))
    assert len(linked) == 3
    assert {Path(os.path.realpath(p)) for p in collect_paths([inbox])} >= set(linked)

    done = CliRunner().invoke(cli, ["predict", str(exported.path), str(inbox), "--json",
                                    "--out", str(tmp_path / "d.jsonl")])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["images"] == 12  # nine in the inbox, three through the link
    skipped = {b["path"]: b["reason"] for b in summary["bad_files"]}
    assert "a folder that holds it (a loop): not followed" in skipped[str(inbox / "new" / "up")]
    assert not any("zz-latest" in path for path in skipped)
    assert str(inbox / "self.png") in skipped  # the walk raised ELOOP, a traceback


def test_decisions_follow_the_runner_and_the_policy(exported, inbox):
    bundle = load_bundle(exported.path)
    files = collect_paths([inbox / "new"])
    decisions = predict_paths(bundle, files, progress=False).decisions
    expected = OnnxRunner(bundle)(load_inputs(files, bundle.preprocessing, progress=False).arrays)
    scores = np.array([[d["scores"][c] for c in bundle.classes] for d in decisions])
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    red = bundle.thresholds["red"]
    low, high = red["review_band"]
    for d, row in zip(decisions, expected):
        assert len(d["decision_id"]) == 32 and d["sha256"] == sha256_file(d["path"])
        assert d["flagged"] == (["red"] if row[2] >= red["threshold"] else [])
        assert d["needs_review"] == bool(low <= row[2] <= high)
        assert d["model_sha256"] == sha256_file(exported.path / "model.onnx")
        assert d["bundle"] == str(exported.path) and d["time"].endswith("Z")


def test_review_queue_holds_flagged_and_review(exported, inbox, tmp_path):
    bundle = load_bundle(exported.path)
    decisions = predict_paths(bundle, collect_paths([inbox]), progress=False).decisions
    decisions[0]["needs_review"] = True  # make sure the queue is not empty by chance
    out, queue = write_decisions(tmp_path / "out" / "decisions.jsonl", decisions)
    assert queue == tmp_path / "out" / "review_queue.jsonl"
    written = [json.loads(line) for line in out.read_text().splitlines()]
    queued = [json.loads(line) for line in queue.read_text().splitlines()]
    assert written == decisions
    assert queued == [d for d in decisions if d["needs_review"] or d["flagged"]]


@pytest.mark.fiftyone
def test_predictions_written_to_a_dataset(exported, inbox, dataset_name):
    from shotlab.core import store
    from shotlab.export.dataset import REVIEW_VIEW, write_to_dataset

    bundle = load_bundle(exported.path)
    decisions = predict_paths(bundle, collect_paths([inbox]), progress=False).decisions
    decisions[0]["needs_review"] = True
    first = write_to_dataset(dataset_name, decisions, task="multiclass", bundle_name="b")
    assert first == {"dataset": dataset_name, "added": 9, "updated": 0,
                     "review_queue": sum(bool(d["needs_review"] or d["flagged"])
                                         for d in decisions)}
    again = write_to_dataset(dataset_name, decisions, task="multiclass", bundle_name="b")
    assert (again["added"], again["updated"]) == (0, 9)  # matched by file path
    dataset = store.load(dataset_name)
    assert len(dataset) == 9
    sample = dataset.match({"filepath": decisions[0]["path"]}).first()
    assert sample.predictions.label == decisions[0]["labels"][0]
    assert sample.predictions.confidence == pytest.approx(
        decisions[0]["scores"][decisions[0]["labels"][0]])
    assert sample.needs_review is True
    assert decisions[0]["path"] in dataset.load_saved_view(REVIEW_VIEW).values("filepath")


@pytest.mark.fiftyone
def test_multilabel_decisions_in_a_dataset_carry_their_id_and_queue_least_confident_first(
        tmp_path, dataset_name):
    """Multilabel samples got no `decision_id` (a reviewer in the App could not reach the
    decision, its explanation or appeal from a sample), and their review queue was unsorted."""
    from shotlab.core import store
    from shotlab.export.dataset import REVIEW_VIEW, write_to_dataset

    def decision(i, scores, labels):
        return {"path": str(tmp_path / f"{i}.png"), "sha256": f"{i:064x}", "scores": scores,
                "labels": labels, "flagged": labels[:1], "needs_review": True,
                "decision_id": f"id{i}"}

    decisions = [decision(0, {"animal": 0.9, "water": 0.7}, ["animal", "water"]),
                 decision(1, {"animal": 0.55, "water": 0.2}, ["animal"]),
                 decision(2, {"animal": 0.6, "water": 0.75}, ["water", "animal"])]
    write_to_dataset(dataset_name, decisions, task="multilabel", bundle_name="b")
    dataset = store.load(dataset_name)
    assert dict(zip(dataset.values("filepath"), dataset.values("decision_id"))) == {
        d["path"]: d["decision_id"] for d in decisions}
    first = dataset.match({"filepath": decisions[0]["path"]}).first()
    assert {c.decision_id for c in first.predictions.classifications} == {"id0"}
    assert dataset.load_saved_view(REVIEW_VIEW).values("decision_id") == ["id1", "id2", "id0"]


def test_the_sha256_is_of_the_bytes_scored_even_if_the_file_is_replaced(exported, inbox,
                                                                        monkeypatch):
    """predict decoded a file, then hashed it again: a file replaced in between (by another
    process: simulated on the read) lent its new hash to the old image's scores, and an appeal
    with the new picture passed the "not the image decided" check."""
    import hashlib
    import pathlib

    red = next((inbox / "new" / "red").glob("*.png"))
    scored, other = red.read_bytes(), next((inbox / "new" / "blue").glob("*.png")).read_bytes()
    real_read = pathlib.Path.read_bytes

    def read_then_replaced(path):
        data = real_read(path)
        if path == red:
            path.write_bytes(other)  # replaced right after predict read it
        return data

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_then_replaced)
    (decision,) = predict_paths(load_bundle(exported.path), [red], progress=False).decisions
    assert decision["sha256"] == hashlib.sha256(scored).hexdigest() != sha256_file(red)
    assert decision["labels"] == ["red"]


@pytest.mark.fiftyone
def test_a_dataset_of_other_classes_is_refused_and_the_bundle_is_stored_absolute(
        exported, tmp_path, dataset_name, monkeypatch):
    """`predict B imgs --dataset NAME` with B trained on other classes replaced the samples'
    `predictions` (training's) with another model's labels, without a word; and
    `predictions.bundle` was the path as typed, relative to wherever predict ran."""
    from click.testing import CliRunner

    from shotlab.cli import cli
    from shotlab.core import store
    from shotlab.curate.importer import import_path

    other = write_colour_tree(tmp_path / "other", classes=("yellow", "grey"),
                              counts={"train": 2}, seed=3)
    import_path(other, dataset_name, progress=False)
    images = sorted(other.rglob("*.png"))[:2]
    refused = CliRunner().invoke(cli, ["predict", str(exported.path), *map(str, images),
                                       "--dataset", dataset_name, "--out",
                                       str(tmp_path / "o" / "d.jsonl")])
    assert refused.exit_code == 2, refused.output
    assert f"--dataset {dataset_name}: its classes are grey, yellow, the bundle's are " \
           f"{', '.join(load_bundle(exported.path).classes)}" in refused.output
    dataset = store.load(dataset_name)
    assert "predictions" not in dataset.get_field_schema() or \
        dataset.values("predictions") == [None] * len(dataset)
    assert not (tmp_path / "o" / "d.jsonl").exists()

    monkeypatch.chdir(exported.path.parent)  # the bundle named relative to here
    fresh = f"{dataset_name}-inbox"
    try:
        done = CliRunner().invoke(cli, ["predict", exported.path.name, *map(str, images),
                                        "--dataset", fresh, "--out", str(tmp_path / "d.jsonl")])
        assert done.exit_code == 0, done.output
        bundles = {p.bundle for p in store.load(fresh).values("predictions")}
        assert bundles == {os.path.abspath(exported.path)}
    finally:
        if fresh in store.list_datasets():
            store.delete(fresh)


@pytest.mark.fiftyone
def test_an_inbox_a_reviewer_labelled_still_takes_a_bundle_that_holds_its_labels(
        exported, inbox, tmp_path, dataset_name):
    """`predict B imgs --dataset INBOX`, a reviewer relabels one sample (`relabel:red`,
    `curate apply`), and the next `predict B more --dataset INBOX` was refused: the inbox's
    classes (red) were not the bundle's (blue, green, red). It takes B, or a copy of B (a
    bundle moved, or its next version); a label no bundle class holds is still refused."""
    from click.testing import CliRunner

    from shotlab.cli import cli
    from shotlab.core import store

    def predict(bundle, *images):
        return CliRunner().invoke(cli, ["predict", str(bundle), *map(str, images), "--dataset",
                                        dataset_name, "--out", str(tmp_path / "o.jsonl")])

    def relabel(image, tag, new_class):
        sample = store.load(dataset_name).match({"filepath": str(image)}).first()
        sample.tags.append(tag)
        sample.save()
        applied = CliRunner().invoke(cli, ["curate", "apply", dataset_name, "--new-class",
                                           new_class])
        assert applied.exit_code == 0, applied.output

    images = sorted((inbox / "new").rglob("*.png"))
    assert predict(exported.path, *images[:4]).exit_code == 0
    relabel(images[0], "relabel:red", "red")
    assert store.class_names(store.load(dataset_name)) == ["red"]

    again = predict(exported.path, *images[4:])
    assert again.exit_code == 0, again.output
    assert len(store.load(dataset_name)) == len(images)
    copy = shutil.copytree(exported.path, tmp_path / "copy")  # the same model, moved
    assert predict(copy, *images[:1]).exit_code == 0
    relabel(images[1], "relabel:purple", "purple")
    refused = predict(copy, *images[:1])
    assert refused.exit_code == 2 and "its classes are purple, red, the bundle's are" \
        in refused.output


def test_a_file_names_control_characters_never_reach_the_terminal(exported, inbox, tmp_path):
    """`predict` printed a skipped file's name raw: `ESC]0;...BEL` set the reviewer's terminal
    title and `ESC[2J` cleared the screen; the names went to --json escaped, as they still do."""
    from click.testing import CliRunner

    from shotlab.cli import cli

    name = "bad\x1b]0;PWNED\x07\x1b[2J\u202egnp.png"
    (inbox / name).write_text("not an image")
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(inbox),
                                      "--out", str(tmp_path / "d.jsonl")])
    assert result.exit_code == 0, result.output
    assert not any(ch in result.output for ch in "\x1b\x07\u202e")
    assert "skipped" in result.stderr and "bad\\x1b]0;PWNED\\x07\\x1b[2J\\u202egnp.png: not an " \
                                               "image" in result.stderr
