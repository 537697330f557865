"""Ray for `--ray`: a local Ray on loopback started for the command, or an existing cluster.

    with ray_session(address=None, num_cpus=2) as started:   # started: this command owns Ray
        ...                                                  # ray.remote, Ray Data, Ray Serve

Without an address, Ray is started inside this process on 127.0.0.1 with `num_cpus` CPUs, its
usage reporting and its dashboard off (both would try the network), and shut down at the end.
With one (`ray://` or `HOST:PORT` of a running head node, or `auto`), the command joins it and
leaves it running. Shotlab must be installed on every node, at the version the driver runs, and
the bundle and image paths must be readable there (a shared filesystem).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from shotlab.core.errors import ShotlabError

# Ray would otherwise report usage to anyscale.com at start.
RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0"}
# Ray's own switch for a single-machine Ray (its default on macOS and Windows): every server it
# starts (GCS, raylet, workers, object manager) binds and advertises 127.0.0.1 instead of the
# machine's network address. Read when ray is imported, so set before that; only for a local Ray.
LOOPBACK_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


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


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None):
    """Ray connected for the block; yields True when this process started it (then it is
    shut down afterwards), False when it joined `address` or Ray was already initialised."""
    ray = ray_module(loopback=not address)
    if ray.is_initialized():  # e.g. a test or a notebook that started Ray itself
        yield False
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray on 127.0.0.1"
        raise ShotlabError(f"could not start or join {where} ({' '.join(str(exc).split())[:200]});"
                           f" check --address (ray status on the head node prints it)") from None
    try:
        yield address is None
    finally:
        ray.shutdown()
