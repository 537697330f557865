"""What the CLI prints of untrusted names: tables and error lines show control characters as
escapes, never as commands to the terminal."""

from __future__ import annotations

from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.output import printable, table


def test_printable_escapes_controls_and_bidi_overrides_only():
    assert printable("bad\x1b]0;T\x07\x1b[2J.png") == "bad\\x1b]0;T\\x07\\x1b[2J.png"
    assert printable("\u202egnp.exe") == "\\u202egnp.exe"
    assert printable("two\nlines\r") == "two\\nlines\\r"
    assert printable("café 猫 🙂 a\u00adb x\u200dy") == "café 猫 🙂 a\u00adb x\u200dy"
    # a file name's byte that is not UTF-8 (0x9b, a terminal's CSI) arrives as a surrogate
    assert printable("bad\udc9b[2J.png") == "bad\\udc9b[2J.png"


def test_a_class_name_with_a_newline_keeps_its_table_row():
    """A class or file name holding a newline split a table row; an escape sequence in one was
    obeyed by the terminal (`curate info`, `train`'s per-class table, `curate check`)."""
    shown = table(["class", "n"], [["a\nb\x1b[31m", 3], ["ok", 12]])
    assert shown.splitlines() == ["class          n", "a\\nb\\x1b[31m   3", "ok            12"]


def test_an_error_naming_a_file_prints_its_escapes(tmp_path):
    missing = tmp_path / "gone\x1b[2J.png"
    result = CliRunner().invoke(cli, ["curate", "import", str(missing), "--name", "x"])
    assert result.exit_code == 2 and "\x1b" not in result.output
    assert "gone\\x1b[2J.png" in result.output
