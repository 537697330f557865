"""Plots are written as valid, non-trivial PNGs and leave no figure open."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shotlab.core.errors import InputError
from shotlab.train.metrics import classification_metrics
from shotlab.train.plots import confusion_matrix_png, learning_curve_png, pr_curves_png

# 12 classes with long, similar names: the readability case.
NAMES = [f"violence_graphic_{kind}_{i}" for i, kind in
         enumerate(["realistic_photograph", "cartoon_or_drawing"] * 6)]


def scored(n=60, k=len(NAMES), seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.arange(k), rng.integers(0, k, n - k)]  # every class present
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 2.0
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def assert_png(path, min_bytes=5_000):
    assert path.is_file() and path.stat().st_size > min_bytes
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) > 300


def assert_no_open_figures():
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_confusion_matrix_png(tmp_path):
    y, p = scored()
    m = classification_metrics(y, p, NAMES, n_bootstrap=0)
    path = confusion_matrix_png(m["confusion_matrix"], NAMES, tmp_path / "runs" / "cm.png")
    assert path == tmp_path / "runs" / "cm.png"  # parent folders are created
    assert_png(path)
    assert_no_open_figures()


def test_multilabel_confusion_matrix_png(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random((40, 6)) < 0.3).astype(int)
    p = np.clip(0.4 * y + 0.6 * rng.random((40, 6)), 0, 1)
    names = NAMES[:6]
    m = classification_metrics(y, p, names, task="multilabel", n_bootstrap=0)
    assert_png(confusion_matrix_png(m["confusion_matrix"], names, tmp_path / "cm.png"))


def test_pr_curves_png_with_thresholds(tmp_path):
    y, p = scored()
    path = pr_curves_png(y, p, NAMES, tmp_path / "pr.png",
                         thresholds={NAMES[1]: 0.3, NAMES[2]: {"threshold": 0.2}})
    assert_png(path)
    assert_no_open_figures()


def test_pr_curves_png_multilabel_with_a_class_without_positives(tmp_path):
    rng = np.random.default_rng(1)
    y = (rng.random((30, 3)) < 0.4).astype(int)
    y[:, 2] = 0
    p = rng.random((30, 3))
    path = pr_curves_png(y, p, ["a", "b", "never seen"], tmp_path / "pr.png", task="multilabel")
    assert_png(path)


def test_learning_curve_png(tmp_path):
    rows = [{"method": method, "shots": shots, "mean": 0.5 + 0.1 * np.log(shots) + bonus,
             "std": 0.05 if method != "kNN" else None}
            for method, bonus in (("linear probe", 0.0), ("fine-tune", 0.05), ("kNN", -0.05))
            for shots in (50, 1, 2, 5, 10, 20)]  # unsorted on purpose
    assert_png(learning_curve_png(rows, tmp_path / "lc.png"))
    assert_no_open_figures()


def test_bad_plot_input_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="cm must be 3 x 3"):
        confusion_matrix_png([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "cm.png")
    with pytest.raises(InputError, match="row 1 lacks std"):
        learning_curve_png([{"method": "a", "shots": 1, "mean": 0.5, "std": 0.1},
                            {"method": "a", "shots": 2, "mean": 0.6}], tmp_path / "lc.png")
    with pytest.raises(InputError, match="non-empty"):
        learning_curve_png([], tmp_path / "lc.png")
    with pytest.raises(InputError, match="probs has 3 columns"):
        pr_curves_png(np.array([0, 1]), np.array([[0.5, 0.25, 0.25]] * 2), ["a", "b"],
                      tmp_path / "pr.png")
    assert not any(tmp_path.iterdir())


def test_names_with_dollar_signs_are_drawn_as_written(tmp_path):
    """matplotlib read a class named `a$\\foo$b` as mathtext: `train` died in its plots
    (unknown symbol) after training, leaving the run without its predictions."""
    from shotlab.train.plots import reliability_png

    names = ["a$\\foo$b", "$\\mathrm{x}$", "ok"]
    y, p = scored(k=3)
    m = classification_metrics(y, p, names, n_bootstrap=0)
    assert_png(confusion_matrix_png(m["confusion_matrix"], names, tmp_path / "cm.png",
                                    title="$\\foo$ run"))
    assert_png(pr_curves_png(y, p, names, tmp_path / "pr.png", title="$\\foo$"))
    assert_png(reliability_png(y, {"raw$\\foo$": p}, names, tmp_path / "rel.png",
                               title="$\\foo$"))


def test_a_class_whose_name_starts_with_an_underscore_keeps_its_legend_entry(tmp_path,
                                                                             monkeypatch):
    """matplotlib leaves out of a legend every label that starts with '_', so the PR curves
    and reliability diagram dropped a class named `_other` without a word."""
    import shotlab.train.plots as plots
    from shotlab.train.plots import reliability_png

    legends, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (legends.append(
        [t.get_text().lstrip("\u200b") for ax in fig.axes for t in ax.get_legend().get_texts()]),
        save(fig, path))[1])
    y, p = scored(k=3)
    pr_curves_png(y, p, ["_other", "a", "b"], tmp_path / "pr.png")
    reliability_png(y, {"_raw": p}, ["_other", "a", "b"], tmp_path / "rel.png")
    assert [text.split()[0] for text in legends[0]] == ["_other", "a", "b"]
    assert legends[1][0] == "perfectly calibrated" and legends[1][1].startswith("_raw (ECE ")
