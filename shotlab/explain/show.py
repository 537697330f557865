"""`shotlab explain show`: what the store holds for one decision, as text, JSON or a figure.

It only reads: the store is opened read-only (its bytes, mtime and folder are left as they were);
the one file written is the figure (PNG) or a comment's page (HTML) asked for with `--out`, which
may not be the store, the decision's image or any other existing file but a figure or page
explain wrote before.
"""

from __future__ import annotations

import functools
from pathlib import Path

from shotlab.core.errors import InputError


def read_decision(store_path, decision_id: str) -> tuple[dict, list, list, dict | None]:
    """(decision row or {}, explanations with their maps, appeals, tier-1 failure or None) for
    `decision_id`, read-only; an InputError when the store holds nothing for it."""
    from shotlab.explain.store import ExplanationStore

    with ExplanationStore(store_path, readonly=True) as store:
        decision = store.decision(decision_id) or {}
        explanations = store.explanations(decision_id)
        appeals = [a for a in store.appeals(status=None) if a.decision_id == decision_id]
        failure = store.failure(decision_id)
    if not explanations and not decision and not appeals and not failure:
        raise InputError(f"decision {decision_id}: nothing stored in {store_path} (explanations "
                         f"are stored for flagged and needs-review decisions of `shotlab predict "
                         f"--explain` and `shotlab serve`)")
    return decision, explanations, appeals, failure


def describe(store_path, decision_id: str) -> dict:
    """The decision and its explanations as plain data (`explain.summary`: a comment's word
    scores, a post's split, a clip frame's time among them), its appeals, and why its tier-1
    explanation failed (`tier1_failed`: {error, finished}, or None)."""
    from shotlab.explain.summary import explanation_summary

    decision, explanations, appeals, failure = read_decision(store_path, decision_id)
    return {"decision_id": decision_id, "path": decision.get("path"),
            "bundle": decision.get("bundle"), "scores": decision.get("scores"),
            "labels": decision.get("labels"), "flagged": decision.get("flagged"),
            "needs_review": decision.get("needs_review"), "decided": decision.get("created"),
            "explanations": [{**explanation_summary(e), "params": e.params,
                              "model_sha256": e.model_sha256, "input_sha256": e.input_sha256}
                             for e in explanations],
            "appeals": [{"methods": a.methods, "status": a.status, "requested": a.requested,
                         "error": a.error} for a in appeals],
            "tier1_failed": failure}


def backdrop(image, bundle_path, shape):
    """The decision's image (`image_decided`) as the model saw it (the bundle's resize and crop,
    else a plain resize to the map), or a grey field when there is none: a map drawn over
    another picture would mislead."""
    import numpy as np
    from PIL import Image

    height, width = shape
    if image is None:
        return np.full((height, width, 3), 128, np.uint8)
    preprocessing = bundle_preprocessing(str(bundle_path)) if bundle_path else None
    if preprocessing is not None:
        cropped = preprocessing.resize_and_crop(image)
        if cropped.size == (width, height):
            return np.asarray(cropped)
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC))


def image_decided(path, sha256: str | None):
    """The RGB image at `path`, read once, if its bytes are still the ones decided (`sha256`);
    None when it is gone, unreadable or another file now."""
    import hashlib

    from shotlab.core.errors import ShotlabError
    from shotlab.core.images import read_bytes, rgb_from_bytes

    if not path:
        return None
    try:
        data = read_bytes(Path(path))
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            return None
        return rgb_from_bytes(data, Path(path))
    except ShotlabError:
        return None


def clip_frame(path, sha256: str | None, seconds: float):
    """The frame of the clip at `path` that `shotlab predict` explained at `seconds` (stored to
    the millisecond: the clip's frame shown nearest it, as sampling snaps its grid to real
    frames), as an RGB image, if the clip's bytes are still the ones decided (`sha256`); None
    when it is gone, unreadable, another file now, or that frame does not decode."""
    import numpy as np
    from PIL import Image

    from shotlab.core.clips import ClipReader
    from shotlab.core.errors import ShotlabError
    from shotlab.core.images import sha256_file

    if not path:
        return None
    try:
        if sha256 and sha256_file(Path(path)) != sha256:
            return None
        with ClipReader(Path(path)) as clip:
            times = clip.frame_times
            nearest = float(times[int(np.abs(times - float(seconds)).argmin())])
            frames = clip.frames_at([nearest])
            try:
                frame = next(frames, None)
            finally:
                frames.close()
    except (ShotlabError, OSError):
        return None
    return None if frame is None else Image.fromarray(frame.pixels)


def frame_time(row) -> float | None:
    """The time (s) of the clip frame a stored map explains; None for an image's map."""
    seconds = row.params.get("timestamp")
    return None if seconds is None else float(seconds)


