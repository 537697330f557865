"""What the security tests share: a CLI call and the one-line error check."""

from __future__ import annotations

from click.testing import CliRunner

from shotlab.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, exit_code: int = 2) -> str:
    """The single `Error: ...` line of a refused command, after checking its exit code."""
    assert result.exit_code == exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]
