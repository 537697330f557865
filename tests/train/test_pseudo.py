"""`shotlab train --pseudo-label`: the threshold rule, the manifest's mark, and a run end to end
on planted colours (pseudo-labels mostly right, never in val/test, never ground truth)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from shotlab.cli import cli
from shotlab.core import store, workspace
from shotlab.train.manifest import Entry, Manifest, freeze
from shotlab.train.pseudo import (choose_threshold, lowest_score_reaching, pool_of, pseudo_entries,
                                  with_pseudo)
from tests.train.trainsets import COLOURS, noisy_colour


def test_lowest_score_reaching_the_target_precision():
    scores = np.array([0.99, 0.98, 0.97, 0.9, 0.8, 0.7, 0.6])
    assert lowest_score_reaching(scores, np.ones(7)) == 0.6  # every sample right: the lowest
    # the 0.8 sample is wrong: precision 4/5 from 0.8, 5/6 from 0.7, 6/7 from 0.6
    assert lowest_score_reaching(scores, [1, 1, 1, 1, 0, 1, 1], target=0.85) == 0.6
    assert lowest_score_reaching(scores, [1, 1, 1, 1, 0, 1, 1], target=0.9) == 0.9
    # a wrong sample at the top: no cut-off reaches 0.95
    assert lowest_score_reaching(scores, [0, 1, 1, 1, 1, 1, 1]) == np.inf
    # tied scores are one cut-off: the wrong one among the ties counts for all of them
    assert lowest_score_reaching([0.9, 0.9, 0.9, 0.5], [1, 0, 1, 1], target=0.9) == np.inf
    assert lowest_score_reaching([], []) == -np.inf


def test_threshold_needs_val_precision_and_expected_pool_precision():
    y_val = np.array([0, 0, 1, 1])
    val = np.array([[0.99, 0.01], [0.6, 0.4], [0.02, 0.98], [0.3, 0.7]])  # all right
    pool = np.array([[0.999, 0.001], [0.97, 0.03], [0.1, 0.9], [0.55, 0.45]])
    chosen = choose_threshold(y_val, val, pool)
    assert chosen["val_rule"] == 0.6  # val alone would let 0.6 through
    # pool means from the top: 0.999, 0.9845, 0.9563, 0.855: the cut is the third, 0.9
    assert chosen["pool_rule"] == pytest.approx(0.9) and chosen["threshold"] == pytest.approx(0.9)
    wrong = np.array([[0.2, 0.8], [0.6, 0.4], [0.02, 0.98], [0.3, 0.7]])  # 0.8 is wrong: 1/2...
    assert choose_threshold(y_val, wrong, pool)["val_rule"] == 0.98  # ...so 0.98 and above


def test_pseudo_entries_are_marked_train_only_and_change_the_hash():
    human = (Entry("a", "/a.png", "1", ("red",), "train"), Entry("b", "/b.png", "2", ("blue",), "val"),
             Entry("c", "/c.png", "3", ("red",), "test"))
    manifest = Manifest("d", "multiclass", ("blue", "red"), human, {"unlabeled": 2, "excluded": 0})
    pool = [Entry("p", "/p.png", "4", (), None), Entry("q", "/q.png", "5", (), "train")]
    added = pseudo_entries(pool, np.array([[0.97, 0.03], [0.4, 0.6]]), manifest.classes, 0.9)
    assert added == [Entry("p", "/p.png", "4", ("blue",), "train", 0.97)]
    grown = with_pseudo(manifest, added)
    assert grown.split("val") == manifest.split("val") and grown.split("test") == manifest.split("test")
    assert grown.hash != manifest.hash and grown.left_out["pseudo_labelled"] == 1
    # a manifest of human labels is stored (and hashed) as before pseudo-labels existed
    assert "pseudo" not in manifest.canonical() and '"pseudo": 0.97' in grown.canonical()


def test_manifest_keeps_the_mark_through_save_and_load(tmp_path):
    entries = (Entry("a", "/a.png", "1", ("red",), "train"),
               Entry("p", "/p.png", "4", ("blue",), "train", 0.97))
    manifest = Manifest("d", "multiclass", ("blue", "red"), entries, {})
    manifest.save(tmp_path / "manifest.json")
    loaded = Manifest.load(tmp_path / "manifest.json")
    assert loaded == manifest and [e.pseudo for e in loaded.entries] == [None, 0.97]
    saved = json.loads((tmp_path / "manifest.json").read_text())["entries"]
    assert "pseudo" not in saved[0] and saved[1]["pseudo"] == 0.97


def write_pool_csv(root: Path) -> Path:
    """Red and blue images: 3 labelled train each, 10 val, 6 test; an unlabeled pool of 15 each
    without a split; and 3 unlabeled images each placed in test (never to be pseudo-labelled).
    The file name says each image's true colour."""
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    rows = ["filepath,label,split"]
    for colour in ("red", "blue"):
        for split, n, labelled in (("train", 3, True), ("val", 10, True), ("test", 6, True),
                                   ("", 15, False), ("test", 3, False)):
            for i in range(n):
                path = root / f"{colour}_{split or 'pool'}_{'l' if labelled else 'u'}{i}.png"
                Image.fromarray(noisy_colour(COLOURS[colour], rng)).save(path)
                rows.append(f"{path},{colour if labelled else ''},{split}")
    (root / "pool.csv").write_text("\n".join(rows) + "\n")
    return root / "pool.csv"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


