"""One input -> the decision `shotlab predict` makes for it, and what the page draws of it.

    decided = decide(model, "photo.jpg", data)        # BadImageError: "photo.jpg: <reason>"
    decided.record                                     # predict's decision record, unchanged
    bars(model.bundle, decided.record)                 # one row per category for the bar chart

The input is decoded by the kind's own decoder (`runtime.kinds`, the service's path for bytes),
run through the bundle's runner and turned into a record by `export.predict.decision_records`:
the rule, the thresholds, the review band and the record are predict's, byte for byte the
same scores for the same file.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RUNTIME = "onnx"  # the runtime `shotlab predict` uses by default, and so the page's


@dataclass
class Decided:
    name: str  # the upload's file name, or the sample's path
    record: dict  # export.predict.decision_records' record
    array: np.ndarray  # the preprocessed input (one sample), for the explanations; for a
    # post, the model's {"image": (1, 3, H, W), "text": (1, L)} batch of one
    data: bytes  # the bytes decided (the panel draws them); a post: (image bytes, caption)
    latency_ms: float  # decode + preprocess + model + rule
    # A clip: the sampled frames' times (s) and scores (F, K); `array` is then its top frame.
    timeline: tuple[list[float], np.ndarray] | None = None


def decide(model, name: str, data: bytes, path: Path | None = None) -> Decided:
    """The decision for one input. A file that does not decode raises the kind's error with
    `name` in front of the reason, the one line `shotlab predict` prints for it."""
    from shotlab.core.errors import BadImageError
    from shotlab.export.predict import decision_records
    from shotlab.runtime.kinds import get_kind

    started = time.perf_counter()
    kind = get_kind(model.kind)
    refuse_animated(name, data, ANIMATED_IMAGE)
    try:
        array = kind.decode(data, model.bundle.preprocessing)
    except BadImageError as exc:
        raise BadImageError(name, exc.reason) from None
    probs = model.runner(array[None])
    record = decision_records(model.bundle, probs, [hashlib.sha256(data).hexdigest()],
                              runtime=RUNTIME, paths=[path] if path else None)[0]
    return Decided(name, record, array, data, (time.perf_counter() - started) * 1000)


# `shotlab predict` decides an animation as a clip, every frame scored; its first frame alone
# would stand for the rest here.
ANIMATED_IMAGE = ("an animated image: `shotlab predict` scores every frame of it, as a clip's; "
                  "pick the clip panel and upload it there")


def refuse_animated(name: str, data: bytes, reason: str) -> None:
    from shotlab.core.errors import BadImageError
    from shotlab.core.images import is_animated

    if is_animated(data):
        raise BadImageError(name, reason)


def decide_clip(model, name: str, data: bytes, path: Path | None = None) -> Decided:
    """The decision `shotlab predict` makes for one clip (sampled under the bundle's clip
    contract, pooled, segments), with its frame scores for the timeline and its top frame as the
    input the maps explain. PyAV reads files, so the upload is decoded from a private temporary
    file removed at once (`core.clips.clip_file`); nothing is written beside the user's clips."""
    from shotlab.core.clips import clip_file
    from shotlab.core.errors import BadImageError
    from shotlab.explain.tier1 import target_class
    from shotlab.export.predict_clips import (clip_contract, clip_record, clip_thresholds,
                                              score_clip, top_frame)

    started = time.perf_counter()
    bundle = model.bundle
    contract, thresholds = clip_contract(bundle), clip_thresholds(bundle)
    with clip_file(data, name) as clip:
        try:
            scored = score_clip(clip, model.runner, bundle.preprocessing, contract, thresholds,
                                keep_inputs=True)
        except BadImageError as exc:  # the reason predict gives, under the upload's name
            raise BadImageError(name, exc.reason) from None
    record = clip_record(bundle, path, scored, contract, thresholds, runtime=RUNTIME)
    probs = np.stack(scored.probs)
    top = top_frame(probs, bundle.classes, target_class(record))
    return Decided(name, record, scored.inputs[top], data, (time.perf_counter() - started) * 1000,
                   (scored.times, probs))


