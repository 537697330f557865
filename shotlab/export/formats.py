"""Export formats: a table of small functions, and the checks that refuse contradictory options.

Each format function takes an `ExportJob` and writes its files into the job's bundle folder,
returning {runtime name: file name}, and may add entries to the manifest through `job.notes`.
Runtimes are what the report measures and `predict` runs: "onnx" (FP32), "onnx-fp16",
"onnx-int8", "tensorrt" (shotlab.runtime.runners.RUNNERS).

Import-free at module level (the CLI builds `--to`'s help from FORMATS): each format function
imports its work when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
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
    run_manifest: object = None  # shotlab.train.manifest.Manifest the run trained on
    progress: bool | None = None
    notes: dict = field(default_factory=dict)  # what format functions add to manifest.json

    @cached_property
    def calibration(self) -> list:
        """The calibration set (`export.calibration`): the train-split entries every INT8
        runtime (ONNX Runtime, TensorRT) calibrates on, so the two stay comparable."""
        from shotlab.export.calibration import calibration_set

        return calibration_set(self.run_manifest.split("train")) if self.run_manifest else []


def export_onnx(job: ExportJob) -> dict[str, str]:
    from shotlab.export import onnx_export
    from shotlab.runtime.bundle import ONNX_FILE, ONNX_FP16_FILE

    from shotlab.runtime.contract import INPUT_NAME, input_specs

    # A post has one input per part; any other model one, in its kind's dtype (text: int64).
    specs = (job.checkpoint.input_specs() if len(job.checkpoint.parts) > 1
             else input_specs({INPUT_NAME: job.preprocessing}))
    path = onnx_export.export_model(job.checkpoint.model, job.checkpoint.task, specs,
                                    job.folder / ONNX_FILE)
    onnx_export.add_metadata(path, job.summary)
    onnx_export.check(path)
    files = {"onnx": ONNX_FILE}
    if job.fp16:
        onnx_export.check(onnx_export.to_fp16(path, job.folder / ONNX_FP16_FILE))
        files["onnx-fp16"] = ONNX_FP16_FILE
    return files


def export_onnx_int8(job: ExportJob) -> dict[str, str]:
    from shotlab.export import quantize

    return quantize.quantize(job)


def build_engine(job: ExportJob) -> dict[str, str]:
    from shotlab.export import tensorrt_build

    return tensorrt_build.build_engine(job)


FORMATS: dict[str, Callable[[ExportJob], dict[str, str]]] = {
    "onnx": export_onnx,
    "onnx-int8": export_onnx_int8,
    "tensorrt": build_engine,
}
# INT8 quantizes the FP32 ONNX file and TensorRT builds its engine from it, so asking for either
# implies ONNX first.
REQUIRES = {"onnx-int8": ("onnx",), "tensorrt": ("onnx",)}


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


# What a text model (int64 token ids of any length) can be exported to, and why not the rest.
TEXT_REFUSED = {
    "onnx-int8": "ONNX Runtime INT8 here calibrates on images; a text model ships as onnx "
                 "(and --fp16)",
    "tensorrt": "the TensorRT builder here takes image batches (its optimisation profile has "
                "no token axis); a text model ships as onnx (and --fp16)",
}


def check_kind(formats: list[str], kind: str) -> None:
    """Refuse formats the model's input kind cannot be exported to, with the reason."""
    refused = [name for name in formats if kind == "text" and name in TEXT_REFUSED]
    if refused:
        raise InputError(f"--to {refused[0]}: not for a text model: {TEXT_REFUSED[refused[0]]}")


def check_options(formats: list[str], *, fp16: bool, int8: bool) -> None:
    """Refuse combinations that cannot mean what the user asked for.

    ONNX Runtime INT8 is a format of its own (`--to onnx-int8`: its own model file, measured
    and gated as its own runtime); --int8 is TensorRT's builder flag. So --int8 without tensorrt
    would silently do nothing, and is refused, pointing at onnx-int8 when that is what was
    meant. Both may be asked at once (`--to onnx-int8,tensorrt --int8`): they calibrate on the
    same images. --fp16 with --int8 is *not* contradictory: TensorRT's documented practice is
    to set both flags, so the layers INT8 cannot take fall back to FP16 instead of FP32.
    """
    if int8 and "tensorrt" not in formats:
        hint = ("--to onnx-int8 already quantizes for ONNX Runtime, drop --int8"
                if "onnx-int8" in formats else
                "for ONNX Runtime INT8 use --to onnx-int8 instead")
        raise InputError(f"--int8 is a TensorRT option and --to names no tensorrt, so it "
                         f"would do nothing; {hint}, or add tensorrt to --to (e.g. --to "
                         f"onnx,tensorrt --int8)")
