"""How the service reads a request body of each input kind: one table entry per kind.

    kinds = request_kinds(bundle)                     # the entries a bundle serves, in order
    kind = kind_for(kinds, media_type, filename)      # the entry a body is, None when none
    decoded = kind.decode(body, bundle, options)      # on a worker thread; BadImageError
    record, explained = kind.decide(bundle, decoded, probs, sha256, runtime)

A body becomes `Decoded.rows`, the rows the model runs (one image: one row; a clip: its sampled
frames); the micro-batcher runs the rows of concurrent requests together, and `decide` turns a
request's rows' scores into its one decision record, `shotlab predict`'s (for a clip: pooled,
with its segments, as `shotlab predict BUNDLE clip.mp4` decides it), and the one input a tier-1
explanation explains (a clip's top frame). A clip is scored by an image model, so an image
bundle serves both; a new kind is one entry here, not a new server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Decoded:
    rows: np.ndarray  # (R, *sample_shape): what the model runs for this body
    scored: object = None  # a clip's export.predict_clips.ClipScores (times, facts, gaps)


@dataclass(frozen=True)
class RequestKind:
    name: str
    model_kind: str  # the bundle input kind that scores it
    media_types: frozenset[str]  # Content-Types of its raw bodies (a prefix ends with "/")
    decode: Callable  # (body, bundle, options) -> Decoded
    decide: Callable  # (bundle, decoded, probs (R, K), sha256, runtime) -> (record, input)

    def accepts(self, media_type: str) -> bool:
        return any(media_type == t or (t.endswith("/") and media_type.startswith(t))
                   for t in self.media_types)


def decode_image(body: bytes, bundle, options) -> Decoded:
    from shotlab.runtime.kinds import KINDS

    return Decoded(KINDS["image"].decode(body, bundle.preprocessing,
                                         max_pixels=options.max_pixels)[None])


def decide_image(bundle, decoded: Decoded, probs, sha256: str, runtime: str):
    from shotlab.export.predict import decision_records

    (record,) = decision_records(bundle, probs, [sha256], runtime=runtime)
    return record, decoded.rows[0]


def decode_clip(body: bytes, bundle, options) -> Decoded:
    """The clip's sampled frames under the bundle's clip contract, from a private temporary file
    (PyAV reads files; it is removed before this returns)."""
    from shotlab.core.clips import clip_file
    from shotlab.export.predict_clips import clip_contract, clip_thresholds, score_clip

    with clip_file(body, "body.mp4") as path:
        scored = score_clip(path, None, bundle.preprocessing, clip_contract(bundle),
                            clip_thresholds(bundle))
    return Decoded(np.stack(scored.inputs), scored)


def decide_clip(bundle, decoded: Decoded, probs, sha256: str, runtime: str):
    from shotlab.explain.tier1 import target_class
    from shotlab.export.predict_clips import (clip_contract, clip_record, clip_thresholds,
                                              top_frame)

    scored = decoded.scored
    scored.probs = list(probs)
    record = clip_record(bundle, None, scored, clip_contract(bundle), clip_thresholds(bundle),
                         runtime=runtime)  # its sha256 is the body's (the file holds the body)
    return record, decoded.rows[top_frame(probs, bundle.classes, target_class(record))]


REQUEST_KINDS: dict[str, RequestKind] = {
    "image": RequestKind("image", "image", frozenset({"image/", "application/octet-stream"}),
                         decode_image, decide_image),
    "clip": RequestKind("clip", "image", frozenset({"video/"}), decode_clip, decide_clip),
}


def request_kinds(bundle) -> list[RequestKind]:
    """The kinds a bundle serves: those its input kind scores (an image bundle: images, clips)."""
    return [k for k in REQUEST_KINDS.values() if k.model_kind == bundle.input_kind]


def kind_for(kinds: list[RequestKind], media_type: str, filename: str | None = None):
    """The entry a body is: by its Content-Type, else (a multipart part sent as
    application/octet-stream) by its file name's suffix; None when no entry takes it."""
    from shotlab.runtime.kinds import KINDS

    specific = [k for k in kinds if k.accepts(media_type)
                and media_type != "application/octet-stream"]
    if specific:
        return specific[0]
    suffix = Path(filename or "").suffix.lower()
    by_suffix = [k for k in kinds if suffix and suffix in KINDS[k.name].extensions]
    if by_suffix:
        return by_suffix[0]
    return next((k for k in kinds if k.accepts(media_type)), None)
