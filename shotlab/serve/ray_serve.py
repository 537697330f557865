"""`shotlab serve BUNDLE --ray`: the same FastAPI app on Ray Serve, one per replica.

    run_on_ray(options, address=None, replicas=2)   # until SIGINT / SIGTERM

Each replica is a Ray Serve deployment whose ASGI app is `serve.app.create_app(options)`, built
inside the replica (`@serve.ingress` with `__serve_build_asgi_app__`): the routes, refusals,
store writes and explanation worker are the embedded server's, unchanged. What differs:

- the micro-batch is Ray's `@serve.batch` (ServeBatcher below) instead of serve.batcher's;
- each replica runs ONNX Runtime with one thread (`--threads` overrides) and reserves one CPU;
- Ray's HTTP proxy listens on --host:--port and spreads requests over the replicas.

Decisions from every replica go into one store: SQLite in WAL in --store for replicas on one
machine, MongoDB (`--decision-store mongodb`) for replicas on several.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from shotlab.core.errors import ShotlabError

APP_NAME = "shotlab"
DEPLOYMENT = "ShotlabService"
# Memory, measured 2026-12-01 with lite0 on a local Ray (resident set sizes): a replica at rest
# 290 MB; importing torch and one Grad-CAM (the tier-1 explanation of a flag) about 550 more;
# Ray's own processes (GCS, raylet, agents, Serve's controller and proxy) about 820 in all.
REPLICA_MB = 300
EXPLAIN_MB = 550
RAY_MB = 1024
MODEL_COPIES = 2  # the model file's bytes held again once loaded (the graph and its weights)
RAY_KILL_AT = 0.95  # Ray's memory monitor kills workers past this share of the machine's memory
log = logging.getLogger("shotlab.serve")


class ServeBatcher:
    """serve.batcher.MicroBatcher's interface on Ray Serve's `@serve.batch`: a replica's
    concurrent requests share one model run of up to `max_batch` items, gathered for at most
    `max_wait_ms` (Ray waits that long for a batch to fill; the embedded batcher waits only
    while requests are still decoding). The queue is bounded the same way: 429 when full."""

    def __init__(self, process, *, max_batch: int, max_wait_ms: float, queue_size: int,
                 on_batch=None):
        from ray import serve

        self.process = process
        self.queue_size = queue_size
        self.on_batch = on_batch or (lambda size: None)
        self.waiting = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shotlab-model")
        self.run_batch = serve.batch(max_batch_size=max_batch,
                                     batch_wait_timeout_s=max_wait_ms / 1000)(self.run)

    async def run(self, items: list) -> list:
        self.on_batch(len(items))
        return await self.call(self.process, items)

    def start(self) -> None:
        pass  # Ray's batch queue starts with the first request

    async def stop(self) -> None:
        self.executor.shutdown(wait=True)

    def depth(self) -> int:
        return self.waiting

    @contextmanager
    def arriving(self):
        yield  # Ray's batch waits by time alone

    def submit_nowait(self, items: list) -> list:
        if len(items) > self.queue_size - self.waiting:
            raise asyncio.QueueFull
        self.waiting += len(items)
        tasks = [asyncio.ensure_future(self.run_batch(item)) for item in items]
        for task in tasks:
            task.add_done_callback(self.done)
        return tasks

    def done(self, task) -> None:
        self.waiting -= 1

    async def call(self, work, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, work, *args)


def deployment(options, replicas: int):
    """The Ray Serve application: `replicas` copies of the app, one CPU each."""
    from ray import serve

    @serve.ingress()
    class ShotlabService:
        def __init__(self, options):
            self.options = options

        def __serve_build_asgi_app__(self):
            from shotlab.serve.app import create_app

            return create_app(self.options, batcher=ServeBatcher)

        def __del__(self):
            """Ray Serve calls this on a graceful stop, then kills the replica: its exit
            handlers never run, and each replica left its unpacked copy of a zipped bundle."""
            from shotlab.runtime.bundle import remove_unpacked

            remove_unpacked()

    # Ray's default of 5 requests in flight per replica would cap the micro-batch at 5; the
    # service's own bounded queue (429) is the limit.
    ongoing = max(options.queue_size, options.max_batch)
    return serve.deployment(ShotlabService, name=DEPLOYMENT, num_replicas=replicas,
                            max_ongoing_requests=ongoing,
                            ray_actor_options={"num_cpus": 1}).bind(options.without_key())


def run_on_ray(options, *, address: str | None, replicas: int) -> None:
    """Deploy on a local Ray (started here, on loopback) or the cluster at `address`; serve
    until SIGINT or SIGTERM, then remove the application (and stop the local Ray). A signal
    while the replicas are still starting (one that can never be placed waits for ever) and a
    failed start remove it too: replicas already up must not go on answering."""
    import click

    from shotlab.core.cluster import ray_session
    from shotlab.export.runtime_choice import warn_regression
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.runners import check_runtime

    # A bad bundle or a model it lacks: one line here, not a failed deployment there.
    bundle = load_bundle(options.bundle, trusted_keys=options.trusted_keys)
    check_runtime(bundle, options.runtime)
    warn_regression(bundle, options.runtime)
    if address in (None, "local"):
        check_memory(replicas, bundle.model_file(options.runtime).stat().st_size, options.explain)
    with ray_session(address, num_cpus=replicas_cpus(replicas)) as started:
        from ray import serve

        where = "a local Ray on 127.0.0.1" if started else f"the Ray cluster at {address}"
        serve.start(http_options={"host": options.host, "port": options.port})
        signal.signal(signal.SIGTERM, interrupt)  # like Ctrl+C, until the replicas answer
        try:
            click.echo(f"shotlab serve: starting {replicas} replicas on {where}"
                       f"{cpu_shortfall(replicas)}", err=True)
            deploy(serve, options, replicas)
            click.echo(f"shotlab serve: Ray Serve answering on http://{options.host}:"
                       f"{options.port} ({replicas} replicas on {where}); Ctrl+C stops it",
                       err=True)
            wait_for_signal()
        except KeyboardInterrupt:
            pass
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the
                signal.signal(number, signal.SIG_IGN)       # clean-up short (the app would stay)
            serve.delete(APP_NAME)
            if started:
                serve.shutdown()


def interrupt(*_) -> None:
    raise KeyboardInterrupt


def deploy(serve, options, replicas: int) -> None:
    try:
        serve.run(deployment(options, replicas), name=APP_NAME, route_prefix="/", blocking=False)
    except RuntimeError as exc:  # a replica failed to start: Ray gives its traceback
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise ShotlabError(f"Ray Serve could not start the replicas ({first[:200]}); their "
                           f"logs are under RAY_TEMP/session_latest/logs/serve "
                           f"(/tmp/ray by default)") from None


def cpu_shortfall(replicas: int) -> str:
    """'' when the cluster's CPUs hold every replica (one each), else what the wait is for."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 0))
    if replicas <= cpus:
        return ""
    return (f" (the cluster has {cpus} CPUs and each replica reserves one: {replicas - cpus} "
            f"will wait until CPUs are added or freed; Ctrl+C gives up)")


