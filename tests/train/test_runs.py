"""`shotlab train` end to end through the CLI: run folder, thresholds, MLflow, write-back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core import store, workspace

pytestmark = [pytest.mark.fiftyone, pytest.mark.slow]
TINY = ["--backbone", "tiny-test", "--epochs", "2", "--workers", "0"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_train_writes_a_complete_run(colours):
    result = run("train", colours, *TINY, "--unsafe", "red", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run_dir = Path(out["run_dir"])
    for name in ("manifest.json", "config.yaml", "metrics.json", "thresholds.json",
                 "checkpoints/best.pt", "checkpoints/last.pt", "plots/confusion_test.png",
                 "plots/pr_test.png"):
        assert (run_dir / name).is_file(), name
    assert out["metrics"]["test"]["accuracy"] >= 0.9
    red = out["thresholds"]["red"]
    assert red["reached"] and red["recall"] >= 0.95 and list(out["thresholds"]) == ["red"]
    # a linear run (the automatic choice) reads its thresholds off train folds + val
    manifest = json.loads((run_dir / "manifest.json").read_text())
    reds = [e for e in manifest["entries"] if e["labels"] == ["red"]]
    assert red["support"] == sum(e["split"] in ("train", "val") for e in reds)
    scored_on = json.loads((run_dir / "thresholds.json").read_text())["scored_on"]
    assert scored_on == out["thresholds_scored_on"] and scored_on["scored_on"] == "train folds + val"

    dataset = store.load(colours)
    assert None not in dataset.values("predictions.label")
    assert "mistakes" in dataset.list_saved_views()
    assert len(dataset.load_saved_view("mistakes")) == out["mistakes"]

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workspace.current().home / 'mlflow.db'}")
    logged = mlflow.get_run(out["mlflow_run_id"])
    assert logged.data.params["backbone"] == "tiny-test"
    assert "test.accuracy" in logged.data.metrics

    listed = json.loads(run("train", "runs", "--json").stdout)
    assert any(r["path"] == str(run_dir) and r["finished"] for r in listed)


def test_a_run_says_how_many_labelled_samples_it_left_out_for_want_of_a_split(colours):
    sample = store.load(colours).match({"split": "train"}).first()
    sample.split = None  # as a relabel: tag on an unlabeled sample leaves it
    sample.save()
    result = run("train", colours, *TINY, "--mode", "linear", "--no-track")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        f"Warning: 1 labelled sample has no split and was not used; run `shotlab curate split "
        f"{colours}` (it keeps existing splits and assigns the rest)")
    out = json.loads(run("train", colours, *TINY, "--mode", "linear", "--no-track",
                         "--json").stdout)
    assert out["left_out"]["no_split"] == 1 and "1 labelled sample has no split" in out["warnings"][0]


def test_a_partial_run_reads_its_thresholds_off_val_alone(colours):
    result = run("train", colours, *TINY, "--mode", "partial", "--unsafe", "red", "--no-track")
    assert result.exit_code == 0, result.output
    assert "Threshold for unsafe class 'red'" in result.output and "(on val: recall" in result.output
    assert "scored out of fold" not in result.output
    # the run's line says which model it kept: an epoch, or the probe when none beat it on val
    line = next(l for l in result.output.splitlines() if l.startswith("Run "))
    best = json.loads((Path(line[4:line.index(" (")]) / "metrics.json").read_text())["best_epoch"]
    assert line.endswith("(kept the linear-probe head: no epoch beat it on val)" if best < 0
                         else f"(best epoch {best + 1})")


def test_resume_a_finished_run_trains_no_more(colours):
    first = json.loads(run("train", colours, *TINY, "--no-track", "--json").stdout)
    again = run("train", "--resume", first["run_dir"], "--no-track", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["best_epoch"] == first["best_epoch"]
    # it quietly redid the run's ending: now it says so (not with --json: that stays JSON)
    said = run("train", "--resume", first["run_dir"], "--no-track")
    assert said.exit_code == 0, said.output
    assert f"Note: {first['run_dir']} had finished already; resuming it redid" in " ".join(
        said.output.split())
    # a training option beside --resume was ignored in silence (the run kept its config.yaml)
    ignored = run("train", "--resume", first["run_dir"], "--epochs", "10", "--mode", "partial",
                  "--no-track")
    assert ignored.exit_code == 2, ignored.output
    assert "--mode, --epochs with --resume: a resumed run continues with the settings in its " \
           "config.yaml; drop them" in " ".join(ignored.output.split())


def test_policy_command_sets_validates_and_feeds_training(colours, runs_dir):
    inert = run("train", colours, *TINY, "--no-track", "--target-recall", "0.9")
    assert inert.exit_code == 2 and not list(runs_dir.glob("*"))  # refused before any run folder
    assert f"--target-recall 0.9: dataset '{colours}' has no unsafe classes, so no threshold " \
           f"would use it" in " ".join(inert.output.split())
    shown = run("curate", "policy", colours, "--unsafe", "blue", "--target-recall", "0.9")
    assert shown.exit_code == 0 and "unsafe classes blue; target recall 0.9" in shown.output
    bad = run("curate", "policy", colours, "--unsafe", "purple")
    assert bad.exit_code == 2 and "unsafe classes ['purple'] are not in the dataset" in bad.output
    result = json.loads(run("train", colours, *TINY, "--no-track", "--json").stdout)
    assert list(result["thresholds"]) == ["blue"]
    assert result["thresholds"]["blue"]["target_recall"] == 0.9
    # --target-recall alone overrides the policy's (it was ignored without --unsafe)
    own = json.loads(run("train", colours, *TINY, "--no-track", "--json", "--target-recall",
                         "0.99").stdout)
    assert list(own["thresholds"]) == ["blue"]
    assert own["thresholds"]["blue"]["target_recall"] == 0.99


def test_a_run_that_overrides_the_policy_names_its_own_version(colours):
    """`train --target-recall` kept the dataset's version number, so two bundles under
    different policies stamped the same `policy_version` on their decisions, and an auditor
    looking it up found the other policy. The variant is now kept under a version of its own
    (not current), shown by `curate policy NAME --version N`; the same variant again reuses it."""
    def run_policy(*args) -> dict:
        result = json.loads(run("train", colours, *TINY, "--no-track", "--json", *args).stdout)
        return json.loads((Path(result["run_dir"]) / "thresholds.json").read_text())["policy"]

    current = json.loads(run("curate", "policy", colours, "--unsafe", "blue,blue",
                             "--target-recall", "0.9", "--json").stdout)
    assert current["unsafe"] == ["blue"]  # named twice: one class
    assert run_policy()["version"] == current["version"]
    variant = run_policy("--target-recall", "0.97")
    assert variant["version"] > current["version"] and variant["target_recall"] == 0.97
    assert run_policy("--target-recall", "0.97")["version"] == variant["version"]
    shown = run("curate", "policy", colours, "--version", str(variant["version"]))
    assert shown.exit_code == 0 and "not current" in shown.output
    assert "target recall 0.97" in shown.output
    now = json.loads(run("curate", "policy", colours, "--json").stdout)
    assert now == current  # the variant did not become the dataset's policy
    later = json.loads(run("curate", "policy", colours, "--review-margin", "0.05",
                           "--json").stdout)
    assert later["version"] > variant["version"]  # never reused
    missing = run("curate", "policy", colours, "--version", "999")
    assert missing.exit_code == 2 and "no such version" in missing.output
    junk = run("curate", "policy", colours, "--unsafe", ",,")
    assert junk.exit_code == 2 and "names no class" in junk.output


@pytest.mark.parametrize("args, message", [
    (["train", "no-such-dataset"], "no dataset named 'no-such-dataset'"),
    (["train", "--resume", "."], "is not a run folder (no config.yaml)"),
])
def test_bad_input_exits_2(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output


def test_runs_lists_a_broken_or_foreign_folder_as_unreadable(runs_dir):
    configs = {"empty": "", "foreign": "dataset: x\n", "broken": "a: [\n",
               "good": "dataset: d\ntrain: {backbone: lite0, mode: linear}\n"}
    for name, text in configs.items():
        (runs_dir / name).mkdir(parents=True)
        (runs_dir / name / "config.yaml").write_text(text)
    listed = {r["run"]: r for r in json.loads(run("train", "runs", "--json").stdout)}
    assert listed["good"]["unreadable"] is None and listed["good"]["mode"] == "linear"
    assert listed["broken"]["level"] is None and listed["good"]["level"] == "samples"
    for name in ("empty", "foreign"):
        assert listed[name]["unreadable"] == ("config.yaml: not a shotlab run configuration (no "
                                              "dataset and train settings)")
    assert listed["broken"]["unreadable"].startswith("config.yaml: ")
    shown = run("train", "runs")
    assert shown.exit_code == 0, shown.output
    assert "foreign: unreadable (config.yaml: not a shotlab run configuration" in shown.output
    # a run with no metrics.json yet was a row of '-' with no word on what it is
    assert (f"good: unfinished (no metrics.json): training now, or stopped; `shotlab train "
            f"--resume {runs_dir / 'good'}` continues a stopped one") in " ".join(
                shown.output.split())


def test_unknown_backbone_and_missing_arguments(colours):
    unknown = run("train", colours, "--backbone", "vgg99")
    assert unknown.exit_code == 2 and "unknown backbone 'vgg99'; registered:" in unknown.output
    assert run("train", "run").exit_code == 2


def test_backbones_lists_offline_weights():
    rows = {r["name"]: r for r in json.loads(run("train", "backbones", "--json").stdout)}
    assert rows["lite0"]["weights"] == "offline (package)" and rows["lite0"]["input_size"] == 224
    assert rows["tiny-test"]["input_size"] == 64


def test_a_review_band_that_holds_most_samples_is_warned_and_its_fix_works(tmp_path,
                                                                          dataset_name):
    """A band that sends most scored samples to review got no word at train (the sample set's
    fish: 61% of 96 scored images), and no review rate was reported or stored anywhere. Here red
    is two thirds of the images and the margin nearly 0.5, so the band holds every red."""
    from shotlab.curate.importer import import_path
    from tests.train.trainsets import write_colour_tree

    most_red = {"red": 12, "green": 3, "blue": 3}
    root = write_colour_tree(tmp_path / "reds", counts={"train": most_red, "val": most_red,
                                                        "test": {"red": 2, "green": 2,
                                                                 "blue": 2}})
    import_path(root, dataset_name, progress=False)
    colours = dataset_name
    assert run("curate", "policy", colours, "--unsafe", "red", "--review-margin",
               "0.49").exit_code == 0
    wide = run("train", colours, *TINY, "--no-track")
    assert wide.exit_code == 0, wide.output
    run_dir = Path(next(l for l in wide.output.splitlines() if l.startswith("Run "))[4:].split(" (")[0])
    red = json.loads((run_dir / "thresholds.json").read_text())["thresholds"]["red"]
    assert red["review_rate"] > 0.5 and red["flag_rate"] is not None
    line = " ".join(wide.output.split())
    assert f"sends {red['review_rate']:.0%} to review" in line
    assert "Warning: the review band of 'red'" in line
    fix = f"--review-margin {red['widest_margin']}`"
    assert fix in line
    # the margin the warning names brings the band within the limit, and the warning goes
    assert run("curate", "policy", colours, "--review-margin",
               str(red["widest_margin"])).exit_code == 0
    narrow = run("train", colours, *TINY, "--no-track", "--json")
    assert narrow.exit_code == 0, narrow.output
    red = json.loads(narrow.stdout)["thresholds"]["red"]
    assert red["review_rate"] <= 0.5 and "Warning: the review band" not in narrow.output
