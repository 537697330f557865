"""Runners: every way shotlab runs a model, behind one protocol and one table.

    runner = make_runner(bundle, "onnx")          # RUNNERS[name](bundle, threads=..., ...)
    probs = runner(batch)                         # (N, *sample_shape) -> (N, K)
    probs = runner({"image": x, "text": ids})     # a model with several named parts (a post)
    probs = run_batched(runner, arrays)           # in bounded batches (an array or such a dict)

A `Runner` is any callable from a preprocessed batch (float32 pixels, int64 token ids) to
probabilities, with `classes` (the number of outputs). A contract with one part takes one array;
a contract with several parts (`ModelContract.parts`) takes a dict {part name: array}, every
array with the same number of rows, each checked against its part's spec (one code path: a
single array is the one-part case of `check_feeds`). Bundle runtimes are the table `RUNNERS`
("onnx", "onnx-fp16", "onnx-int8", "tensorrt"; TensorRT takes one input only);
`TorchRunner` is the PyTorch reference the export report compares them with.
Prediction needs numpy and onnxruntime only: torch and tensorrt are imported by the runners that
need them, when they are built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Protocol

import numpy as np

from shotlab.core.errors import InputError, ShotlabError
from shotlab.runtime.bundle import TRTEXEC_FILE
from shotlab.runtime.contract import INPUT_NAME, OUTPUT_NAME, InputSpec

BATCH_SIZE = 32  # the batch predict and the report use; small enough for 2 GB of RAM at 224 px
TENSORRT_MAX_BATCH = 64  # the engine's optimisation profile's largest batch (export builds it)


class Runner(Protocol):
    classes: int

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


Batch = np.ndarray | dict  # one array, or {part name: array} for a multi-part contract


def rows_of(batch: Batch) -> int:
    """The number of rows of a batch (of its parts, which must agree)."""
    if not isinstance(batch, dict):
        return len(batch)
    counts = {name: len(part) for name, part in batch.items()}
    if len(set(counts.values())) > 1:
        raise InputError(f"the parts of a batch have different numbers of rows ({counts}); "
                         f"give every part one row per input")
    return next(iter(counts.values()), 0)


def select_rows(batch: Batch, rows) -> Batch:
    """The rows `rows` (indices) of an array, or of every part of a dict batch."""
    if isinstance(batch, dict):
        return {name: part[rows] for name, part in batch.items()}
    return batch[rows]


def batches(items, size: int):
    """Consecutive slices of `items` (a sequence, an array, or a dict of arrays sliced together)
    of at most `size`."""
    for start in range(0, rows_of(items), size):
        if isinstance(items, dict):
            yield {name: part[start:start + size] for name, part in items.items()}
        else:
            yield items[start:start + size]


def run_batched(runner, arrays: Batch, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """`runner` over `arrays` (an array, or a dict of part arrays) in batches; (0, K) for no
    rows. A text part is padded per batch to that batch's longest row and no further."""
    parts = [runner(trim_padding(chunk)) for chunk in batches(arrays, batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, runner.classes or 0), np.float32)


def trim_padding(batch: Batch) -> Batch:
    """Token-id parts cut to their longest row's length: padding columns change nothing (the
    model masks PAD_ID) and cost time."""
    if not isinstance(batch, dict):
        return batch
    from shotlab.runtime.text import PAD_ID

    trimmed = {}
    for name, part in batch.items():
        if part.dtype == np.int64 and part.ndim == 2 and part.size:
            used = np.flatnonzero((part != PAD_ID).any(axis=0))
            part = part[:, :used[-1] + 1] if len(used) else part[:, :1]
        trimmed[name] = part
    return trimmed