TINY = ["--backbone", "tiny-test", "--mode", "linear", "--epochs", "3", "--workers", "0",
        "--no-track"]


@pytest.mark.fiftyone
def test_a_copy_of_a_test_image_never_joins_the_pool(tmp_path, dataset_name):
    """`curate split` leaves unlabeled samples unassigned, even a repost of a test image: as a
    pseudo-label in train it would leak the test image into training."""
    import shutil

    from shotlab.curate.importer import import_path

    csv = write_pool_csv(tmp_path / "pool")
    test_image = next(tmp_path.glob("pool/red_test_l0.png"))
    train_image = next(tmp_path.glob("pool/red_train_l0.png"))
    shutil.copy(test_image, tmp_path / "pool" / "repost_of_test.png")
    shutil.copy(train_image, tmp_path / "pool" / "repost_of_train.png")
    with csv.open("a") as rows:
        rows.write(f"{tmp_path / 'pool' / 'repost_of_test.png'},,\n"
                   f"{tmp_path / 'pool' / 'repost_of_train.png'},,\n")
    pool_image = tmp_path / "pool" / "red_pool_u0.png"
    shutil.copy(pool_image, tmp_path / "pool" / "copy_of_pool.png")
    with csv.open("a") as rows:
        rows.write(f"{tmp_path / 'pool' / 'copy_of_pool.png'},,\n")
    import_path(csv, dataset_name, progress=False)
    pool, held_out = pool_of(freeze(dataset_name))
    names = {Path(e.filepath).name for e in pool}
    assert "repost_of_test.png" not in names and "repost_of_train.png" in names
    assert len(pool) == 32 and held_out == 7  # 30 + 2 copies of train/pool; 6 in test + 1
    # a chain: red_pool_u0 is a near-duplicate of a test image (one cluster), and
    # copy_of_pool has red_pool_u0's bytes: both leak through the group curate split forms
    dataset = store.load(dataset_name)
    by_name = {Path(f).name: i for i, f in zip(dataset.values("id"), dataset.values("filepath"))}
    dataset.set_values("duplicate_cluster", {by_name["red_pool_u0.png"]: "c1",
                                             by_name["red_test_l1.png"]: "c1"}, key_field="id")
    pool, held_out = pool_of(freeze(dataset_name))
    names = {Path(e.filepath).name for e in pool}
    assert not {"red_pool_u0.png", "copy_of_pool.png"} & names
    assert len(pool) == 30 and held_out == 9


