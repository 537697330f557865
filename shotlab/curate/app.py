"""`shotlab curate app`: serve one dataset in the FiftyOne App until Ctrl-C or SIGTERM.

The App is FiftyOne's own web server (`fiftyone/server/main.py`, run by hypercorn), started by
a `fo.Session(..., remote=True)` as a grandchild of this process: `fiftyone/service/main.py`
wraps it and kills it when its stdin closes, which `Session.close()` does and then waits for.
So a clean stop is: catch the signal here, close the session, return; the port is free again
when `serve` returns.

`fo.Session` rather than `fo.launch_app`: launch_app is that same constructor plus a module-level
reference, a logged ssh port-forwarding recipe (wrong for a local App) and a first-run welcome
banner whose marker it writes to ~/.fiftyone/var/welcome.json, outside the shotlab workspace.

Three things FiftyOne does not do for us, and this module does:
- A port that is already taken would make FiftyOne connect to whatever answers there, or start a
  server that cannot bind and wait 60 s for it (`ServerService.start`); `serve` checks the port
  first and says which one and how to pick another.
- SIGTERM (systemd, `kill`, a test harness) would end Python without cleanup; the wrapper would
  then stop the server on its own, but only some time after we are gone. `serve` treats SIGTERM
  and SIGHUP like Ctrl-C, so the server is always gone when the process exits.
- The Session gives up connecting to a server that takes over 10 s to start and prints "Could
  not connect session"; `serve` starts the server first (see `_launch`).

The App has no login: whoever reaches the port can read and edit the dataset, and FiftyOne's
server answers `/media?filepath=ANY/PATH` with any file this user can read (not only the
dataset's images), whatever `Host` header the request carries. So the default address is
loopback, and `serve` refuses any other address unless the caller acknowledges that exposure
(`expose=True`, the CLI's `--expose-files-to-network`). Tracking is off because
`workspace.activate()` sets FIFTYONE_DO_NOT_TRACK, which FiftyOne hands to the server and the
App's page (its `doNotTrack` query), so the page never loads its analytics scripts (checked
with headless Chromium: no Segment or Google Analytics requests). The page does still ask
fonts.googleapis.com for two web fonts (FiftyOne's own index.html); offline that fails quietly
and the App falls back to local fonts.
"""

from __future__ import annotations

import contextlib
import signal
import time

from shotlab.core import store
from shotlab.core.addresses import ensure_port_free, http_url, is_loopback
from shotlab.core.errors import InputError, ShotlabError
from shotlab.core.signals import available, signals_ignored

DEFAULT_PORT = 5151  # FiftyOne's own default, so bookmarks and habits carry over
DEFAULT_ADDRESS = "127.0.0.1"  # the App has no login: serve to this machine only unless asked
POLL_SECONDS = 1.0  # how often the wait loop checks that the App server is still alive
STOP_SIGNALS = ("SIGTERM", "SIGHUP")  # handled like Ctrl-C (SIGINT), which Python already raises
EXPOSE_FLAG = "--expose-files-to-network"  # the CLI's acknowledgement for a non-loopback --address


class _Stop(BaseException):
    """Raised by the signal handler to leave the wait loop (BaseException, like KeyboardInterrupt,
    so no `except Exception` on the way can swallow it)."""


def ensure_exposure_acknowledged(address: str, expose: bool) -> None:
    """Refuse to serve beyond this machine unless the caller said they know what it exposes."""
    if not expose and not is_loopback(address):
        raise InputError(f"--address {address} would let anyone who reaches it read every file "
                         f"this user can read (the App's /media?filepath= route, no login); "
                         f"add {EXPOSE_FLAG} if that is what you want, or keep the loopback "
                         f"default {DEFAULT_ADDRESS} (reach it remotely with an SSH tunnel)")


