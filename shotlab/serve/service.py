"""The service behind the HTTP routes: options, the request path and its refusals.

    service = Service(ServeOptions(bundle="runs/.../bundle"))
    results = await service.decide([body bytes, ...])   # a record or a Refusal per item

A request's bytes are hashed (the cache key), decoded and preprocessed by its request kind
(`serve/requests.py`: an image or a clip for an image bundle, a comment for a text bundle, a
post for an image+text bundle; a new kind is a table entry, not a new server) on a worker
thread, queued for the micro-batcher, run, decided and stored; then answered. Decoding is
budgeted (serve/decoding.py): at most --decode-slots bodies at once across the server, at most
--max-request-pixels promised by one request's headers, and a clip stops decoding at the
request's deadline (--timeout-ms from its arrival).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shotlab.core.errors import BadImageError, InputError
from shotlab.serve.batcher import Item, MicroBatcher

API_KEY_ENV = "SHOTLAB_API_KEY"
# The one line a request gets (503) while the MongoDB decision store does not answer.
STORE_DOWN = ("the decision store (MongoDB) is not answering: nothing was decided or stored; "
              "retry when it is back")
log = logging.getLogger("uvicorn.error")  # printed with the server's own lines


@dataclass(frozen=True)
class ServeOptions:
    bundle: Path
    store: Path  # folder for decisions.sqlite and explanations.sqlite
    host: str = "127.0.0.1"  # loopback: exposing the service is the operator's explicit choice
    port: int = 8080
    # 32: predict's batch; on CPU a larger batch adds latency without adding throughput.
    max_batch: int = 32
    # 5 ms: a third of MLPerf's 15 ms p99 server budget; the batcher waits only while other
    # requests are still decoding, so a lone request never waits.
    max_wait_ms: float = 5.0
    # 256 waiting items: about a second of work at a few hundred images/s on two cores; past
    # that a client is better told to retry (429) than kept waiting into its own timeout.
    queue_size: int = 256
    timeout_ms: float = 10_000  # a request still waiting after this gets 503
    max_body_bytes: int = 20 * 1024 * 1024  # a 20 MB photo is large; a bomb is larger
    max_items: int = 64  # items in one /v1/moderate/batch request (at most queue_size)
    max_pixels: int | None = None  # None: core.images' default pixel bomb limit
    # Pixels one request's images may promise together (read from their headers before any is
    # decoded): 500 Mpx is about 40 12-Mpx phone photos, or 5 images at the per-image limit.
    # It bounds one request's decoding work; decode_slots bounds the memory in flight.
    max_request_pixels: int = 500_000_000
    max_clip_frames: int | None = None  # None: core.clips' default (18,000)
    decode_slots: int | None = None  # bodies decoded at once, server-wide; None: one per core
    cache: bool = True
    explain: bool = True
    runtime: str = "onnx"  # which of the bundle's models runs (runtime.runners.RUNNERS)
    threads: int | None = None  # ONNX Runtime intra-op threads; None: every core
    # Where decisions go: None, SQLite in `store`; a MongoDB URI, that server (serve/mongo_store)
    database_uri: str | None = field(default=None, repr=False)  # may carry a password
    api_key: str | None = field(default=None, repr=False)  # never printed or logged
    # Instead of the key, where options travel to other processes (Ray keeps a deployment's
    # arguments in its control store): its sha256, which is what requests are compared against.
    api_key_sha256: str | None = field(default=None, repr=False)
    access_log: bool = False
    # Public key files the bundle must be signed by (runtime.signing); None: $SHOTLAB_TRUSTED_KEYS
    trusted_keys: tuple[str, ...] | None = None

    def key_digest(self) -> str | None:
        return self.api_key_sha256 or (key_sha256(self.api_key) if self.api_key else None)

    def without_key(self) -> "ServeOptions":
        """These options with the API key replaced by its digest."""
        from dataclasses import replace

        return replace(self, api_key=None, api_key_sha256=self.key_digest())


class Refusal(Exception):
    """A request answered with an error status and a one-line reason."""

    def __init__(self, status: int, reason: str, message: str, headers=None):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.headers = headers or {}


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def read_api_key(path: Path | None) -> str | None:
    """The key from `path` (its first line) or $SHOTLAB_API_KEY; None when neither is set."""
    if path is None:
        value = os.environ.get(API_KEY_ENV)
        if value is not None and value and not value.strip():
            raise InputError(f"${API_KEY_ENV} is blank: it would switch authentication off in "
                             f"silence; set it to the key, or unset it")
        return sendable_key((value or "").strip(), f"${API_KEY_ENV}") or None
    try:
        key = next(iter(Path(path).read_text().splitlines()), "").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--api-key-file {path}: cannot be read ({exc}); give a text file "
                         f"holding the key on one line") from None
    if not key:
        raise InputError(f"--api-key-file {path}: its first line is empty; put the key on "
                         f"the first line")
    return sendable_key(key, f"--api-key-file {path}")


def sendable_key(key: str, source: str) -> str:
    """`key`, if a client can send it: HTTP headers are read as Latin-1 (and most clients
    refuse to send anything but ASCII), so a key with other characters never matches and
    would lock every client out."""
    if key and not (key.isascii() and key.isprintable()):
        raise InputError(f"{source}: the key holds characters other than printable ASCII, "
                         f"which no client can send in an Authorization header; use a key "
                         f"like `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return key


def open_store(options: ServeOptions):
    """The decision store the options name: MongoDB at `database_uri`, else SQLite."""
    if options.database_uri:
        from shotlab.serve.mongo_store import MongoDecisionStore

        return MongoDecisionStore(options.database_uri)
    from shotlab.serve.store import DECISIONS_FILE, DecisionStore

    return DecisionStore(options.store / DECISIONS_FILE)


def unless_store_lost(call, lost_value):
    """`call()`, or `lost_value` when it fails because the database stopped answering (any
    other error is raised)."""
    from shotlab.core.database import lost

    try:
        return call()
    except Exception as exc:
        if lost(exc) is None:
            raise
        return lost_value


def article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def check_explanation_store(path, readonly: bool) -> None:
    """Refuse to start on an explanation store that cannot be opened (a damaged or foreign
    file): every flag's explanation would fail, and reads of stored ones answer 500. Opened
    read-only where this server only reads it (--no-explain)."""
    from shotlab.explain.store import ExplanationStore

    with ExplanationStore(path, readonly=readonly):
        pass


class Service:
    """`batcher`: the class that groups requests into model runs (MicroBatcher in the embedded
    server, serve.ray_serve.ServeBatcher on Ray Serve)."""

    def __init__(self, options: ServeOptions, batcher=MicroBatcher):
        from shotlab.runtime.bundle import load_bundle
        from shotlab.runtime.runners import check_runtime
        from shotlab.serve.engine import Engine
        from shotlab.serve.requests import request_kinds
        from shotlab.serve.explainer import ExplanationWorker
        from shotlab.serve.decoding import DecodePool, default_decode_slots
        from shotlab.serve.metrics import Metrics
        from shotlab.serve.store import EXPLANATIONS_FILE

        self.options = options
        self.bundle = load_bundle(options.bundle, trusted_keys=options.trusted_keys)
        check_runtime(self.bundle, options.runtime)
        self.kinds = request_kinds(self.bundle)  # what it reads, first the default
        if not self.kinds:
            raise InputError(f"{options.bundle}: input kind '{self.bundle.input_kind}' cannot "
                             f"be served yet (no request kind reads it); use `shotlab predict`")
        self.store = open_store(options)
        self.explanations_path = options.store / EXPLANATIONS_FILE
        if options.explain or self.explanations_path.exists():
            check_explanation_store(self.explanations_path, readonly=not options.explain)
        self.worker = (ExplanationWorker(self.bundle, self.store, self.explanations_path)
                       if options.explain else None)
        self.batcher = batcher(self.process, max_batch=options.max_batch,
                               max_wait_ms=options.max_wait_ms, queue_size=options.queue_size)
        self.decoders = DecodePool(options.decode_slots or default_decode_slots())
        self.metrics = Metrics(self.batcher.depth, self.pending_or_nan, self.decoders)
        if self.worker:
            self.worker.on_failed = self.metrics.explanations_failed.inc
        self.batcher.on_batch = self.metrics.batch_size.observe
        self.engine = Engine(self.bundle, self.store, runtime=options.runtime,
                             threads=options.threads, cache=options.cache,
                             explain=options.explain, metrics=self.metrics)
        # cache key -> the batcher future of the item being decided for it now (`deciding`),
        # and id(future) -> requests of others waiting on it (`answers`): never cancelled then
        self.in_flight: dict[str, asyncio.Future] = {}
        self.followers: Counter = Counter()
        self.ready = False

    def pending_or_nan(self) -> float:
        """The store's queued tier-1 jobs; NaN while the store does not answer (so /metrics
        still answers, with the other figures)."""
        return unless_store_lost(self.store.pending, float("nan"))

    def store_down(self) -> str | None:
        """Why the decision store does not answer, or None (a store that can be pinged is
        asked: MongoDB; SQLite is a file beside the process)."""
        def answers() -> None:
            getattr(self.store, "ping", lambda: None)()

        return unless_store_lost(answers, STORE_DOWN)

    # lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.batcher.start()
        if self.worker:
            self.worker.check_checkpoint()  # a WARNING now, not a silent failure per flag
            self.worker.start()  # jobs a stop left taken or failed queued again, before serving
        self.warming = asyncio.get_running_loop().create_task(self.warm_up())

    async def warm_up(self) -> None:
        await self.batcher.call(self.engine.warm_up)
        self.ready = True
        log.info("shotlab serve: ready (%s, %s)", self.bundle.origin, self.options.runtime)

    async def stop(self) -> None:
        self.warming.cancel()
        await self.batcher.stop()
        if self.worker:
            self.worker.stop()
        self.decoders.close()
        self.store.close()

    def process(self, items) -> list[dict]:
        saved = self.engine.process(items)
        if self.worker and self.options.explain:
            self.worker.wake()
        return saved

    # the request path -----------------------------------------------------------------------------
    def kind_for(self, media_type: str, filename: str | None = None):
        """The request kind a body is (serve/requests.py), None when this server reads none."""
        from shotlab.serve.requests import kind_for

        return kind_for(self.kinds, media_type, filename)

    def media_types(self) -> str:
        """The raw-body Content-Types, as a client writes them (a prefix `image/` as image/*)."""
        return ", ".join(sorted(t + "*" * t.endswith("/") for k in self.kinds
                                for t in k.media_types))

    async def decide(self, bodies: list, timeout_s: float) -> list:
        """Per (body bytes, request kind): (record, explanation status) or the Refusal that
        answers it (bad input: 422); the status is None for a fresh decision, the stored one
        for a cached decision. Images promising more than --max-request-pixels together (413),
        a full queue (429) or no decision `timeout_s` after arrival, decoding included (503),
        refuse the whole request."""
        from starlette.concurrency import run_in_threadpool

        deadline = time.monotonic() + timeout_s
        await run_in_threadpool(self.check_pixels, bodies)
        prepared = await all_or_none([self.prepare(body, kind, run_in_threadpool, deadline)
                                      for body, kind in bodies])
        fresh = [p for p in prepared if isinstance(p, Item)]
        if fresh and time.monotonic() >= deadline:  # decoded too late: no model run for a 503
            raise self.timed_out()
        mine = self.leading(fresh)
        try:
            futures = self.batcher.submit_nowait(mine)
        except asyncio.QueueFull:
            depth, size = self.batcher.depth(), self.options.queue_size
            raise Refusal(429, "queue_full", f"the queue is full: {depth} of its {size} places "
                          f"taken, and this request needs {len(mine)}; retry after 1 s",
                          {"Retry-After": "1"}) from None
        ours = {id(item): future for item, future in zip(mine, futures)}
        with self.deciding(mine, futures):
            found = iter(await self.answers(fresh, ours, deadline))
        return [next(found) if isinstance(p, Item) else p for p in prepared]

    def leading(self, items: list) -> list:
        """The items this request sends to the model: not those whose bytes (cache key) are
        being decided now for another request or earlier in this one. Those wait for that
        decision and are answered from it, as cached: six identical uploads at once ran the
        model six times, each answered `cached: false` under one decision id, and were counted
        neither as decisions nor as cache hits."""
        mine, seen = [], set()
        for item in items:
            if item.key is None or (item.key not in self.in_flight and item.key not in seen):
                mine.append(item)
                seen.add(item.key)
        return mine

    @contextmanager
    def deciding(self, mine: list, futures: list):
        """`mine` in flight (`in_flight`: their batcher futures) while the block runs; if it
        does not finish (a timeout, a client gone), the futures no other request waits on are
        cancelled (the batcher then skips them); the others are decided for those requests."""
        for item, future in zip(mine, futures):
            if item.key is not None:
                self.in_flight[item.key] = future
        try:
            yield
        except BaseException:
            for future in futures:
                if not self.followers[id(future)]:
                    future.cancel()
            raise
        finally:
            for item, future in zip(mine, futures):
                if item.key is not None and self.in_flight.get(item.key) is future:
                    del self.in_flight[item.key]

    async def answers(self, fresh: list, ours: dict, deadline: float) -> list:
        """(record, explanation status) per fresh item: None for a decision made for this
        request (`ours`: item id -> its batcher future), the fresh decision's status for one
        made for another (`leading`), which answers it as cached."""
        futures = [ours.get(id(item)) or self.in_flight[item.key] for item in fresh]
        others = [f for f in futures if f not in ours.values()]  # decided for another request
        self.followers.update(map(id, others))
        try:
            records = await asyncio.wait_for(asyncio.gather(*map(asyncio.shield, futures)),
                                             max(deadline - time.monotonic(), 0))
        except (TimeoutError, asyncio.CancelledError):
            if asyncio.current_task().cancelling():  # this request's own end: not a timeout
                raise
            raise self.timed_out() from None
        finally:
            self.followers.subtract(map(id, others))
            self.followers += Counter()  # drop the zeros
        followers = len(fresh) - len(ours)
        if followers:
            self.metrics.cache_hits.inc(followers)
        return [(record, None) if id(item) in ours else
                (record, self.explanation_status(record, None))
                for item, record in zip(fresh, records)]

    def timed_out(self) -> Refusal:
        return Refusal(503, "timeout", f"no decision within {self.options.timeout_ms:g} ms "
                       f"(--timeout-ms); the server is overloaded, retry later",
                       {"Retry-After": "1"})

    def check_pixels(self, bodies: list) -> None:
        """413 when a request's images promise more pixels together than --max-request-pixels,
        read from their headers before any is decoded (a 10 KB PNG can promise 88 Mpx)."""
        limit = self.options.max_request_pixels
        pixels = sum(kind.pixels(body) for body, kind in bodies if body)
        if pixels > limit:
            raise Refusal(413, "too_large", f"the images in this request have {pixels:,} pixels "
                          f"together, over the limit of {limit:,} a request "
                          f"(--max-request-pixels); send fewer or smaller images a request")

    async def prepare(self, body: bytes, kind, in_thread, deadline: float):
        """An Item for the batcher, (record, status) from the cache, or a 422 Refusal; decoded
        on the decode pool (at most --decode-slots at once); a 503 Refusal is raised when the
        request's deadline passes first."""
        from shotlab.core.clips import DeadlinePassed

        with self.batcher.arriving():
            if not body:
                return Refusal(422, "bad_input", f"empty body (0 bytes): send the {kind.name}'s "
                                                 f"bytes")
            kind = await in_thread(self.animated_as_clip, kind, body)  # opens the image
            sha256 = kind.digest(body)
            key = self.engine.cache_key(sha256, kind.name)
            if key and (found := await in_thread(self.cached_answer, key)):
                self.metrics.cache_hits.inc()
                return found
            try:
                decoded = await self.decoders.run(self.decode, kind, body, deadline)
            except DeadlinePassed:
                raise self.timed_out() from None
            except BadImageError as exc:
                return Refusal(422, "bad_input", f"{exc.reason}: send {article(kind.name)} this "
                               f"server can decode" + other_kind_hint(kind.name, self.kinds))
            except InputError as exc:  # a comment or a caption: the reason predict gives
                return Refusal(422, "bad_input", str(exc))
            self.metrics.frames_decoded.inc(decoded.frames_decoded)
            return Item(decoded, kind, sha256, key)

    def cached_answer(self, key: str) -> tuple[dict, str] | None:
        """The stored (record, explanation status) under `key`; None when there is none, or
        when it is to be decided again to queue its explanation (`unexplained`)."""
        found = self.store.cached(key)
        return found if found and not self.unexplained(*found) else None

    def decode(self, kind, body, deadline: float):
        """`kind.decode` on a decode thread, unless the request's deadline passed while it
        waited for the thread (a client told 503 costs no decoding)."""
        from shotlab.core.clips import DeadlinePassed

        if time.monotonic() >= deadline:
            raise DeadlinePassed("request", 0)
        self.metrics.decodes.inc()
        try:
            return kind.decode(body, self.bundle, self.options, deadline)
        except DeadlinePassed as exc:
            self.metrics.frames_decoded.inc(exc.decoded)
            raise

    def unexplained(self, record: dict, status: str) -> bool:
        """Whether a cached decision that needs an explanation has none coming: never queued
        (decided while the server ran with --no-explain), or failed with attempts left
        (serve/store.py, MAX_ATTEMPTS) while the worker can explain (`retry_failed`: not while
        the checkpoint is unusable, when each resend would be decoded, run and queued only to
        fail again). Then it is decided again, which queues its explanation under the stored
        decision (`store.save`), and answered as that decision."""
        from shotlab.export.predict import needs_attention

        if not (self.options.explain and needs_attention(record)):
            return False
        if status == "none":
            return True
        return (status == "failed" and self.worker.retry_failed
                and self.store.retryable(record["decision_id"]))

    def animated_as_clip(self, kind, body: bytes):
        """The clip entry for an animated image (GIF, PNG) sent as an image, where this bundle
        serves clips: every frame is scored, so a first frame cannot stand for the rest."""
        from shotlab.core.images import is_animated

        clip = next((k for k in self.kinds if k.name == "clip"), None)
        return clip if kind.name == "image" and clip and is_animated(body) else kind

    def explanation_status(self, record: dict, stored: str | None) -> str:
        """`stored` for a cached decision; for a fresh one, pending when it was queued."""
        from shotlab.export.predict import needs_attention

        if stored is not None:
            return stored
        return "pending" if self.options.explain and needs_attention(record) else "none"


async def all_or_none(coroutines: list) -> list:
    """The results of `coroutines` run together; the first to raise cancels the others (their
    decodes still waiting for a thread never start) and its exception is raised."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        raise


def other_kind_hint(name: str, kinds) -> str:
    """What to do when a clip was sent as an image: raw bytes typed image/* or
    application/octet-stream are read as an image unless the type says video."""
    served = {k.name for k in kinds}
    if name == "image" and "clip" in served:
        return " (a clip: send it as video/*, or as a file part named with its suffix, e.g. .mp4)"
    return ""
