"""The names `shotlab train`'s options accept, with a line each: the one table of each.

Import-free (no numpy, no torch), so the CLI builds its choices and help texts from here and
`shotlab --help` stays fast. The code that implements a name imports its table from here.
"""

from __future__ import annotations

# Fine-tuning modes: how much of the backbone learns. The first three train image backbones,
# logreg and setfit the text encoder, fusion a post's head (MODE_KINDS says which).
MODES: dict[str, str] = {
    "linear": "head only, backbone frozen",
    "partial": "the head and the last stages of the backbone",
    "full": "everything, with layer-wise learning-rate decay",
    "logreg": "text: logistic regression on the frozen encoder's embeddings",
    "setfit": "text: SetFit contrastive fine-tuning of the encoder, then the logistic head",
    "fusion": "posts: logistic regression on the frozen image and text embeddings, joined",
}
MODE_KINDS: dict[str, str] = {"linear": "image", "partial": "image", "full": "image",
                              "logreg": "text", "setfit": "text", "fusion": "post"}

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
