"""The database going away, and a stale mongod.json (issue #11, item 10).

Each test uses its own workspace in tmp_path, in subprocesses, so the test session's shared
database is never killed.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shotlab.core import database, workspace

pytestmark = pytest.mark.fiftyone

# Connects to the workspace's database, prints the mongod PID, waits for a line on stdin, then
# runs the shotlab command line given after the workspace (so the server can be killed between).
PAUSED_COMMAND = """
import sys
from shotlab.core import database, store, workspace
workspace.activate(sys.argv[1])
store.list_datasets()
print(database.read_state(workspace.current())["pid"], flush=True)
sys.stdin.readline()
sys.argv = ["shotlab", *sys.argv[2:]]
from shotlab.cli import main
main()
"""


def env_for(home: Path) -> dict:
    return {**os.environ, workspace.HOME_ENV: str(home)}


def shotlab(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shotlab", *args], capture_output=True,
                          text=True, env=env_for(home), timeout=180)


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while database.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not database.alive(pid)


def test_a_stale_state_file_never_signals_another_process(tmp_path):
    """mongod.json names a live PID that is not the workspace's mongod, and a port that answers:
    shotlab must neither use that port nor send SIGTERM to that process."""
    home = tmp_path / "ws"
    home.mkdir()
    bystander = subprocess.Popen(["sleep", "300"])
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        state = {"pid": bystander.pid, "port": listener.getsockname()[1]}
        (home / database.STATE_FILE).write_text(json.dumps(state))
        result = shotlab(home, "curate", "list", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == []
        assert bystander.poll() is None, "shotlab signalled an unrelated process"
        assert database.read_state(workspace.Workspace.resolve(home)) is None
    finally:
        listener.close()
        bystander.kill()
        bystander.wait()


def test_is_workspace_mongod_checks_the_command_line(tmp_path):
    other = workspace.Workspace.resolve(tmp_path / "other")
    assert not database.is_workspace_mongod(os.getpid(), 1, other)
    assert not database.is_workspace_mongod(2 ** 22 + 7, 1, other)  # no such process


def start_paused(home: Path, *args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_COMMAND, str(home), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_for(home))
    line = proc.stdout.readline()
    assert line.strip().isdigit(), proc.communicate(timeout=60)
    return proc, int(line)


def test_a_killed_database_fails_fast_with_one_line(tmp_path):
    proc, pid = start_paused(tmp_path / "ws", "curate", "list")
    try:
        kill_and_wait(pid)
        started = time.monotonic()
        out, err = proc.communicate("go\n", timeout=120)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1, err
    assert errors[0].startswith("Error: the database stopped answering") and "run it again" in errors[0]
    assert elapsed < 25, elapsed  # was 30 s of waiting, then a 100-line traceback


WRITEBACK = """
import sys
from pathlib import Path
from shotlab.core import database, store, workspace
from shotlab.curate.importer import import_path
from shotlab.train.writeback import write_predictions
workspace.activate(sys.argv[1])
import_path(sys.argv[2], "colours", progress=False)
dataset = store.load("colours")
ids, labels = dataset.values("id"), store.sample_labels(dataset)
run_dir = workspace.current().runs_dir / "run-1"
run_dir.mkdir(parents=True)
print(database.read_state(workspace.current())["pid"], flush=True)
sys.stdin.readline()
probs = [[0.9, 0.1] if l == ("cat",) else [0.2, 0.8] for l in labels]
try:
    write_predictions("colours", ids, labels, probs, ["cat", "dog"], task="multiclass", run="run-1")
except database.DatabaseError as exc:
    print(exc, flush=True)
