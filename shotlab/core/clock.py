"""The one spelling of a timestamp in what shotlab writes: UTC, ISO 8601, to the second."""

from __future__ import annotations

import time


def utc_now(at: float | None = None) -> str:
    """e.g. "2026-11-30T06:45:00Z"; `at`: another moment, in seconds since the epoch."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
