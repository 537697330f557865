"""Text runs: `shotlab train NAME` on a comment dataset, end to end through the CLI (#15.2)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from shotlab.cli import cli
from tests.textsets import comment_rows, make_text_dataset

pytestmark = pytest.mark.fiftyone


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def comments():
    """A comment dataset (threat / kind / food, 6/4/4 per class), deleted afterwards."""
    from shotlab.core import store

    name = f"t-comments-{uuid.uuid4().hex[:6]}"
    make_text_dataset(name, comment_rows())
    yield name
    store.delete(name)


@pytest.fixture(scope="module")
def text_run(comments):
    """One logreg run through the CLI, with MLflow and write-back as a user gets them."""
    result = invoke("train", comments, "--mode", "logreg", "--unsafe", "threat", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_backbones_list_the_text_encoder():
    result = invoke("train", "backbones", "--json")
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.output) if r["name"] == "minilm")
    assert row["kind"] == "text" and row["weights"] == "offline (package)"
    assert row["params_m"] == pytest.approx(22.7) and "384" in row["description"]
    table = invoke("train", "backbones").output
    assert "minilm" in table and "lite0" in table


def test_text_run_writes_the_run_folder_of_an_image_run(text_run):
    run_dir = Path(text_run["run_dir"])
    assert run_dir.name.endswith("-minilm-logreg")
    for name in ("manifest.json", "config.yaml", "metrics.json", "thresholds.json",
                 "checkpoints/best.pt", "checkpoints/last.pt", "plots/confusion_test.png",
                 "plots/pr_test.png", "plots/reliability_test.png"):
        assert (run_dir / name).is_file(), name
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (config["train"]["backbone"], config["train"]["mode"]) == ("minilm", "logreg")
    assert json.loads((run_dir / "manifest.json").read_text())["kind"] == "text"
    test = text_run["metrics"]["test"]
    assert test["n"] == 12 and test["accuracy"] >= 0.9
    assert test["per_class"]["threat"]["f2"] is not None and test["macro_auprc"] > 0.9
    threshold = text_run["thresholds"]["threat"]
    assert 0 < threshold["threshold"] < 1 and len(threshold["review_band"]) == 2
    assert text_run["mlflow_run_id"] and text_run["mistakes"] is not None
    # a logreg head on the packaged encoder: the train comments are scored out of fold too
    scored_on = text_run["thresholds_scored_on"]
    assert scored_on["scored_on"] == "train folds + val" and scored_on["folds"] >= 2
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert threshold["support"] == sum(e["labels"] == ["threat"] and e["split"] != "test"
                                       for e in manifest["entries"])


def test_a_logreg_run_embeds_each_train_comment_once(comments, monkeypatch):
    """The head's fit and the threshold folds share one pass of the encoder over train."""
    from shotlab.train import text_model

    real, embedded = text_model.embed_texts, []

    def counting(texts, **options):
        embedded.extend(texts)
        return real(texts, **options)

    monkeypatch.setattr(text_model, "embed_texts", counting)
    out = json.loads(invoke("train", comments, "--mode", "logreg", "--unsafe", "threat",
                            "--json").output)
    assert out["thresholds_scored_on"]["scored_on"] == "train folds + val"
    assert len(embedded) == len(set(embedded)) == out["thresholds_scored_on"]["train"]


def test_a_text_run_says_it_is_one_fit_not_an_epoch(comments):
    output = invoke("train", comments, "--mode", "logreg", "--no-track").output
    line = next(l for l in output.splitlines() if l.startswith("Run "))
    assert line.endswith("(one fit, no epochs)") and "epoch 1" not in output


def test_predictions_are_written_back_to_the_comments(comments, text_run):
    from shotlab.core import store

    dataset = store.load(comments)
    labels = [p.label if p else None for p in dataset.values("predictions")]
    truth = [g.label for g in dataset.values("ground_truth")]
    assert None not in labels
    assert np.mean([a == b for a, b in zip(labels, truth)]) >= 0.9


def test_checkpoint_loads_back_as_the_text_classifier(comments, text_run):
    """load_checkpoint rebuilds the TextClassifier, calibration folded in: its test scores are
    the run's calibrated ones (what export, explain and posts start from)."""
    from shotlab.train.checkpoint import load_checkpoint
    from shotlab.train.manifest import Manifest
    from shotlab.train.text_fit import predict_texts, read_texts
    from shotlab.train.text_model import TextClassifier
    from shotlab.train.metrics import classification_metrics

    checkpoint = load_checkpoint(text_run["run_dir"])
    assert isinstance(checkpoint.model, TextClassifier)
    assert checkpoint.preprocessing.kind == "text" and checkpoint.classes == ["food", "kind",
                                                                              "threat"]
    manifest = Manifest.load(checkpoint.run_dir / "manifest.json")
    test = manifest.split("test")
    probs = predict_texts(checkpoint.model, read_texts([e.filepath for e in test]),
                          manifest.task, max_tokens=checkpoint.preprocessing.max_tokens)
    metrics = classification_metrics(manifest.targets(test), probs, manifest.classes,
                                     task=manifest.task)
    assert metrics["accuracy"] == pytest.approx(text_run["metrics"]["test"]["accuracy"])
    assert metrics["ece"] == pytest.approx(text_run["metrics"]["test"]["ece"], abs=1e-5)


