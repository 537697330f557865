"""How many CPUs this process may run on: its affinity where the OS has one (a container or
`taskset` limits it below the machine's count), else the machine's."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
