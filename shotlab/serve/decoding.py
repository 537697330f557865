"""The service's decode budget: how many bodies are decoded at once, and how many pixels one
request may ask for.

    pool = DecodePool(slots=4)                     # at most 4 decodes at once, server-wide
    decoded = await pool.run(kind.decode, ...)     # waits for a slot; never more threads
    pool.in_flight, pool.peak                      # what /metrics shows

A body is small on the wire and large once decoded: a 1-bit PNG of 9400 x 9400 is 10.8 KB and
about 0.5 GB decoded, under the per-image pixel limit. Every item of every request used to be
decoded at once (up to 40 threads, anyio's default), so one 87 KB request of eight such images
took 4.2 GB. Decoding on a pool of its own, of `slots` threads, bounds the memory in flight by
the pool (slots x the largest image allowed), not by what clients send; a per-request pixel
budget, read from the images' headers before any is decoded, bounds what one request can ask.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor


def default_decode_slots() -> int:
    """One decode per core this process may run on: decoding is CPU-bound (PIL and FFmpeg
    release the GIL), so more decodes at once only add memory, not throughput."""
    from shotlab.core.cpus import usable_cpus

    return usable_cpus()


class DecodePool:
    """`slots` threads that decode; a decode waits (off the event loop) for a free one. A
    request answered before its items were decoded (a timeout, another item refused) leaves
    its waiting decodes cancelled, never started."""

    def __init__(self, slots: int):
        self.slots = slots
        self.pool = ThreadPoolExecutor(slots, thread_name_prefix="shotlab-decode")
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()

    async def run(self, call, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.counted, call,
                                                                *args)

    def counted(self, call, *args):
        """`call(*args)`, counted while it runs (in_flight, and the peak since start)."""
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            return call(*args)
        finally:
            with self.lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
