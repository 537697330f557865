"""`shotlab explain show`: what the store holds for one decision, as text, JSON or a figure.

It only reads: the store is opened read-only (its bytes, mtime and folder are left as they were);
the one file written is the figure asked for with `--out`, which may not be the store itself or
the decision's image.
"""

from __future__ import annotations

import functools
from pathlib import Path

from shotlab.core.errors import InputError


def read_decision(store_path, decision_id: str) -> tuple[dict, list, list]:
    """(decision row or {}, explanations with their maps, appeals) for `decision_id`, read-only;
    an InputError when the store holds nothing for it."""
    from shotlab.explain.store import ExplanationStore

    with ExplanationStore(store_path, readonly=True) as store:
        decision = store.decision(decision_id) or {}
        explanations = store.explanations(decision_id)
        appeals = [a for a in store.appeals(status=None) if a.decision_id == decision_id]
    if not explanations and not decision and not appeals:
        raise InputError(f"decision {decision_id}: nothing stored in {store_path} (explanations "
                         f"are stored for flagged and needs-review decisions of `shotlab predict "
                         f"--explain`)")
    return decision, explanations, appeals


def describe(store_path, decision_id: str) -> dict:
    decision, explanations, appeals = read_decision(store_path, decision_id)
    return {"decision_id": decision_id, "path": decision.get("path"),
            "bundle": decision.get("bundle"), "scores": decision.get("scores"),
            "flagged": decision.get("flagged"),
            "explanations": [{"method": e.method, "target": e.target, "params": e.params,
                              "scores": e.scores, "model_sha256": e.model_sha256,
                              "input_sha256": e.input_sha256, "created": e.created,
                              "shape": list(e.map.shape)} for e in explanations],
            "appeals": [{"methods": a.methods, "status": a.status, "requested": a.requested,
                         "error": a.error} for a in appeals]}


def backdrop(path, bundle_path, shape, sha256: str | None = None):
    """The decision's image as the model saw it (the bundle's resize and crop, else a plain
    resize to the map), or a grey field when the image is gone or its bytes are no longer the
    ones decided (`sha256`): a map drawn over another picture would mislead."""
    import numpy as np
    from PIL import Image

    height, width = shape
    image = image_decided(path, sha256)
    if image is None:
        return np.full((height, width, 3), 128, np.uint8)
    preprocessing = bundle_preprocessing(str(bundle_path)) if bundle_path else None
    if preprocessing is not None:
        cropped = preprocessing.resize_and_crop(image)
        if cropped.size == (width, height):
            return np.asarray(cropped)
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC))


def image_decided(path, sha256: str | None):
    """The RGB image at `path` if it is still the one decided (its sha256), else None."""
    from shotlab.core.errors import ShotlabError
    from shotlab.core.images import load_rgb

    try:
        return load_rgb(path) if is_decided_file(path, sha256) else None
    except ShotlabError:
        return None


def is_decided_file(path, sha256: str | None) -> bool:
    """True when `path` holds the bytes decided (any readable file when `sha256` is None)."""
    import hashlib

    from shotlab.core.errors import ShotlabError
    from shotlab.core.images import read_bytes

    try:
        data = read_bytes(Path(path)) if path else None
    except ShotlabError:
        return False
    return data is not None and (not sha256 or hashlib.sha256(data).hexdigest() == sha256)


def backdrop_note(path, sha256: str | None) -> str | None:
    """Why the backdrop is grey, for the reader (None when it is the image decided)."""
    if not path or is_decided_file(path, sha256):
        return None
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


def render(store_path, decision_id: str, out) -> Path:
    """Every stored map for the decision over its image, side by side, as one PNG at `out`."""
    from shotlab.explain.plots import methods_figure
    from shotlab.explain.store import ExplanationStore

    with ExplanationStore(store_path, readonly=True) as store:
        decision = store.decision(decision_id) or {}
        explanations = store.explanations(decision_id)
    if not explanations:
        raise InputError(f"decision {decision_id}: no explanation stored in {store_path} yet")
    for path, what in ((store_path, "the explanation store"), (decision.get("path"), "its image")):
        if path and Path(path).exists() and Path(out).exists() and Path(out).samefile(path):
            raise InputError(f"--out {out} is {what}; give a new .png path for the figure")
    from shotlab.explain.text_store import is_text

    if all(is_text(e) for e in explanations):  # a comment's words: a page, not a figure
        from shotlab.core.files import write_text_atomic
        from shotlab.explain.text_render import stored_page

        write_text_atomic(Path(out), stored_page(decision_id, decision, explanations))
        return Path(out)
    maps = {f"{e.method} ({e.target})" if e.target else e.method: e.map for e in explanations}
    image = backdrop(decision.get("path"), decision.get("bundle"), explanations[0].map.shape,
                     decision.get("sha256"))
    methods_figure(image, maps, out, title=f"decision {decision_id}")
    return Path(out)
