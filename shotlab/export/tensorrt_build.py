"""TensorRT: build an engine from the bundle's ONNX file (its runner: shotlab.runtime.runners).

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


from shotlab.core.errors import ShotlabError

from shotlab.runtime.bundle import (CALIBRATION_CACHE_FILE, ENGINE_FILE, ONNX_FILE,
                                    TIMING_CACHE_FILE, TRTEXEC_FILE)
from shotlab.runtime.runners import BATCH_SIZE, TENSORRT_MAX_BATCH, require_tensorrt

# Profile batch sizes: 1 for single images, 32 the report's and predict's batch, 64 headroom.
MIN_BATCH, OPT_BATCH, MAX_BATCH = 1, BATCH_SIZE, TENSORRT_MAX_BATCH
CALIBRATION_BATCH = 8
WORKSPACE_BYTES = 1 << 30  # 1 GiB scratch for tactic selection


def trtexec_command(onnx_file: str, input_name: str, sample_shape, *, fp16: bool,
                    int8: bool) -> str:
    """The `trtexec` line that builds the same engine on another machine (e.g. a Jetson);
    `sample_shape` is one input's shape without the batch axis, e.g. (3, 224, 224)."""
    def shape(batch):
        return f"{input_name}:" + "x".join(str(d) for d in (batch, *sample_shape))

    parts = ["trtexec", f"--onnx={onnx_file}", f"--saveEngine={ENGINE_FILE}",
             f"--minShapes={shape(MIN_BATCH)}", f"--optShapes={shape(OPT_BATCH)}",
             f"--maxShapes={shape(MAX_BATCH)}", f"--timingCacheFile={TIMING_CACHE_FILE}",
             f"--memPoolSize=workspace:{WORKSPACE_BYTES >> 20}M"]
    if fp16:
        parts.append("--fp16")
    if int8:
        parts += ["--int8", f"--calib={CALIBRATION_CACHE_FILE}"]
    return " ".join(parts)


def write_trtexec(folder: Path, input_name: str, sample_shape, *, fp16: bool,
                  int8: bool) -> Path:
    command = trtexec_command(ONNX_FILE, input_name, sample_shape, fp16=fp16, int8=int8)
    note = ("# Builds the TensorRT engine for this bundle on the machine that will run it.\n"
            "# Run it in the bundle folder. --int8 needs calibration.cache, written when the\n"
            "# bundle was exported with --to tensorrt --int8 on a GPU machine.\n")
    path = folder / TRTEXEC_FILE
    path.write_text(note + command + "\n")
    return path


def calibration_batches(entries, preprocessing, batch: int = CALIBRATION_BATCH):
    """Preprocessed float32 batches of the calibration set (`job.calibration`: the images ONNX
    Runtime INT8 calibrates on too, `export.calibration`), as the run trained on them (a file
    gone, unreadable or changed since is skipped)."""
    from shotlab.export.calibration import as_trained
    from shotlab.runtime.runners import batches

    arrays = as_trained(entries, preprocessing, progress=False).arrays  # no bar in TRT's log
    yield from batches(arrays, batch) if arrays is not None else ()


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


def builder_config(builder, job, input_name: str, sample_shape):
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (MIN_BATCH, *sample_shape), (OPT_BATCH, *sample_shape),
                      (MAX_BATCH, *sample_shape))
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
            calibration_batches(job.calibration, job.preprocessing),
            job.folder / CALIBRATION_CACHE_FILE, (CALIBRATION_BATCH, *sample_shape))
    return config


def build_engine(job) -> dict[str, str]:
    """Build `model.engine` from the bundle's `model.onnx`; saves the timing cache too."""
    require_tensorrt()
    import tensorrt as trt

    from shotlab.runtime.contract import INPUT_NAME

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = parse_onnx(builder, logger, job.folder / ONNX_FILE)
    config = builder_config(builder, job, INPUT_NAME, job.preprocessing.sample_shape)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ShotlabError("TensorRT could not build an engine (see its log above); try "
                           "without --int8, or build on the device with trtexec.txt")
    (job.folder / ENGINE_FILE).write_bytes(bytes(serialized))
    (job.folder / TIMING_CACHE_FILE).write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"tensorrt": ENGINE_FILE}
