"""Progress bars for long work: shown on a terminal, silent in logs unless asked for."""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(iterable=None, *, enabled: bool | None = None, **kwargs) -> tqdm:
    """A tqdm bar on stderr; `enabled=None` shows it only when stderr is a terminal."""
    return tqdm(iterable, disable=None if enabled is None else not enabled, **kwargs)
