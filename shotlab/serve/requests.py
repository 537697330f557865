"""How the service reads a request body of each input kind: one table entry per kind.

    kinds = request_kinds(bundle)                     # the entries a bundle serves, in order
    kind = kind_for(kinds, media_type, filename)      # the entry a body is, None when none
    bodies = kinds[0].from_parts(parts, kinds)        # a multipart body's parts -> (body, kind)
    kind.pixels(body)                                 # what decoding it costs, from headers
    decoded = kind.decode(body, bundle, options, deadline)  # a decode thread; InputError (422)
    batch = kind.stack([decoded.rows, ...])           # the rows of a batch's items, one input
    record, explained = kind.decide(bundle, decoded, probs, sha256, runtime)
    kind.explain(worker, records, inputs)             # tier 1 (serve/explainer.py's thread)

A body becomes `Decoded.rows`, the rows the model runs (one image: one row; a clip: its sampled
frames; a comment: its token ids; a post: {"image", "text"} rows); the micro-batcher runs the
rows of concurrent requests together (`stack`: images concatenated, token ids padded with
PAD_ID to the longest in the batch), and `decide` turns a request's rows' scores into its one
decision record, `shotlab predict`'s, and the one input a tier-1 explanation explains (a clip's
top frame). A clip is scored by an image model, so an image bundle serves both; a text bundle
serves comments (a `text/plain` UTF-8 body, or multipart text parts), a post bundle
(model kind "image+text") posts (multipart: an `image` part and a `text` part each). A new kind
is one entry here, not a new server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from shotlab.core.errors import InputError

# A post's multipart part names (its contract's parts); `text` also names a comment's form
# field. Form fields of other names (a client's user_id, thread...) are no input: not read.
POST_IMAGE, POST_TEXT = "image", "text"


@dataclass
class Decoded:
    rows: np.ndarray | dict  # (R, *sample_shape), or {part: (R, ...)}: what the model runs
    scored: object = None  # a clip's ClipRequest; a comment or caption's text
    sha256: str | None = None  # the record's sha256 where it is not the body's (a post's image)
    frames_decoded: int = 0  # a clip's: frames the decoder produced (/metrics counts them)

    @property
    def count(self) -> int:
        from shotlab.runtime.runners import rows_of

        return rows_of(self.rows)


@dataclass(frozen=True)
class Part:
    """One part of a multipart body: a file part, or a form field (`field`, sent as UTF-8)."""
    name: str
    data: bytes
    media_type: str
    filename: str | None = None
    field: bool = False


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def no_pixels(body) -> int:
    """A comment's pixels; a clip's, which is decoded a frame at a time, each frame held to the
    per-frame limit and the clip to its frame limit and the request's deadline."""
    return 0


def image_pixels(body: bytes) -> int:
    from shotlab.core.images import header_pixels

    return header_pixels(body)


def post_pixels(body: dict) -> int:
    return image_pixels(body[POST_IMAGE])


def one_per_part(parts: list[Part], kinds: list) -> list[tuple]:
    """(body, kind) per file part, and per form field named `text` where a kind reads
    text/plain (a comment; other form fields, and any on an image bundle, are not read): each
    by its own content type or, sent as octet-stream, its file name's suffix; else the bundle's
    own kind (so a bad one is answered 422 with the decoder's reason, in its place in a
    batch)."""
    reads_fields = reads_comments(kinds)
    return [(p.data, kind_for(kinds, p.media_type or "application/octet-stream", p.filename)
             or kinds[0]) for p in parts
            if not p.field or (reads_fields and p.name == POST_TEXT)]


def reads_comments(kinds: list) -> bool:
    return any(k.accepts("text/plain") for k in kinds)


def no_item(parts: list[Part], kinds: list) -> str:
    """Why a multipart body made no item (images, clips, comments), naming the form fields
    that are not read."""
    unread = sorted({p.name for p in parts if p.field})
    send = (f"a comment as a form field named '{POST_TEXT}' or a file part (curl -F "
            f"'{POST_TEXT}=so tasty')" if reads_comments(kinds) else
            f"the {kinds[0].name} as a file part (curl -F file=@photo.jpg)")
    return ("the multipart body has no item" + (f" (form fields not read: "
            f"{', '.join(unread)})" if unread else "") + f"; send {send}")


