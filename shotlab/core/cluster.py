"""Ray for `--ray`: a local Ray on loopback started for the command, or an existing cluster.

    with ray_session(address=None, num_cpus=2) as started:   # started: this command owns Ray
        ...                                                  # ray.remote, Ray Data, Ray Serve

Without an address, Ray is started inside this process on 127.0.0.1 with `num_cpus` CPUs, its
usage reporting and its dashboard off (both would try the network), and shut down at the end.
With one (`ray://` or `HOST:PORT` of a running head node, or `auto`), the command joins it and
leaves it running. A `HOST:PORT` is knocked on first (CONNECT_TIMEOUT_S): Ray itself retries a
dead address for minutes. A loopback one (a cluster on this machine, started on 127.0.0.1) gets
the loopback switch too, or Ray advertises the machine's network address to it and never
connects. Without an address the local Ray is started even when RAY_ADDRESS names a cluster or
another `ray start` left one running (Ray's `address="local"`). Shotlab must be installed on
every node, at the version the driver runs, and the bundle and image paths must be readable
there (a shared filesystem).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from shotlab.core.addresses import is_loopback
from shotlab.core.errors import ShotlabError

# Ray would otherwise report usage to anyscale.com at start.
RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0"}
# Ray's own switch for a single-machine Ray (its default on macOS and Windows): every server it
# starts (GCS, raylet, workers, object manager) binds and advertises 127.0.0.1 instead of the
# machine's network address. Read when ray is imported, so set before that; only for a local Ray.
LOOPBACK_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
CONNECT_TIMEOUT_S = 10.0


def ray_module(*, loopback: bool = False):
    """The ray package, or a one-line error saying how to install it. `loopback`: a Ray started
    by this process listens on 127.0.0.1 only (takes effect when ray is first imported)."""
    os.environ.update(RAY_ENVIRONMENT)
    if loopback:
        os.environ.update(LOOPBACK_ENVIRONMENT)
    try:
        import ray
    except ImportError:
        raise ShotlabError("--ray needs Ray: pip install 'ray[serve]==2.60.0' (or install "
                           "shotlab with the `ray` extra)") from None
    return ray


def head_address(address: str | None) -> tuple[str, int] | None:
    """(host, port) of a `HOST:PORT` address; None for none, `auto`, `local` or a URL."""
    if not address or "://" in address or address in ("auto", "local"):
        return None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ShotlabError(f"--address {address}: expected HOST:PORT of the head node (ray "
                           f"status on it prints it), ray://HOST:PORT, or auto")
    return host.strip("[]"), int(port)


def knock(host: str, port: int) -> None:
    """A one-line error unless something accepts connections at host:port."""
    import socket

    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ShotlabError(f"nothing answers at {host}:{port} ({exc.strerror or exc}); check "
                           f"--address (ray status on the head node prints it)") from None


def address_host(address: str | None) -> str | None:
    """The machine an address names: HOST of `HOST:PORT` or `ray://HOST:PORT`; None for none,
    `auto` and `local` (this machine's own Ray)."""
    if address and address.startswith("ray://"):
        return address[len("ray://"):].rpartition(":")[0].strip("[]") or None
    found = head_address(address)
    return found[0] if found else None


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None):
    """Ray connected for the block; yields True when this process started it (then it is
    shut down afterwards), False when it joined `address` or Ray was already initialised."""
    host_port = head_address(address)
    ray = ray_module(loopback=not address or (host_port is not None and
                                              is_loopback(host_port[0])))
    if ray.is_initialized():  # e.g. a test or a notebook that started Ray itself
        yield False
        return
    if host_port:
        knock(*host_port)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1,
                     include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray on 127.0.0.1"
        raise ShotlabError(f"could not start or join {where} ({' '.join(str(exc).split())[:200]});"
                           f" check --address (ray status on the head node prints it)") from None
    try:
        yield address is None
    finally:
        ray.shutdown()
