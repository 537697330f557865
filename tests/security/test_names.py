"""Paths from names: a dataset name can never make shotlab write outside its workspace, and a
name that is not plain is refused in one line, not a traceback."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core import store, workspace
from shotlab.curate.importer import import_path
from shotlab.train.manifest import Manifest
from tests.train.trainsets import write_colour_tree

pytestmark = pytest.mark.fiftyone
ALLOWED = "ASCII letters, digits, '-', '_' and '.' (not first)"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def leading_to(target: Path, prefix: str = "x/") -> str:
    """A value that, joined under any workspace folder, points at `target` (extra '..' stop at /)."""
    return prefix + "../" * (len(workspace.current().home.parts) + 4) + str(target).lstrip("/")


def assert_one_line_refusal(result, text: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and text in lines[0], result.output


@pytest.mark.parametrize("bad", ["a/b", "..", "", ".", "escape"])
def test_import_refuses_a_name_that_is_not_plain(tmp_path, bad):
    root = write_colour_tree(tmp_path / "colours", counts={"train": 1})
    name = leading_to(tmp_path / "ESCAPED") if bad == "escape" else bad
    result = run("curate", "import", root, "--name", name)
    assert_one_line_refusal(result, f"dataset name {name!r} is not allowed: use {ALLOWED}")
    assert name not in store.list_datasets()


@pytest.mark.parametrize("bad", ["a/b", "..", "", "x/../../../tmp/ESCAPED"])
def test_train_refuses_a_name_that_is_not_plain(bad):
    before = set(workspace.current().runs_dir.glob("*"))
    result = run("train", bad, "--backbone", "tiny-test")
    assert_one_line_refusal(result, f"dataset name {bad!r} is not allowed")
    assert set(workspace.current().runs_dir.glob("*")) == before


@pytest.fixture
def renamed(tmp_path, dataset_name):
    """A real dataset renamed with FiftyOne (as an older shotlab let a name like this in) so
    that its name leads from any workspace folder to tmp_path/ESCAPED..."""
    root = write_colour_tree(tmp_path / "colours", counts={"train": 4, "val": 2, "test": 2})
    import_path(root, dataset_name, progress=False)
    name = leading_to(tmp_path / "ESCAPED")
    store.load(dataset_name).name = name
    yield name
    fo = store.fiftyone()
    if fo.dataset_exists(name):
        fo.load_dataset(name).delete()


@pytest.mark.parametrize("command", [
    ["train", "{}", "--backbone", "tiny-test", "--epochs", "1", "--workers", "0", "--no-track"],
    ["curate", "check", "{}", "--checks", "balance"],
    ["train", "benchmark", "{}", "--backbones", "tiny-test", "--shots", "1", "--repeats", "1",
     "--finetune", ""],
])
def test_a_name_leading_out_writes_nothing_outside(renamed, tmp_path, command):
    runs_before = set(workspace.current().runs_dir.glob("*"))
    result = run(*[renamed if part == "{}" else part for part in command])
    assert_one_line_refusal(result, f"dataset name {renamed!r} is not allowed")
    assert not list(tmp_path.rglob("ESCAPED*"))
    assert set(workspace.current().runs_dir.glob("*")) == runs_before


@pytest.mark.slow
def test_a_manifest_digest_leading_out_of_the_cache_is_refused(trained_run, tmp_path):
    """A run folder is something another user can hand over: its manifest's sha256 values name
    embedding cache files, and must not name a file outside the cache."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    manifest = Manifest.load(run_dir / "manifest.json")
    first = manifest.split("train")[0]  # embedded (and so cached) for the linear-probe start
    evil = dataclasses.replace(first, sha256=leading_to(tmp_path / "ESCAPED", ""))
    entries = tuple(evil if e == first else e for e in manifest.entries)
    Manifest(manifest.dataset, manifest.task, manifest.classes, entries,
             manifest.left_out).save(run_dir / "manifest.json")
    assert Manifest.load(run_dir / "manifest.json").split("train")[0].sha256 == evil.sha256
    (run_dir / "checkpoints" / "last.pt").unlink()

    result = run("train", "--resume", run_dir, "--no-track")

    assert_one_line_refusal(result, "would lead outside")
    assert not list(tmp_path.rglob("ESCAPED*"))