def comment_text(name: str, data: bytes) -> str:
    """The one comment in `data` (typed, or a .txt upload), checked as `shotlab predict` checks
    a comment: InputError with the CLI's reason (not UTF-8, empty, over the length limit),
    `name` in front. A .txt file's closing line break is not part of the comment."""
    from shotlab.core.errors import InputError
    from shotlab.core.rows import decode_lines
    from shotlab.runtime.text import check_text

    lines, bad = decode_lines(data)
    if bad:
        line, reason = bad[0]
        raise InputError(f"{name}:{line}: {reason}")
    return check_text("".join(text for _, text in lines).rstrip("\r\n"), name)


def decide_text(model, name: str, data: bytes, path: Path | None = None) -> Decided:
    """The decision `shotlab predict BUNDLE comments.csv` makes for one comment (the same
    tokenizer, runner and record builder, `export.predict_texts.comment_records`); `array` is
    the comment's token ids."""
    from shotlab.export.predict_texts import Comment, comment_records

    started = time.perf_counter()
    text = comment_text(name, data)
    records, ids = comment_records(model.bundle, model.runner, [Comment(path, 1, text)],
                                   runtime=RUNTIME)
    return Decided(name, records[0], ids[0], data, (time.perf_counter() - started) * 1000)


def decide_post(model, name: str, data: tuple, path: Path | None = None) -> Decided:
    """The decision `shotlab predict BUNDLE posts.csv` makes for one post (`data` = the image's
    bytes and the caption): the caption checked as predict checks it, the image decoded by the
    image kind's decoder, both parts through the bundle's runner, the record by
    `export.predict_posts.post_decisions`."""
    from shotlab.core.errors import BadImageError
    from shotlab.export.predict_posts import ANIMATED_PICTURE, Post, post_decisions
    from shotlab.runtime.kinds import get_kind, load_inputs
    from shotlab.runtime.text import check_text

    started = time.perf_counter()
    image_bytes, caption = data
    parts = model.bundle.parts
    text = check_text(caption, f"{name} caption")
    refuse_animated(name, image_bytes, ANIMATED_PICTURE)
    try:
        image = get_kind("image").decode(image_bytes, parts["image"])
    except BadImageError as exc:
        raise BadImageError(name, exc.reason) from None
    inputs = {"image": image[None],
              "text": load_inputs([text], parts["text"], progress=False).arrays}
    record = post_decisions(model.bundle, [Post(path, text, name)], model.runner(inputs),
                            runtime=RUNTIME, sha256s=[hashlib.sha256(image_bytes).hexdigest()])[0]
    return Decided(name, record, inputs, data, (time.perf_counter() - started) * 1000)


def bars(bundle, record: dict) -> list[dict]:
    """Per class: its score, and for a policy category its threshold, review band and whether
    it is flagged; policy categories first, in the policy's order. A clip's are the thresholds
    it was decided under (the clip contract's, `clip_thresholds`), not the frame ones."""
    from shotlab.export.predict_clips import clip_thresholds
    from shotlab.runtime.decide import resolve_thresholds, review_band

    thresholds = clip_thresholds(bundle) if record.get("kind") == "clip" else bundle.thresholds
    classes = list(bundle.classes)
    cut = resolve_thresholds(thresholds or None, classes, task=bundle.task)
    rows = []
    for name in [*thresholds, *[c for c in classes if c not in thresholds]]:
        threshold = cut[classes.index(name)]
        row = {"class": name, "score": record["scores"][name], "policy": name in thresholds,
               "threshold": None if np.isnan(threshold) else float(threshold),
               "band": None, "flagged": name in record["flagged"],
               "label": name in record["labels"]}
        if isinstance(thresholds.get(name), dict) and "review_band" in thresholds[name]:
            row["band"] = list(review_band(name, thresholds[name]))
        rows.append(row)
    return rows
