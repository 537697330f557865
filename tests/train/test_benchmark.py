"""`shotlab train benchmark`: every method on the same shots, measured on the same test split."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.train.benchmark import Benchmark, sample_shots
from shotlab.train.manifest import freeze
from tests.train.trainsets import import_colour_set

pytestmark = [pytest.mark.fiftyone, pytest.mark.slow]


def test_shots_are_per_class_seeded_and_from_train(colours):
    manifest = freeze(colours)
    first, again, other = (sample_shots(manifest, 2, seed=s) for s in (0, 0, 1))
    assert first == again and first != other
    assert sorted(e.labels[0] for e in first) == ["blue"] * 2 + ["green"] * 2 + ["red"] * 2
    assert {e.split for e in first} == {"train"}


def test_benchmark_writes_every_method_at_every_shot_count(colours, tmp_path):
    out = tmp_path / "bench"
    # a name given twice counts once (it made a second column and counted repeats twice)
    result = CliRunner().invoke(cli, ["train", "benchmark", colours, "--backbones",
                                      "tiny-test,tiny-test", "--shots", "2,4,2", "--repeats", "2",
                                      "--finetune", "linear,linear",
                                      "--workers", "0", "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    methods = {r["method"] for r in rows}
    assert methods == {"pixels + logreg", "color-histogram + logreg", "hog + logreg",
                       "embeddings + logreg", "embeddings + linear-svm", "embeddings + knn",
                       "fine-tune linear"}
    assert len(rows) == len(methods) * 2 * 2  # methods x shot counts x repeats
    by_method = {r["method"]: float(r["accuracy"]) for r in rows if r["shots"] == "4"}
    assert by_method["color-histogram + logreg"] >= 0.9  # colour classes: the easy baseline wins
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert "| color-histogram + logreg | - |" in (out / "results.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--shots", "five"], "--shots five: expected whole numbers"),
    (["--finetune", "sideways"], "--finetune takes linear, partial, full"),
])
def test_bad_options_exit_2(colours, args, message):
    result = CliRunner().invoke(cli, ["train", "benchmark", colours, *args])
    assert result.exit_code == 2 and message in result.output


def no_benchmark_run(monkeypatch):
    """Make any benchmark row fail the test: a refusal must come before the first."""
    def run(*_):
        raise AssertionError("the benchmark ran before refusing")
    monkeypatch.setattr(Benchmark, "run", run)


def benchmark_refused(name, args, message: str):
    result = CliRunner().invoke(cli, ["train", "benchmark", name, "--backbones", "tiny-test",
                                      "--workers", "0", *map(str, args)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output


def test_a_one_class_dataset_is_refused_before_any_row(tmp_path, dataset_name, monkeypatch):
    import_colour_set(tmp_path, dataset_name, classes=("red",))
    no_benchmark_run(monkeypatch)
    benchmark_refused(dataset_name, ["--finetune", ""],
                      f"dataset '{dataset_name}' has only the class 'red'; a classifier needs "
                      f"at least two classes")


def test_fine_tune_rows_without_a_val_split_are_refused_before_any_row(tmp_path, dataset_name,
                                                                        monkeypatch):
    import_colour_set(tmp_path, dataset_name, classes=("red", "blue"),
                      counts={"train": 3, "test": 2})
    no_benchmark_run(monkeypatch)
    benchmark_refused(dataset_name, ["--finetune", "linear"],
                      f"dataset '{dataset_name}' has no val split, which the fine-tune rows "
                      f"(--finetune linear) early-stop on")
    Benchmark(freeze(dataset_name), backbones=["tiny-test"], finetune=[], epochs=1, workers=0,
              progress=None)  # no fine-tune rows: no val split needed


def test_an_out_folder_under_a_file_is_refused_before_any_row(colours, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    no_benchmark_run(monkeypatch)
    benchmark_refused(colours, ["--out", blocker / "bench"],
                      f"--out {blocker / 'bench'}: {blocker} is a file, not a folder; choose "
                      f"another --out")


def test_shots_no_class_can_fill_are_refused_and_dropped_from_the_default(colours, monkeypatch):
    """With 6 train images a class, '--shots 4,20' gave a 20-shot column identical to a 6-shot
    one (every image, ± 0.000), unsaid."""
    no_benchmark_run(monkeypatch)
    benchmark_refused(colours, ["--shots", "4,20"], "--shots 20: the train split holds at most "
                                                    "6 samples a class")
    from shotlab.train.cli import check_shots

    manifest = freeze(colours)
    assert check_shots(manifest, [5, 10, 20], given=False) == [5]
    assert check_shots(manifest, [10, 20], given=False) == [6]
