"""File modes: the workspace is private to its user (folders 0700, files 0600), like the
database files mongod already keeps; other users on the machine can read none of it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from tests.train.trainsets import write_colour_tree

REPO = Path(__file__).resolve().parents[2]


def shotlab(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """`python -m shotlab ARGS` with the usual umask 022, as a user's shell would start it."""
    return subprocess.run([sys.executable, "-m", "shotlab", *map(str, args)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          capture_output=True, text=True, timeout=timeout, umask=0o022)


def open_to_others(root: Path) -> list[str]:
    """Everything under `root` (itself included) that a group or other user may read, write or
    enter, with its mode."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path.relative_to(root)} {stat.filemode(mode)}")
    return found


@pytest.mark.fiftyone
@pytest.mark.slow
def test_a_tiny_train_run_leaves_nothing_open_to_others(tmp_path):
    """A fresh workspace (its own mongod), an import and a tracked training run through the
    command: runs, checkpoints, cache, MLflow store, database, reports are all private."""
    home = tmp_path / "workspace"
    root = write_colour_tree(tmp_path / "colours", counts={"train": 4, "val": 2, "test": 2})
    imported = shotlab("--workspace", home, "curate", "import", root, "--name", "colours")
    assert imported.returncode == 0, imported.stderr[-3000:]
    trained = shotlab("--workspace", home, "train", "colours", "--backbone", "tiny-test",
                      "--epochs", "1", "--workers", "0")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert list((home / "runs").glob("*/checkpoints/last.pt"))
    assert (home / "mlflow.db").is_file() and list((home / "cache").rglob("*.npy"))
    # mongod writes its pid file 0644 whatever the umask; a process id is public (ps) and the
    # workspace folder (0700) keeps it from other users anyway.
    assert [found for found in open_to_others(home) if not found.startswith("mongod.pid ")] == []


def test_activation_takes_others_access_away_from_an_old_workspace(tmp_path):
    """A workspace made by an older shotlab (0755 folders): the folders lose group and other
    access; files the user put there keep their mode (shotlab does not walk the tree)."""
    home = tmp_path / "old"
    for folder in (home, home / "runs", home / "cache" / "embeddings"):
        folder.mkdir(parents=True)
        folder.chmod(0o755)
    notes = home / "runs" / "notes.txt"
    notes.write_text("mine")
    notes.chmod(0o644)

    listed = shotlab("--workspace", home, "train", "runs")

    assert listed.returncode == 0, listed.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "runs").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "cache" / "embeddings").stat().st_mode) == 0o755  # not shotlab's top level
    assert stat.S_IMODE(notes.stat().st_mode) == 0o644


def test_a_workspace_at_the_users_home_keeps_the_home_folders_mode(tmp_path):
    user_home = tmp_path / "user"
    user_home.mkdir()
    user_home.chmod(0o755)
    listed = shotlab("--workspace", user_home, "train", "runs", env={"HOME": str(user_home)})
    assert listed.returncode == 0, listed.stderr
    assert stat.S_IMODE(user_home.stat().st_mode) == 0o755


def test_a_new_workspace_is_created_private(tmp_path):
    home = tmp_path / "new" / "workspace"
    assert shotlab("--workspace", home, "train", "runs").returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_the_command_restores_the_callers_umask():
    """In-process callers (tests, notebooks using CliRunner) get their own umask back."""
    before = os.umask(0o022)
    try:
        assert CliRunner().invoke(cli, ["train", "runs"]).exit_code == 0
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