def serve(name: str, *, port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS,
          expose: bool = False) -> None:
    """Serve dataset `name` in the FiftyOne App at http://ADDRESS:PORT/ until Ctrl-C or SIGTERM.

    Prints the URL as one line on stdout once the App's server listens, then blocks. On return
    (also after Ctrl-C, SIGTERM or SIGHUP) the server process has exited and the port is free
    again. Call it from the main thread: it installs signal handlers while it runs.

    Args:
        name: a dataset in the store (`shotlab curate list`).
        port: TCP port to serve on; checked to be free before anything starts.
        address: interface to bind; loopback by default, since the App has no login.
        expose: required for an address other than loopback: the App then serves every file
            this user can read to whoever reaches the address.

    Raises:
        DatasetNotFoundError: no dataset is called `name`.
        InputError: a non-loopback address without `expose`, the port is taken or the address
            cannot be bound.
        ShotlabError: the App server failed to start or stopped on its own.
    """
    ensure_exposure_acknowledged(address, expose)
    ensure_port_free(address, port, default_port=DEFAULT_PORT)
    dataset = store.load(name)
    fo = store.fiftyone()

    with _stop_signals():
        try:
            session = _launch(fo, dataset, port, address)
        except (KeyboardInterrupt, _Stop):  # stopped while starting: same clean stop as later
            _stop_server(port)
            return
        except Exception as exc:  # ServiceListenTimeout, a server that failed to start, ...
            _stop_server(port)
            raise ShotlabError(f"the FiftyOne App did not start on {address}:{port} ({exc}); "
                               f"try another --port, or run with --debug for details") from exc
        try:
            print(f"FiftyOne App for '{name}' ({len(dataset)} samples) at "
                  f"{http_url(address, port)} (Ctrl-C stops it)", flush=True)
            _wait_while_serving(port)
        except (KeyboardInterrupt, _Stop):
            pass
        finally:
            _close(session)


def _launch(fo, dataset, port: int, address: str):
    """Start the App server, then the session that tells it which dataset to show.

    FiftyOne's Session connects to its server before starting it and gives up after 10 s
    ("Could not connect session, trying again in 10 seconds", then 10 s more without the
    dataset), which a loaded machine easily hits. Starting the server first, in the map where
    the Session looks for it, makes the session connect at once; the Session then owns it and
    `Session.close()` stops it as usual.
    """
    services = _server_services()
    if services is not None and port not in services:
        from fiftyone.core.service import ServerService

        services[port] = ServerService(port, address=address, do_not_track=fo.config.do_not_track)
    return fo.Session(dataset, port=port, address=address, remote=True, auto=False)


def _wait_while_serving(port: int) -> None:
    """Block until a signal arrives; raise ShotlabError if the App server dies on its own."""
    server = _server_process(port)
    while True:
        time.sleep(POLL_SECONDS)
        if server is not None and server.poll() is not None:
            raise ShotlabError(f"the FiftyOne App server on port {port} stopped unexpectedly "
                               f"(exit code {server.returncode}); start it again, or run with "
                               f"--debug for details")


def _server_services() -> dict | None:
    """FiftyOne's (private) map of the App servers this process started, by port, which the
    Session registers with and stops from; None if a FiftyOne version no longer has it, and then
    serve just makes a Session and neither watches nor rescues the server."""
    import fiftyone.core.session.session as fos

    services = getattr(fos, "_server_services", None)
    return services if isinstance(services, dict) else None


def _server_process(port: int):
    """The process that wraps the App server (a psutil.Popen), if this process started one."""
    child = getattr((_server_services() or {}).get(port), "child", None)
    return child if hasattr(child, "poll") else None


def _stop_server(port: int) -> None:
    """Stop a server that a failed or interrupted launch left behind (Session.close() does this
    for a session that was made)."""
    with signals_ignored():
        service = (_server_services() or {}).pop(port, None)
        if service is not None:
            with contextlib.suppress(Exception):
                service.stop()


def _close(session) -> None:
    """Stop the App server and wait for it."""
    with signals_ignored():
        # Session.__del__ prints "wait for the App" advice when closed within 2.5 s of launch
        # unless this is set, as Session.wait() does when interrupted.
        session._disable_wait_warning = True
        session.close()


@contextlib.contextmanager
def _stop_signals():
    """Turn SIGTERM and SIGHUP into `_Stop` in the main thread, as SIGINT is KeyboardInterrupt."""
    def handler(signum, frame):
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, handler) for sig in available(*STOP_SIGNALS)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
