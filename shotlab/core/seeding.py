"""The one place shotlab touches random generators.

    seed_everything(seed)        python, numpy and torch's global generators: a training run's
                                 explicit choice, made once at its start
    with seeded_torch(0): ...    a reproducible draw (a random init) that leaves the caller's
                                 torch generator as it was
    seed_worker                  DataLoader's worker_init_fn: each worker's numpy/python from torch

Library code never calls `random.seed`, `np.random.seed` or `torch.manual_seed` anywhere else:
a caller's own generators are not ours to reset.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def seeded_torch(seed: int):
    """torch's generators seeded with `seed` inside the block, restored after it."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def seed_worker(worker_id: int) -> None:
    import torch

    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)
