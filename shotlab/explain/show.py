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


def grey_note(path) -> str:
    """Why a decision's maps are drawn over grey, for the reader."""
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
    image = backdrop(image_decided(decision.get("path"), decision.get("sha256")),
                     decision.get("bundle"), explanations[0].map.shape)
    methods_figure(image, maps, out, title=f"decision {decision_id}")
    return Path(out)
