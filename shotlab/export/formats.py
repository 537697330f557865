"""Export formats: a table of small functions, and the checks that refuse contradictory options.

Each format function takes an `ExportJob` and writes its files into the job's bundle folder,
returning {runtime name: file name}. Runtimes are what the report measures and `predict` runs:
"onnx" (FP32), "onnx-fp16", "tensorrt" (shotlab.runtime.runners.RUNNERS).

Import-free at module level (the CLI builds `--to`'s help from FORMATS): each format function
imports its work when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shotlab.core.errors import InputError



@dataclass
class ExportJob:
    checkpoint: object  # shotlab.train.checkpoint.Checkpoint
    folder: Path  # the bundle folder being written
    preprocessing: object  # shotlab.runtime.contract.Preprocessing the bundle deploys with
    summary: dict  # the manifest summary written into ONNX metadata_props
    fp16: bool = False
    int8: bool = False
    calibration_paths: list[str] = field(default_factory=list)  # train split images (INT8)
    progress: bool | None = None


def export_onnx(job: ExportJob) -> dict[str, str]:
    from shotlab.export import onnx_export
    from shotlab.runtime.bundle import ONNX_FILE, ONNX_FP16_FILE

    path = onnx_export.export_file(job.checkpoint.model, job.checkpoint.task,
                                   job.preprocessing.sample_shape, job.folder / ONNX_FILE)
    onnx_export.add_metadata(path, job.summary)
    onnx_export.check(path)
    files = {"onnx": ONNX_FILE}
    if job.fp16:
        onnx_export.check(onnx_export.to_fp16(path, job.folder / ONNX_FP16_FILE))
        files["onnx-fp16"] = ONNX_FP16_FILE
    return files


def build_engine(job: ExportJob) -> dict[str, str]:
    from shotlab.export import tensorrt_build

    return tensorrt_build.build_engine(job)


FORMATS: dict[str, Callable[[ExportJob], dict[str, str]]] = {
    "onnx": export_onnx,
    "tensorrt": build_engine,
}
# TensorRT builds its engine from the ONNX file, so asking for it implies ONNX first.
REQUIRES = {"tensorrt": ("onnx",)}


def parse_formats(text: str) -> list[str]:
    """`"onnx,tensorrt"` -> ["onnx", "tensorrt"], with what each needs first, in table order."""
    asked = [name.strip().lower() for name in (text or "").split(",") if name.strip()]
    unknown = [name for name in asked if name not in FORMATS]
    if not asked or unknown:
        got = ", ".join(unknown) if unknown else "nothing"
        raise InputError(f"--to must name export formats from: {', '.join(FORMATS)}. "
                         f"Got {got} instead.")
    wanted = set(asked) | {need for name in asked for need in REQUIRES.get(name, ())}
    return [name for name in FORMATS if name in wanted]


def check_options(formats: list[str], *, fp16: bool, int8: bool) -> None:
    """Refuse combinations that cannot mean what the user asked for.

    --int8 is a TensorRT build flag (calibrated on the train split); ONNX INT8 is not offered,
    so --int8 without tensorrt would silently do nothing. --fp16 with --int8 is *not*
    contradictory: TensorRT's documented practice is to set both flags, so the layers INT8
    cannot take fall back to FP16 instead of FP32.
    """
    if int8 and "tensorrt" not in formats:
        raise InputError("--int8 is a TensorRT option (INT8 engines calibrated on the train "
                         "split); add tensorrt to --to (e.g. --to onnx,tensorrt --int8) or drop "
                         "--int8")
