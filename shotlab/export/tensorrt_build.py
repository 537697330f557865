"""TensorRT: build an engine from the bundle's ONNX file, and run it.

Written against the documented `tensorrt` Python API (TensorRT 10): `trt.Builder`,
`create_network`, `trt.OnnxParser`, one optimisation profile (min/opt/max batch), FP16 and INT8
builder flags, an `IInt8EntropyCalibrator2` fed by train-split images with its calibration
cache saved in the bundle, a timing cache, `build_serialized_network`; at run time
`deserialize_cuda_engine` and an execution context driven by `set_input_shape`,
`set_tensor_address` and `execute_async_v3`. Device memory is held by torch CUDA tensors, so no
pycuda is needed.

`trtexec_command` writes the equivalent `trtexec` line into every bundle, for teams that build
the engine on the target device (a Jetson) where this machine's engine would not load anyway:
engines are specific to the GPU and TensorRT version that built them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shotlab.core.errors import ShotlabError

ENGINE_FILE = "model.engine"
TIMING_CACHE_FILE = "timing.cache"
CALIBRATION_CACHE_FILE = "calibration.cache"
TRTEXEC_FILE = "trtexec.txt"
# Profile batch sizes: 1 for single images, 32 the report's and predict's batch, 64 headroom.
MIN_BATCH, OPT_BATCH, MAX_BATCH = 1, 32, 64
CALIBRATION_BATCH = 8
CALIBRATION_IMAGES = 256  # at most; TensorRT's guide suggests ~500 for ImageNet-scale data
WORKSPACE_BYTES = 1 << 30  # 1 GiB scratch for tactic selection


def unavailable_reason() -> str | None:
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


def require_tensorrt() -> None:
    reason = unavailable_reason()
    if reason:
        raise ShotlabError(f"--to tensorrt: {reason}. Export with --to onnx here and build the "
                           f"engine on the target device with the command in the bundle's "
                           f"{TRTEXEC_FILE}")


def trtexec_command(onnx_file: str, input_name: str, input_size, *, fp16: bool,
                    int8: bool) -> str:
    """The `trtexec` line that builds the same engine on another machine (e.g. a Jetson)."""
    height, width = input_size

    def shape(batch):
        return f"{input_name}:{batch}x3x{height}x{width}"

    parts = ["trtexec", f"--onnx={onnx_file}", f"--saveEngine={ENGINE_FILE}",
             f"--minShapes={shape(MIN_BATCH)}", f"--optShapes={shape(OPT_BATCH)}",
             f"--maxShapes={shape(MAX_BATCH)}", f"--timingCacheFile={TIMING_CACHE_FILE}",
             f"--memPoolSize=workspace:{WORKSPACE_BYTES >> 20}M"]
    if fp16:
        parts.append("--fp16")
    if int8:
        parts += ["--int8", f"--calib={CALIBRATION_CACHE_FILE}"]
    return " ".join(parts)


def write_trtexec(folder: Path, input_name: str, input_size, *, fp16: bool, int8: bool) -> Path:
    from shotlab.export.formats import ONNX_FILE

    command = trtexec_command(ONNX_FILE, input_name, input_size, fp16=fp16, int8=int8)
    note = ("# Builds the TensorRT engine for this bundle on the machine that will run it.\n"
            "# Run it in the bundle folder. --int8 needs calibration.cache, written when the\n"
            "# bundle was exported with --to tensorrt --int8 on a GPU machine.\n")
    path = folder / TRTEXEC_FILE
    path.write_text(note + command + "\n")
    return path


def calibration_batches(paths: list[str], preprocessing, batch: int = CALIBRATION_BATCH):
    """Preprocessed float32 batches of train-split images; bad files are skipped."""
    from shotlab.core.errors import BadImageError
    from shotlab.core.images import load_rgb

    arrays = []
    for path in paths[:CALIBRATION_IMAGES]:
        try:
            arrays.append(preprocessing.to_array(load_rgb(path)))
        except BadImageError:
            continue
        if len(arrays) == batch:
            yield np.stack(arrays)
            arrays = []
    if arrays:
        yield np.stack(arrays)


def entropy_calibrator(batches, cache_path: Path, input_shape):
    """An `IInt8EntropyCalibrator2` that feeds `batches` and reads/writes `cache_path`."""
    import tensorrt as trt
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = iter(batches)
            self.device = torch.zeros(input_shape, dtype=torch.float32, device="cuda")

        def get_batch_size(self):
            return self.device.shape[0]

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.device.zero_()
            self.device[: len(batch)].copy_(torch.from_numpy(batch))
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache):
            cache_path.write_bytes(bytes(cache))

    return Calibrator()


def parse_onnx(builder, logger, onnx_path: Path):
    import tensorrt as trt

    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ShotlabError(f"{onnx_path}: TensorRT cannot parse it ({errors})")
    return network, parser


def builder_config(builder, job, input_name: str, input_size):
    import tensorrt as trt

    height, width = input_size
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (MIN_BATCH, 3, height, width), (OPT_BATCH, 3, height, width),
                      (MAX_BATCH, 3, height, width))
    config.add_optimization_profile(profile)
    timing_path = job.folder / TIMING_CACHE_FILE
    cache = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if job.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if job.int8:
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_calibration_profile(profile)
        config.int8_calibrator = entropy_calibrator(
            calibration_batches(job.calibration_paths, job.preprocessing),
            job.folder / CALIBRATION_CACHE_FILE, (CALIBRATION_BATCH, 3, height, width))
    return config


def build_engine(job) -> dict[str, str]:
    """Build `model.engine` from the bundle's `model.onnx`; saves the timing cache too."""
    require_tensorrt()
    import tensorrt as trt

    from shotlab.export.formats import ONNX_FILE
    from shotlab.export.onnx_export import INPUT_NAME

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = parse_onnx(builder, logger, job.folder / ONNX_FILE)
    config = builder_config(builder, job, INPUT_NAME, job.preprocessing.input_size)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ShotlabError("TensorRT could not build an engine (see its log above); try "
                           "without --int8, or build on the device with trtexec.txt")
    (job.folder / ENGINE_FILE).write_bytes(bytes(serialized))
    (job.folder / TIMING_CACHE_FILE).write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"tensorrt": ENGINE_FILE}


