"""Input kinds: one table entry per kind of input a model can take.

    KINDS["image"].load(paths, preprocessing)   -> Inputs(arrays (N, 3, H, W), kept, bad)
    KINDS["image"].sample_shape(preprocessing)  -> (3, H, W)
    KINDS["image"].decode(data, preprocessing)  -> one (3, H, W) sample from bytes in memory
    load_inputs(paths, preprocessing)           the entry of `preprocessing.kind`

A kind says how a source (a file path today) becomes a preprocessed array, what one sample's
shape is, and which file suffixes belong to it. `clip` is a short video: its sample is one
frame (the model is an image model), `load` samples frames with PyAV and says in
`Inputs.frames` which clip and which second each row comes from. `text` is a comment: its
sources are the texts themselves, its sample int64 token ids of any length (runtime/text.py);
every stage
that runs a model (export, predict, explain, the service) goes through this table, never through
a kind-specific copy of itself.

This module imports nothing heavier than PIL and numpy; a loader imports what else it needs
(PyAV only when a clip is decoded).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.clips import CLIP_EXTENSIONS
from shotlab.core.images import IMAGE_EXTENSIONS


@dataclass
class Inputs:
    arrays: np.ndarray | dict  # (N, *sample_shape) in the kind's dtype; {part: array} (load_parts)
    kept: list[int]  # indices into the requested sources
    bad: list[tuple[str, str]]  # (source, reason) skipped
    # Kinds that give several rows per source (a clip's frames): per row, (source index,
    # timestamp in seconds). None where each kept source is one row.
    frames: list[tuple[int, float]] | None = None
    gaps: dict[int, list] | None = None  # source index -> spans that failed to decode
    # Per kept source, the sha256 of the very bytes decoded (images: the file read once, so a
    # file replaced after it was read cannot lend its hash to the decision); None elsewhere.
    sha256s: list[str] | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str  # one line for help texts and docs
    sample_shape: Callable  # (preprocessing) -> shape of one preprocessed sample
    # (sources, preprocessing, *, progress, desc, max_pixels) -> Inputs; `max_pixels`: the
    # pixel bomb limit per image or clip frame (None: core's default; text ignores it)
    load: Callable
    extensions: frozenset[str]  # file suffixes a folder search collects for this kind
    # (data: bytes, preprocessing, *, max_pixels) -> one preprocessed sample; raises
    # BadImageError with the reason. What the service calls on a request body.
    decode: Callable | None = None
    # Content types a request body of this kind may carry (a prefix ends with "/").
    media_types: frozenset[str] = frozenset()
    dtype: str = "float32"  # the numpy dtype of a preprocessed sample (the model input's)
    # How a dataset's stored sample file (a manifest entry's filepath) becomes a source for
    # `load`: None where the path is the source (images, clips); text reads the comment.
    read: Callable | None = None
    # (preprocessing) -> None: raises InputError naming a field of the contract this kind
    # cannot run with (Preprocessing checks the fields every kind shares).
    check: Callable | None = None


def is_number(value) -> bool:
    """A finite int or float as JSON gives it (not a bool, a string or NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_image(preprocessing) -> None:
    """An image contract: (height, width) in positive whole pixels, and one mean and one
    positive std per channel."""
    size = preprocessing.input_size
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in size):
        raise InputError(f"preprocessing input_size {list(size)} must be [height, width] in "
                         f"positive whole pixels, e.g. [224, 224]")
    channels = len(preprocessing.channel_order)
    for field_name in ("mean", "std"):
        values = getattr(preprocessing, field_name)
        if len(values) != channels or not all(map(is_number, values)):
            raise InputError(f"preprocessing {field_name} {list(values)} must be {channels} "
                             f"numbers, one per channel ({preprocessing.channel_order})")
    if not all(v > 0 for v in preprocessing.std):
        raise InputError(f"preprocessing std {list(preprocessing.std)} must be positive (each "
                         f"channel is divided by it)")


def image_shape(preprocessing) -> tuple[int, int, int]:
    height, width = preprocessing.input_size
    return (len(preprocessing.channel_order), height, width)


def load_images(paths, preprocessing, *, progress=None, desc="Preprocessing",
                max_pixels: int | None = None) -> Inputs:
    """Decode and preprocess `paths`; bad images are skipped and listed, never raised."""
    import hashlib

    from shotlab.core.errors import BadImageError
    from shotlab.core.images import DEFAULT_MAX_PIXELS, read_bytes, rgb_from_bytes
    from shotlab.core.progress import progress_bar

    arrays, kept, bad, digests = [], [], [], []
    for i, path in enumerate(progress_bar(paths, enabled=progress, unit="img", desc=desc)):
        try:
            data = read_bytes(path)
            arrays.append(preprocessing.to_array(
                rgb_from_bytes(data, path, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)))
        except BadImageError as exc:
            bad.append((str(path), exc.reason))
            continue
        kept.append(i)
        digests.append(hashlib.sha256(data).hexdigest())
    shape = image_shape(preprocessing)
    stacked = np.stack(arrays) if arrays else np.zeros((0, *shape), np.float32)
    return Inputs(stacked, kept, bad, sha256s=digests)


