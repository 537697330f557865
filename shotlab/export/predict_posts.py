"""`shotlab predict BUNDLE posts.csv`: one decision per post (an image with its caption).

The rows are a CSV or JSONL (`core/rows.py`) of `image_path` (also `image`, `filepath`; relative
to the file's folder) and `text`; other columns are ignored. A row without an image path, with
an empty or over-long caption, or whose image does not decode is listed in `bad` by its line
and skipped. Each post is loaded through the bundle's two-part contract (`kinds.load_parts`) and
scored by the bundle's runner; the decision is `predict.decision_records`' (path and sha256 of
the image) with, beside it:

    kind          "post"
    text          the caption
    text_sha256   sha256 of the caption's UTF-8 bytes
    source        "FILE:LINE" of the row
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.export.predict import Prediction, decision_records
from shotlab.runtime.runners import BATCH_SIZE


@dataclass(frozen=True)
class Post:
    image: Path | None  # None: an uploaded image's bytes (the page), hashed by the caller
    text: str
    where: str  # FILE:LINE


def read_posts(path: Path) -> tuple[list[Post], list[tuple[str, str]]]:
    """The posts of one CSV/JSONL file and its bad rows as (FILE:LINE, reason). A row's image
    path is read as given, absolute or relative to the file's folder: the user's own file, read
    with the user's own rights (`curate import`, which keeps the files in a dataset, holds them
    to the CSV's folder)."""
    from shotlab.core.rows import IMAGE_COLUMNS, read_rows
    from shotlab.runtime.text import text_column

    rows, bad_rows = read_rows(path)
    bad = [(f"{path}:{line}", reason) for line, reason in bad_rows]
    folder = Path(os.path.normpath(Path(path).parent.absolute()))
    posts = []
    for row in rows:
        where = f"{path}:{row.line}"
        fields = {str(k).strip().lower(): v for k, v in row.fields.items()}
        value = next((fields[c] for c in IMAGE_COLUMNS if fields.get(c)), None)
        if not value:
            bad.append((where, f"no image path (columns {', '.join(IMAGE_COLUMNS)})"))
            continue
        image = Path(os.path.normpath(folder / str(value).strip()))
        try:
            text = text_column(fields, where, "captions")
        except InputError as exc:
            bad.append((where, str(exc).split(": ", 1)[-1]))
            continue
        posts.append(Post(image, text, where))
    return posts, bad


def check_bundle(bundle) -> None:
    names = list(bundle.parts)
    if sorted(names) != ["image", "text"]:
        raise InputError(f"{bundle.origin}: a post bundle has the parts image and text; this one "
                         f"has {', '.join(names)}")


def post_decisions(bundle, posts: list[Post], probs: np.ndarray, *, runtime: str,
                   sha256s=None) -> list[dict]:
    """The records of `posts`; `sha256s` are their images' hashes when the caller has the
    bytes and no file (the page's upload: `Post.image` None), else read from the files."""
    from shotlab.core.images import sha256_file

    sha256s = sha256s if sha256s is not None else [sha256_file(p.image) for p in posts]
    records = decision_records(bundle, probs, sha256s, runtime=runtime,
                               paths=[p.image for p in posts])
    for record, post in zip(records, posts):
        record.update(post_fields(post.text, bundle), source=post.where)
    return records


def post_fields(text: str, bundle) -> dict:
    """What a post's decision adds to an image decision (here and in `shotlab serve`). A
    caption longer than the model reads (it reads the first `max_tokens` word pieces, with the
    picture) is marked `caption_cut` and sent to review: the part it never read could change
    the decision, and a human reads all of it."""
    from shotlab.runtime.text import load_tokenizer, text_windows

    preprocessing = bundle.parts["text"]
    cut = len(text_windows(load_tokenizer(preprocessing), text, preprocessing.max_tokens)) > 1
    return {"kind": "post", "text": text,
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            **({"caption_cut": True, "needs_review": True} if cut else {})}


