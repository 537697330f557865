"""Plain-text tables and JSON for the CLI, and the option types its commands share."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

# Every --seed: numpy, torch and scikit-learn take seeds from 0 to 2**32 - 1, so one outside is
# refused by click (exit 2, naming --seed) before any work, not by a library after it.
SEED = click.IntRange(0, 2**32 - 1)


def is_number(text: str) -> bool:
    try:
        float(text.split(" ")[0])
    except ValueError:
        return text == "-"
    return True


# Characters a terminal obeys rather than shows: controls (ESC starts sequences that clear the
# screen, move the cursor or set the window title; BEL, newline, carriage return) and the
# bidirectional overrides and isolates (U+202E shows 'gnp.exe' for 'exe.png').
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def printable(text) -> str:
    """`text` (a file or class name, a comment, a message quoting one) safe to print on a
    terminal: each control or bidi character written as its escape (`\\x1b`, `\\n`,
    `\\u202e`), and each lone surrogate (`\\udc9b`: a file name's byte that is not UTF-8,
    which the stream would write back raw; 0x9b is a terminal's CSI).
    Moderation data is adversarial: a file name's `ESC]0;...BEL` set a reviewer's terminal
    title and `ESC[2J` cleared it."""
    import unicodedata

    text = str(text)
    if text.isprintable() and not BIDI_CONTROLS.intersection(text):
        return text
    return "".join(ch if ch not in BIDI_CONTROLS and unicodedata.category(ch) not in ("Cc", "Cs")
                   else ascii(ch)[1:-1] for ch in text)


def table(headers: list[str], rows: list[list]) -> str:
    """Numeric columns right-aligned, text columns left-aligned, two spaces between columns;
    cells are `printable`."""
    cells = [[printable(h) for h in headers]] + [[printable(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [i > 0 and all(is_number(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(row, widths, numeric)).rstrip()

    return "\n".join(line(row) for row in cells)


def plural(count: int, word: str) -> str:
    """'1 file', '2 files'."""
    return f"{count} {word}{'s' * (count != 1)}"


def _default(value):
    if isinstance(value, (datetime, Path)):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=_default))