def decode_image(data: bytes, preprocessing, *, max_pixels: int | None = None) -> np.ndarray:
    """One preprocessed image from encoded bytes (the pixel bomb guard of core.images applies)."""
    from shotlab.core.images import DEFAULT_MAX_PIXELS, rgb_from_bytes

    image = rgb_from_bytes(data, "request body", max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    return preprocessing.to_array(image)


def load_clips(paths, preprocessing, *, progress=None, desc="Sampling clips",
               sampling="uniform:8", dedupe: bool = True, max_pixels: int | None = None
               ) -> Inputs:
    """Sample each clip's frames (`shotlab.core.clips`) and preprocess them as images: one row
    per frame, `frames` saying which clip and when. Bad clips are skipped and listed."""
    from PIL import Image

    from shotlab.core.clips import DEFAULT_MAX_FRAME_PIXELS, sample_clip
    from shotlab.core.errors import BadImageError
    from shotlab.core.progress import progress_bar

    arrays, kept, bad, frames, gaps = [], [], [], [], {}
    for i, path in enumerate(progress_bar(paths, enabled=progress, unit="clip", desc=desc)):
        try:
            _, sampled, missing = sample_clip(path, sampling, dedupe=dedupe,
                                              max_pixels=max_pixels or DEFAULT_MAX_FRAME_PIXELS)
        except BadImageError as exc:
            bad.append((str(path), exc.reason))
            continue
        kept.append(i)
        gaps[i] = missing
        for frame in sampled:
            arrays.append(preprocessing.to_array(Image.fromarray(frame.pixels)))
            frames.append((i, frame.timestamp))
    shape = image_shape(preprocessing)
    stacked = np.stack(arrays) if arrays else np.zeros((0, *shape), np.float32)
    return Inputs(stacked, kept, bad, frames, gaps)


def text_shape(preprocessing) -> tuple[str]:
    return ("tokens",)  # a dynamic axis: a batch is padded to its longest comment


def load_texts(texts, preprocessing, *, progress=None, desc="Tokenizing",
               max_pixels: int | None = None) -> Inputs:
    """Token ids of `texts` (the sources are the comments themselves); an empty or over-long
    text is skipped and listed with the reason, never raised."""
    from shotlab.core.progress import progress_bar
    from shotlab.runtime.text import check_text, encode, load_tokenizer

    tokenizer = load_tokenizer(preprocessing)
    good, kept, bad = [], [], []
    for i, text in enumerate(progress_bar(texts, enabled=progress, unit="text", desc=desc)):
        try:
            good.append(check_text(text, f"text {i + 1}"))
            kept.append(i)
        except InputError as exc:
            bad.append((str(text)[:60], str(exc).split(": ", 1)[-1]))
    return Inputs(encode(tokenizer, good, preprocessing.max_tokens), kept, bad)


def read_text_file(path) -> str:
    from shotlab.runtime.text import read_text_file as read

    return read(path)


KINDS: dict[str, Kind] = {
    "image": Kind("image", "a still image (jpg, png, webp, ...), resized and center-cropped",
                  image_shape, load_images, IMAGE_EXTENSIONS, decode_image,
                  frozenset({"image/", "application/octet-stream"}), check=check_image),
    # A frame model run on sampled frames; a sample is one frame, so export and the runners see
    # an image model. The clip contract (sampling, aggregation) travels beside it.
    "clip": Kind("clip", "a short video (mp4, mov, avi, mkv, webm, mpg): sampled frames scored "
                         "as images, scores pooled over time per class",
                 image_shape, load_clips, CLIP_EXTENSIONS, check=check_image),
    "text": Kind("text", "a comment (a CSV or JSONL row's text), tokenized for a sentence encoder",
                 text_shape, load_texts, frozenset(), media_types=frozenset({"text/plain"}),
                 dtype="int64", read=read_text_file),
}


def stored_sources(paths, preprocessing) -> list:
    """The sources of a dataset's stored samples (manifest filepaths) for `load_inputs`."""
    read = get_kind(preprocessing.kind).read
    return list(paths) if read is None else [read(path) for path in paths]


def get_kind(name: str) -> Kind:
    if name not in KINDS:
        raise InputError(f"input kind '{name}' is not one this shotlab reads ({', '.join(KINDS)}); "
                         f"upgrade shotlab or re-export the model with this version")
    return KINDS[name]


def load_parts(sources: dict, parts: dict, *, progress=None, max_pixels: int | None = None
               ) -> Inputs:
    """The inputs of a model with several named parts (a post: "image" + "text"): each part's
    sources loaded through its own kind's entry, `sources[name][i]` and the other parts' i-th
    source making row i. `arrays` is {part name: array}; a row is kept only when every part of
    it loads, and each bad source is listed with its part. (Not a KINDS entry: a kind loads
    one preprocessing's sources, a multi-part model combines several kinds.)"""
    counts = {name: len(sources[name]) for name in parts}
    if len(set(counts.values())) > 1:
        raise InputError(f"every part needs one source per input; got {counts}")
    loaded = {name: load_inputs(sources[name], prep, progress=progress, desc=f"Loading {name}",
                                max_pixels=max_pixels) for name, prep in parts.items()}
    kept = sorted(set.intersection(*(set(i.kept) for i in loaded.values()))) if loaded else []
    arrays = {name: inputs.arrays[[inputs.kept.index(i) for i in kept]]
              for name, inputs in loaded.items()}
    bad = [(f"{name}: {source}", reason) for name, inputs in loaded.items()
           for source, reason in inputs.bad]
    return Inputs(arrays, kept, bad)


def load_inputs(sources, preprocessing, *, progress=None, desc="Preprocessing",
                max_pixels: int | None = None) -> Inputs:
    """The model inputs of `sources` under `preprocessing`, through the table entry of its kind
    (`max_pixels`: the pixel bomb limit for images and clip frames; None, the default)."""
    return get_kind(preprocessing.kind).load(sources, preprocessing, progress=progress, desc=desc,
                                             max_pixels=max_pixels)
