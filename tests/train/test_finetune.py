"""Fine-tuning the tiny test backbone on colour-separable images, end to end on the CPU.

The dataset is imported into the real store once per module; every run trains the real timm
model through `fit`. Classes differ by colour, so each mode must learn them almost perfectly.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.curate.importer import import_path
from shotlab.train.backbones import create_model
from shotlab.train.choices import MODE_KINDS
from shotlab.train.finetune import (
    MODES,
    Trainer,
    TrainConfig,
    fit,
    predict,
    validation_score,
)
from shotlab.train.manifest import Manifest, freeze
from tests.train.trainsets import import_colour_set, write_colour_tree, write_multilabel_csv

REPO = Path(__file__).resolve().parents[2]
BAR = 0.9  # val macro-F1 every mode must reach on colour-separable classes
EPOCHS = 5


def config(mode: str = "linear", **options) -> TrainConfig:
    return TrainConfig(**{"backbone": "tiny-test", "mode": mode, "epochs": EPOCHS, "workers": 0,
                          **options})


def paths_of(entries) -> list[str]:
    return [e.filepath for e in entries]


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """3 colour classes x 8 train / 4 val / 4 test images of 48x48, imported and frozen."""
    name = f"t-colours-{uuid.uuid4().hex[:6]}"
    manifest = import_colour_set(tmp_path_factory.mktemp("colours"), name)
    yield manifest
    store.delete(name)


@pytest.fixture(scope="module")
def runs(colours, tmp_path_factory):
    """One fit per mode, shared by the tests that inspect its result: mode -> (result, run_dir)."""
    done = {}

    def get(mode: str):
        if mode not in done:
            run_dir = tmp_path_factory.mktemp(f"run-{mode}")
            done[mode] = (fit(colours, config(mode), run_dir, progress=False), run_dir)
        return done[mode]

    return get


# ---------------------------------------------------------------- every mode learns the colours

IMAGE_MODES = [mode for mode, kind in MODE_KINDS.items() if kind == "image"]


@pytest.mark.fiftyone
@pytest.mark.slow
@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_each_mode_reaches_the_bar_and_writes_checkpoints(runs, colours, mode):
    result, run_dir = runs(mode)
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert not list((run_dir / "checkpoints").glob("*.partial"))
    assert result.best_score >= BAR, result.history
    scores = [h["val_score"] for h in result.history]
    assert [h["epoch"] for h in result.history] == list(range(len(result.history)))
    # best_epoch -1 is the linear-probe head before any epoch, kept when no epoch beat it.
    assert result.best_score >= max(scores)
    if result.best_epoch >= 0:
        assert scores[result.best_epoch] == result.best_score
    else:
        assert result.best_epoch == -1 and max(scores) <= result.best_score
    assert len(result.history) <= EPOCHS
    test = colours.split("test")
    probs = predict(result.model, paths_of(test), result.created, colours.task, device="cpu",
                    workers=0)
    assert probs.shape == (len(test), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float(np.mean(probs.argmax(axis=1) == colours.targets(test)))
    assert accuracy >= BAR


@pytest.mark.fiftyone
@pytest.mark.parametrize("mode", ["partial", "full"])
def test_fine_tuning_starts_from_the_probe_not_from_scratch(colours, tmp_path, mode):
    """LP-FT: the head starts as a fitted probe (val F1 1.0 here), so the first epoch's loss is
    small, well under a uniform guess's log(3). (Batch norm in train mode on a few-shot batch
    moved the features the probe was fitted on, and the loss exploded: fixed by freezing it.)"""
    result = fit(colours, config(mode, epochs=1, augment="none"), tmp_path, progress=False)
    assert result.history[0]["train_loss"] < math.log(3), result.history


@pytest.mark.fiftyone
def test_checkpoint_holds_what_deployment_needs(runs, colours):
    result, run_dir = runs("linear")
    best = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert best["backbone"] == "tiny-test" and best["timm_name"] == "test_efficientnet"
    assert best["classes"] == list(colours.classes) == ["blue", "green", "red"]
    assert best["task"] == "multiclass"
    assert best["manifest_hash"] == colours.hash
    assert best["config"] == config("linear").to_dict()
    assert best["weights"]["source"] == "none" and best["weights"]["sha256"]
    pre = best["preprocessing"]
    assert tuple(pre["input_size"]) == (64, 64)
    assert tuple(pre["class_names"]) == colours.classes
    assert pre == result.created.preprocessing.to_dict()
    # The model in the checkpoint is the plain timm model, and it is the returned one.
    fresh = create_model("tiny-test", num_classes=3, pretrained=False).model
    fresh.load_state_dict(best["model"])
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[name]), name
    last = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert {"optimizer", "scheduler", "epoch", "history", "rng", "best_epoch", "best_score"} <= set(last)
    assert last["epoch"] == len(result.history) - 1 and last["history"] == result.history
    assert last["best_score"] == result.best_score and last["manifest_hash"] == colours.hash


@pytest.mark.fiftyone
def test_linear_probe_is_folded_into_the_timm_classifier(colours, tmp_path):
    """The probe trains on standardised cached embeddings; the deployed timm model, run on the
    image files, must give the same probabilities."""
    trainer = Trainer(colours, config("linear", epochs=3), tmp_path)
    trainer.prepare()
    trainer.build_optimizer()
    for _ in range(3):
        trainer.train_epoch()
    probe_probs = trainer.validate()
    assert validation_score(trainer.y_val, probe_probs, "multiclass") >= BAR
    trainer.fold_probe()
    model_probs = predict(trainer.model, paths_of(trainer.val), trainer.created, "multiclass",
                          device="cpu", workers=0)
    np.testing.assert_allclose(model_probs, probe_probs, atol=1e-4)


@pytest.mark.fiftyone
def test_linear_mode_keeps_the_backbone_frozen(runs):
    result, _ = runs("linear")
    original = create_model("tiny-test", num_classes=3).model.state_dict()
    trained = result.model.state_dict()
    head = {n for n, _ in result.model.get_classifier().named_parameters()}
    changed = {n for n, t in trained.items() if not torch.equal(t, original[n])}
    assert changed == {f"classifier.{n}" for n in head}  # batch-norm statistics included


# ---------------------------------------------------------------- reproducibility and resume

def weights_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def final_weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu",
                      weights_only=True)["model"]


def assert_same_run(first, second, dir_a: Path, dir_b: Path) -> None:
    assert [h["val_score"] for h in first.history] == [h["val_score"] for h in second.history]
    assert first.history == second.history  # train losses too
    a, b = final_weights(dir_a), final_weights(dir_b)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert weights_equal(first.model, second.model)


@pytest.mark.fiftyone
@pytest.mark.slow
def test_same_seed_same_run_without_augmentation(colours, tmp_path):
    first = fit(colours, config("partial", epochs=2, augment="none"), tmp_path / "a", progress=False)
    second = fit(colours, config("partial", epochs=2, augment="none"), tmp_path / "b", progress=False)
    assert_same_run(first, second, tmp_path / "a", tmp_path / "b")


@pytest.mark.fiftyone
@pytest.mark.slow
def test_same_seed_same_run_with_augmentation(colours, tmp_path):
    first = fit(colours, config("partial", epochs=1), tmp_path / "a", progress=False)
    second = fit(colours, config("partial", epochs=1), tmp_path / "b", progress=False)
    assert_same_run(first, second, tmp_path / "a", tmp_path / "b")


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from shotlab.train.finetune import TrainConfig, fit
    from shotlab.train.manifest import Manifest

    manifest = Manifest.load(Path(sys.argv[1]))
    config = TrainConfig(backbone="tiny-test", mode="partial", epochs=6, workers=0, patience=10)
    fit(manifest, config, Path(sys.argv[2]), progress=False)
""")


