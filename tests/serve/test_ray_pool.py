"""core/ray_pool.RetryingPool with explain pending's retry rule (explain/ray_pending.retry), on a
real local Ray whose worker processes really die: an appeal that kills its worker every time is
given up after its runs while its batch-mates are done; workers that cannot start end the run
in one line that carries their own error."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import pytest

from tests.serve.ray_cluster import start_ray

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_address():
    yield from start_ray()


def job(*ids):
    from shotlab.explain.ray_pending import Job

    return Job("bundle", [SimpleNamespace(decision_id=i) for i in ids], {i: {} for i in ids})


def names(job) -> list[str]:
    return [a.decision_id for a in job.appeals]


def run(worker_class, jobs: deque, size: int = 2):
    import ray

    from shotlab.core.ray_pool import RetryingPool
    from shotlab.explain.ray_pending import retry

    done, lost = [], []
    pool = RetryingPool(ray, worker_class, size, lambda actor, j: actor.run.remote(names(j)))
    pool.run(jobs, done.append, lambda j, why: retry(j, why, jobs, lambda g, r: lost.append(
        (names(g), r))))
    return sorted(done), lost


def test_an_appeal_that_kills_its_worker_every_time_is_given_up_alone(ray_address):
    class Poisoned:  # defined here so Ray ships it by value
        def ready(self):
            return True

        def run(self, ids):
            import os

            if "poison" in ids:
                os._exit(1)  # the worker process dies, as a crash in a decoder would
            return ids

    done, lost = run(Poisoned, deque([job("a", "poison"), job("c")]))
    assert done == [["a"], ["c"]]  # its batch-mate is done alone
    assert [ids for ids, _ in lost] == [["poison"]]
    assert lost[0][1].startswith("the Ray worker explaining it stopped in each of its 4 runs "
                                 "(ActorDiedError: ")


def test_workers_that_cannot_start_end_the_run_with_their_own_error(ray_address):
    from shotlab.core.ray_pool import NoWorkers

    class Broken:
        def __init__(self):
            raise ImportError("libtorch_cpu.so: cannot open shared object file")

        def ready(self):
            return True

        def run(self, ids):
            return ids

    with pytest.raises(NoWorkers, match="died 10 times with no job done between .*libtorch_cpu") \
            as caught:
        run(Broken, deque([job("a")]), size=1)
    assert "\x1b" not in str(caught.value)  # Ray's colour codes are not passed on
