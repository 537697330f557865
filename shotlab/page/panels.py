"""The input kinds the page can show: one entry per kind, each an input widget and a view.

    PANELS["image"].pick(st, model)                  -> (name, bytes, path or None) or None
    PANELS["image"].show(st, model, decided, maps, opacity)

A panel draws with the `st` (Streamlit) module it is handed, so this table imports no Streamlit
and `model.open_model` can refuse a kind the page has no panel for before anything is served.
`clip` (the timeline of frame scores with the flagged segments) and `text` (the words
highlighted by attribution) are one entry each here when their kinds land in
`runtime.kinds.KINDS`; the decision, the bars, the faithfulness table and "Open decision" are
shared by every kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError


@dataclass(frozen=True)
class Panel:
    kind: str
    noun: str  # "an image": what the page asks for
    pick: Callable  # (st, model) -> (name, data, path | None) | None
    show: Callable  # (st, model, decided, maps {method: map}, opacity) -> None


def report_samples(bundle) -> list[Path]:
    """The inputs the bundle's report explains (one right and one wrong per class) that are
    still on disk: ready-made examples to pick instead of uploading."""
    import json

    from shotlab.runtime.bundle import REPORT_JSON

    try:
        report = json.loads((Path(bundle.path) / REPORT_JSON).read_text())
        items = report.get("explanations", {}).get("items", [])
        paths = [Path(item["path"]) for item in items]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []  # a bundle without a readable report simply offers no samples
    return list(dict.fromkeys(p for p in paths if p.is_file()))


def pick_image(st, model):
    from shotlab.runtime.kinds import get_kind

    suffixes = sorted(s.lstrip(".") for s in get_kind("image").extensions)
    upload = st.file_uploader("Upload an image", type=suffixes, key="upload")
    if upload is not None:
        return upload.name, upload.getvalue(), None
    samples = report_samples(model.bundle)
    if not samples:
        return None
    labels = ["(none)", *[f"{p.parent.name}/{p.name}" for p in samples]]
    chosen = st.selectbox("or pick one of the bundle's report samples", labels, key="sample")
    if chosen == labels[0]:
        return None
    path = samples[labels.index(chosen) - 1]
    from shotlab.core.images import read_bytes

    return str(path), read_bytes(path), path


def show_image(st, model, decided, maps: dict, opacity: float) -> None:
    import numpy as np

    from shotlab.core.images import rgb_from_bytes
    from shotlab.explain.plots import overlay

    rgb = np.asarray(model.bundle.preprocessing.resize_and_crop(
        rgb_from_bytes(decided.data, decided.name)))
    pictures = [(rgb, "input, as the model sees it")]
    pictures += [(overlay(rgb, heatmap, alpha=opacity), METHOD_TITLES.get(method, method))
                 for method, heatmap in maps.items()]
    picture_row(st, pictures)


def picture_row(st, pictures) -> None:
    """[(uint8 (H, W, 3), caption)] side by side, at most a quarter of the page wide each."""
    for column, (picture, caption) in zip(st.columns(max(len(pictures), PICTURES_PER_ROW)),
                                          pictures):
        column.image(picture, caption=caption, width="stretch")


PICTURES_PER_ROW = 4  # the page's pictures share a row of this many columns at least

METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "ig": "Integrated Gradients",
                 "lime": "LIME", "shap": "SHAP"}

PANELS: dict[str, Panel] = {
    "image": Panel("image", "an image", pick_image, show_image),
}


def panel_for(kind: str) -> Panel:
    if kind not in PANELS:
        raise InputError(f"the page has no view for input kind '{kind}' yet (it shows: "
                         f"{', '.join(PANELS)}); use `shotlab explain` and `shotlab predict` "
                         f"for this bundle")
    return PANELS[kind]
