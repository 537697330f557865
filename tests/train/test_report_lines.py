"""What `shotlab train` prints about the model a run kept and its calibration, line by line."""

from __future__ import annotations

from types import SimpleNamespace

from shotlab.train.report import echo_calibration, kept_model


def test_the_run_line_names_the_model_kept():
    assert kept_model(SimpleNamespace(kind="image", best_epoch=-1)) == \
        "kept the linear-probe head: no epoch beat it on val"
    assert kept_model(SimpleNamespace(kind="image", best_epoch=0)) == "best epoch 1"
    assert kept_model(SimpleNamespace(kind="text", best_epoch=0)) == "one fit, no epochs"
    assert kept_model(SimpleNamespace(kind="post", best_epoch=0)) == "one fit, no epochs"


def test_the_calibration_line_counts_val_samples_of_any_kind(capsys):
    calibration = {"method": "temperature", "temperature": 1.25, "fitted_on": 30,
                   "val_nll_before": 0.9, "val_nll_after": 0.8}
    echo_calibration(calibration, "test", {"ece_raw": 0.2, "ece": 0.05})
    line = capsys.readouterr().out
    assert "temperature 1.25 fitted on 30 val samples (val log-loss 0.900 -> 0.800" in line
    assert "ECE on test 0.200 -> 0.050" in line
