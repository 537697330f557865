"""`shotlab train benchmark` on a text dataset: the text methods side by side (#15.2)."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from tests.textsets import comment_rows, make_text_dataset


def test_text_baselines_follow_the_sklearn_contract():
    from shotlab.core.errors import InputError
    from shotlab.train.baselines import TEXT_BASELINES, make_text_baseline

    rows = comment_rows(counts={"train": 6, "test": 4})
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    for features, classifier in TEXT_BASELINES:
        model = make_text_baseline(features, classifier, seed=0)
        assert model.fit([r["text"] for r in train], [r["label"] for r in train]) is model
        assert list(model.classes_) == ["food", "kind", "threat"]
        probs = model.predict_proba([r["text"] for r in test])
        assert probs.shape == (12, 3)
        assert (model.predict([r["text"] for r in test]) == [r["label"] for r in test]).mean() > 0.5
    with pytest.raises(InputError, match="unknown text features 'bag'"):
        make_text_baseline("bag")


@pytest.mark.fiftyone
def test_text_benchmark_rows(dataset_name, tmp_path):
    make_text_dataset(dataset_name, comment_rows())
    out = tmp_path / "bench"
    result = CliRunner().invoke(cli, ["train", "benchmark", dataset_name, "--shots", "2,4",
                                      "--repeats", "1", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    methods = {(r["method"], r["backbone"]) for r in rows}
    assert methods == {("tfidf + logreg", "-"), ("char-ngrams + logreg", "-"),
                       ("embeddings + logreg", "minilm"), ("embeddings + linear-svm", "minilm"),
                       ("embeddings + knn", "minilm"), ("fine-tune setfit", "minilm")}
    assert {r["shots"] for r in rows} == {"2", "4"} and len(rows) == 12
    for row in rows:
        assert 0 <= float(row["accuracy"]) <= 1 and float(row["seconds"]) >= 0
    by = {(r["method"], r["shots"]): float(r["accuracy"]) for r in rows}
    assert by[("embeddings + logreg", "4")] >= 0.8  # the classes differ in their words
    assert "fine-tune setfit" in (out / "results.md").read_text()


@pytest.mark.fiftyone
def test_text_benchmark_refuses_image_methods(dataset_name):
    make_text_dataset(dataset_name, comment_rows(counts={"train": 2, "val": 1, "test": 1}))
    result = CliRunner().invoke(cli, ["train", "benchmark", dataset_name, "--finetune",
                                      "partial"])
    assert result.exit_code == 2
    assert "--finetune partial trains image models" in result.output
    result = CliRunner().invoke(cli, ["train", "benchmark", dataset_name, "--backbones",
                                      "lite0", "--finetune", ""])
    assert result.exit_code == 2 and "reads image inputs, not text" in result.output