def check_feeds(batch: Batch, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """{input name: checked array} for `batch`: one array for a one-part contract, a dict
    naming exactly the contract's parts otherwise; InputError naming what is missing or extra."""
    if not isinstance(batch, dict):
        if len(specs) != 1:
            raise InputError(f"this model takes {len(specs)} named inputs "
                             f"({', '.join(s.name for s in specs)}); give a dict of arrays by "
                             f"part name, not one array")
        return {specs[0].name: check_batch(batch, specs[0])}
    names = [s.name for s in specs]
    if set(batch) != set(names):
        raise InputError(f"this model's inputs are {', '.join(names)}; the batch has "
                         f"{', '.join(batch) or 'none'}")
    rows_of(batch)
    return {spec.name: check_batch(batch[spec.name], spec) for spec in specs}


def check_batch(batch: np.ndarray, spec: InputSpec) -> np.ndarray:
    """`batch` as a contiguous array of the spec's dtype, or InputError naming the shape the
    contract expects. A named axis ("tokens") may have any length."""
    batch = np.ascontiguousarray(batch, dtype=spec.dtype)
    fixed = all(isinstance(want, str) or got == want
                for got, want in zip(batch.shape[1:], spec.shape[1:]))
    if batch.ndim != len(spec.shape) or not fixed:
        expected = ", ".join(str(d) for d in ("N", *spec.shape[1:]))
        raise InputError(f"expected a {spec.dtype} batch ({expected}) for input '{spec.name}'; "
                         f"got shape {batch.shape}")
    return batch


def session_options(threads: int | None = None):
    """ONNX Runtime options: all graph optimisations, intra-op threads = cores by default, and
    threads that sleep between runs instead of spinning.

    Spinning keeps a core busy waiting for the next run; the model shares its cores with
    decoding, the batcher and the explanation worker. Measured side by side on 2 cores
    (benchmarks/README.md, int8_speed.py), lite0 with 2 threads ran faster without it, FP32 and
    INT8, at batch 1 and 32 (INT8 batch 1: 433 -> 512 images/s); 1 thread has no pool to spin."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's warnings are about its own internals
    return options


def ort_load_errors() -> tuple:
    """ONNX Runtime's exceptions for a file that is not a model it can load (they derive from
    Exception, not from one base of their own)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return (state.InvalidProtobuf, state.InvalidGraph, state.Fail, state.NoModel,
            state.NotImplemented, state.InvalidArgument)


class OnnxRunner:
    """ONNX Runtime on any ONNX model of the bundle (`runtime`: "onnx", "onnx-fp16",
    "onnx-int8"); inputs and outputs stay float32. `providers` defaults to the CPU provider: the
    one that behaves the same everywhere."""

    def __init__(self, bundle, *, runtime: str = "onnx", providers=None,
                 threads: int | None = None):
        import onnxruntime as ort

        self.runtime = runtime
        self.path = bundle.model_file(self.runtime)
        try:
            self.session = ort.InferenceSession(str(self.path),
                                                sess_options=session_options(threads),
                                                providers=providers or ["CPUExecutionProvider"])
        except ort_load_errors() as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{bundle.name(bundle.runtimes[runtime])}: ONNX Runtime cannot load "
                             f"it as the {runtime} model ({reason}); re-export the "
                             f"bundle") from None
        self.specs = bundle.input_specs()
        graph_inputs = [i.name for i in self.session.get_inputs()]
        if len(self.specs) == 1:  # a one-input graph: fed under its own name, whatever it is
            self.specs = [InputSpec(graph_inputs[0], self.specs[0].dtype, self.specs[0].shape)]
        elif sorted(graph_inputs) != sorted(s.name for s in self.specs):
            raise ShotlabError(f"{bundle.name(bundle.runtimes[runtime])}: the model's inputs "
                               f"({', '.join(graph_inputs)}) "
                               f"are not the contract's parts "
                               f"({', '.join(s.name for s in self.specs)}); re-export the bundle")
        self.classes = len(bundle.classes)

    def __call__(self, batch: Batch) -> np.ndarray:
        feeds = check_feeds(batch, self.specs)
        if rows_of(feeds) == 0:
            return np.zeros((0, self.classes), np.float32)
        return self.session.run(None, feeds)[0]


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here, or None when it can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return ("the tensorrt Python package is not installed (it needs NVIDIA's libraries "
                "and a CUDA GPU)")
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (TensorRT builds and runs engines on a GPU only)"
    return None


def require_tensorrt(*, running: bool = False) -> None:
    """Refuse TensorRT where it cannot run: for export (the default) the advice is to build the
    engine on the device; for a bundle being run (`running`), to use ONNX Runtime here."""
    reason = tensorrt_unavailable_reason()
    if reason and running:
        raise ShotlabError(f"--runtime tensorrt: {reason}. Run the bundle with --runtime onnx "
                           f"here, or on a machine with a CUDA GPU and TensorRT")
    if reason:
        raise ShotlabError(f"--to tensorrt: {reason}. Export with --to onnx here and build the "
                           f"engine on the target device with the command in the bundle's "
                           f"{TRTEXEC_FILE}")


