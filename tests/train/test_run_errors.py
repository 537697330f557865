"""`shotlab train` refusals: one line with exit code 2 (never a traceback), and no run folder
left behind by a start that failed."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from shotlab.cli import cli
from shotlab.core import workspace
from shotlab.curate.importer import import_path
from shotlab.train import runs
from shotlab.train.finetune import TrainConfig
from tests.curate.test_app import default_interrupt
from tests.train.trainsets import noisy_colour, write_colour_tree

pytestmark = pytest.mark.fiftyone
TINY = ["--backbone", "tiny-test", "--epochs", "1", "--workers", "0", "--no-track"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_folders() -> set:
    return set(workspace.current().runs_dir.glob("*"))


def refused(args, message: str):
    """Run `train ARGS`; assert exit 2, one `Error:` line holding `message`, no new run folder."""
    before = run_folders()
    result = run("train", *args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and message in lines[0], result.output
    assert run_folders() == before
    return lines[0]


def test_a_one_class_dataset_is_refused(tmp_path, dataset_name):
    root = write_colour_tree(tmp_path / "red", classes=("red",), counts={"train": 3, "val": 2})
    import_path(root, dataset_name, progress=False)
    line = refused([dataset_name, *TINY], f"dataset '{dataset_name}' has only the class 'red'; "
                                          f"a classifier needs at least two classes")
    assert f"shotlab curate import PATH --name {dataset_name}" in line


def test_a_multilabel_dataset_without_any_label_is_refused(tmp_path, dataset_name):
    rng = np.random.default_rng(0)
    root = tmp_path / "unlabelled"
    root.mkdir()
    rows = []
    for split, count in (("train", 3), ("val", 2)):
        for i in range(count):
            Image.fromarray(noisy_colour((128, 128, 128), rng)).save(root / f"{split}_{i}.png")
            rows.append((f"{split}_{i}.png", "", split))
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("filepath", "labels", "split"), *rows])
    import_path(root / "labels.csv", dataset_name, multilabel=True, progress=False)
    refused([dataset_name, *TINY], f"dataset '{dataset_name}' is multilabel but none of its 5 "
                                   f"samples has a label (every row is all zeros)")


def test_a_file_gone_since_import_is_refused_before_the_run(tmp_path, dataset_name):
    """A linear run trained from cached embeddings and failed only at evaluation, leaving an
    unfinished run that a resume could not finish either."""
    root = write_colour_tree(tmp_path / "c", classes=("red", "blue"),
                             counts={"train": 2, "val": 1, "test": 1})
    import_path(root, dataset_name, progress=False)
    gone = sorted(root.rglob("*.png"))[-1]
    gone.unlink()
    refused([dataset_name, *TINY, "--mode", "linear"],
            f"dataset '{dataset_name}': 1 file is gone since import (first: {gone}); restore "
            f"it, or tag the sample 'exclude'")


def test_a_file_changed_since_import_is_trained_on_as_it_is_with_a_warning(tmp_path,
                                                                          dataset_name):
    """A red picture overwritten by a blue one trained as 'red' without a word (`curate
    check` said so; train, whose labels it poisons, did not)."""
    import json

    from shotlab.core.images import sha256_file

    root = write_colour_tree(tmp_path / "c", classes=("red", "blue"),
                             counts={"train": 2, "val": 1, "test": 1})
    import_path(root, dataset_name, progress=False)
    changed = sorted((root / "train" / "red").glob("*.png"))[0]
    blue = sorted((root / "train" / "blue").glob("*.png"))[0]
    changed.write_bytes(blue.read_bytes())
    result = run("train", dataset_name, *TINY, "--mode", "linear")
    assert result.exit_code == 0, result.output
    assert (f"Warning: 1 file changed since import (first: {changed}): trained on as it is "
            f"now, under the label given before") in " ".join(result.output.split())
    run_dir = max(workspace.current().runs_dir.glob(f"*-{dataset_name}-*"))
    entries = json.loads((run_dir / "manifest.json").read_text())["entries"]
    (entry,) = [e for e in entries if e["filepath"] == str(changed)]
    assert entry["sha256"] == sha256_file(changed) and entry["labels"] == ["red"]
    again = run("train", dataset_name, *TINY, "--mode", "linear")  # the dataset has it now
    assert again.exit_code == 0 and "changed since import" not in again.output, again.output


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory):
    from shotlab.core import store

    name = "t-run-errors-two-classes"
    root = write_colour_tree(tmp_path_factory.mktemp("two") / "c", classes=("red", "blue"),
                             counts={"train": 2, "val": 1})
    import_path(root, name, progress=False)
    yield name
    store.delete(name)


@pytest.mark.parametrize("device, message", [
    ("banana", "--device 'banana' is not a device shotlab trains on; use cpu, cuda or cuda:N"),
    ("mps", "--device 'mps' is not a device shotlab trains on"),
    (f"cuda:{torch.cuda.device_count()}", "no such CUDA device here"),
    pytest.param("cuda", "--device cuda: no such CUDA device here (0 visible); use --device cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")),
])
def test_a_device_that_is_not_here_is_refused(two_classes, device, message):
    refused([two_classes, *TINY, "--device", device], message)


def test_a_start_that_fails_leaves_no_run_folder(two_classes, tmp_path):
    """The weights file is only read once the run has its folder: the folder goes again."""
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not a state dict")
    refused([two_classes, *TINY, "--weights", weights], f"{weights}: cannot load as a state dict")


def test_a_file_where_the_runs_folder_goes_is_refused_before_any_work(two_classes, runs_dir,
                                                                      monkeypatch):
    runs_dir.parent.mkdir(parents=True, exist_ok=True)
    runs_dir.write_text("")
    monkeypatch.setattr(runs, "freeze", lambda _: pytest.fail("the dataset was frozen first"))
    line = refused([two_classes, *TINY], f"{runs_dir} is not a folder, and the workspace keeps "
                                         f"its training runs there; move that file away")
    listed = run("train", "runs")
    assert listed.exit_code == 2 and listed.output.strip() == line


def test_runs_started_in_the_same_second_get_folders_of_their_own(monkeypatch):
    """Eight runs of one dataset and backbone started at once, in one second (the clock is
    held still): each gets its own new folder, the later ones with a suffix."""
    monkeypatch.setattr(runs.time, "strftime", lambda _: "20990101-000000")
    config = TrainConfig(backbone="tiny-test", mode="linear")
    made, errors = [], []

    def start():
        try:
            made.append(runs.new_run_dir("same-second", config))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    base = "20990101-000000-same-second-tiny-test-linear"
    assert sorted(p.name for p in made) == sorted([base] + [f"{base}-{n}" for n in range(2, 9)])
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)
    for folder in made:
        folder.rmdir()


def test_ctrl_c_during_a_run_names_the_run_to_resume(colours, tmp_path):
    """Ctrl-C mid-epoch printed a bare "Aborted!"; it says which run to resume, and how."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    before = run_folders()
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "shotlab", "train", colours, "--backbone", "tiny-test",
             "--mode", "partial", "--epochs", "400", "--patience", "400", "--workers", "0",
             "--no-track"], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
            stdout=subprocess.DEVNULL, stderr=stderr,
            preexec_fn=default_interrupt)
    try:
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline and not any(
                (d / "checkpoints" / "last.pt").exists() for d in run_folders() - before):
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    (run_dir,) = run_folders() - before
    text = " ".join(log.read_text().split())
    assert process.returncode == 130, text[-2000:]
    assert f"Error: interrupted; the run keeps what it finished: continue it with `shotlab " \
           f"train --resume {run_dir}`" in text
