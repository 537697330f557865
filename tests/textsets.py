"""Tiny labelled comment sets for text tests, stored as shotlab stores a text dataset.

The format is the one every text stage shares (docs/text.md): a FiftyOne dataset whose samples
are comments, `filepath` a UTF-8 file `WORKSPACE/texts/<sha256[:2]>/<sha256>.txt` holding exactly
the comment, fields `text`, `sha256`, `ground_truth`, `applied_label`, `split`, `source_line`,
and `dataset.info["kind"] = "text"`. Written here directly so the training and export tests do
not depend on the importer.

The classes are told apart by their words: "threat" comments say who will be hurt, "kind" ones
thank and praise, "food" ones talk about cooking, so a logistic head on MiniLM separates them.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

SUBJECTS = ("my neighbour", "the referee", "that driver", "your brother", "the new manager",
            "the landlord", "our coach", "the courier", "the mayor", "this guy", "the teacher",
            "my cousin", "the barista", "the plumber", "the umpire", "the waiter")
TEMPLATES = {
    "threat": ("I will hurt {s} badly tonight", "{s} is going to get beaten up",
               "someone should attack {s} with a knife", "I am going to smash {s}'s face in"),
    "kind": ("thank you so much to {s} for helping", "{s} was really lovely and kind today",
             "big thanks to {s}, you made my day", "{s} is such a generous and warm person"),
    "food": ("{s} cooked a delicious pasta with garlic", "we baked bread with {s} this morning",
             "{s} recommended a great soup recipe", "tried the spicy curry {s} made, so tasty"),
}
COUNTS = {"train": 6, "val": 4, "test": 4}


def comment_rows(classes=("threat", "kind", "food"), counts=None, seed: int = 0) -> list[dict]:
    """[{text, label, split}] with distinct texts; counts per class and split."""
    rng = random.Random(seed)
    rows = []
    for label in classes:
        texts = [t.format(s=s) for t in TEMPLATES[label] for s in SUBJECTS]
        rng.shuffle(texts)
        for split, n in (counts or COUNTS).items():
            rows += [{"text": texts.pop(), "label": label, "split": split} for _ in range(n)]
    return rows


def text_file(home: Path, text: str) -> tuple[Path, str]:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    path = home / "texts" / digest[:2] / f"{digest}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path, digest


def make_text_dataset(name: str, rows: list[dict], task: str = "multiclass"):
    """A text dataset `name` holding `rows` ({text, label, split}) in the shared format."""
    from shotlab.core import store, workspace

    fo = store.fiftyone()
    dataset = store.create(name, task, media=store.TEXT)
    home = workspace.current().home
    samples = []
    for line, row in enumerate(rows, start=2):
        path, digest = text_file(home, row["text"])
        labels = (row["label"],) if task == "multiclass" else tuple(row["label"])
        samples.append(fo.Sample(filepath=str(path), text=row["text"], sha256=digest,
                                 ground_truth=store.make_label(labels, task),
                                 applied_label=sorted(labels), split=row["split"],
                                 source_line=line))
    dataset.add_samples(samples, progress=False)
    dataset.info["kind"] = "text"
    dataset.save()
    return dataset
