"""What the page runs on: one verified bundle, its ONNX runner and an explain Source over both.

    model = open_model("runs/.../bundle", store="out/explanations.sqlite")

Loaded once per page process (`launch` opens it before the server starts, so a bad bundle is
refused on the command line, and hands it to the Streamlit script through `served()`). The ONNX
runner is shared by every browser session (ONNX Runtime sessions are thread-safe); the PyTorch
checkpoint behind the gradient methods is not (Grad-CAM hooks the module), so gradient work
takes `gradient_lock`, one map at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from shotlab.core.errors import InputError

_SERVED: list = []  # the model the running page shows (set by launch, read by the script)


@dataclass
class PageModel:
    bundle: object  # shotlab.runtime.bundle.Bundle
    runner: object  # make_runner(bundle, RUNTIME): the decision and the forward-only methods
    source: object  # shotlab.explain.sources.Source over the same bundle and runner
    store: Path | None  # the explanation store "Open decision" reads, if one was given
    gradient_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kind(self) -> str:
        return page_kind(self.bundle)


def page_kind(bundle) -> str:
    """The bundle's input kind as the page's panels name it: "post" for an image + caption
    model (its parts "image" and "text"), else `bundle.input_kind`."""
    return "post" if sorted(bundle.parts) == ["image", "text"] else bundle.input_kind


def bundle_path(path) -> Path:
    """The bundle a RUN_OR_BUNDLE names: a bundle folder or .zip as given; for a training run,
    the bundle `shotlab export RUN` wrote beside it."""
    from shotlab.explain.sources import is_run
    from shotlab.export.exporter import default_out

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such run or bundle (give a bundle folder or .zip from "
                         f"`shotlab export`, or a run folder that has been exported)")
    if path.is_dir() and is_run(path):
        bundle = default_out(path)
        if not bundle.is_dir():
            raise InputError(f"{path}: this run has no bundle yet; the page shows the decision "
                             f"of a shipped model (its thresholds and review band): run "
                             f"`shotlab export {path}` first")
        return bundle
    return path


def open_model(path, *, store=None, trusted_keys=None) -> PageModel:
    from shotlab.explain.sources import source_of_bundle
    from shotlab.page.panels import panels_for
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.runners import make_runner

    bundle = load_bundle(bundle_path(path), trusted_keys=trusted_keys or None)
    panels_for(page_kind(bundle))  # refuse a kind the page cannot show, before serving
    if store is not None:
        check_store(Path(store))
    from shotlab.page.deciding import RUNTIME

    runner = make_runner(bundle, RUNTIME)
    return PageModel(bundle, runner, source_of_bundle(bundle, runner),
                     Path(store) if store is not None else None)


def check_store(store: Path) -> None:
    """--store must be an explanation store now, not only when a decision is opened."""
    from shotlab.explain.store import ExplanationStore

    if not store.is_file():
        raise InputError(f"--store {store}: no such file (give the explanations.sqlite that "
                         f"`shotlab predict --explain` wrote, or leave --store out)")
    ExplanationStore(store, readonly=True).close()  # opened read-only: nothing is written


def serve_model(model: PageModel) -> None:
    _SERVED[:] = [model]


def served() -> PageModel | None:
    return _SERVED[0] if _SERVED else None
