"""Holding off signals while a stop must finish (an interrupted stop would leave a server up)."""

from __future__ import annotations

import contextlib
import signal
import threading

# Ctrl-C, `kill` or a service manager's stop, a closed terminal
SHUTDOWN_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def available(*names: str) -> list[signal.Signals]:
    return [getattr(signal, n) for n in names if hasattr(signal, n)]  # no SIGHUP on Windows


@contextlib.contextmanager
def signals_ignored(*names: str):
    """Ignore the named signals (default: SHUTDOWN_SIGNALS) inside the block, then restore their
    handlers. Only the main thread may set handlers: elsewhere the block runs unguarded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ignored = {sig: signal.signal(sig, signal.SIG_IGN)
               for sig in available(*(names or SHUTDOWN_SIGNALS))}
    try:
        yield
    finally:
        for sig, handler in ignored.items():
            signal.signal(sig, handler)
