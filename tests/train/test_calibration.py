"""Temperature scaling: it lowers ECE without moving a decision's top class, refuses too few
images, and reaches every runtime through the classifier's weights."""

from __future__ import annotations

import json
import shutil
import uuid

import numpy as np
import pytest

from shotlab.train.calibration import (MIN_SAMPLES, apply, fit_calibration, fold_into_head,
                                       scaled)
from shotlab.train.metrics import ece


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def overconfident(n=400, k=4, sharpen=4.0, seed=0):
    """Labels drawn from softmax(z) (so softmax(z) is calibrated) and the scores of a model that
    reports softmax(sharpen * z): over-confident by a temperature of `sharpen`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, k))
    y = np.array([rng.choice(k, p=p) for p in softmax(z)])
    return y, softmax(sharpen * z)


def test_temperature_lowers_ece_and_keeps_every_top_class():
    y, probs = overconfident()
    record = fit_calibration(y[:200], probs[:200], task="multiclass")
    assert record["method"] == "temperature"
    assert 3.0 < record["temperature"] < 5.5  # the over-confidence planted is 4
    held_out = apply(probs[200:], record, "multiclass")
    assert ece(y[200:], held_out) < 0.5 * ece(y[200:], probs[200:])
    assert ece(y[200:], held_out) < 0.08
    assert (held_out.argmax(1) == probs[200:].argmax(1)).all()  # accuracy unchanged
    assert record["val_ece_after"] < record["val_ece_before"]
    assert record["val_nll_after"] < record["val_nll_before"]


def test_multilabel_fits_one_temperature_per_class():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, size=(600, 2))
    y = (rng.random((600, 2)) < 1 / (1 + np.exp(-z))).astype(int)
    reported = 1 / (1 + np.exp(-z * np.array([3.0, 0.5])))  # over- then under-confident
    record = fit_calibration(y, reported, task="multilabel")
    t = record["temperature"]
    assert 2.3 < t[0] < 3.8 and 0.35 < t[1] < 0.7
    assert ece(y, apply(reported, record, "multilabel"), task="multilabel") < \
        ece(y, reported, task="multilabel")


@pytest.mark.parametrize("spread", [0.3, 8.0])  # under- and over-confident
def test_a_perfectly_separated_split_is_not_sharpened_to_the_bound(spread):
    """Every val sample's own class ranked first: the log-likelihood has no minimum and the fit
    ran to T = 0.05, making near ties 0.90 / 0.10. 24 right of 24 now gives the true label a
    mean score of 25 / 26."""
    rng = np.random.default_rng(2)
    y = np.arange(24) % 3
    z = rng.uniform(0, 0.2, size=(24, 3))
    z[np.arange(24), y] += spread  # ranked first, by a little or by a lot
    probs = softmax(z)
    record = fit_calibration(y, probs, task="multiclass")
    assert record["method"] == "temperature" and "n = 24" in record["rule"]
    after = apply(probs, record, "multiclass")
    assert after[np.arange(24), y].mean() == pytest.approx(25 / 26, abs=1e-3)
    assert (after.argmax(1) == y).all()
    near_tie = softmax(np.log(np.array([[0.38, 0.34, 0.28]])))
    assert apply(near_tie, record, "multiclass").max() < 0.9999


def test_near_ties_out_of_reach_and_exact_ties_are_said_as_they_are():
    """Thirty separated near ties (0.38 / 0.34 / 0.28) cannot reach 31/32 within T >= 0.05:
    the record claimed it had; one exact tie made the split 'not separated' and the
    log-likelihood fit ran to the bound with no word."""
    y = np.arange(30) % 3
    order = np.array([[0.38, 0.34, 0.28], [0.34, 0.38, 0.28], [0.28, 0.34, 0.38]])
    record = fit_calibration(y, order[y], task="multiclass")
    assert record["temperature"] == pytest.approx(0.0498, abs=1e-3)
    assert "out of reach within T 0.05-20, so the bound, at a mean of 0.90" in record["rule"]
    tied = np.array([[0.6, 0.3, 0.1], [0.3, 0.6, 0.1], [0.1, 0.3, 0.6]])[y]
    tied[0] = [0.45, 0.45, 0.10]  # the true class ties with another
    record = fit_calibration(y, tied, task="multiclass")
    assert "n = 30" in record["rule"]  # no log-likelihood fit run to its bound
    assert record["temperature"] > 0.1 and apply(tied, record, "multiclass")[3, 0] > 0.9


def test_a_separated_multilabel_class_gets_its_laplace_temperature():
    rng = np.random.default_rng(3)
    y = np.stack([np.arange(30) % 2, (rng.random(30) < 0.5).astype(int)], axis=1)
    logits = np.stack([np.where(y[:, 0] == 1, 0.4, -0.4),  # separated, under-confident
                       rng.normal(0, 1, 30) + (y[:, 1] - 0.5)], axis=1)  # overlapping
    record = fit_calibration(y, 1 / (1 + np.exp(-logits)), task="multilabel")
    after = apply(1 / (1 + np.exp(-logits)), record, "multilabel")
    assert np.where(y[:, 0] == 1, after[:, 0], 1 - after[:, 0]).mean() == \
        pytest.approx(31 / 32, abs=1e-3)
    assert "n = 30" in record["rule"] and record["temperature"][1] > 0.1


def test_too_few_validation_images_keep_the_raw_scores():
    y, probs = overconfident(n=MIN_SAMPLES - 1)
    record = fit_calibration(y, probs, task="multiclass")
    assert record["method"] == "none" and f"only {MIN_SAMPLES - 1} validation samples" in record["reason"]
    assert apply(probs, record, "multiclass") is not None
    np.testing.assert_array_equal(apply(probs, record, "multiclass"), probs)
    one_class = fit_calibration(np.zeros(30, int), overconfident(n=30)[1], task="multiclass")
    assert one_class["method"] == "none" and "one class" in one_class["reason"]


def test_folding_into_the_head_gives_the_calibrated_scores():
    import timm
    import torch

    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=3).eval()
    x = torch.randn(5, 3, 64, 64)
    with torch.no_grad():
        raw = model(x).softmax(-1).numpy()
        record = {"method": "temperature", "temperature": 2.5}
        fold_into_head(model, record)
        folded = model(x).softmax(-1).numpy()
    np.testing.assert_allclose(folded, scaled(raw, 2.5, "multiclass"), atol=1e-5)
    assert np.abs(folded - raw).max() > 1e-3


def mislabel(root, split, count):
    """Move `count` images of each class of `split` into the next class's folder: a validation
    split with wrong labels, on which a confident model is over-confident."""
    classes = sorted(p.name for p in (root / split).iterdir())
    for i, name in enumerate(classes):
        for path in sorted((root / split / name).iterdir())[:count]:
            shutil.move(path, root / split / classes[(i + 1) % len(classes)] / f"moved-{path.name}")


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    from shotlab.curate.importer import import_path
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run
    from tests.train.trainsets import write_colour_tree

    root = write_colour_tree(tmp_path_factory.mktemp("calibrated") / "colours",
                             counts={"train": 8, "val": 8, "test": 4})
    mislabel(root, "val", 2)
    name = f"t-calibrated-{uuid.uuid4().hex[:6]}"
    import_path(root, name, progress=False)
    config = TrainConfig(backbone="tiny-test", mode="full", epochs=3, workers=0, unsafe=["red"])
    return train_run(name, config, track=False, writeback=False, progress=False)


def test_a_run_calibrates_on_val_and_its_checkpoint_and_onnx_carry_it(calibrated_run, tmp_path):
    import torch

    from shotlab.export.exporter import export_run
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.kinds import load_inputs
    from shotlab.runtime.runners import make_runner
    from shotlab.train.checkpoint import load_checkpoint, read_state

    run = calibrated_run.run_dir
    record = calibrated_run.calibration
    assert record["method"] == "temperature" and record["fitted_on"] == 24
    assert record["temperature"] > 1.2  # a quarter of val mislabelled: the model is over-confident
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["calibration"] == record
    assert metrics["val"]["ece"] < metrics["val"]["ece_raw"]
    assert (run / "plots" / "reliability_test.png").stat().st_size > 1000
    assert read_state(run / "checkpoints" / "best.pt", "")["calibration"] == record

    images = [e["filepath"] for e in json.loads((run / "manifest.json").read_text())["entries"]]
    checkpoint = load_checkpoint(run)
    raw_model = load_checkpoint(run)
    fold_into_head(raw_model.model, {"method": "temperature",
                                     "temperature": 1 / record["temperature"]})  # undo it
    bundle = load_bundle(export_run(run, out=tmp_path / "bundle", progress=False).path)
    assert bundle.manifest["calibration"] == record
    batch = load_inputs(images, bundle.preprocessing).arrays
    onnx = make_runner(bundle, "onnx")(batch)

    with torch.no_grad():
        torch_probs = checkpoint.model(torch.from_numpy(batch)).softmax(-1).numpy()
        raw = raw_model.model(torch.from_numpy(batch)).softmax(-1).numpy()
    np.testing.assert_allclose(onnx, torch_probs, atol=1e-4)
    np.testing.assert_allclose(onnx, scaled(raw, record["temperature"], "multiclass"), atol=1e-4)
    assert np.abs(onnx - raw).max() > 0.01  # the calibration is in the graph, not beside it
