"""Tasks: the one table of what a label set can be. Every stage reads it from here."""

from __future__ import annotations

from shotlab.core.errors import InputError

TASKS: dict[str, str] = {
    "multiclass": "one label per sample; scores are softmax rows summing to 1",
    "multilabel": "any number of labels per sample (tags); scores are independent sigmoids",
}


def check_task(task) -> str:
    if task not in TASKS:
        raise InputError(f"task must be one of: {', '.join(TASKS)}; got {task!r}")
    return task