class TensorRTRunner:
    """A bundle's TensorRT engine, driven by `set_input_shape`, `set_tensor_address` and
    `execute_async_v3` on one CUDA stream; device memory is held by torch CUDA tensors."""

    def __init__(self, bundle, *, threads: int | None = None):
        """`threads` is accepted like every runner's, and unused: the engine runs on the GPU."""
        require_tensorrt(running=True)
        import tensorrt as trt
        import torch

        self.torch = torch
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME
        engine_path = bundle.model_file("tensorrt")
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise ShotlabError(f"{bundle.name(bundle.runtimes['tensorrt'])}: TensorRT cannot "
                               f"load this engine (built for "
                               f"another GPU or TensorRT version?); rebuild it with "
                               f"{TRTEXEC_FILE}")
        self.context = self.engine.create_execution_context()
        self.spec = bundle.input_specs()[0]
        self.classes = len(bundle.classes)
        self.stream = torch.cuda.Stream()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.spec)
        outputs = [self.run_chunk(chunk) for chunk in batches(batch, TENSORRT_MAX_BATCH)]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.classes), np.float32)

    def run_chunk(self, chunk: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.cuda.stream(self.stream):  # copies and the engine on one stream
            inputs = torch.from_numpy(chunk).to("cuda", non_blocking=True)
            result = torch.empty((len(chunk), self.classes), dtype=torch.float32, device="cuda")
            self.context.set_input_shape(self.input_name, tuple(inputs.shape))
            self.context.set_tensor_address(self.input_name, int(inputs.data_ptr()))
            self.context.set_tensor_address(self.output_name, int(result.data_ptr()))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise ShotlabError("TensorRT failed to execute the engine")
        self.stream.synchronize()
        return result.cpu().numpy()


def probability_model(model, task: str):
    """A torch `model` wrapped so its output is softmax (multiclass) or sigmoid (multilabel)
    scores: what ONNX export writes and what the PyTorch reference runs."""
    import torch

    from shotlab.runtime.decide import probabilities

    class ProbabilityModel(torch.nn.Module):
        def __init__(self, inner, task):
            super().__init__()
            self.inner = inner
            self.task = task

        def forward(self, *inputs):  # one tensor per part, in the contract's order
            return probabilities(self.inner(*inputs), self.task)

    return ProbabilityModel(model, task).eval()


class TorchRunner:
    """The PyTorch reference as a runner: eager, inference mode, probabilities out. For a model
    with several parts, `specs` (the contract's `input_specs()`) give the order of the model's
    arguments and the batch is a dict by part name."""

    def __init__(self, model, task: str, classes: int | None = None, specs=None):
        self.model = probability_model(model, task)
        self.classes = classes
        self.specs = specs

    def __call__(self, batch: Batch) -> np.ndarray:
        import torch

        if self.specs is None:
            if isinstance(batch, dict):
                raise InputError("this PyTorch reference was built without the contract's "
                                 "parts (specs); give one array, or build it with specs")
            arrays = [np.ascontiguousarray(batch)]
        else:
            arrays = list(check_feeds(batch, self.specs).values())
        with torch.inference_mode():
            return self.model(*(torch.from_numpy(a) for a in arrays)).numpy()


RUNNERS: dict[str, Callable] = {
    "onnx": OnnxRunner,
    "onnx-fp16": partial(OnnxRunner, runtime="onnx-fp16"),
    "onnx-int8": partial(OnnxRunner, runtime="onnx-int8"),
    "tensorrt": TensorRTRunner,
}


def make_runner(bundle, runtime: str = "onnx", **options) -> Runner:
    """The runner for `runtime`, a key of RUNNERS the bundle has a model for; `options` (e.g.
    `threads`) go to the runner."""
    check_runtime(bundle, runtime)
    return RUNNERS[runtime](bundle, **options)


def check_runtime(bundle, runtime: str) -> None:
    """InputError unless `runtime` is a key of RUNNERS and the bundle has a model for it."""
    if runtime not in RUNNERS:
        raise InputError(f"runtime '{runtime}' is not one of {', '.join(RUNNERS)}")
    bundle.model_file(runtime)  # a clear error when the bundle lacks it
