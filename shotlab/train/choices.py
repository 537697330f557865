"""The names `shotlab train`'s options accept, with a line each: the one table of each.

Import-free (no numpy, no torch), so the CLI builds its choices and help texts from here and
`shotlab --help` stays fast. The code that implements a name imports its table from here.
"""

from __future__ import annotations

# Fine-tuning modes: how much of the backbone learns.
MODES: dict[str, str] = {
    "linear": "head only, backbone frozen",
    "partial": "the head and the last stages of the backbone",
    "full": "everything, with layer-wise learning-rate decay",
}

# Train-time augmentation presets (built in shotlab.train.augment with albumentations).
PRESETS: dict[str, str] = {
    "none": "the model's eval view only",
    "light": "random resized crops (80-100%) and flips",
    "standard": "crops (50-100%), flips and colour jitter",
    "strong": "crops (30-100%), flips, rotation, stronger colour, blur, grey, dropout",
}


def describe(table: dict[str, str]) -> str:
    """'a: what a does; b: what b does' for a help text."""
    return "; ".join(f"{name}: {line}" for name, line in table.items())
