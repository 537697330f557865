"""Identical bytes in flight are decided once (`Service.leading`, `deciding`, `answers`), and a
request that waits on another's decision keeps it when that other request ends first.

The service's own coalescing code runs here on a real MicroBatcher; what stands in is the model
run the batcher calls (a function that takes 0.5 s), so the order of events is the test's."""

from __future__ import annotations

import asyncio
import time
import types
from collections import Counter

import pytest

from shotlab.serve.batcher import Item, MicroBatcher
from shotlab.serve.service import Refusal, Service

RUN_S = 0.5  # the model run the leader's item waits behind: well past the leader's 0.15 s


def service_around_a_batcher() -> Service:
    service = object.__new__(Service)  # the coalescing state only: no bundle, no store

    def model_run(items):
        time.sleep(RUN_S)
        return [{"decision_id": f"d-{item.key}", "flagged": []} for item in items]

    service.batcher = MicroBatcher(model_run, max_batch=8, max_wait_ms=5, queue_size=16)
    service.metrics = types.SimpleNamespace(cache_hits=Counter(), inc=None)
    service.metrics.cache_hits.inc = lambda n=1: service.metrics.cache_hits.update(hits=n)
    service.options = types.SimpleNamespace(timeout_ms=10_000, explain=False, queue_size=16)
    service.in_flight, service.followers = {}, Counter()
    return service


async def request(service: Service, timeout_s: float, key: str = "k"):
    """`Service.decide` after its items are decoded: one item of bytes `key`."""
    deadline = time.monotonic() + timeout_s
    fresh = [Item(None, None, "sha", key)]
    mine = service.leading(fresh)
    futures = service.batcher.submit_nowait(mine)
    ours = {id(item): future for item, future in zip(mine, futures)}
    with service.deciding(mine, futures):
        return await service.answers(fresh, ours, deadline)


@pytest.mark.parametrize("leader_ends", ["cancelled", "timed out"])
def test_a_request_waiting_on_anothers_decision_keeps_it_when_the_other_ends(leader_ends):
    """The first request's end (its client gone, or its own deadline) cancelled the shared
    decision, and every request waiting for the same bytes got a 503 at once, whatever time it
    had left (a review's reproduction: 503 after 11 ms of a 10 s deadline)."""
    async def scenario():
        service = service_around_a_batcher()
        service.batcher.start()
        try:
            busy = asyncio.create_task(request(service, 10, key="other"))  # the model is busy
            await asyncio.sleep(0.02)
            leader = asyncio.create_task(
                request(service, 10 if leader_ends == "cancelled" else 0.15))
            await asyncio.sleep(0)
            follower = asyncio.create_task(request(service, 10))
            await asyncio.sleep(0.01)
            if leader_ends == "cancelled":
                leader.cancel()
            outcome = await asyncio.gather(leader, return_exceptions=True)
            (answer,) = await follower
            await busy
            return service, outcome[0], answer
        finally:
            await service.batcher.stop()

    service, leader, (record, status) = asyncio.run(scenario())
    assert isinstance(leader, asyncio.CancelledError if leader_ends == "cancelled" else Refusal)
    assert record["decision_id"] == "d-k" and status == "none"  # answered from the decision
    assert service.metrics.cache_hits["hits"] == 1 and not service.followers