def check_memory(replicas: int, model_bytes: int, explain: bool) -> None:
    """ShotlabError when a local Ray's replicas (a process each: REPLICA_MB, EXPLAIN_MB with
    tier-1 explanations, the model) would not fit beside Ray's own processes under the share
    of memory where Ray's memory monitor starts killing workers."""
    each = (REPLICA_MB + (EXPLAIN_MB if explain else 0)) * 2**20 + MODEL_COPIES * model_bytes
    total, available = memory()
    room = available - (1 - RAY_KILL_AT) * total - RAY_MB * 2**20
    if replicas * each <= room:
        return
    fits = max(0, int(room // each))
    raise ShotlabError(
        f"--replicas {replicas}: a local Ray would need about {replicas * each / 2**30:.1f} GiB "
        f"for them (about {each / 2**20:.0f} MiB a replica{' with explanations' if explain else ''}"
        f") and has about {max(room, 0) / 2**30:.1f} GiB to give them; "
        + (f"ask for at most {fits}, " if fits else "free memory, ")
        + ("add --no-explain, " if explain else "") + "or join a larger cluster with --address")


def memory() -> tuple[int, int]:
    """(total, available) bytes: the machine's, or its cgroup's (a container's) where smaller."""
    import psutil

    machine = psutil.virtual_memory()
    total, available = machine.total, machine.available
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return total, available
    if limit.isdigit() and int(limit) < total:
        return int(limit), min(available, int(limit) - used)
    return total, available


def replicas_cpus(replicas: int) -> int:
    """CPUs a local Ray gets: every core, and at least one per replica (each reserves one)."""
    import os

    return max(replicas, os.cpu_count() or 1)


def wait_for_signal() -> None:
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    while not stop.wait(1):  # a timed wait: the handlers run between the waits
        pass
