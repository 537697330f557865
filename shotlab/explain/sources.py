"""What `shotlab explain` explains: a training run (its checkpoint) or an exported bundle.

A run gives one PyTorch model for every method. A bundle gives its ONNX Runtime runner for the
forward-only methods (LIME, SHAP, and the faithfulness scores), so they explain the model that is
deployed, and the PyTorch checkpoint it was exported from for the gradient methods, loaded only
when one is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.runtime.contract import Preprocessing


@dataclass
class Source:
    origin: Path
    kind: str  # "run" or "bundle"
    preprocessing: Preprocessing
    classes: list[str]
    task: str
    forward_model: object  # torch module or probability callable: LIME, SHAP, faithfulness
    model_sha256: str | None
    load_torch: object = None  # () -> torch module, for the gradient methods
    _torch: object = field(default=None, repr=False)
    thresholds: dict = field(default_factory=dict)  # a bundle's: its decision rule (decided())
    unsafe: tuple = ()  # a bundle's unsafe classes (a long comment's windows: highest, not mean)
    # (decision record) -> why this source's model did not make it, or None (a bundle's
    # `Bundle.foreign`; a run cannot tell: its checkpoint is not what a decision names)
    foreign: object = None
    # a bundle's (path, sha256) of the checkpoint it was exported from: the gradient methods'
    checkpoint: tuple | None = None

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    def torch_model(self):
        if self._torch is None:
            self._torch = self.load_torch()
        return self._torch

    def model_for(self, method: str):
        from shotlab.explain import GRADIENT_METHODS

        return self.torch_model() if method in GRADIENT_METHODS else self.forward_model

    def made_by(self, method: str) -> tuple[str | None, dict]:
        """(sha256, params) naming the model `method` ran on, as an explanation records them:
        a bundle's checkpoint for the gradient methods (as tier 1 records it), else the model
        `model_sha256` names."""
        from shotlab.explain import GRADIENT_METHODS

        if self.checkpoint and method in GRADIENT_METHODS:
            path, sha256 = self.checkpoint
            return sha256, {"model": "checkpoint", "checkpoint": path}
        return self.model_sha256, {}

    def decided(self, probs, pooled: bool = False) -> list[int]:
        """Per row of `probs`, the class to explain: the one the bundle's decision rule decides
        (`predict`'s, thresholds included; multilabel: runtime.decide.explained_classes).
        `pooled`: rows pooled over a long comment's windows (they need not sum to 1)."""
        from shotlab.runtime.decide import explained_classes

        return [int(c) for c in explained_classes(probs, self.classes, task=self.task,
                                                  thresholds=self.thresholds or None,
                                                  pooled=pooled)]

    def target_index(self, target) -> int:
        """A class index from a name or an index given as text."""
        name = str(target)
        if name in self.classes:
            return self.classes.index(name)
        if name.isdigit() and int(name) < len(self.classes):
            return int(name)
        raise InputError(f"--target {target}: not a class of {self.origin} (classes: "
                         f"{', '.join(self.classes)})")


def is_run(path: Path) -> bool:
    return path.suffix == ".pt" or (path / "checkpoints" / "best.pt").is_file()


def open_source(path, *, trusted_keys=None) -> Source:
    """A run folder / .pt checkpoint, or a bundle folder / .zip (`trusted_keys`: public key
    files its signature must verify against; None: $SHOTLAB_TRUSTED_KEYS). A run is not
    signed: with trusted keys, it is refused."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such run or bundle (give a run folder from `shotlab train`, "
                         f"or a bundle folder or .zip from `shotlab export`)")
    if is_run(path) and trusted_keys:
        raise InputError(f"{path}: a training run, which is not signed; --trusted-key applies "
                         f"to bundles (explain the bundle exported from it)")
    return from_run(path) if is_run(path) else from_bundle(path, trusted_keys)


def from_run(path: Path) -> Source:
    from shotlab.train.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    return Source(path, "run", checkpoint.preprocessing, checkpoint.classes, checkpoint.task,
                  checkpoint.model, checkpoint.sha256,
                  load_torch=lambda: checkpoint.model, _torch=checkpoint.model,
                  unsafe=run_unsafe(checkpoint.run_dir))


def run_unsafe(run_dir) -> tuple:
    """The unsafe classes of a run's policy (thresholds.json), () where it has none (a run not
    finished, a lone checkpoint): a long comment's windows pool as `predict`'s do."""
    import json

    try:
        policy = json.loads((Path(run_dir) / "thresholds.json").read_text())["policy"]
        return tuple(policy.get("unsafe", ()))
    except (TypeError, OSError, KeyError, ValueError):
        return ()


def from_bundle(path: Path, trusted_keys=None) -> Source:
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(path, trusted_keys=trusted_keys)
    if len(bundle.parts) > 1:
        raise InputError(f"{path}: a post model ({' + '.join(bundle.parts)}); its decisions are "
                         f"explained per part by `shotlab predict {path} POSTS.csv --explain`, "
                         f"then `shotlab explain show DECISION_ID --store STORE`")
    return source_of_bundle(bundle)


def source_of_bundle(bundle, runner=None) -> Source:
    """A loaded bundle as a Source: `runner` (its ONNX runner, made here when not given) for the
    forward-only methods, the checkpoint it was exported from for the gradient methods."""
    from shotlab.explain.tier1 import load_bundle_checkpoint
    from shotlab.runtime.runners import OnnxRunner

    exported_from = bundle.manifest.get("source") or {}
    return Source(bundle.origin, "bundle", bundle.preprocessing, bundle.classes, bundle.task,
                  runner or OnnxRunner(bundle), bundle.model_sha256("onnx"),
                  load_torch=lambda: load_bundle_checkpoint(bundle).model,
                  thresholds=bundle.thresholds, foreign=bundle.foreign,
                  unsafe=tuple(bundle.policy.get("unsafe", ())),
                  checkpoint=((exported_from["checkpoint"], exported_from.get("checkpoint_sha256"))
                              if exported_from.get("checkpoint") else None))


def load_inputs(source: Source, paths) -> tuple[list, list, list[tuple[str, str]]]:
    """(paths read, preprocessed arrays, [(path, reason)] for images that could not be read)."""
    from shotlab.runtime.kinds import load_inputs as preprocess

    paths = list(paths)
    inputs = preprocess(paths, source.preprocessing, progress=False)
    return [Path(paths[i]) for i in inputs.kept], list(inputs.arrays), inputs.bad


def display_image(source: Source, path):
    """The RGB pixels the model saw (resized and cropped, not normalised), as uint8 (H, W, 3)."""
    import numpy as np

    from shotlab.core.images import load_rgb

    return np.asarray(source.preprocessing.resize_and_crop(load_rgb(path)))
