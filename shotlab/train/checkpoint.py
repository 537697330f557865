"""Load a trained model back from a run folder (or its `best.pt`) without the run's other state.

Export and explain start here: the checkpoint carries everything needed to rebuild the model
(backbone, timm name, classes, task) and its preprocessing contract.
"""

from __future__ import annotations

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

    @property
    def contract(self) -> dict:
        return self.meta


def checkpoint_path(run_or_file: str | Path) -> Path:
    """`best.pt` of a run folder, or the file itself; a clear error when neither exists."""
    path = Path(run_or_file)
    if path.is_dir():
        path = path / "checkpoints" / "best.pt"
    if not path.is_file():
        raise InputError(f"{run_or_file}: no checkpoint found (expected a run folder with "
                         f"checkpoints/best.pt, or a .pt file); list runs with `shotlab train runs`")
    return path


def load_checkpoint(run_or_file: str | Path) -> Checkpoint:
    """The best model of a run, rebuilt from its checkpoint, in eval mode on the CPU."""
    import timm
    import torch

    path = checkpoint_path(run_or_file)
    try:
        # weights_only: a checkpoint is data (tensors, strings, numbers), never code to run.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise InputError(f"{path}: not a readable shotlab checkpoint ({exc}); "
                         f"re-run `shotlab train` to produce one") from None
    missing = {"model", "timm_name", "classes", "task", "preprocessing"} - set(state)
    if missing:
        raise InputError(f"{path}: checkpoint lacks {sorted(missing)}; it was not written by "
                         f"`shotlab train`")
    model = timm.create_model(state["timm_name"], pretrained=False,
                              num_classes=len(state["classes"]))
    model.load_state_dict(state["model"], strict=True)
    model.eval()
    meta = {key: value for key, value in state.items() if key != "model"}
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    return Checkpoint(model, meta, path, run_dir)
