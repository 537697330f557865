"""The review loop and splits: `curate apply`, `curate history`, `curate split`, `curate augment-preview`.

Only click is imported here; each command imports its work when it runs.
"""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []  # registered on the parent group by the parent's cli module