@dataclass(frozen=True)
class RequestKind:
    name: str
    model_kind: str  # the bundle input kind that scores it (`ModelContract.input_kind`)
    media_types: frozenset[str]  # Content-Types of its raw bodies (a prefix ends with "/")
    decode: Callable  # (body, bundle, options, deadline) -> Decoded; deadline: monotonic s
    decide: Callable  # (bundle, decoded, probs (R, K), sha256, runtime) -> (record, input)
    explain: Callable  # (worker, records, inputs) -> None: tier 1 of the inputs `decide` gave
    stack: Callable = np.concatenate  # [Decoded.rows, ...] -> one model input for the batch
    digest: Callable = body_sha256  # body -> the sha256 that keys the decision cache
    from_parts: Callable = one_per_part  # (multipart parts, kinds) -> [(body, kind)]
    parts: int = 1  # multipart parts one item takes (a post: its picture and its caption)
    pixels: Callable = no_pixels  # body -> the pixels its header promises (the request budget)

    def accepts(self, media_type: str) -> bool:
        return any(media_type == t or (t.endswith("/") and media_type.startswith(t))
                   for t in self.media_types)


# images and clips -------------------------------------------------------------------------------
def decode_image(body: bytes, bundle, options, deadline=None) -> Decoded:
    from shotlab.runtime.kinds import KINDS

    return Decoded(KINDS["image"].decode(body, bundle.preprocessing,
                                         max_pixels=options.max_pixels)[None])


def decide_image(bundle, decoded: Decoded, probs, sha256: str, runtime: str):
    from shotlab.export.predict import decision_records

    (record,) = decision_records(bundle, probs, [sha256], runtime=runtime)
    return record, decoded.rows[0]


def explain_images(worker, records: list[dict], inputs: list) -> None:
    """Grad-CAM of each image for each class it is flagged or reviewed for; of a clip's top
    frame for the class it is the top frame of (`decide_clip`)."""
    from shotlab.explain.tier1 import record_flagged, target_class

    targets = [target_class(r) if r.get("kind") == "clip" else None for r in records]
    # a clip's frame time, as predict --explain stores it (a decision stored before
    # `explained_frames` was served has none)
    params = [{"timestamp": r["explained_frames"][0]["timestamp"]}
              if r.get("explained_frames") else None for r in records]
    record_flagged(worker.bundle, records, np.stack(inputs), worker.explanations_path,
                   checkpoint=worker.load_checkpoint(), targets=targets, params=params)


class ClipRequest(NamedTuple):
    """A clip between decoding and deciding: its frames' scores and the rules, resolved once."""

    scored: object  # export.predict_clips.ClipScores
    contract: object  # runtime.clip_scores.ClipContract
    thresholds: dict


def decode_clip(body: bytes, bundle, options, deadline=None) -> Decoded:
    """The clip's sampled frames under the bundle's clip contract, from a private temporary file
    (PyAV reads files; it is removed before this returns). Decoding stops at `deadline`
    (core.clips.DeadlinePassed) and the clip is held to --max-clip-frames."""
    from shotlab.core.clips import clip_file
    from shotlab.export.predict_clips import clip_contract, clip_thresholds, score_clip

    contract, thresholds = clip_contract(bundle), clip_thresholds(bundle)
    with clip_file(body, "body.mp4") as path:
        scored = score_clip(path, None, bundle.preprocessing, contract, thresholds,
                            max_pixels=options.max_pixels,  # per frame, as per image
                            max_frames=options.max_clip_frames, deadline=deadline)
    return Decoded(np.stack(scored.inputs), ClipRequest(scored, contract, thresholds),
                   frames_decoded=scored.decoded)


def decide_clip(bundle, decoded: Decoded, probs, sha256: str, runtime: str):
    from shotlab.explain.tier1 import target_class
    from shotlab.export.predict import needs_attention
    from shotlab.export.predict_clips import clip_record, top_frame

    clip = decoded.scored
    clip.scored.probs = list(probs)
    record = clip_record(bundle, None, clip.scored, clip.contract, clip.thresholds,
                         runtime=runtime)  # its sha256 is the body's (the file holds the body)
    name = target_class(record)
    best = top_frame(probs, bundle.classes, name)
    if needs_attention(record):  # the frame the worker explains, listed as predict --explain does
        record["explained_frames"] = [{"class": name, "timestamp": record["frames"][best]}]
    return record, decoded.rows[best]


