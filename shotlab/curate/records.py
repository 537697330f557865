"""What a reader finds in a source, before any file is opened: labelled paths and problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Folder and column names that mean a split, and the name shotlab stores for each.
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def normalise_split(name: str | None) -> str | None:
    return SPLIT_ALIASES.get(name.strip().lower()) if name and name.strip() else None


def unknown_split(value: str) -> str:
    """Why a row whose split is not one of SPLIT_ALIASES is skipped."""
    return (f"unknown split '{value}'; expected one of {', '.join(SPLIT_ALIASES)}, or empty for "
            f"unassigned")


@dataclass(frozen=True)
class Record:
    """One image file a source names, with its class names (() when unlabeled) and split."""

    path: Path  # absolute, as the source names it (symlinks not yet resolved)
    labels: tuple[str, ...]
    split: str | None = None
    where: str | None = field(default=None, compare=False)  # "row 7 of labels.csv", for messages


@dataclass(frozen=True)
class Skipped:
    """A file (or CSV row) that will not be imported, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Unlisted:
    """An image beside a label file (a CSV, a Roboflow `_classes.csv`) that no row names: not
    imported, and counted, since a truncated label file would otherwise lose it without trace."""

    path: Path
    listing: Path  # the label file that does not name it


@dataclass
class Scan:
    """A reader's result: the records, what was skipped, files ignored by extension, and images
    a label file does not list."""

    records: list[Record] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    unlisted: list[Unlisted] = field(default_factory=list)

    def extend(self, other: "Scan") -> "Scan":
        self.records += other.records
        self.skipped += other.skipped
        self.ignored += other.ignored
        self.unlisted += other.unlisted
        return self
