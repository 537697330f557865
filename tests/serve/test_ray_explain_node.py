"""`explain pending --ray` on a real two-node Ray (ray.cluster_utils.Cluster on this machine)
that loses a node mid-batch: the batch goes to the node that is left, and the run ends with
every appeal explained once. With Ray's actor restarts instead, the lost actor waited for ever
for a CPU the surviving actor held, and the run with it."""

from __future__ import annotations

import threading
import time

import pytest

from tests.explain.test_tiers import FAST
from tests.serve.test_ray_explain import appeals, busy_workers, stored  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


@pytest.fixture
def two_nodes():
    """A head and a second node, one CPU each; yields (cluster, the second node)."""
    from shotlab.core.cluster import ray_module

    ray = ray_module(loopback=True)
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    node = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, node
    finally:
        ray.shutdown()
        cluster.shutdown()


def remove_when_busy(cluster, node, removed: list, stop: threading.Event) -> None:
    """Remove `node` as soon as one of its workers runs a batch."""
    raylet = node.all_processes["raylet"][0].process.pid
    while not stop.is_set():
        if busy_workers(raylet):
            cluster.remove_node(node)
            removed.append(raylet)
            return
        time.sleep(0.02)


def test_a_node_lost_mid_batch_leaves_its_batch_to_the_node_left(two_nodes, appeals):  # noqa: F811
    from shotlab.explain.ray_pending import process_pending_ray

    cluster, node = two_nodes
    removed, stop = [], threading.Event()
    remover = threading.Thread(target=remove_when_busy, args=(cluster, node, removed, stop))
    remover.start()
    try:
        summary = process_pending_ray(appeals, address=cluster.address, batch=1, options=FAST)
    finally:
        stop.set()
        remover.join()
    assert removed, "no batch was seen running on the second node"
    assert (summary["processed"], summary["failed"], summary["stored"]) == (4, 1, 4)
    rows = stored(appeals)
    assert sorted(rows) == [("d0", "done"), ("d1", "done"), ("d2", "done"), ("d3", "done"),
                            ("d9", "failed")]