class TensorRTRunner:
    """Runs a bundle's engine: `runner(batch float32 (N,3,H,W)) -> probabilities (N,K)`."""

    def __init__(self, bundle):
        require_tensorrt()
        import tensorrt as trt
        import torch

        from shotlab.export.onnx_export import INPUT_NAME, OUTPUT_NAME

        self.torch = torch
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine((bundle.path / ENGINE_FILE).read_bytes())
        if self.engine is None:
            raise ShotlabError(f"{bundle.path / ENGINE_FILE}: TensorRT cannot load this engine "
                               f"(built for another GPU or TensorRT version?); rebuild it with "
                               f"{TRTEXEC_FILE}")
        self.context = self.engine.create_execution_context()
        self.classes = len(bundle.classes)
        self.stream = torch.cuda.Stream()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        outputs = []
        for start in range(0, len(batch), MAX_BATCH):
            chunk = torch.from_numpy(np.ascontiguousarray(batch[start:start + MAX_BATCH]))
            with torch.cuda.stream(self.stream):  # copies and the engine on one stream
                inputs = chunk.to("cuda", dtype=torch.float32, non_blocking=True)
                result = torch.empty((len(chunk), self.classes), dtype=torch.float32,
                                     device="cuda")
                self.context.set_input_shape(self.input_name, tuple(inputs.shape))
                self.context.set_tensor_address(self.input_name, int(inputs.data_ptr()))
                self.context.set_tensor_address(self.output_name, int(result.data_ptr()))
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise ShotlabError("TensorRT failed to execute the engine")
            self.stream.synchronize()
            outputs.append(result.cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, self.classes), np.float32)