"""


def test_predictions_survive_the_database_going_away_and_are_written_back_later(tmp_path):
    from tests.imaging import write_class_tree

    home = tmp_path / "ws"
    write_class_tree(tmp_path / "src", {"cat": 2, "dog": 2})
    proc = subprocess.Popen([sys.executable, "-c", WRITEBACK, str(home), str(tmp_path / "src")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_for(home))
    try:
        pid = int(proc.stdout.readline() or proc.communicate(timeout=60))
        kill_and_wait(pid)
        out, err = proc.communicate("go\n", timeout=120)
    finally:
        proc.kill()
    run_dir = home / "runs" / "run-1"
    assert f"the run folder {run_dir} is complete" in out, (out, err)
    assert f"run `shotlab train writeback {run_dir}`" in out
    assert (run_dir / "predictions.json").is_file()

    result = shotlab(home, "train", "writeback", str(run_dir))  # starts a new server
    assert result.returncode == 0, result.stderr
    assert "back to 'colours'; the 'mistakes' view holds 0 samples" in result.stdout
    check = shotlab(home, "train", "writeback", str(tmp_path / "src"))
    assert check.returncode == 2 and "no saved predictions to write back" in check.stderr


def test_the_database_listens_on_no_port_only_on_a_socket_private_to_the_user():
    """The workspace's mongod has no authentication: on a loopback port any local user could
    read and change every dataset while a command ran. It now listens on no TCP port, only on a
    Unix socket that only the workspace's user can open."""
    import psutil
    from shotlab.core import store

    store.list_datasets()  # this test process is a client of the test workspace's server
    state = database.read_state(workspace.current())
    assert state is not None and "port" not in state
    listening = [c for c in psutil.Process(state["pid"]).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening == []
    where = Path(state["socket"])
    assert stat.S_ISSOCK(where.stat().st_mode) and where.stat().st_mode & 0o077 == 0
    assert where.parent.stat().st_mode & 0o077 == 0  # the 0700 workspace, or a 0700 temp folder


STATE_OF = """
import json, sys
from shotlab.core import database, store, workspace
workspace.activate(sys.argv[1])
store.list_datasets()
print(json.dumps(database.read_state(workspace.current())), flush=True)
"""


def test_a_workspace_path_too_long_for_a_socket_gets_a_private_folder_removed_at_stop(tmp_path):
    home = tmp_path / ("long-" * 24) / "ws"
    run = subprocess.run([sys.executable, "-c", STATE_OF, str(home)], capture_output=True,
                         text=True, env=env_for(home), timeout=180)
    assert run.returncode == 0, run.stderr
    where = Path(json.loads(run.stdout)["socket"])
    assert len(str(home / database.SOCKET_NAME)) > database.MAX_SOCKET_PATH
    assert not where.is_relative_to(home) and where.name == database.SOCKET_NAME
    assert not where.parent.exists()  # the last client out stopped the server and removed it


def test_a_server_an_older_shotlab_started_on_a_port_is_used_then_stopped(tmp_path):
    """An upgrade with a mongod left running (a killed command) by a version that listened on a
    loopback port: the new version must use it, not fail to start a second on the same files."""
    home = tmp_path / "ws"
    assert shotlab(home, "curate", "list").returncode == 0  # makes the workspace and its db
    db_dir, port = home / "db", socket.create_server(("127.0.0.1", 0))
    port, _ = port.getsockname()[1], port.close()
    subprocess.run([str(database.mongod_path()), "--dbpath", str(db_dir), "--logpath",
                    str(tmp_path / "old.log"), "--port", str(port), "--bind_ip", "127.0.0.1",
                    "--nounixsocket", "--fork", "--pidfilepath", str(tmp_path / "old.pid")],
                   check=True, capture_output=True)
    pid = int((tmp_path / "old.pid").read_text())
    (home / database.STATE_FILE).write_text(json.dumps({"pid": pid, "port": port}))
    try:
        result = shotlab(home, "curate", "list", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == []
        assert not database.alive(pid)  # it was this workspace's: the last client stopped it
    finally:
        if database.alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_workspace_path_holding_a_comma_gets_a_private_folder(tmp_path):
    """mongod splits --bind_ip on commas: a socket in '/.../com,ma/' could not be bound and the
    database did not start (it did on a TCP port)."""
    where = database.socket_path(workspace.Workspace.resolve(tmp_path / "com,ma"))
    try:
        assert "," not in str(where) and where.name == database.SOCKET_NAME
        assert where.parent.stat().st_mode & 0o077 == 0
    finally:
        where.parent.rmdir()
