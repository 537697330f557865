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
from pathlib import Path

from shotlab.runtime.contract import INPUT_NAME, OUTPUT_NAME

OPSET = 18  # the newest opset the torch exporter targets by default; ORT 1.31 runs it fully
MAX_BATCH = 4096  # the dynamic batch axis' upper bound declared to torch.export
MAX_NAMED_AXIS = 512  # a token axis' bound: BERT-style encoders have 512 positions
NAMED_AXIS_EXAMPLE = 16  # any length above 1 (torch.export specialises 0 and 1)
EXAMPLE_TOKEN = 1000  # a real word piece id of a BERT vocabulary, not [PAD] (0)


def export_file(model, task: str, sample_shape, path: Path, dtype: str = "float32") -> Path:
    """Write `model` (eval mode, CPU) as ONNX with a dynamic batch axis; returns `path`.
    A named axis of `sample_shape` (a text input's "tokens") is dynamic too; `dtype` is the
    input's (int64 token ids for text, `runtime.kinds`)."""
    import contextlib
    import io

    import torch

    from shotlab.runtime.runners import probability_model

    wrapped = probability_model(model, task)
    example, axes = example_input(sample_shape, dtype)
    # The exporter prints its progress on stdout; a CLI with --json must keep stdout clean.
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(wrapped, (example,), dynamo=True, opset_version=OPSET,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes={"x": axes}, verbose=False)
    program.save(str(path))
    return path


def example_input(sample_shape, dtype: str):
    """A batch to trace with and its dynamic axes: batch 2 (torch.export specialises size 1),
    NAMED_AXIS_EXAMPLE along each named axis. Integer inputs (token ids) hold a real token id
    at every position, so the traced attention sees no padding-only row."""
    import torch

    axes = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    shape = [2]
    for position, size in enumerate(sample_shape, start=1):
        if isinstance(size, str):
            axes[position] = torch.export.Dim(size, min=1, max=MAX_NAMED_AXIS)
            size = NAMED_AXIS_EXAMPLE
        shape.append(size)
    if dtype == "float32":
        return torch.zeros(*shape), axes
    return torch.full(shape, EXAMPLE_TOKEN, dtype=getattr(torch, dtype)), axes


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
