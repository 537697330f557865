"""`--ray`'s session: a dead `--address` is named in one line instead of Ray retrying it for
minutes, and without an address a local Ray starts even where RAY_ADDRESS names a cluster."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shotlab.core.cluster import address_host, head_address, knock
from shotlab.core.errors import ShotlabError

ROOT = Path(__file__).parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_addresses_are_read_or_refused_in_one_line():
    assert head_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert head_address("[::1]:6379") == ("::1", 6379)
    assert head_address(None) is None and head_address("auto") is None
    assert head_address("ray://head:10001") is None and head_address("local") is None
    assert address_host("ray://10.0.0.5:10001") == "10.0.0.5"
    assert address_host("10.0.0.5:6379") == "10.0.0.5" and address_host("auto") is None
    with pytest.raises(ShotlabError, match="--address head: expected HOST:PORT"):
        head_address("head")


def test_a_dead_address_is_named_at_once():
    """`predict --ray --address 127.0.0.1:1` was still retrying after 150 s."""
    started = time.monotonic()
    with pytest.raises(ShotlabError, match=r"nothing answers at 127\.0\.0\.1:\d+ \(Connection "
                                           r"refused\)"):
        knock("127.0.0.1", closed_port())
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_without_an_address_a_local_ray_starts_whatever_ray_address_says():
    """RAY_ADDRESS (or a cluster another `ray start` left) made `--ray` without --address try to
    join it, and fail with Ray's 'num_cpus must not be provided'."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("needs Ray (pip install 'ray[serve]==2.60.0')")
    code = ("from shotlab.core.cluster import ray_session\n"  # it imports ray (loopback first)
            "with ray_session(num_cpus=1) as started:\n"
            "    import ray\n"
            "    print(started, ray.get_runtime_context().gcs_address)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT),
                                            "RAY_ADDRESS": f"127.0.0.1:{closed_port()}"})
    assert done.returncode == 0, done.stderr[-2000:]
    started, address = done.stdout.split()
    assert started == "True" and address.startswith("127.0.0.1:")
