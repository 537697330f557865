"""The micro-batcher: concurrent requests grouped into one model run.

    batcher = MicroBatcher(process, max_batch=32, max_wait_ms=5, queue_size=256)
    batcher.start()                        # inside the running event loop
    with batcher.arriving():               # a request that is decoding its body
        array = ...
    result = await batcher.submit(item)    # QueueFull when the bounded queue is full

One task takes the first waiting item and gathers more up to `max_batch`; it waits (at most
`max_wait_ms`) only while other requests are still decoding their bodies, so a lone request is
run at once and concurrent ones share a run. `process(items) -> results` runs on one worker
thread (one ONNX Runtime session, one batch at a time); while it runs, new requests queue.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Item:
    decoded: object  # serve.requests.Decoded: the rows the model runs for this request item
    kind: object  # serve.requests.RequestKind: how its rows' scores become its decision
    sha256: str
    key: str | None  # the cache key, None with the cache off
    future: asyncio.Future = field(default=None, repr=False)


class MicroBatcher:
    def __init__(self, process, *, max_batch: int, max_wait_ms: float, queue_size: int,
                 on_batch=None):
        self.process = process
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self.on_batch = on_batch or (lambda size: None)
        self.waiting: list[Item] = []
        self.decoding = 0  # requests between arrival and submit
        self.changed = None  # asyncio.Event, made in start() on the server's loop
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shotlab-model")
        self.task = None

    def start(self) -> None:
        self.changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    def depth(self) -> int:
        return len(self.waiting)

    def room(self) -> int:
        return self.queue_size - len(self.waiting)

    @contextmanager
    def arriving(self):
        self.decoding += 1
        try:
            yield
        finally:
            self.decoding -= 1
            self.changed.set()

    def submit_nowait(self, items: list[Item]) -> list[asyncio.Future]:
        """Queue `items` together, or none of them: asyncio.QueueFull when there is no room."""
        if len(items) > self.room():
            raise asyncio.QueueFull
        loop = asyncio.get_running_loop()
        for item in items:
            item.future = loop.create_future()
            self.waiting.append(item)
        self.changed.set()
        return [item.future for item in items]

    async def call(self, work, *args):
        """`work(*args)` on the model thread (after the batch running now): the warm-up."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, work, *args)

    async def run(self) -> None:
        while True:
            batch = await self.gather()
            batch = [item for item in batch if not item.future.done()]  # timed out meanwhile
            if not batch:
                continue
            self.on_batch(len(batch))
            try:
                results = await self.call(self.process, batch)
            except Exception as exc:  # the requests answer 500 with it; the loop goes on
                results = [exc] * len(batch)
            for item, result in zip(batch, results):
                if item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

    async def gather(self) -> list[Item]:
        while not self.waiting:
            self.changed.clear()
            await self.changed.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(self.waiting) < self.max_batch and self.decoding and loop.time() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
            except TimeoutError:
                break
        batch, self.waiting = self.waiting[:self.max_batch], self.waiting[self.max_batch:]
        return batch