@pytest.mark.fiftyone
@pytest.mark.slow
def test_pseudo_label_run_adds_right_labels_to_train_only(tmp_path, dataset_name):
    from shotlab.curate.importer import import_path

    import_path(write_pool_csv(tmp_path / "pool"), dataset_name, progress=False)
    human = freeze(dataset_name)
    result = run("train", dataset_name, *TINY, "--pseudo-label", "--unsafe", "red", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    pseudo, run_dir = out["pseudo"], Path(out["run_dir"])
    # thresholds are read off human labels only: train folds (no pseudo-label) + val
    assert out["thresholds_scored_on"]["train"] == len(human.split("train"))
    assert out["thresholds"]["red"]["support"] == sum(
        e.labels == ("red",) for e in human.entries if e.split != "test")
    assert pseudo["pool"] == 30 and pseudo["held_out"] == 6 and pseudo["calibrated"]
    assert pseudo["added"] == sum(pseudo["added_per_class"].values()) >= 20

    manifest = Manifest.load(run_dir / "manifest.json")
    marked = [e for e in manifest.entries if e.pseudo is not None]
    assert len(marked) == pseudo["added"]
    assert all(e.split == "train" and e.pseudo >= pseudo["threshold"] for e in marked)
    for split in ("val", "test"):  # exactly the human-labelled samples, none of the pool
        assert manifest.split(split) == human.split(split)
    assert not {e.sample_id for e in marked} & {e.sample_id for e in human.entries}
    assert all("_pool_" in e.filepath for e in marked)  # the unlabeled test images stay out
    right = [Path(e.filepath).name.split("_")[0] == e.labels[0] for e in marked]
    assert np.mean(right) >= 0.95
    assert out["metrics"]["test"]["n"] == 12  # metrics on human labels only
    assert out["metrics"]["test"]["accuracy"] >= pseudo["teacher"]["test"]["accuracy"]
    assert json.loads((run_dir / "metrics.json").read_text())["pseudo"] == pseudo
    assert (run_dir / "teacher" / "checkpoints" / "best.pt").is_file()

    dataset = store.load(dataset_name)
    gt = dict(zip(dataset.values("id"), dataset.values("ground_truth")))
    assert all(gt[e.sample_id] is None for e in marked)  # never written as ground truth
    view = dataset.load_saved_view("pseudo-labelled")
    assert len(view) == len(marked)
    assert sorted(view.values("pseudo_label.confidence")) == sorted(e.pseudo for e in marked)
    assert set(view.values("pseudo_label.run")) == {run_dir.name}
    mistakes = set(dataset.load_saved_view("mistakes").values("id"))
    assert not mistakes & {e.sample_id for e in marked}  # a pseudo-label is no truth to judge by
    assert freeze(dataset_name).hash == human.hash  # a plain run still sees human labels only

    dataset.delete_sample_field("pseudo_label")  # the marks gone: a resume writes them again
    resumed = run("train", "--resume", run_dir, "--no-track", "--json")  # keeps its pseudo-labels
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["pseudo"] == pseudo
    assert Manifest.load(run_dir / "manifest.json").hash == manifest.hash
    dataset = store.load(dataset_name)  # a resumed run said it wrote the marks, and did not
    assert set(dataset.load_saved_view("pseudo-labelled").values("pseudo_label.run")) == \
        {run_dir.name}


@pytest.mark.fiftyone
def test_pseudo_label_refusals_leave_no_run_folder(colours):
    before = set(workspace.current().runs_dir.glob("*"))
    alone = run("train", colours, "--pseudo-threshold", "0.9")
    assert alone.exit_code == 2 and "add --pseudo-label" in alone.output
    empty = run("train", colours, *TINY, "--pseudo-label")
    assert empty.exit_code == 2 and "has no unlabeled samples" in empty.output
    resumed = run("train", "--resume", ".", "--pseudo-label")
    assert resumed.exit_code == 2 and "leave --pseudo-label out when resuming" in resumed.output
    bad = run("train", colours, "--pseudo-label", "--pseudo-threshold", "1.5")
    assert bad.exit_code == 2 and "--pseudo-threshold" in bad.output
    assert set(workspace.current().runs_dir.glob("*")) == before


@pytest.mark.fiftyone
def test_no_pseudo_label_added_is_no_error_and_clears_earlier_marks(colours):
    """With nothing added on a dataset never pseudo-labelled, FiftyOne refused a field of
    all-None values: a traceback after the run had finished."""
    from shotlab.train.pseudo_marks import PSEUDO_FIELD, write_marks

    write_marks(colours, [], "run-a")  # raised ValueError
    dataset = store.load(colours)
    assert not dataset.has_sample_field(PSEUDO_FIELD)
    first = dataset.first()
    write_marks(colours, [Entry(first.id, first.filepath, "x", ("red",), "train", 0.99)], "run-b")
    write_marks(colours, [], "run-c")  # a later run that added none clears run-b's mark
    assert set(store.load(colours).values(f"{PSEUDO_FIELD}.run")) == {None}


def test_the_run_says_how_many_were_added_per_class(capsys):
    from shotlab.train.report import echo_pseudo

    pseudo = {"added": 7, "pool": 30, "added_per_class": {"blue": 3, "red": 4}, "threshold": 0.912,
              "rule": "lowest score with val precision and expected pool precision >= 0.95",
              "calibrated": False, "teacher": {"test": {"accuracy": 0.8}}}
    echo_pseudo(pseudo, {"test": {"accuracy": 0.9}})
    out = capsys.readouterr().out
    assert "7 of 30 unlabeled samples added to train (blue 3, red 4) at threshold 0.912" in out
    assert "raw scores: calibration was refused" in out
    assert "test accuracy without them 0.800, with them 0.900" in out


@pytest.mark.fiftyone
@pytest.mark.slow
def test_pseudo_labels_on_comments(dataset_name):
    """A text dataset: MiniLM + logistic regression labels an unlabeled pool of comments."""
    from tests.textsets import SUBJECTS, TEMPLATES, comment_rows, make_text_dataset, text_file

    rows = comment_rows(("threat", "food"), counts={"train": 3, "val": 10, "test": 4})
    dataset = make_text_dataset(dataset_name, rows)
    used = {r["text"] for r in rows}
    fo, home = store.fiftyone(), workspace.current().home
    pool, truth = [], {}
    for label in ("threat", "food"):
        texts = [t.format(s=s) for t in TEMPLATES[label] for s in SUBJECTS if
                 t.format(s=s) not in used][:8]
        for text in texts:
            path, digest = text_file(home, text)
            pool.append(fo.Sample(filepath=str(path), text=text, sha256=digest, ground_truth=None,
                                  applied_label=[], split=None))
            truth[str(path)] = label
    dataset.add_samples(pool, progress=False)

    result = run("train", dataset_name, "--mode", "logreg", "--no-track", "--pseudo-label",
                 "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["pseudo"]["pool"] == 16 and out["pseudo"]["added"] >= 8
    marked = [e for e in Manifest.load(Path(out["run_dir"]) / "manifest.json").entries
              if e.pseudo is not None]
    assert all(e.split == "train" and truth[e.filepath] == e.labels[0] for e in marked)
    assert out["metrics"]["test"]["n"] == 8
