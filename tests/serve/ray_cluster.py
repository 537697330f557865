"""A real local Ray for the `--ray` tests: started in the test process on 127.0.0.1, and the
`shotlab ... --ray --address ADDR` subprocesses join it (the path of an existing cluster)."""

from __future__ import annotations

import importlib.util

import pytest

RAY_CPUS = 2  # CI has two cores


def start_ray():
    """ray.init on loopback with two CPUs and no dashboard; yields the GCS address."""
    if importlib.util.find_spec("ray") is None:  # not importorskip: ray must not be imported yet
        pytest.skip("the --ray paths need Ray (pip install 'ray[serve]==2.60.0')")
    from shotlab.core.cluster import ray_module

    ray = ray_module(loopback=True)  # sets Ray's loopback switch, then imports it
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address  # nothing listens off the machine
        yield address
    finally:
        ray.shutdown()