@pytest.mark.fiftyone
@pytest.mark.slow
def test_resume_after_sigkill_continues_from_the_last_epoch(colours, tmp_path):
    manifest_file = tmp_path / "manifest.json"
    colours.save(manifest_file)
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # SHOTLAB_HOME: the tests' workspace
    assert env.get("SHOTLAB_HOME")
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:  # a file, not a pipe: a full pipe would block the child
        process = subprocess.Popen(
            [sys.executable, "-c", RESUME_SCRIPT, str(manifest_file), str(run_dir)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 240
        while not last.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert last.exists(), log.read_text()[-3000:]
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    saved_epochs = len(saved["history"])
    assert saved["epoch"] == saved_epochs - 1 and 1 <= saved_epochs < 6

    resumed = fit(colours, TrainConfig(backbone="tiny-test", mode="partial", epochs=6, workers=0,
                                       patience=10), run_dir, resume=True, progress=False)
    history = resumed.history
    assert history[:saved_epochs] == saved["history"]  # continued, not restarted
    assert [h["epoch"] for h in history] == list(range(6))  # no epoch run twice, none skipped
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["epoch"] == 5 and final["history"] == history
    best = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert best["manifest_hash"] == colours.hash and best["classes"] == list(colours.classes)
    assert resumed.best_score == max(h["val_score"] for h in history)
    fresh = create_model("tiny-test", num_classes=3, pretrained=False).model
    fresh.load_state_dict(best["model"])  # a complete, loadable state dict
    assert weights_equal(fresh, resumed.model)
    assert not list(run_dir.rglob("*.partial"))


@pytest.mark.fiftyone
def test_resume_with_another_manifest_is_refused(colours, tmp_path):
    fit(colours, config("linear", epochs=1), tmp_path, progress=False)
    changed = Manifest(colours.dataset, colours.task, colours.classes,
                       tuple(e for e in colours.entries if e != colours.split("train")[0]),
                       colours.left_out)
    assert changed.hash != colours.hash
    with pytest.raises(InputError, match="manifest"):
        fit(changed, config("linear", epochs=2), tmp_path, resume=True, progress=False)


# ---------------------------------------------------------------- multilabel and balance

@pytest.mark.fiftyone
@pytest.mark.slow
def test_multilabel_trains_with_independent_sigmoids(tmp_path, dataset_name):
    csv_path = write_multilabel_csv(tmp_path / "ml", per_pattern={"train": 4, "val": 2, "test": 2})
    import_path(csv_path, dataset_name, multilabel=True, progress=False, workers=2)
    manifest = freeze(dataset_name)
    assert manifest.task == "multilabel" and manifest.classes == ("blue", "red")
    result = fit(manifest, config("linear", epochs=8, batch_size=4), tmp_path / "run",
                 progress=False)  # few images: more, smaller steps
    assert result.best_score >= BAR  # macro average precision
    test = manifest.split("test")
    probs = predict(result.model, paths_of(test), result.created, "multilabel", device="cpu",
                    workers=0)
    assert probs.shape == (len(test), 2)
    assert ((probs > 0) & (probs < 1)).all()
    assert not np.allclose(probs.sum(axis=1), 1.0, atol=0.05)  # sigmoid, not softmax
    y = manifest.targets(test)
    assert validation_score(y, probs, "multilabel") >= BAR  # test macro average precision
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", map_location="cpu",
                      weights_only=True)
    assert best["task"] == "multilabel" and best["classes"] == ["blue", "red"]


@pytest.mark.fiftyone
@pytest.mark.slow
def test_multilabel_partial_mode_runs_its_probe_init(tmp_path, dataset_name):
    csv_path = write_multilabel_csv(tmp_path / "ml", per_pattern={"train": 3, "val": 2})
    import_path(csv_path, dataset_name, multilabel=True, progress=False, workers=2)
    manifest = freeze(dataset_name)
    result = fit(manifest, config("partial", epochs=1, augment="none"), tmp_path / "run",
                 progress=False)
    probs = predict(result.model, paths_of(manifest.split("val")), result.created, "multilabel",
                    device="cpu", workers=0)
    assert probs.shape == (8, 2) and np.isfinite(probs).all()


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """train: red 14, green 14, blue 2; val: 2 each."""
    name = f"t-imbalanced-{uuid.uuid4().hex[:6]}"
    counts = {"train": {"red": 14, "green": 14, "blue": 2}, "val": 2}
    manifest = import_colour_set(tmp_path_factory.mktemp("imbalanced"), name, counts=counts, seed=3)
    yield manifest
    store.delete(name)


def drawn_classes(manifest, balance: str, draws: int = 40) -> Counter:
    trainer = Trainer(manifest, config("linear", balance=balance, batch_size=8), Path("unused"))
    counts = Counter()
    for _ in range(draws):
        batches = trainer.batches()
        assert sum(len(b) for b in batches) == len(trainer.train)
        assert all(len(b) <= 8 for b in batches)
        for batch in batches:
            counts.update(manifest.classes[trainer.y_train[i]] for i in batch.tolist())
    return counts


@pytest.mark.fiftyone
def test_class_balanced_sampler_draws_the_small_class(imbalanced):
    balanced = drawn_classes(imbalanced, "sampler")
    total = sum(balanced.values())
    for name in ("red", "green", "blue"):
        assert 0.25 < balanced[name] / total < 0.42, balanced  # ~1/3 each
    plain = drawn_classes(imbalanced, "none")
    assert plain["blue"] == 2 * 40  # a shuffle: each image once per epoch
    assert balanced["blue"] > 3 * plain["blue"]


@pytest.mark.fiftyone
def test_class_balanced_image_loader_draws_the_small_class(imbalanced):
    from shotlab.train.finetune import train_loader

    trainer = Trainer(imbalanced, config("partial"), Path("unused"))
    loader = train_loader(trainer.train, trainer.y_train, trainer.created, trainer.config,
                          trainer.task, trainer.generator, trainer.device)
    drawn = Counter(imbalanced.classes[trainer.y_train[i]] for _ in range(40) for i in loader.sampler)
    assert 0.25 < drawn["blue"] / sum(drawn.values()) < 0.42, drawn


@pytest.mark.fiftyone
@pytest.mark.slow
def test_imbalanced_run_still_recalls_the_small_class(imbalanced, tmp_path):
    result = fit(imbalanced, config("linear", epochs=6), tmp_path, progress=False)
    val = imbalanced.split("val")
    probs = predict(result.model, paths_of(val), result.created, "multiclass", device="cpu", workers=0)
    y = imbalanced.targets(val)
    blue = imbalanced.classes.index("blue")
    assert np.mean(probs[y == blue].argmax(axis=1) == blue) == 1.0


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("options,message", [
    ({"mode": "frozen"}, "The 'mode' option must be one of linear, partial, full, logreg, setfit, "
                         "fusion. Got 'frozen' instead."),
    ({"balance": "oversample"}, "The 'balance' option must be one of sampler, loss, none. "
                                "Got 'oversample' instead."),
    ({"epochs": 0}, "The 'epochs' option must be at least 1. Got 0 instead."),
    ({"batch_size": -4}, "The 'batch_size' option must be at least 1. Got -4 instead."),
    ({"unfreeze_stages": 0}, "The 'unfreeze_stages' option must be at least 1. Got 0 instead."),
    ({"lr": 0}, "The 'lr' option must be in (0, 1]. Got 0 instead."),
    ({"lr": 1.5}, "The 'lr' option must be in (0, 1]. Got 1.5 instead."),
    # 0 trained no epoch at all, then said no epoch beat the probe
    ({"patience": 0}, "The 'patience' option must be at least 1 (epochs without improvement "
                      "before stopping; 0 would train none). Got 0 instead."),
])
def test_bad_config_values_raise_sklearn_style_messages(tmp_path, options, message):
    with pytest.raises(InputError) as info:
        config(**options).check()
    assert str(info.value) == message
    # fit checks before it touches the data: a manifest with no files at all is enough.
    empty = Manifest("none", "multiclass", ("a",), (), {})
    with pytest.raises(InputError, match=re.escape(message)):
        fit(empty, config(**options), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_unknown_augmentation_preset_is_a_config_error():
    with pytest.raises(InputError, match="augment"):
        config(augment="extreme").check()


def test_a_good_config_checks_and_round_trips():
    good = config("full", lr=0.01, balance="loss")
    assert good.check() is good
    assert TrainConfig(**good.to_dict()) == good
    assert IMAGE_MODES == ["linear", "partial", "full"]
    assert set(MODES) == set(MODE_KINDS)  # every mode says which kind of model it trains


@pytest.mark.fiftyone
def test_dataset_without_val_split_names_the_fix(tmp_path, dataset_name):
    write_colour_tree(tmp_path / "src", counts={"train": 3}, seed=5)
    import_path(tmp_path / "src", dataset_name, progress=False, workers=2)
    manifest = freeze(dataset_name)
    with pytest.raises(InputError) as info:
        fit(manifest, config("linear"), tmp_path / "run")
    message = str(info.value)
    assert dataset_name in message and "0 val" in message
    assert "val/" in message and "split" in message  # how to fix it
    assert not (tmp_path / "run").exists()


@pytest.mark.fiftyone
def test_class_without_train_samples_is_named(colours_manifest_without_blue_train):
    manifest = colours_manifest_without_blue_train
    with pytest.raises(InputError, match=r"\['blue'\] have no train samples"):
        Trainer(manifest, config("linear"), Path("unused"))


@pytest.fixture
def colours_manifest_without_blue_train(colours):
    entries = tuple(e for e in colours.entries if not (e.split == "train" and e.labels == ("blue",)))
    return Manifest(colours.dataset, colours.task, colours.classes, entries, {})
