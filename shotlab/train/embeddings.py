"""Embeddings: pooled backbone features, extracted in batches and cached per image.

The cache key is (backbone, weights hash, preprocessing) -> a folder, and the image's sha256 -> a
file in it, so a second run over the same images does no forward pass at all, a renamed or
moved file still hits the cache, and any change to weights or preprocessing misses it. Files are
written atomically, so an interrupted run leaves nothing half-written. Curation (label issues,
near duplicates) reuses the same cache through `extract`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shotlab.core import workspace
from shotlab.core.errors import BadImageError
from shotlab.core.images import load_rgb
from shotlab.core.names import child_path
from shotlab.runtime.contract import Preprocessing
from shotlab.core.progress import progress_bar
from shotlab.train.backbones import Created, fingerprint
from shotlab.train.device import autocast, on_gpu, place_model, resolve, to_device


class ImageFiles:
    """A torch-style dataset: (model input, position) for each path; decoding happens in workers.
    Whoever iterates it calls `raise_unreadable` on each batch's positions."""

    def __init__(self, paths: list[str], preprocessing: Preprocessing):
        self.paths = paths
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return self.preprocessing.to_array(load_rgb(self.paths[index])), index
        except BadImageError:
            # A worker's exception reaches the caller as a RuntimeError holding a traceback:
            # hand back a blank input at position -1 - index, and `raise_unreadable` re-reads
            # the file in the caller's process, where the error keeps its type and one line.
            return np.zeros(self.preprocessing.sample_shape, np.float32), -1 - index


def raise_unreadable(paths: list[str], positions: np.ndarray) -> None:
    """Raise BadImageError for the first file a worker could not read (see ImageFiles)."""
    unreadable = positions[positions < 0]
    if len(unreadable):
        path = paths[-1 - int(unreadable[0])]
        load_rgb(path)  # raises BadImageError, naming the file and why
        raise BadImageError(path, "changed while it was being read; run again")


def default_workers() -> int:
    # Decoding runs beside the forward pass: keep a core for torch's own threads.
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def yield_to_forward(_worker: int) -> None:
    """A decoding worker runs at lower priority (nice +10): where the cores are all busy, it
    takes the time torch's threads leave idle instead of pre-empting one of them, which stalls the
    others at their next barrier. Measured in a throwaway run of the DataLoader loop alone
    (2 cores; benchmarks/README.md): pipeline / bare forward 0.93 -> 0.95 to 0.97 on the same
    rounds; embedding_speed.py's own latest reading is 0.91."""
    os.nice(10)


def cache_folder(created: Created) -> Path:
    return workspace.current().cache_dir / "embeddings" / fingerprint(created)


def forward_batches(model, preprocessing, paths: list[str], *, batch_size: int, workers: int,
                    device: str, progress: bool | None, desc: str = "Embedding"):
    """Yield (positions, outputs) of `model` (a feature extractor or a classifier's logits) for
    the image files `paths`, in order, in batches through a DataLoader; an unreadable file
    raises its own BadImageError here."""
    import torch
    from torch.utils.data import DataLoader

    model = place_model(model.eval(), device)
    loader = DataLoader(ImageFiles(paths, preprocessing), batch_size=batch_size,
                        num_workers=workers, pin_memory=on_gpu(device), persistent_workers=False,
                        worker_init_fn=yield_to_forward)
    with torch.inference_mode(), progress_bar(total=len(paths), enabled=progress, unit="img",
                                              desc=desc) as bar:
        for inputs, positions in loader:
            raise_unreadable(paths, positions.numpy())
            with autocast(device):
                features = model(to_device(inputs, device))
            bar.update(len(positions))
            yield positions.numpy(), features.float().cpu().numpy()


def save_atomic(path: Path, vector: np.ndarray) -> None:
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with open(partial, "wb") as f:
        np.save(f, vector)
    partial.replace(path)


def extract(created: Created, paths: list[str], sha256s: list[str], *, batch_size: int = 32,
            workers: int | None = None, device: str | None = None,
            progress: bool | None = None, use_cache: bool = True) -> np.ndarray:
    """Embeddings (n, d) float32 for the images, in order; cached images cost no forward pass.

    `created` must be a feature extractor (`create_model(..., num_classes=0)`).
    """
    if not paths:
        return np.zeros((0, created.model.num_features), dtype=np.float32)
    cached, missing = cache_files(cache_folder(created), sha256s, use_cache=use_cache)
    todo = list(missing.values())
    if todo:
        for positions, features in forward_batches(
                created.model, created.preprocessing, [paths[i] for i in todo],
                batch_size=batch_size,
                workers=default_workers() if workers is None else workers,
                device=resolve(device), progress=progress):
            for position, vector in zip(positions, features):
                save_atomic(cached[sha256s[todo[position]]], vector)
    return load_cached(cached, sha256s)


def cache_files(folder: Path, sha256s: list[str], *, use_cache: bool = True):
    """({sha256: its .npy in `folder`}, {sha256: first position} of the inputs not cached yet):
    one forward pass per distinct input. The digests come from a manifest, which a run folder
    can bring: never a path out of the cache."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {s: child_path(folder, f"{s}.npy") for s in set(sha256s)}
    missing: dict[str, int] = {}
    for position, digest in enumerate(sha256s):
        if digest not in missing and not (use_cache and files[digest].is_file()):
            missing[digest] = position
    return files, missing


def load_cached(files: dict, sha256s: list[str]) -> np.ndarray:
    """float32 (n, d): the cached vector of each digest, in order."""
    return np.stack([np.load(files[s]) for s in sha256s]).astype(np.float32)
