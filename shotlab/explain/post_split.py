"""The modality split of a post's score: how much came from the picture, how much from the words.

    splits = modality_split(runner, inputs, targets, parts)   # one ModalitySplit per post

A post model (image + caption) is a two-player game: f(image, text) is the target class's
probability. With each player's absence given by a neutral input, the exact Shapley values of
the two players need 4 forward passes per post:

    both = f(I, T)   image_only = f(I, T0)   text_only = f(I0, T)   neither = f(I0, T0)
    phi_image = ((both - text_only) + (image_only - neither)) / 2
    phi_text  = ((both - image_only) + (text_only - neither)) / 2
    phi_image + phi_text == both - neither                  (efficiency: exact, in float64)

Neutral inputs (documented in docs/text.md):
  - the image I0 is the all-mean image: every pixel at the normalisation mean, which is the
    all-zeros tensor after normalisation (the same baseline as IG's "zero" for images);
  - the caption T0 is the empty comment, "[CLS] [SEP]": the tokenizer's encoding of "" (the
    encoder's mean pooling then sees only the two special tokens).

The 4 passes run through any runner (the bundle's ONNX model at predict time, so `both` is the
decision's own score, or the PyTorch reference), all posts in one batched call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

METHOD = "modality_split"
NEUTRAL = {"image": "all-mean image (zeros after normalisation)",
           "text": "empty comment: [CLS] [SEP]"}
COALITIONS = (("image", "text"), ("image",), ("text",), ())  # both, image only, text only, neither
FORWARD_PASSES = len(COALITIONS)


@dataclass
class ModalitySplit:
    target: str
    both: float  # f(image, text): the post's score for `target`
    image_only: float  # f(image, neutral text)
    text_only: float  # f(neutral image, text)
    neither: float  # f(neutral image, neutral text)
    phi_image: float
    phi_text: float
    forward_passes: int = FORWARD_PASSES

    @property
    def image_share(self) -> float | None:
        """|phi_image| / (|phi_image| + |phi_text|): the picture's part of the change; None
        when neither part moved the score."""
        total = abs(self.phi_image) + abs(self.phi_text)
        return abs(self.phi_image) / total if total > 0 else None

    def as_dict(self) -> dict:
        return {**asdict(self), "image_share": self.image_share, "neutral": NEUTRAL}


def shapley(both: float, image_only: float, text_only: float, neither: float) -> tuple[float, float]:
    """(phi_image, phi_text): the two-player Shapley values, in float64."""
    both, image_only, text_only, neither = map(np.float64, (both, image_only, text_only, neither))
    phi_image = ((both - text_only) + (image_only - neither)) / 2
    phi_text = ((both - image_only) + (text_only - neither)) / 2
    return float(phi_image), float(phi_text)


def neutral_text_ids(text_part) -> np.ndarray:
    """The empty comment's token ids under the text part's tokenizer: [CLS] [SEP]."""
    from shotlab.runtime.text import encode, load_tokenizer

    return encode(load_tokenizer(text_part), [""], text_part.max_tokens)[0]


def coalition_batch(inputs: dict, neutral_ids: np.ndarray) -> dict:
    """4 rows per post, in COALITIONS order: the present part as given, the absent one
    neutral. Token ids are padded (PAD_ID, masked by the model) to the longest row."""
    from shotlab.runtime.text import PAD_ID

    images, ids = np.asarray(inputs["image"], np.float32), np.asarray(inputs["text"], np.int64)
    n = len(images)
    width = max(ids.shape[1] if ids.ndim == 2 else 0, len(neutral_ids))
    texts = np.full((n, width), PAD_ID, np.int64)
    texts[:, :ids.shape[1]] = ids
    empty = np.full(width, PAD_ID, np.int64)
    empty[:len(neutral_ids)] = neutral_ids
    neutral_image = np.zeros(images.shape[1:], np.float32)
    rows_image, rows_text = [], []
    for i in range(n):
        for present in COALITIONS:
            rows_image.append(images[i] if "image" in present else neutral_image)
            rows_text.append(texts[i] if "text" in present else empty)
    return {"image": np.stack(rows_image) if n else images,
            "text": np.stack(rows_text) if n else texts}


def modality_split(runner, inputs: dict, targets, parts: dict, classes) -> list[ModalitySplit]:
    """The split of each post's score for its target class (an index per post). `runner`
    takes {"image", "text"} batches and returns probabilities (runtime/runners.py)."""
    from shotlab.runtime.runners import run_batched

    batch = coalition_batch(inputs, neutral_text_ids(parts["text"]))
    probs = run_batched(runner, batch).astype(np.float64)
    splits = []
    for i, target in enumerate(targets):
        both, image_only, text_only, neither = probs[FORWARD_PASSES * i:FORWARD_PASSES * (i + 1),
                                                     int(target)]
        phi_image, phi_text = shapley(both, image_only, text_only, neither)
        splits.append(ModalitySplit(classes[int(target)], float(both), float(image_only),
                                    float(text_only), float(neither), phi_image, phi_text))
    return splits
