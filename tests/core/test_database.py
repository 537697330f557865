"""Each workspace has its own MongoDB server, shared while used and stopped by the last user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shotlab.core import database, store, workspace

pytestmark = pytest.mark.fiftyone


def shotlab(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, workspace.HOME_ENV: str(home)}
    return subprocess.run([sys.executable, "-m", "shotlab", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_last_process_out_stops_the_server(tmp_path):
    home = tmp_path / "ws"
    result = shotlab(home, "curate", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert (home / "db").is_dir()
    assert database.read_state(workspace.Workspace.resolve(home)) is None
    assert not (home / database.STATE_FILE).exists()


def test_a_running_server_is_shared_not_restarted():
    store.list_datasets()  # this test process is a client of the test workspace's server
    active = workspace.current()
    before = database.read_state(active)
    assert before is not None
    assert shotlab(active.home, "curate", "list").returncode == 0
    assert database.read_state(active) == before  # same pid and port, still running


def test_a_stale_state_file_is_ignored(tmp_path):
    home = tmp_path / "ws"
    home.mkdir()
    (home / database.STATE_FILE).write_text(json.dumps({"pid": 2 ** 22 + 7, "port": 9}))
    result = shotlab(home, "curate", "list", "--json")
    assert result.returncode == 0, result.stderr


def test_workspaces_never_share_a_database(tmp_path, dataset_name):
    """The classic FiftyOne pitfall: a second database dir silently attached to the first."""
    from tests.imaging import write_class_tree
    from shotlab.curate.importer import import_path

    write_class_tree(tmp_path / "src", {"cat": 1})
    import_path(tmp_path / "src", dataset_name, progress=False)  # in the test workspace
    other = shotlab(tmp_path / "other", "curate", "list", "--json")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == []
    assert dataset_name in store.list_datasets()


@pytest.mark.parametrize("answering", [True, False], ids=["answering", "socket-gone"])
def test_a_server_a_command_left_unnamed_is_reused_or_stopped(tmp_path, answering):
    """Ctrl-C while a command's mongod started (`mongod --fork` had forked, mongod.json was not
    written yet) left a server no state file named, holding the --dbpath: every later command
    failed with "mongod did not start (exit 100)" until the user found and killed it. Now the
    next command uses it, or stops it when it no longer answers, and exits cleanly."""
    home = tmp_path / "ws"
    assert shotlab(home, "curate", "list").returncode == 0  # the workspace made, its server gone
    active = workspace.Workspace.resolve(home)
    left = database.start(active)
    (home / database.STATE_FILE).unlink()  # as if the command died before writing it
    if not answering:
        Path(left["socket"]).unlink()
    try:
        result = shotlab(home, "curate", "list", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == []
        assert not database.alive(left["pid"])  # used, then stopped by the last one out
        assert database.stray_mongod(active) is None
    finally:
        if database.alive(left["pid"]):
            os.kill(left["pid"], signal.SIGTERM)


def test_a_silent_server_others_use_is_never_stopped(tmp_path):
    """The server a workspace's mongod.lock names, not answering on its socket (its socket
    file removed by a /tmp cleaner, say) while another shotlab process still uses it, is
    not stopped by the next command: that one fails naming the pid instead."""
    import fcntl

    from shotlab.core.files import open_lock

    home = tmp_path / "ws"
    assert shotlab(home, "curate", "list").returncode == 0
    active = workspace.Workspace.resolve(home)
    left = database.start(active)
    Path(left["socket"]).unlink()
    other = open_lock(home / database.CLIENTS_LOCK)  # another process's client lock
    fcntl.flock(other, fcntl.LOCK_SH)
    try:
        assert database.stray_mongod(active).pid == left["pid"]
        result = shotlab(home, "curate", "list")
        assert result.returncode != 0 and database.alive(left["pid"])
        assert f"mongod pid {left['pid']} holds it without answering on its socket and other " \
               f"shotlab processes use this workspace" in " ".join(result.stderr.split())
    finally:
        other.close()
        os.kill(left["pid"], signal.SIGTERM)
