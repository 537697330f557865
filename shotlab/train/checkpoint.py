"""Load a trained model back from a run folder (or its `best.pt`) without the run's other state.

Export and explain start here: the checkpoint carries everything needed to rebuild the model
(backbone, timm name, classes, task) and its preprocessing contract. A run's `best.pt` must be
the file its run finished with (metrics.json records its sha256): a checkpoint damaged or
replaced since would be exported, and pass the gate, under metrics and thresholds that are
not its own.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.runtime.contract import ModelContract


@dataclass
class Checkpoint(ModelContract):
    model: object  # torch.nn.Module in eval mode, on the CPU
    meta: dict  # backbone, timm_name, preprocessing, task, classes, manifest_hash, weights, config
    path: Path
    run_dir: Path | None  # the run folder when the checkpoint sits in <run>/checkpoints/
    sha256: str = ""  # of the bytes the model was loaded from

    @property
    def contract(self) -> dict:
        return self.meta


def checkpoint_path(run_or_file: str | Path) -> Path:
    """`best.pt` of a run folder, or the file itself (`~` expanded, as a shell would for the
    CLI); a clear error when neither exists."""
    path = Path(run_or_file).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "best.pt"
    if not path.is_file():
        raise InputError(f"{run_or_file}: no checkpoint found (expected a run folder with "
                         f"checkpoints/best.pt, or a .pt file); list runs with `shotlab train runs`")
    return path


def run_folder(checkpoint_file: Path) -> Path | None:
    """The run folder a checkpoint file lies in (RUN/checkpoints/NAME.pt), else None."""
    path = Path(checkpoint_file)
    return path.parent.parent if path.parent.name == "checkpoints" else None


def one_line(exc: BaseException, limit: int = 160) -> str:
    """The gist of an exception in one short line (torch's unpickling errors run to ten lines
    and advise loading the file with code execution on, which shotlab never does)."""
    text = str(exc)
    code = re.search(r"GLOBAL ([\w.]+)", text)
    if code:
        return f"it names Python code to run, {code[1]}, which shotlab never loads"
    if text.startswith("Weights only load failed"):
        return "it holds more than tensors and plain data, which shotlab never loads"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0].split(". ")[0] if lines else type(exc).__name__
    return first if len(first) <= limit else first[:limit - 3] + "..."


def load_data(path: Path, map_location="cpu"):
    """torch.load as data only: tensors, numbers, strings, lists and dicts. torch's weights-only
    unpickler refuses anything else (a pickle that would import or call a function), so a file
    planted in a run folder, or given as weights, cannot run code."""
    import torch

    with warnings.catch_warnings():  # e.g. "pickle protocol 4": the caller's error says enough
        warnings.simplefilter("ignore")
        return torch.load(path, map_location=map_location, weights_only=True)


def read_state(path: Path, fix: str, *, map_location="cpu", data: bytes | None = None) -> dict:
    """A checkpoint's contents (`load_data`; from `data`, the file's bytes read already, where
    given); any failure is one InputError naming the file and `fix`."""
    import io

    try:
        state = load_data(path if data is None else io.BytesIO(data), map_location)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise InputError(f"{path}: not a readable shotlab checkpoint ({one_line(exc)}); "
                         f"{fix}") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a shotlab checkpoint (holds a {type(state).__name__}, not "
                         f"a dict); {fix}")
    return state


CHECKPOINT_SHA256 = "checkpoint_sha256"  # metrics.json's record of the finished best.pt


def check_unchanged(path: Path, sha256: str) -> None:
    """Refuse a run's best.pt whose sha256 is not the one metrics.json recorded when the run
    finished. A run finished before the record, an unfinished run, or a lone .pt file has
    nothing to check against."""
    import json

    folder = run_folder(path)
    if folder is None or path.name != "best.pt":
        return
    try:
        recorded = json.loads((folder / "metrics.json").read_text()).get(CHECKPOINT_SHA256)
    except (OSError, ValueError, AttributeError):
        return
    if recorded and sha256 != recorded:
        raise InputError(f"{path}: changed since its run finished (its sha256 is not the one "
                         f"metrics.json recorded), so the run's metrics, thresholds and "
                         f"calibration are not its own; restore the file from a backup, resume "
                         f"an interrupted `shotlab train --resume {folder}`, or train again")


def read_once(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their sha256, read once: the bytes checked are the bytes loaded
    (hashing the file and opening it again left a gap in which it could be replaced)."""
    import hashlib

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read this checkpoint ({exc.strerror or exc}); "
                         f"re-run `shotlab train` to produce one") from None
    return data, hashlib.sha256(data).hexdigest()


def load_checkpoint(run_or_file: str | Path, *, expected_sha256: str | None = None,
                    mismatch: str | None = None) -> Checkpoint:
    """The best model of a run, rebuilt from its checkpoint, in eval mode on the CPU: a timm
    model for an image run, a `text_model.TextClassifier` (token ids -> logits) for a text run,
    a `post_model.PostClassifier` for a post run; its scores are the calibrated ones.
    `expected_sha256`: the file must be this one (a bundle's source checkpoint; `mismatch`:
    the message when it is not)."""
    from shotlab.train.calibration import fold_into_head

    path = checkpoint_path(run_or_file)
    data, sha256 = read_once(path)
    check_unchanged(path, sha256)
    if expected_sha256 and sha256 != expected_sha256:
        raise InputError(mismatch or f"{path}: not the checkpoint expected (its sha256 differs: "
                                     f"it was replaced); re-export the bundle from its run")
    state = read_state(path, "re-run `shotlab train` to produce one", data=data)
    missing = {"model", "timm_name", "classes", "task", "preprocessing"} - set(state)
    if missing:
        raise InputError(f"{path}: checkpoint lacks {sorted(missing)}; it was not written by "
                         f"`shotlab train`")
    model = build_model(state)
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path}: its weights do not fit the model it names "
                         f"({one_line(exc)}); re-run `shotlab train`") from None
    fold_into_head(model, state.get("calibration"))  # best.pt keeps the raw weights
    model.eval()
    meta = {key: value for key, value in state.items() if key != "model"}
    return Checkpoint(model, meta, path, run_folder(path), sha256)


def build_model(state: dict):
    """The architecture a checkpoint's weights fit: by the model kind it names (`model_kind`:
    "post" is train/post_model.py's late fusion), else by its contract's input kind."""
    if state.get("model_kind") == "post":
        from shotlab.train.post_model import build_post_model

        return build_post_model(state)
    if state["preprocessing"].get("kind") == "text":
        from shotlab.train.text_model import build_classifier

        return build_classifier(len(state["classes"]), pretrained=False)
    import timm

    return timm.create_model(state["timm_name"], pretrained=False,
                             num_classes=len(state["classes"]))
