"""MLflow logging takes every class name a user may give (its metric names are made valid)."""

from __future__ import annotations

import pytest

from shotlab.train.tracking import flat_numbers, log_run

# Names MLflow refuses as they are; each failed a finished run's last step with a traceback.
CLASSES = ["18+", "hate+speech", "non-violent (mild)", "sexual,nudity", "violence 😡", "gore/x"]


def test_a_run_with_class_names_mlflow_refuses_is_logged(tmp_path):
    import mlflow

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("{}")
    metrics = {"val": {"per_class": {name: {"recall": i / 10} for i, name in enumerate(CLASSES)}}}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_run(run_dir, dataset="posts", params={"backbone": "minilm"},
                     history=[{"epoch": 1, "loss": 0.5}], metrics=metrics, tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    logged = mlflow.get_run(run_id).data.metrics
    assert logged["val.per_class.18_.recall"] == 0.0
    assert logged["val.per_class.violence__.recall"] == pytest.approx(0.4)
    assert logged["val.per_class.gore_x.recall"] == pytest.approx(0.5)
    assert len([k for k in logged if k.startswith("val.per_class.")]) == len(CLASSES)


def test_a_metric_name_is_cut_to_mlflows_longest():
    names = flat_numbers({"val": {"x" * 300: 1.0}})
    assert [len(name) for name in names] == [250]


def test_names_made_one_anothers_each_keep_their_value():
    """'18+' and '18_', two emoji, or two long names cut alike logged one value under one name."""
    long = "x" * 245
    flat = flat_numbers({"per_class": {"18+": {"recall": 0.1}, "18_": {"recall": 0.9},
                                       "😡": {"f1": 0.2}, "🔞": {"f1": 0.3},
                                       long: {"precision": 0.4, "recall": 0.5}}})
    assert len(flat) == 6 and sorted(flat.values()) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.9]
    assert flat["per_class.18_.recall"] == 0.1 and flat["per_class.18__2.recall"] == 0.9
    assert all(len(name) <= 250 for name in flat)