def backdrops(decision: dict, rows) -> tuple[list, str | None]:
    """Per stored map row, the picture under it as the model saw it (`backdrop`): the decision's
    image, or for a clip the frame at the row's timestamp; and the note when one is grey."""
    pictures, seen = [], {}
    for row in rows:
        seconds = frame_time(row)
        if seconds not in seen:
            seen[seconds] = (image_decided(decision.get("path"), decision.get("sha256"))
                             if seconds is None else
                             clip_frame(decision.get("path"), decision.get("sha256"), seconds))
        pictures.append(backdrop(seen[seconds], decision.get("bundle"), row.map.shape))
    grey = [t for t, image in seen.items() if image is None]
    note = grey_note(decision["path"], grey[0]) if grey and decision.get("path") else None
    return pictures, note


def grey_note(path, seconds: float | None = None) -> str:
    """Why a decision's maps are drawn over grey, for the reader."""
    if seconds is not None:
        return (f"{path} is gone, no longer the clip decided (its sha256 differs) or its frame "
                f"at {seconds:.3f} s does not decode: the maps are shown over grey")
    return (f"{path} is gone or no longer the image decided (its sha256 differs): the maps are "
            f"shown over grey")


@functools.lru_cache(maxsize=8)
def bundle_preprocessing(bundle_path: str):
    """The preprocessing of the bundle at `bundle_path`, read once per process (a zip is
    unpacked once, not on every page interaction), or None when there is no bundle there."""
    from shotlab.core.errors import ShotlabError
    from shotlab.runtime.bundle import load_bundle

    try:
        return load_bundle(bundle_path, verify=False).preprocessing
    except (ShotlabError, ImportError, TypeError, KeyError):
        return None  # no bundle to say how the image was cropped: show it whole


def render(store_path, decision_id: str, out) -> tuple[Path, str | None]:
    """Every stored map for the decision over its image (a clip's: over the frame it explains,
    each frame captioned with its time), side by side, as one PNG at `out` (a comment's words:
    one HTML page). `out` may replace only a figure or page explain wrote. Returns `out` and
    the note when a picture is grey (`grey_note`: its image or clip gone or changed), else
    None."""
    from shotlab.explain.plots import pictures_figure
    from shotlab.explain.post_split import METHOD as SPLIT
    from shotlab.explain.store import ExplanationStore
    from shotlab.explain.text_store import is_text

    with ExplanationStore(store_path, readonly=True) as store:
        decision = store.decision(decision_id) or {}
        explanations = store.explanations(decision_id)
    if not explanations:
        raise InputError(f"decision {decision_id}: no explanation stored in {store_path} yet")
    page = all(is_text(e) for e in explanations)  # a comment's words: a page, not a figure
    check_out(Path(out), store_path, decision, decision_id, page)
    if page:
        from shotlab.core.files import write_text_atomic
        from shotlab.explain.text_render import stored_page

        write_text_atomic(Path(out), stored_page(decision_id, decision, explanations))
        return Path(out), None
    pictured = [e for e in explanations if not is_text(e) and e.method != SPLIT]
    if not pictured:  # a post whose picture has no map: its split and words are `show`'s text
        raise InputError(f"decision {decision_id}: no map over a picture stored in "
                         f"{store_path}; `explain show {decision_id} --store {store_path}` "
                         f"lists what is stored")
    pictures, note = backdrops(decision, pictured)
    groups = {}  # one picture (an image, a clip's frame) and the maps over it
    for row, picture in zip(pictured, pictures):
        seconds = frame_time(row)
        caption = "image" if seconds is None else f"frame at {seconds:.3f} s"
        name = f"{row.method} ({row.target})" if row.target else row.method
        groups.setdefault(caption, (picture, {}))[1][name] = row.map
    pictures_figure([(caption, picture, maps) for caption, (picture, maps) in groups.items()],
                    out, title=f"decision {decision_id}")
    return Path(out), note


FIGURE_SUFFIXES = (".png",)
PAGE_SUFFIXES = (".html", ".htm")


def check_out(out: Path, store_path, decision: dict, decision_id: str, page: bool) -> None:
    """Refuse, before anything is drawn, an --out that is the store or the decision's image, a
    suffix of another format than the one written (a PNG figure; a comment's HTML page), or
    an existing file that is not a figure or page explain wrote: a user's file is never
    replaced."""
    from shotlab.core.files import check_own_output
    from shotlab.explain.plots import is_own_figure
    from shotlab.explain.text_render import is_own_page

    for path, what in ((store_path, "the explanation store"), (decision.get("path"), "its image")):
        if path and Path(path).exists() and out.exists() and out.samefile(path):
            raise InputError(f"--out {out} is {what}; give a new "
                             f"{PAGE_SUFFIXES[0] if page else FIGURE_SUFFIXES[0]} path for the "
                             f"{'page' if page else 'figure'}")
    suffixes, what = ((PAGE_SUFFIXES, "an HTML page of the comment's words") if page else
                      (FIGURE_SUFFIXES, "a PNG figure of its maps"))
    if out.suffix.lower() not in suffixes:
        raise InputError(f"--out {out}: decision {decision_id} is drawn as {what}; give a "
                         f"{suffixes[0]} path")
    check_own_output(out, "--out", is_own_page if page else is_own_figure,
                     f"--out {out}: the file exists and is not a "
                     f"{'page' if page else 'figure'} `shotlab explain` wrote; show replaces "
                     f"only its own output: choose another --out")