# comments ---------------------------------------------------------------------------------------
def comment_of(body: bytes, what: str = "text") -> str:
    """The comment a body holds, checked as `shotlab predict` checks a row (empty, over the
    length limit), a leading BOM dropped as predict drops it; InputError with the one-line
    reason it gives (the service answers 422)."""
    from shotlab.core.rows import without_bom
    from shotlab.runtime.text import check_text

    try:
        text = without_bom(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what}: the bytes are not UTF-8 (byte {exc.start}); send the text "
                         f"encoded as UTF-8") from None
    return check_text(text, what)


def comment_sha256(body: bytes) -> str:
    """A comment's identity, predict's: the sha256 of its UTF-8 bytes, a leading BOM dropped."""
    from shotlab.core.rows import without_bom

    return body_sha256(without_bom(body))


def token_ids(text: str, preprocessing) -> np.ndarray:
    from shotlab.runtime.text import encode, load_tokenizer

    return encode(load_tokenizer(preprocessing), [text], preprocessing.max_tokens)


def decode_text(body: bytes, bundle, options, deadline=None) -> Decoded:
    """A comment's windows (one, unless it is longer than the model reads) as its rows."""
    from shotlab.export.predict_texts import window_rows

    text = comment_of(body)
    ids, _, spans = window_rows(bundle, [text])
    return Decoded(ids, (text, spans[0]))


def decide_text(bundle, decoded: Decoded, probs, sha256: str, runtime: str):
    """`shotlab predict`'s record of a comment (its sha256: of the comment's UTF-8 bytes, the
    body), without the file and line a comment read from a file has."""
    from shotlab.export.predict_texts import pooled_records

    text, spans = decoded.scored
    (record,) = pooled_records(bundle, probs, [0] * len(spans), [spans], [sha256],
                               runtime=runtime)
    record.update({"kind": "text", "text": text})
    return record, decoded.rows[0]


def stack_texts(rows: list[np.ndarray]) -> np.ndarray:
    """The token ids of a batch's comments, padded with PAD_ID to the longest."""
    from shotlab.runtime.text import pad

    return pad([row for ids in rows for row in ids])


def explain_texts(worker, records: list[dict], inputs: list) -> None:
    """Integrated Gradients over each comment's words (it is in the record), with its
    faithfulness, as `shotlab predict --explain` stores them."""
    from shotlab.explain.text_tier1 import record_flagged_texts

    record_flagged_texts(worker.bundle, records, [r["text"] for r in records],
                         worker.explanations_path, checkpoint=worker.load_checkpoint())


# posts ------------------------------------------------------------------------------------------
def post_body(image: bytes, text: bytes) -> dict:
    return {POST_IMAGE: image, POST_TEXT: text}


def post_sha256(body: dict) -> str:
    """The cache key's identity of a post: its picture and its caption together."""
    return hashlib.sha256(f"{body_sha256(body[POST_IMAGE])}:{comment_sha256(body[POST_TEXT])}"
                          .encode()).hexdigest()


def posts_of(parts: list[Part], kinds: list) -> list[tuple]:
    """A multipart body's posts: its `image` parts (or image/* file parts) paired in order with
    its `text` parts (form fields or files), the i-th image with the i-th caption; other form
    fields are not read."""
    images = [p for p in parts if p.name == POST_IMAGE
              or (p.name != POST_TEXT and not p.field and p.media_type.startswith("image/"))]
    texts = [p for p in parts if p not in images and p.name == POST_TEXT]
    if len(images) != len(texts) or not images:
        raise InputError(f"a post is an '{POST_IMAGE}' file part and a '{POST_TEXT}' part "
                            f"(its caption); got {len(images)} image and {len(texts)} caption "
                            f"part(s): send them in pairs (curl -F image=@photo.jpg "
                            f"-F text='the caption')")
    post = next(k for k in kinds if k.name == "post")
    return [(post_body(image.data, text.data), post) for image, text in zip(images, texts)]