def test_image_mode_on_a_text_dataset_is_refused(comments):
    result = CliRunner().invoke(cli, ["train", comments, "--mode", "partial", "--no-track"])
    assert result.exit_code == 2
    assert "--mode partial trains image models" in result.output
    assert "logreg, setfit" in result.output
    result = CliRunner().invoke(cli, ["train", comments, "--backbone", "lite0", "--no-track"])
    assert result.exit_code == 2 and "reads image inputs, not text" in result.output


def test_image_tuning_options_on_a_text_run_are_refused_not_recorded(comments):
    """--augment strong --epochs 3 ran a logreg text run that read neither, and config.yaml
    recorded both as if they had applied."""
    from shotlab.train.runs import runs_folder

    before = set(runs_folder().glob("*"))
    result = CliRunner().invoke(cli, ["train", comments, "--mode", "logreg", "--augment",
                                      "strong", "--epochs", "3", "--no-track"])
    assert result.exit_code == 2
    assert "--epochs, --augment: not read by a logreg run on texts" in result.output
    result = CliRunner().invoke(cli, ["train", comments, "--mode", "logreg", "--batch-size",
                                      "4", "--no-track"])
    assert result.exit_code == 2 and "--batch-size: not read by a logreg run" in result.output
    assert set(runs_folder().glob("*")) == before  # no run folder made


def test_defaults_follow_the_dataset_kind():
    from dataclasses import replace

    from shotlab.train.finetune import TrainConfig
    from shotlab.train.manifest import Entry, Manifest
    from shotlab.train.runs import with_kind_defaults

    def manifest(kind, n):
        entries = tuple(Entry(str(i), f"/x/{i}", "0", ("a" if i % 2 else "b",), "train")
                        for i in range(n))
        return Manifest("d", "multiclass", ("a", "b"), entries, {}, kind)

    unset = replace(TrainConfig(), backbone=None, mode=None)
    few, many = with_kind_defaults(unset, manifest("text", 16)), with_kind_defaults(
        unset, manifest("text", 18))
    assert (few.backbone, few.mode, many.mode) == ("minilm", "setfit", "logreg")
    image = with_kind_defaults(unset, manifest("image", 40))
    assert (image.backbone, image.mode) == ("lite0", "linear")  # then the backbone is chosen
    assert with_kind_defaults(TrainConfig(mode="full"), manifest("image", 4)).mode == "full"


def test_setfit_fine_tunes_the_encoder(comments, tmp_path):
    """SetFit moves the encoder's weights (the fine-tuned BERT is in the model) and the head
    fitted after it separates the classes."""
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.manifest import freeze
    from shotlab.train.text_fit import fit
    from shotlab.train.text_model import load_encoder

    manifest = freeze(comments)
    fitted = fit(manifest, TrainConfig(backbone="minilm", mode="setfit"), tmp_path)
    packaged = load_encoder().bert.state_dict()
    tuned = fitted.model.encoder.bert.state_dict()
    moved = [k for k in packaged if not np.allclose(packaged[k].numpy(), tuned[k].numpy())]
    assert len(moved) > len(packaged) // 2
    assert fitted.best_score >= 0.9
    assert (tmp_path / "checkpoints" / "best.pt").is_file()


def test_resume_of_a_text_run_reloads_its_model(text_run):
    """A text fit has no epochs: --resume reloads best.pt and evaluates it again (same
    scores), instead of fitting anew."""
    last = Path(text_run["run_dir"]) / "checkpoints" / "last.pt"  # a new fit rewrites it
    before = last.stat().st_mtime_ns
    result = invoke("train", "--resume", text_run["run_dir"], "--no-track", "--json")
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)
    assert again["metrics"]["test"]["accuracy"] == text_run["metrics"]["test"]["accuracy"]
    assert again["thresholds"] == text_run["thresholds"]
    assert last.stat().st_mtime_ns == before


def test_comments_of_one_thread_are_held_out_together_when_thresholds_are_chosen():
    """A comment set's `group` column (one thread, one author) reaches the run's manifest, and
    the out-of-fold threshold scores hold each group out whole, as the run says."""
    from shotlab.core import store

    name = f"t-threads-{uuid.uuid4().hex[:6]}"
    dataset = make_text_dataset(name, comment_rows())
    try:
        threats = dataset.match({"split": "train", "ground_truth.label": "threat"}).values("id")
        dataset.set_values("group", {i: f"thread-{n // 2}" for n, i in enumerate(threats)},
                           key_field="id")
        result = invoke("train", name, "--mode", "logreg", "--unsafe", "threat", "--no-track")
        assert result.exit_code == 0, result.output
        assert "6 held out with the samples they belong with" in result.output
        run_dir = next(Path(l.split()[1]) for l in result.output.splitlines()
                       if l.startswith("Run "))
    finally:
        store.delete(name)
    entries = json.loads((run_dir / "manifest.json").read_text())["entries"]
    threads = [e["group"] for e in entries if "group" in e]
    assert len(threads) == 6 and len(set(threads)) == 3
    scored = json.loads((run_dir / "thresholds.json").read_text())["scored_on"]
    assert scored["grouped"] == 6
