"""Group-aware stratified splits: the pure algorithm, then `curate split` on a real dataset."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.errors import InputError
from shotlab.curate.splits import assign_splits, check_fractions, group_ids
from tests.imaging import write_class_tree, write_image


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def labelled(counts: dict[str, int]) -> list[tuple[str, ...]]:
    return [(c,) for c, n in counts.items() for _ in range(n)]


def test_group_ids_join_samples_sharing_any_key():
    clusters = ["a", None, "a", None, "b", "b"]
    clips = [None, "x", None, "x", "x", None]
    assert group_ids(clusters, clips) == [0, 1, 0, 1, 1, 1]  # clip x joins cluster b
    assert group_ids([None, "", None]) == [0, 1, 2]


def test_clusters_stay_together_and_every_class_reaches_every_split():
    labels = labelled({"cat": 30, "dog": 12, "owl": 4})
    clusters = [f"c{i // 3}" if i < 18 else None for i in range(len(labels))]  # 6 triples of cats
    groups = group_ids(clusters)
    plan = assign_splits(labels, groups, val=0.2, test=0.2, seed=3)
    by_group: dict[int, set] = {}
    for group, split in zip(groups, plan.splits):
        by_group.setdefault(group, set()).add(split)
    assert all(len(s) == 1 for s in by_group.values())
    for name in ("cat", "dog", "owl"):
        assert set(plan.counts[name]) == {"train", "val", "test"}, name
    ideal = {"train": 7.2, "val": 2.4, "test": 2.4}  # 60/20/20 of 12 dogs
    assert all(abs(plan.counts["dog"][s] - n) < 1 for s, n in ideal.items())
    assert sum(plan.counts["cat"].values()) == 30 and plan.warnings == []


def test_tiny_class_is_named_in_a_warning_and_kept_in_train():
    plan = assign_splits(labelled({"cat": 20, "rare": 2}), list(range(22)), val=0.15, test=0.15,
                         seed=0)
    assert plan.counts["rare"] == Counter(train=2)
    assert len(plan.warnings) == 1
    assert "class 'rare' has no example in val, test" in plan.warnings[0]
    assert "only 2 samples" in plan.warnings[0]


def test_class_locked_in_one_cluster_is_warned_about():
    labels = labelled({"cat": 20, "dup": 4})
    groups = group_ids([None] * 20 + ["same"] * 4)
    plan = assign_splits(labels, groups, val=0.15, test=0.15, seed=0)
    assert len({s for s, l in zip(plan.splits, labels) if l == ("dup",)}) == 1
    assert any("class 'dup'" in w and "duplicate clusters" in w for w in plan.warnings)


@pytest.mark.parametrize("seed", range(6))
def test_a_class_in_too_few_clusters_for_every_split_is_in_train_first(seed):
    """Class 'a': one image with 3 byte copies, and one other image (5 samples, 2 groups).
    Seeding filled test, then val, with whole groups, so 'a' had nothing in train at any seed."""
    labels = labelled({"a": 5, "b": 10})
    groups = group_ids(["copies"] * 4 + [None] * 11)
    plan = assign_splits(labels, groups, val=0.2, test=0.2, seed=seed)
    assert plan.counts["a"]["train"] >= 1 and plan.counts["a"]["val"] >= 1
    assert any("class 'a' has no example in test" in w for w in plan.warnings)
    assert sum(plan.counts["b"].values()) == 10 and plan.counts["b"]["test"] >= 1


def test_fixed_splits_are_kept_and_pull_their_group_along():
    labels = labelled({"cat": 12, "dog": 12})
    fixed = ["test"] * 3 + [None] * 21
    groups = group_ids(["g"] + [None] * 22 + ["g"])  # sample 23 shares sample 0's cluster
    plan = assign_splits(labels, groups, val=0.2, test=0.2, seed=1, fixed=fixed)
    assert plan.splits[:3] == ["test"] * 3 and plan.splits[23] == "test"


def test_leaking_manual_splits_are_named_in_a_warning():
    plan = assign_splits(labelled({"cat": 3}), [0, 0, 0], val=0.2, test=0.2, seed=0,
                         fixed=["train", "test", None], names=["a.png", "b.png", "c.png"])
    assert plan.splits == ["train", "test", "train"]
    assert plan.warnings[0].startswith("b.png is in test but a duplicate or clip-mate is in train")


def test_inactive_samples_get_no_split_and_count_for_nothing():
    labels = labelled({"cat": 10, "dog": 10})
    active = [i % 5 != 0 for i in range(20)]
    plan = assign_splits(labels, list(range(20)), val=0.2, test=0.2, seed=0, active=active)
    assert [s is None for s in plan.splits] == [not a for a in active]
    assert sum(sum(c.values()) for c in plan.counts.values()) == 16


def test_seeded_reproducibility_and_different_seeds_differ():
    labels = labelled({"a": 25, "b": 15, "c": 9})
    groups = list(range(len(labels)))
    first = assign_splits(labels, groups, val=0.15, test=0.15, seed=7).splits
    assert assign_splits(labels, groups, val=0.15, test=0.15, seed=7).splits == first
    assert assign_splits(labels, groups, val=0.15, test=0.15, seed=8).splits != first


def test_multilabel_and_zero_val():
    labels = [("a",), ("b",), ("a", "b"), ()] * 6
    plan = assign_splits(labels, list(range(24)), val=0.0, test=0.25, seed=0)
    assert "val" not in set(plan.splits) and set(plan.splits) == {"train", "test"}
    assert set(plan.counts["a"]) == {"train", "test"}


@pytest.mark.parametrize("val,test,message", [(0.9, 0.2, "add up to 1.1"), (-0.1, 0.1, "--val"),
                                              (0.1, 1.0, "--test")])
def test_bad_fractions(val, test, message):
    with pytest.raises(InputError, match=message):
        check_fractions(val, test)


@pytest.mark.fiftyone
def test_split_command_keeps_manual_splits_unless_overwrite(tmp_path, dataset_name):
    write_class_tree(tmp_path / "src", {"cat": 9, "dog": 8, "owl": 2})
    write_image(tmp_path / "src" / "dog" / "copy_of_dog_0.png", seed=1000)  # exact duplicate
    assert run("curate", "import", tmp_path / "src", "--name", dataset_name).exit_code == 0
    from shotlab.core import store

    dataset = store.load(dataset_name)
    dataset.set_values("split", [None] * len(dataset))
    manual = dataset.match({"filepath": {"$regex": "cat_0.png$"}}).first()
    manual["split"] = "test"
    manual.save()
    by_stem = {Path(s.filepath).stem: s for s in dataset}
    for stem, field, value in (("cat_1", "duplicate_cluster", "k1"), ("cat_2", "duplicate_cluster",
                               "k1"), *((f"dog_{i}", "clip_id", "v7") for i in range(3, 8))):
        by_stem[stem][field] = value
        by_stem[stem].save()

    result = run("curate", "split", dataset_name, "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "kept 1 existing assignment, split only unassigned samples; assigned 19 samples" \
        in result.output
    assert "Warning: class 'owl' has no example in val, test" in result.output
    dataset.reload()
    assert store.load(dataset_name)[manual.filepath]["split"] == "test"
    dups = dataset.match({"filepath": {"$regex": "dog_0.png$"}}).values("split")
    assert len(dups) == 2 and len(set(dups)) == 1
    for stems in (("cat_1", "cat_2"), [f"dog_{i}" for i in range(3, 8)]):
        assert len({dataset[by_stem[s].filepath]["split"] for s in stems}) == 1, stems
    table = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()
             if line.startswith(("cat ", "dog "))}
    assert all(int(n) >= 1 for counts in table.values() for n in counts)

    again = json.loads(run("curate", "split", dataset_name, "--seed", "2", "--json").stdout)
    assert (again["changed"], again["assigned"], again["kept"]) == (0, 0, 20)
    redone = json.loads(run("curate", "split", dataset_name, "--seed", "5", "--overwrite",
                            "--json").stdout)
    assert redone["assigned"] == 20 and redone["kept"] == 0 and redone["overwrite"]
    history = json.loads(run("curate", "history", dataset_name, "--json").stdout)
    assert [e["kind"] for e in history] == ["split"] * 3
    assert "seed=5" in history[0]["source"] and "--overwrite" in history[0]["source"]


@pytest.mark.fiftyone
def test_split_command_bad_input(dataset_name):
    missing = run("curate", "split", dataset_name)
    assert missing.exit_code == 2 and f"no dataset named '{dataset_name}'" in missing.output
    bad = run("curate", "split", dataset_name, "--val", "0.9", "--test", "0.2")
    assert bad.exit_code == 2 and "leave nothing to train on" in bad.output


def test_split_help():
    result = run("curate", "split", "--help")
    assert result.exit_code == 0 and "--overwrite" in result.output


@pytest.mark.fiftyone
def test_no_holdout_split_needs_its_flag_and_warns(tmp_path, dataset_name):
    """--val 0 --test 0 --overwrite used to move every sample to train without a word."""
    write_class_tree(tmp_path / "src", {"cat": 4, "dog": 4})
    assert run("curate", "import", tmp_path / "src", "--name", dataset_name).exit_code == 0
    assert run("curate", "split", dataset_name, "--seed", "1").exit_code == 0
    from shotlab.core import store

    before = store.load(dataset_name).values("split")
    refused = run("curate", "split", dataset_name, "--val", "0", "--test", "0", "--overwrite")
    assert refused.exit_code == 2, refused.output
    assert "--val 0 --test 0: every sample goes to train" in refused.output
    assert "--no-holdout" in refused.output
    assert store.load(dataset_name).values("split") == before  # nothing moved
    done = run("curate", "split", dataset_name, "--val", "0", "--test", "0", "--overwrite",
               "--no-holdout")
    assert done.exit_code == 0, done.output
    assert "Warning: --val 0 --test 0: every sample goes to train" in done.output
    assert set(store.load(dataset_name).values("split")) == {"train"}


@pytest.mark.fiftyone
def test_history_counts_samples_not_class_memberships_on_multilabel(tmp_path, dataset_name):
    """20 images, 8 with both classes and 4 with none (negatives): the split line of `curate
    history` sums to 20 samples, not to 28 class memberships less the negatives."""
    rows = ["filepath,label"]
    for i, label in enumerate(["a;b"] * 8 + ["a"] * 4 + ["b"] * 4 + [""] * 4):
        rows.append(f"{write_image(tmp_path / f'img_{i}.png', seed=i)},{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert run("curate", "import", tmp_path / "labels.csv", "--name", dataset_name,
               "--multilabel").exit_code == 0
    report = json.loads(run("curate", "split", dataset_name, "--json").stdout)
    assert sum(report["samples"].values()) == 20
    line = run("curate", "history", dataset_name).output.splitlines()[1]
    logged = line.split("curate split")[0]  # the source column repeats val= and test=
    assert logged.split()[-3:] == [f"{s}={report['samples'][s]}" for s in ("train", "val", "test")]
