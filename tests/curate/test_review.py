"""The review loop: `curate apply` reads tags and edits back, applies and logs them, loses
nothing; `curate history` shows the log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.images import sha256_file
from shotlab.curate.review import (SampleState, decide, known_classes, new_class_notes,
                                   parse_relabel)
from tests.imaging import write_class_tree


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def state(label=("cat",), snapshot=("cat",), tags=(), excluded=False, keep=False):
    return SampleState("id1", "/x/a.png", tuple(label), snapshot, list(tags), excluded, keep)


CLASSES = {"cat", "dog", "owl"}


def test_relabel_tag_sets_the_label_and_is_removed():
    after, changes, problems = decide(state(tags=["relabel:dog", "other"]), "multiclass", CLASSES)
    assert after.label == ("dog",) and after.tags == ["other"] and after.snapshot == ("dog",)
    assert changes == [("label", ["cat"], ["dog"], "tag relabel:dog")] and problems == []


def test_unknown_class_and_conflicts_are_reported_not_applied():
    after, changes, problems = decide(state(tags=["relabel:dgo"]), "multiclass", CLASSES)
    assert (after.label, after.tags, changes) == (("cat",), ["relabel:dgo"], [])
    assert "unknown class dgo" in problems[0] and "--new-class" in problems[0]
    _, _, problems = decide(state(label=(), snapshot=(), tags=["relabel:fish"]), "multiclass",
                            set())  # an inbox predict made: no class labelled yet
    assert "classes: none yet (fix the tag" in problems[0]
    _, changes, problems = decide(state(tags=["relabel:dog", "relabel:owl"]), "multiclass", CLASSES)
    assert changes == [] and "conflicting tags" in problems[0]
    _, changes, problems = decide(state(tags=["relabel:dog,owl"]), "multiclass", CLASSES)
    assert changes == [] and "names 2 classes" in problems[0]
    _, changes, problems = decide(state(tags=["exclude", "keep"]), "multiclass", CLASSES)
    assert changes == [] and "both 'exclude' and 'keep'" in problems[0]


def test_direct_edit_is_found_against_the_snapshot_and_missing_snapshot_is_the_baseline():
    after, changes, _ = decide(state(label=("owl",), snapshot=("cat",)), "multiclass", CLASSES)
    assert changes == [("label", ["cat"], ["owl"], "edit")] and after.snapshot == ("owl",)
    after, changes, _ = decide(state(label=("owl",), snapshot=None), "multiclass", CLASSES)
    assert changes == [] and after.snapshot == ("owl",)


def test_exclude_and_keep_mirror_their_tags():
    after, changes, _ = decide(state(tags=["exclude"]), "multiclass", CLASSES)
    assert after.excluded and after.tags == ["exclude"]
    assert changes == [("excluded", False, True, "tag exclude")]
    after, changes, _ = decide(state(excluded=True), "multiclass", CLASSES)
    assert not after.excluded and changes == [("excluded", True, False, "tag exclude removed")]
    after, changes, _ = decide(state(tags=["keep"]), "multiclass", CLASSES)
    assert after.keep and changes == [("reviewed_keep", False, True, "tag keep")]


def test_multilabel_relabel_tags():
    assert parse_relabel("relabel:owl, cat", "multilabel") == ("cat", "owl")
    assert parse_relabel("relabel:", "multilabel") == ()
    after, changes, _ = decide(state(label=("cat",), tags=["relabel:dog,cat"]), "multilabel",
                               CLASSES)
    assert after.label == ("cat", "dog") and changes[0][2] == ["cat", "dog"]


def test_edit_to_a_class_no_sample_had_is_applied_with_a_note():
    states = [state(), state(label=("dgo",), snapshot=("dog",)),
              state(label=("owl",), snapshot=None)]
    known = known_classes(states)
    assert known == {"cat", "dog", "owl"}
    _, changes, _ = decide(states[1], "multiclass", known)
    entries = [{"filepath": "/x/a.png", "kind": k, "old": o, "new": n, "source": src}
               for k, o, n, src in changes]
    assert new_class_notes(entries, known) == [
        "/x/a.png: edited to new class dgo; if that is a typo, fix the label in the App and "
        "apply again"]
    _, changes, problems = decide(state(tags=["relabel:dgo"]), "multiclass", known)
    assert changes == [] and problems  # a tag may not bring in the class an edit did


def files_fingerprint(dataset):
    return sorted((f, sha256_file(Path(f))) for f in dataset.values("filepath"))


@pytest.fixture
def reviewed(tmp_path, dataset_name):
    """A dataset with one sample of each decision: relabel, exclude, keep, direct edit, a typo."""
    write_class_tree(tmp_path / "src", {"cat": 4, "dog": 4})
    assert run("curate", "import", tmp_path / "src", "--name", dataset_name).exit_code == 0
    from shotlab.core import store

    dataset = store.load(dataset_name)
    before = files_fingerprint(dataset)
    assert run("curate", "apply", dataset_name).exit_code == 0  # first apply: baselines only
    samples = {Path(s.filepath).stem: s for s in dataset}
    for stem, tag in (("cat_0", "relabel:dog"), ("cat_1", "exclude"), ("dog_0", "keep"),
                      ("dog_1", "relabel:dgo")):
        samples[stem].tags.append(tag)
        samples[stem].save()
    samples["dog_2"]["ground_truth"] = store.make_label(("cat",), "multiclass")  # edit in the App
    samples["dog_2"].save()
    return dataset, before, samples


@pytest.mark.fiftyone
def test_apply_applies_each_decision_once_logs_it_and_loses_nothing(reviewed, dataset_name):
    dataset, before, samples = reviewed
    dry = json.loads(run("curate", "apply", dataset_name, "--dry-run", "--json").stdout)
    assert len(dry["changes"]) == 4 and dry["dry_run"]
    assert run("curate", "history", dataset_name, "--json").stdout.strip() == "[]"

    result = run("curate", "apply", dataset_name)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Applied 4 changes to '{dataset_name}'; 1 relabel tag "
                                    f"removed; 1 problem.")
    assert "not applied:" in result.output and "dog_1.png" in result.output
    assert "unknown class dgo" in result.output

    dataset.reload()
    assert len(dataset) == 8 and files_fingerprint(dataset) == before
    by_stem = {Path(s.filepath).stem: s for s in dataset}
    assert by_stem["cat_0"].ground_truth.label == "dog"
    assert "relabel:dog" not in by_stem["cat_0"].tags
    assert by_stem["cat_1"]["excluded"] is True and "exclude" in by_stem["cat_1"].tags
    assert by_stem["dog_0"]["reviewed_keep"] is True
    assert by_stem["dog_1"].tags == ["relabel:dgo"] and by_stem["dog_1"].ground_truth.label == "dog"
    assert by_stem["dog_2"]["applied_label"] == ["cat"]

    history = json.loads(run("curate", "history", dataset_name, "--json").stdout)
    assert sorted((Path(e["filepath"]).stem, e["kind"], e["source"]) for e in history) == [
        ("cat_0", "label", "tag relabel:dog"), ("cat_1", "excluded", "tag exclude"),
        ("dog_0", "reviewed_keep", "tag keep"), ("dog_2", "label", "edit")]
    relabel = next(e for e in history if e["source"] == "tag relabel:dog")
    assert (relabel["old"], relabel["new"], relabel["sample_id"]) == (["cat"], ["dog"],
                                                                      samples["cat_0"].id)
    assert relabel["time"] and "user" in relabel

    again = run("curate", "apply", dataset_name, "--json")
    assert json.loads(again.stdout)["changes"] == []  # idempotent; the typo is still reported
    assert len(json.loads(run("curate", "history", dataset_name, "--json").stdout)) == 4

    table = run("curate", "history", dataset_name, "--limit", "2")
    lines = table.output.splitlines()
    assert table.exit_code == 0 and lines[0].split()[:4] == ["time", "user", "sample", "field"]
    assert len(lines) == 3


@pytest.mark.fiftyone
def test_apply_says_when_the_samples_it_labels_have_no_split(tmp_path, dataset_name):
    """Labelling an unlabeled sample leaves it in no split, which train reads none of."""
    from shotlab.core import store

    write_class_tree(tmp_path / "src", {"cat": 2, "dog": 2})
    (tmp_path / "src" / "labels.csv").write_text(
        "filepath,label,split\ncat/cat_0.png,cat,train\ncat/cat_1.png,,\ndog/dog_0.png,dog,"
        "train\ndog/dog_1.png,,\n")
    assert run("curate", "import", tmp_path / "src", "--name", dataset_name).exit_code == 0
    dataset = store.load(dataset_name)
    for sample in dataset.match({"ground_truth": None}):
        sample.tags.append("relabel:dog")
        sample.save()
    result = run("curate", "apply", dataset_name)
    assert result.exit_code == 0, result.output
    assert (f"note: 2 samples labelled here have no split (first: {tmp_path / 'src'}"
            in result.output)
    assert (f"so train would leave them out; run `shotlab curate split {dataset_name}` (it keeps "
            f"existing splits and assigns the rest)" in result.output)
    again = run("curate", "apply", dataset_name, "--json")
    assert json.loads(again.stdout)["notes"] == []  # said once, when they were labelled


@pytest.mark.fiftyone
def test_new_class_allowed_by_name(reviewed, dataset_name):
    result = json.loads(run("curate", "apply", dataset_name, "--new-class", "dgo", "--json").stdout)
    assert result["problems"] == []
    assert ["dog"] in [c["old"] for c in result["changes"] if c["new"] == ["dgo"]]


@pytest.mark.fiftyone
def test_apply_and_history_bad_input(dataset_name):
    for command in ("apply", "history"):
        result = run("curate", command, dataset_name)
        assert result.exit_code == 2 and f"no dataset named '{dataset_name}'" in result.output
    assert run("curate", "history", dataset_name, "--limit", "0").exit_code == 2


@pytest.mark.fiftyone
def test_history_of_a_fresh_dataset(tmp_path, dataset_name):
    write_class_tree(tmp_path, {"cat": 1})
    run("curate", "import", tmp_path, "--name", dataset_name)
    result = run("curate", "history", dataset_name)
    assert result.exit_code == 0 and "No changes logged" in result.output


@pytest.mark.parametrize("command", ["apply", "history"])
def test_help(command):
    result = run("curate", command, "--help")
    assert result.exit_code == 0 and "Usage: " in result.output


@pytest.mark.fiftyone
@pytest.mark.slow
def test_check_apply_recheck_finds_fewer_label_issues(tmp_path, dataset_name):
    from tests.train.trainsets import write_colour_tree

    root = write_colour_tree(tmp_path / "colours", counts={"train": 10})
    flipped = root / "train" / "blue" / "really_red.png"
    (root / "train" / "red" / "red_0.png").rename(flipped)  # a red image labelled blue
    assert run("curate", "import", root, "--name", dataset_name).exit_code == 0

    def label_issues() -> tuple[int, list[str]]:
        result = run("curate", "check", dataset_name, "--checks", "label", "--backbone",
                     "tiny-test", "--report", tmp_path / "report.html", "--json")
        assert result.exit_code == 0, result.output
        label = json.loads(result.stdout)["checks"]["label"]
        return label["count"], label["top"]

    count, top = label_issues()
    assert str(flipped) in top
    from shotlab.core import store

    sample = store.load(dataset_name)[str(flipped)]
    sample.tags.append("relabel:red")
    sample.save()
    applied = json.loads(run("curate", "apply", dataset_name, "--json").stdout)
    assert [(c["old"], c["new"]) for c in applied["changes"]] == [(["blue"], ["red"])]
    assert label_issues()[0] < count


@pytest.mark.slow
def test_a_kept_sample_is_no_longer_flagged_until_its_label_changes(tmp_path, dataset_name):
    from shotlab.core import store
    from tests.train.trainsets import write_colour_tree

    root = write_colour_tree(tmp_path / "colours", counts={"train": 10})
    odd = root / "train" / "blue" / "odd_one.png"
    (root / "train" / "red" / "red_0.png").rename(odd)  # flagged, but say a person disagrees
    assert run("curate", "import", root, "--name", dataset_name).exit_code == 0

    def flagged() -> bool:
        result = run("curate", "check", dataset_name, "--checks", "label", "--backbone",
                     "tiny-test", "--report", tmp_path / "report.html", "--json")
        assert result.exit_code == 0, result.output
        return bool(store.load(dataset_name)[str(odd)]["is_label_issue"])

    assert flagged()
    sample = store.load(dataset_name)[str(odd)]
    sample.tags.append("keep")
    sample.save()
    assert run("curate", "apply", dataset_name).exit_code == 0
    assert not flagged()
    assert store.load(dataset_name)[str(odd)]["label_score"] is not None  # still ranked
    sample = store.load(dataset_name)[str(odd)]
    sample.ground_truth.label = "green"  # an App edit not yet applied: the review no longer holds
    sample.save()
    assert flagged()


@pytest.mark.fiftyone
def test_apply_on_clips_reaches_the_frames_train_reads(tmp_path, dataset_name):
    """`train CLIPS` reads CLIPS-frames: a clip's relabel and exclusion must reach its frames.
    A frame excluded on its own stays excluded when its clip is included again."""
    from shotlab.core import store
    from shotlab.curate.importer import import_path
    from shotlab.train.manifest import freeze
    from tests.curate.test_clip_import import clip_tree

    frames_name = f"{dataset_name}-frames"
    try:
        import_path(clip_tree(tmp_path / "src", seed=11), dataset_name, progress=False,
                    sampling="uniform:2")
        assert run("curate", "apply", dataset_name).exit_code == 0  # baselines
        clips, frames = store.load(dataset_name), store.load(frames_name)
        clip = {Path(s.filepath).stem: s for s in clips}
        for stem, tag in (("cooking_0", "relabel:sports"), ("sports_0", "exclude")):
            clip[stem].tags.append(tag)
            clip[stem].save()
        own = frames.match({"clip_id": clip["sports_0"].id}).first()  # excluded on its own
        own.tags.append("exclude")
        own.save()

        dry = json.loads(run("curate", "apply", dataset_name, "--dry-run", "--json").stdout)
        assert (dry["frames_dataset"], dry["frames_changed"]) == (frames_name, 3)
        assert store.load(frames_name).count_values("ground_truth.label") == \
            {"cooking": 4, "sports": 4}  # the dry run wrote nothing
        result = run("curate", "apply", dataset_name)
        assert result.exit_code == 0, result.output
        assert f"Updated 3 frames of '{frames_name}' to follow their clips" in result.output

        def trained_on():  # what `train CLIPS` would read: clip stem -> labels of kept frames
            entries = freeze(frames_name).entries
            stems = dict(zip(frames.values("id"), frames.values("clip_path")))
            return sorted((Path(stems[e.sample_id]).stem, e.labels) for e in entries)

        assert trained_on() == [("cooking_0", ("sports",))] * 2 + [("cooking_1", ("cooking",))] \
            * 2 + [("sports_1", ("sports",))] * 2
        assert json.loads(run("curate", "apply", dataset_name, "--json").stdout)[
            "frames_changed"] == 0  # idempotent

        clip["sports_0"].reload()
        clip["sports_0"].tags.remove("exclude")
        clip["sports_0"].save()
        assert "Updated 1 frame of" in run("curate", "apply", dataset_name).output
        assert ("sports_0", ("sports",)) in trained_on()
        assert trained_on().count(("sports_0", ("sports",))) == 1  # the frame excluded itself
    finally:
        if frames_name in store.list_datasets():
            store.delete(frames_name)
