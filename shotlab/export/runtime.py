"""Load a bundle (folder or .zip) after verifying every file's sha256, and run it.

    bundle = load_bundle("runs/.../bundle")
    runner = OnnxRunner(bundle)                  # ONNX Runtime, CPU unless providers say otherwise
    probs = runner(batch)                        # float32 (N,3,H,W), preprocessed -> (N,K)

Prediction needs numpy, PIL and onnxruntime only: no torch.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.preprocessing import ModelContract
from shotlab.export import bundle as bundle_files


@dataclass
class Bundle(ModelContract):
    path: Path  # the folder holding the files (a temporary copy for a .zip)
    manifest: dict
    origin: Path  # what the caller named: the folder or the .zip

    @property
    def contract(self) -> dict:
        return self.manifest

    @property
    def thresholds(self) -> dict:
        """Per unsafe class: threshold, review_band, ... as in the run's thresholds.json."""
        return dict(self.manifest["policy"].get("thresholds") or {})

    @property
    def policy(self) -> dict:
        return dict(self.manifest["policy"])

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.manifest["source"]["checkpoint"])

    @property
    def runtimes(self) -> dict[str, str]:
        """{runtime name: model file}, e.g. {"onnx": "model.onnx", "onnx-fp16": ...}."""
        return dict(self.manifest.get("runtimes") or {})

    def model_file(self, runtime: str) -> Path:
        if runtime not in self.runtimes:
            raise InputError(f"{self.origin}: this bundle has no {runtime} model (it has: "
                             f"{', '.join(self.runtimes) or 'none'}); re-export with the "
                             f"matching --to/--fp16 option")
        return self.path / self.runtimes[runtime]

    def model_sha256(self, runtime: str = "onnx") -> str:
        return self.manifest["files"][self.runtimes[runtime]]


def load_bundle(path, *, verify: bool = True) -> Bundle:
    """The bundle at `path` (folder or .zip); with `verify`, every file's sha256 is checked
    against manifest.json before anything is loaded (InputError names a tampered/missing file)."""
    origin = Path(path)
    if origin.is_file() and origin.suffix.lower() == ".zip":
        folder = bundle_files.unzip(origin, temporary_folder())
    elif origin.is_dir():
        folder = origin
    else:
        raise InputError(f"{origin}: no bundle there (expected the folder or .zip that "
                         f"`shotlab export` wrote)")
    manifest = bundle_files.read_manifest(folder)
    if verify:
        bundle_files.verify(folder, manifest)
    missing = {"classes", "task", "preprocessing", "policy", "source", "runtimes"} - set(manifest)
    if missing:
        raise InputError(f"{folder / bundle_files.MANIFEST_FILE}: lacks {sorted(missing)}; "
                         f"it was not written by `shotlab export`")
    return Bundle(folder, manifest, origin)


def temporary_folder() -> Path:
    """A folder removed when the process exits: where a zipped bundle is unpacked."""
    folder = Path(tempfile.mkdtemp(prefix="shotlab-bundle-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def session_options(threads: int | None = None):
    """ONNX Runtime options: all graph optimisations, intra-op threads = cores by default."""
    import os

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.log_severity_level = 3  # errors only: ORT's warnings are about its own internals
    return options


class OnnxRunner:
    """`runner(batch float32 (N,3,H,W)) -> probabilities (N,K)` through ONNX Runtime.

    `fp16=True` runs `model.fp16.onnx` (exported with --fp16); inputs and outputs stay float32.
    `providers` defaults to the CPU provider: the one that behaves the same everywhere.
    """

    def __init__(self, bundle: Bundle, *, providers=None, fp16: bool = False,
                 threads: int | None = None):
        import onnxruntime as ort

        self.runtime = "onnx-fp16" if fp16 else "onnx"
        self.path = bundle.model_file(self.runtime)
        self.session = ort.InferenceSession(str(self.path), sess_options=session_options(threads),
                                            providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.classes = len(bundle.classes)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise InputError(f"expected a float32 batch (N, 3, H, W); got shape {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, self.classes), np.float32)
        return self.session.run(None, {self.input_name: batch})[0]


def make_runner(bundle: Bundle, runtime: str = "onnx"):
    """The runner for `runtime` ("onnx", "onnx-fp16" or "tensorrt")."""
    if runtime == "tensorrt":
        from shotlab.export.tensorrt_build import TensorRTRunner

        return TensorRTRunner(bundle)
    bundle.model_file(runtime)  # a clear error when the bundle lacks it
    return OnnxRunner(bundle, fp16=runtime == "onnx-fp16")
