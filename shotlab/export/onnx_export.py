"""ONNX export: the model with its softmax/sigmoid inside, dynamic batch, metadata, FP16 copy.

Probabilities come out of the graph itself, so every runtime (ONNX Runtime, TensorRT, a team's
own C++ loader) returns the same thing and no caller re-implements the activation.

Exporter: `torch.onnx.export(..., dynamo=True)`, the maintained path since torch 2.5 (the
TorchScript exporter is deprecated); it exports timm EfficientNets at opset 18 with parity
around 1e-7 here. FP16 uses the converter that ships inside onnxruntime
(`onnxruntime.transformers.float16`, the same code as onnxconverter-common) with float32 inputs
and outputs kept, so callers feed and read float32 either way.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from shotlab.runtime.contract import INPUT_NAME, OUTPUT_NAME

OPSET = 18  # the newest opset the torch exporter targets by default; ORT 1.31 runs it fully
MAX_BATCH = 4096  # the dynamic batch axis' upper bound declared to torch.export


def export_file(model, task: str, sample_shape, path: Path, dtype: str = "float32") -> Path:
    """Write a one-input `model` (eval mode, CPU) as ONNX with a dynamic batch axis (and a
    dynamic named axis, a text input's "tokens"); `dtype` is the input's; returns `path`."""
    from shotlab.runtime.contract import InputSpec

    return export_model(model, task, [InputSpec(INPUT_NAME, dtype, ("batch", *sample_shape))],
                        path)


EXAMPLE_TOKENS = 8  # the example's token axis; every named axis is dynamic in the graph
AXIS_MAX = {"batch": MAX_BATCH, "tokens": 512}  # 512: BERT's position embeddings


def export_model(model, task: str, specs, path: Path) -> Path:
    """Write `model` (eval mode, CPU; one argument per spec, in order) as ONNX whose inputs
    are `specs` (`ModelContract.input_specs()`): each named axis ("batch", "tokens") dynamic."""
    import contextlib
    import io

    import torch

    from shotlab.runtime.runners import probability_model

    wrapped = probability_model(model, task)
    dims = {}
    examples, shapes = [], []
    for spec in specs:
        sizes = [2 if axis == "batch" else EXAMPLE_TOKENS if isinstance(axis, str) else axis
                 for axis in spec.shape]  # batch 2: torch.export specialises size 1
        dtype = getattr(torch, spec.dtype)
        # Token ids of 1 ([unused0]) rather than 0: zeros are padding, which the model masks.
        examples.append(torch.ones(sizes, dtype=dtype) if dtype == torch.int64
                        else torch.zeros(sizes, dtype=dtype))
        shapes.append({i: dims.setdefault(axis, torch.export.Dim(axis, min=1,
                                                                  max=AXIS_MAX.get(axis, MAX_BATCH)))
                       for i, axis in enumerate(spec.shape) if isinstance(axis, str)})
    # The exporter prints its progress on stdout; a CLI with --json must keep stdout clean.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "axis name batch will not be used"
        program = torch.onnx.export(wrapped, tuple(examples), dynamo=True, opset_version=OPSET,
                                    input_names=[spec.name for spec in specs],
                                    output_names=[OUTPUT_NAME],
                                    dynamic_shapes={"inputs": tuple(shapes)}, verbose=False)
    program.save(str(path))
    return path


def add_metadata(path: Path, summary: dict) -> None:
    """Store `summary` (string keys, JSON values) in the model's `metadata_props`."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in summary.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    onnx.save(model, str(path))


def check(path: Path) -> None:
    """onnx.checker's full check (shape inference included); raises ShotlabError on failure."""
    import onnx

    from shotlab.core.errors import ShotlabError

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ShotlabError(f"{path}: the exported ONNX model fails onnx.checker ({exc}); "
                           f"re-run with --debug and report it") from None


def to_fp16(source: Path, target: Path) -> Path:
    """A float16 copy of `source` with float32 inputs and outputs; returns `target`."""
    import onnx
    import onnx_ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    # The converter appends its input/output Casts at the end of the node list; the checker
    # (rightly) wants a topologically sorted graph.
    ir_model = onnx_ir.from_proto(model)
    ir_model.graph.sort()
    onnx.save(onnx_ir.to_proto(ir_model), str(target))
    return target


def metadata(path: Path) -> dict:
    """The `metadata_props` of an ONNX file as a dict of strings."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in model.metadata_props}
