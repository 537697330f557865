"""A real local Ray for the `--ray` tests: started in the test process on 127.0.0.1, and the
`shotlab ... --ray --address ADDR` subprocesses join it (the path of an existing cluster)."""

from __future__ import annotations

import importlib.util
import os

import pytest

RAY_CPUS = 2  # CI has two cores


def start_ray():
    """ray.init on loopback with two CPUs and no dashboard; yields the GCS address."""
    if importlib.util.find_spec("ray") is None:  # not importorskip: ray must not be imported yet
        pytest.skip("the --ray paths need Ray (pip install 'ray[serve]==2.60.0')")
    from shotlab.core.cluster import ray_module

    # Ray Serve gives its HTTP proxy 5 s to come up, then kills it; a worker process needs
    # longer than that to start on a loaded 2-core machine. The cluster's processes inherit this.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "30")
    ray = ray_module(loopback=True)  # sets Ray's loopback switch, then imports it
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address  # nothing listens off the machine
        yield address
    finally:
        ray.shutdown()
