"""A few-shot text benchmark from real text that ships in a Debian package: `fortunes`.

    .venv/bin/python datasets/fortunes.py ~/data/fortunes.csv            # text,label,split
    .venv/bin/shotlab curate import ~/data/fortunes.csv --name fortunes

Debian's `fortunes` package (`apt-get install fortunes`) puts topic files in
/usr/share/games/fortunes/: plain text, entries separated by a line holding `%`. The label of an
entry is its topic file. The recipe keeps entries of 20 to 400 characters (one-liners say little;
long ones are stories), joins an entry's lines with single spaces, drops repeated entries, and per
topic takes up to `--per-class` entries (default 150: the smallest topics hold about that many)
in a seeded shuffle, split 60/20/20 into train/val/test. Deterministic.
Licence: the collection's own (`/usr/share/doc/fortunes/copyright`); the quotations are short
excerpts.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
TOPICS = ("computers", "politics", "science", "literature", "food", "love", "sports")
MIN_CHARS, MAX_CHARS = 20, 400
SPLITS = (("train", 0.6), ("val", 0.2), ("test", 0.2))


def read_topic(topic: str, folder: Path = FORTUNES) -> list[str]:
    """The entries of one topic file, each joined to one line; short and long ones dropped."""
    path = folder / topic
    if not path.is_file():
        raise SystemExit(f"{path}: not found; install Debian's fortunes package "
                         f"(apt-get install fortunes)")
    entries, seen = [], set()
    for chunk in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
        text = " ".join(chunk.replace("%", "").split())
        if MIN_CHARS <= len(text) <= MAX_CHARS and text not in seen:
            seen.add(text)
            entries.append(text)
    return entries


def build_rows(topics=TOPICS, per_class: int = 150, seed: int = 0,
               folder: Path = FORTUNES) -> list[dict]:
    """[{text, label, split}]: up to `per_class` entries per topic, split 60/20/20."""
    rows, taken = [], set()
    for topic in topics:
        entries = [e for e in read_topic(topic, folder) if e not in taken]
        random.Random(f"{seed}-{topic}").shuffle(entries)
        entries = entries[:per_class]
        taken.update(entries)  # an entry filed under two topics is kept once
        start = 0
        for split, share in SPLITS:
            end = len(entries) if split == SPLITS[-1][0] else start + round(share * len(entries))
            rows += [{"text": e, "label": topic, "split": split} for e in entries[start:end]]
            start = end
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="CSV file to write (text,label,split)")
    parser.add_argument("--topics", default=",".join(TOPICS))
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = build_rows(args.topics.split(","), args.per_class, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"Wrote {len(rows)} rows ({len(set(r['label'] for r in rows))} topics) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
