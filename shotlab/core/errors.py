"""The errors shotlab raises for bad input and failed work.

Every message names the file, sample or value, what was expected, and the fix; the CLI prints it
in one or two lines. `exit_code` is 2 for bad usage or input, 1 for failures and 130 for Ctrl-C
(the shell's 128 + SIGINT).
"""

from __future__ import annotations


class ShotlabError(Exception):
    """Base class: a problem the user can act on, with a message that says how."""

    exit_code = 1


class InputError(ShotlabError):
    """Bad input: a path, file, option or value that cannot be used as given."""

    exit_code = 2


class BadImageError(InputError):
    """A file that cannot be decoded as an image; `reason` is a short phrase."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DatasetNotFoundError(InputError):
    def __init__(self, name: str, available: list[str]):
        listing = ", ".join(available) if available else "none yet"
        super().__init__(f"no dataset named '{name}' (datasets: {listing}); "
                         f"create it with `shotlab curate import PATH --name {name}`")


class Interrupted(ShotlabError):
    """Ctrl-C, with what the interrupted work kept and how to go on."""

    exit_code = 130


class StrictImportError(ShotlabError):
    """`--strict` import that met files it would otherwise have skipped."""


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An error's text on one line, without the unprintable bytes a damaged file puts in it,
    cut at `limit` characters: for messages that quote a library's error."""
    text = " ".join(str(exc).split())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[:limit] + "..."