# A post model scores one still picture; an animated one's first frame cannot stand for the rest.
ANIMATED_PICTURE = ("an animated picture (several frames): a post's picture is scored as one "
                    "still, so its first frame cannot stand for the others; send a still "
                    "picture, or the animation as a clip to an image bundle")


def refuse_animated(posts: list[Post]) -> tuple[list[Post], list[tuple[str, str]]]:
    """(the posts with a still picture, (where, why) for each with an animated one)."""
    from shotlab.core.images import is_animated

    animated = [p.image is not None and is_animated(p.image) for p in posts]
    return ([p for p, a in zip(posts, animated) if not a],
            [(p.where, f"image {p.image}: {ANIMATED_PICTURE}") for p, a in zip(posts, animated)
             if a])


def predict_posts(bundle, files, *, batch_size: int = BATCH_SIZE, runtime: str = "onnx",
                  progress=None, keep_inputs: bool = False, runner=None,
                  max_pixels: int | None = None) -> Prediction:
    """Decisions for the posts in `files` (CSV/JSONL). With `keep_inputs`, `inputs` holds one
    {"image", "text"} row pair per decision (for --explain)."""
    from shotlab.core.progress import progress_bar
    from shotlab.runtime.kinds import load_parts
    from shotlab.runtime.runners import make_runner

    check_bundle(bundle)
    runner = runner or make_runner(bundle, runtime)
    result = Prediction()
    posts = []
    for path in files:
        found, bad = read_posts(Path(path))
        found, animated = refuse_animated(found)
        posts += found
        result.bad += bad + animated
    with progress_bar(total=len(posts), enabled=progress, unit="post", desc="Predicting") as bar:
        for start in range(0, len(posts), batch_size):
            chunk = posts[start:start + batch_size]
            loaded = load_parts({"image": [p.image for p in chunk],
                                 "text": [p.text for p in chunk]}, bundle.parts,
                                max_pixels=max_pixels)
            result.bad += [(chunk[i].where, reason_of(loaded.bad, chunk[i]))
                           for i in range(len(chunk)) if i not in loaded.kept]
            if loaded.kept:
                kept = [chunk[i] for i in loaded.kept]
                result.decisions += post_decisions(bundle, kept, runner(loaded.arrays),
                                                   runtime=runtime)
                if keep_inputs:
                    result.inputs += [{name: part[i] for name, part in loaded.arrays.items()}
                                      for i in range(len(kept))]
            bar.update(len(chunk))
    return result


def reason_of(bad: list[tuple[str, str]], post: Post) -> str:
    """Why `post` did not load, from `load_parts`' list (its image named)."""
    for source, reason in bad:
        if source == f"image: {post.image}":
            return f"image {post.image}: {reason}"
    return next((reason for source, reason in bad if source.startswith("text")), "did not load")


def stacked_inputs(rows: list[dict]) -> dict:
    """{"image": (N, 3, H, W), "text": (N, L)} from per-post rows (ids padded with PAD_ID)."""
    from shotlab.runtime.text import pad

    return {"image": np.stack([r["image"] for r in rows]).astype(np.float32),
            "text": pad([r["text"] for r in rows])}


def record_post_explanations(bundle, result: Prediction, out: Path, *, runtime: str) -> dict:
    """`predict --explain` on posts: the split, Grad-CAM and caption IG of every flagged or
    review-queue post, in explanations.sqlite beside `out`."""
    from shotlab.explain.post_tier1 import record_flagged_posts
    from shotlab.export.predict import needs_attention
    from shotlab.runtime.runners import make_runner

    chosen = [(d, x) for d, x in zip(result.decisions, result.inputs) if needs_attention(d)]
    if not chosen:
        return {"stored": 0, "store": None}
    store_path = Path(out).parent / "explanations.sqlite"
    decisions, rows = zip(*chosen)
    stored = record_flagged_posts(bundle, list(decisions), stacked_inputs(list(rows)),
                                  make_runner(bundle, runtime), store_path)
    return {"stored": stored, "store": str(store_path)}
