"""A pool of Ray actors that outlives their deaths, for work spread over a cluster.

    pool = RetryingPool(ray, WorkerClass, size, call)   # call(actor, job) -> ObjectRef
    pool.run(jobs, done, died)   # jobs: a deque; done(result); died(job, reason) may requeue

Each actor runs one job at a time. When a job's worker dies (its process killed or crashed,
its node lost, or the result lost with the node) `died(job, reason)` decides what becomes of
the job (put it back in `jobs`, or give it up), and every actor not known to be alive is asked
again (`ready()`, which the worker class must have): the live ones come back, each dead one is
replaced by a new actor, used once it has started. Ray's own actor restarts are not used: a
restarted actor waits for a free CPU, and after a lost node none frees up while the other
actors hold theirs, so the work would wait for ever.

The pool gives up with NoWorkers when no actor is left and none starts within START_WAIT_S,
or when workers keep dying with no job done between the deaths (a model that crashes every
process that loads it). Every actor is killed when `run` returns or raises.
"""

from __future__ import annotations

import re
from collections import deque

from shotlab.core.errors import ShotlabError

START_WAIT_S = 120  # with no actor left (or none yet), how long one may take to be placed


class NoWorkers(ShotlabError):
    """No actor is left to run the jobs still queued."""


def reason(exc: BaseException) -> str:
    """One line for a worker's death: the exception's name, its last line (for a failed start,
    the worker's own error) and its first, in that order so a cut keeps what matters."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Ray colours its messages
    lines = [line.strip() for line in plain.splitlines() if line.strip()]
    text = " ... ".join(dict.fromkeys([lines[-1], lines[0]])) if lines else ""
    return f"{type(exc).__name__}: {text}"[:300]


def died_errors() -> tuple:
    """Ray's exceptions for a task whose worker process, node or result went away (not the
    task's own error, which is a bug and is raised as it is)."""
    import ray

    return (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError)


class RetryingPool:
    def __init__(self, ray, worker_class, size: int, call):
        self.ray, self.call = ray, call
        self.worker = ray.remote(num_cpus=1)(worker_class)
        self.starting, self.idle, self.running, self.actors = {}, [], {}, []
        self.deaths, self.limit, self.started_once, self.last = 0, 2 * size + 8, False, ""
        for _ in range(size):
            self.start()

    def start(self) -> None:
        actor = self.worker.remote()
        self.actors.append(actor)
        self.check(actor)

    def check(self, actor) -> None:
        """Use `actor` once its `ready()` answers."""
        self.starting[actor.ready.remote()] = actor

    def run(self, jobs: deque, done, died) -> None:
        try:
            while jobs or self.running:
                while self.idle and jobs:
                    actor, job = self.idle.pop(), jobs.popleft()
                    self.running[self.call(actor, job)] = (actor, job)
                ref = self.next_ready()
                if ref in self.starting:
                    self.started(ref)
                else:
                    self.finished(ref, done, died)
        finally:
            for actor in self.actors:  # every one started, dead or alive: their CPUs back
                self.ray.kill(actor)

    def next_ready(self):
        """The next job or actor start to finish; NoWorkers when no actor is left (or none has
        started yet) and none starts within START_WAIT_S."""
        timeout = None if self.running else START_WAIT_S
        ready, _ = self.ray.wait([*self.running, *self.starting], num_returns=1,
                                 timeout=timeout)
        if ready:
            return ready[0]
        if self.started_once:
            raise NoWorkers(f"no Ray worker is left and none could start within "
                            f"{START_WAIT_S} s (last: {self.last}); has the cluster lost its CPUs?")
        raise NoWorkers(f"no Ray worker started within {START_WAIT_S} s; does the cluster have "
                        f"a free CPU (`ray status`)?")

    def started(self, ref) -> None:
        actor = self.starting.pop(ref)
        try:
            self.ray.get(ref)
        except died_errors() as exc:
            self.death(exc)
            self.start()  # in its place
            return
        self.started_once = True
        self.idle.append(actor)

    def finished(self, ref, done, died) -> None:
        actor, job = self.running.pop(ref)
        try:
            result = self.ray.get(ref)
        except died_errors() as exc:
            self.death(exc)
            for other in [actor, *self.idle]:  # a lost node takes its idle actors with it
                self.check(other)
            self.idle.clear()
            died(job, self.last)
            return
        self.deaths = 0
        self.idle.append(actor)
        done(result)

    def death(self, exc: BaseException) -> None:
        self.deaths, self.last = self.deaths + 1, reason(exc)
        if self.deaths >= self.limit:
            raise NoWorkers(f"Ray workers died {self.deaths} times with no job done between "
                            f"(last: {self.last})")