def decode_post(body: dict, bundle, options, deadline=None) -> Decoded:
    from shotlab.core.images import is_animated
    from shotlab.export.predict_posts import ANIMATED_PICTURE
    from shotlab.runtime.kinds import KINDS

    if not body[POST_IMAGE]:
        raise InputError(f"the '{POST_IMAGE}' part is empty (0 bytes); send the post's "
                            f"picture")
    if is_animated(body[POST_IMAGE]):
        raise InputError(ANIMATED_PICTURE)
    text = comment_of(body[POST_TEXT], f"the '{POST_TEXT}' part (the caption)")
    parts = bundle.parts
    image = KINDS["image"].decode(body[POST_IMAGE], parts[POST_IMAGE],
                                  max_pixels=options.max_pixels)[None]
    return Decoded({POST_IMAGE: image, POST_TEXT: token_ids(text, parts[POST_TEXT])}, text,
                   body_sha256(body[POST_IMAGE]))


def decide_post(bundle, decoded: Decoded, probs, sha256: str, runtime: str):
    """`shotlab predict`'s record of a post: sha256 of its picture, its caption and the
    caption's sha256 (not the row a post read from a CSV has)."""
    from shotlab.export.predict import decision_records
    from shotlab.export.predict_posts import post_fields

    (record,) = decision_records(bundle, probs, [decoded.sha256], runtime=runtime)
    record.update(post_fields(decoded.scored, bundle))
    return record, {name: rows[0] for name, rows in decoded.rows.items()}


def stack_posts(rows: list[dict]) -> dict:
    return {POST_IMAGE: np.concatenate([r[POST_IMAGE] for r in rows]),
            POST_TEXT: stack_texts([r[POST_TEXT] for r in rows])}


def explain_posts(worker, records: list[dict], inputs: list) -> None:
    """The modality split, a Grad-CAM of the picture and IG over the caption's words."""
    from shotlab.explain.post_tier1 import record_flagged_posts
    from shotlab.export.predict_posts import stacked_inputs

    record_flagged_posts(worker.bundle, records, stacked_inputs(inputs), worker.runner(),
                         worker.explanations_path, checkpoint=worker.load_checkpoint())


REQUEST_KINDS: dict[str, RequestKind] = {
    "image": RequestKind("image", "image", frozenset({"image/", "application/octet-stream"}),
                         decode_image, decide_image, explain_images, pixels=image_pixels),
    "clip": RequestKind("clip", "image", frozenset({"video/"}), decode_clip, decide_clip,
                        explain_images),
    "text": RequestKind("text", "text", frozenset({"text/plain"}), decode_text, decide_text,
                        explain_texts, stack=stack_texts, digest=comment_sha256),
    # Multipart only (no raw body carries two parts): an `image` part and a `text` part.
    "post": RequestKind("post", "image+text", frozenset(), decode_post, decide_post,
                        explain_posts, stack=stack_posts, digest=post_sha256,
                        from_parts=posts_of, parts=2, pixels=post_pixels),
}


def request_kinds(bundle) -> list[RequestKind]:
    """The kinds a bundle serves: those its input kind scores (an image bundle: images, clips;
    a text bundle: comments; an image+text bundle: posts)."""
    return [k for k in REQUEST_KINDS.values() if k.model_kind == bundle.input_kind]


def kind_of_record(record: dict) -> RequestKind:
    """The entry that decided `record` (predict's `kind` field; an image record has none)."""
    return REQUEST_KINDS[record.get("kind") or "image"]


def kind_for(kinds: list[RequestKind], media_type: str, filename: str | None = None):
    """The entry a body is: by its Content-Type, else (a multipart part sent as
    application/octet-stream) by its file name's suffix; None when no entry takes it."""
    from shotlab.runtime.kinds import KINDS

    specific = [k for k in kinds if k.accepts(media_type)
                and media_type != "application/octet-stream"]
    if specific:
        return specific[0]
    suffix = Path(filename or "").suffix.lower()
    by_suffix = [k for k in kinds if suffix and k.name in KINDS
                 and suffix in KINDS[k.name].extensions]
    if by_suffix:
        return by_suffix[0]
    return next((k for k in kinds if k.accepts(media_type)), None)
