"""ONNX Runtime INT8: static quantization of the bundle's FP32 model, calibrated on curated data.

    files = quantize(job)       # {"onnx-int8": "model.int8.onnx"}; job.notes["quantization"]

`onnxruntime.quantization.quantize_static` in QDQ format (QuantizeLinear/DequantizeLinear pairs
that ORT's CPU provider fuses into integer kernels), per-channel int8 weights and uint8
activations (ORT's documented default for CPUs). The model is first run through
`quant_pre_process` (shape inference and graph optimisation), as ORT recommends.

Activation ranges come from the calibration set (`export.calibration`: train split, stratified
by class, the images TensorRT INT8 uses too), once per method in `METHODS`. Each candidate is
run on the val split (the calibration images when a run has no val split) and the one whose
top-1 agreement with the FP32 model is highest (then the smallest mean |dp|) is shipped; every
candidate's numbers and the choice are recorded in the manifest's `quantization` entry. The
report then measures the shipped model like every other runtime, and the gate refuses it when it
regressed against PyTorch (`export.parity`).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from shotlab.core.errors import InputError
from shotlab.export import onnx_export, parity
from shotlab.export.calibration import as_trained, summary as calibration_summary
from shotlab.runtime.bundle import ONNX_FILE, ONNX_INT8_FILE
from shotlab.runtime.contract import INPUT_NAME
from shotlab.runtime.runners import batches, rows_of, run_batched, session_options

# The candidates, in the order a tie is broken: MinMax keeps every calibrated value in range,
# Entropy (KL divergence) and Percentile (99.999%) clip outliers to refine the common values.
METHODS = {"MinMax": CalibrationMethod.MinMax, "Entropy": CalibrationMethod.Entropy,
           "Percentile": CalibrationMethod.Percentile}
# Images per calibration pass: ORT keeps every intermediate tensor of a pass in memory (~20 MB
# per lite0 image at 224 px), so passes of 8 bound calibration to a few hundred MB.
CALIBRATION_BATCH = 8
# Per-channel weights: depthwise convolutions (EfficientNet, MobileNet) have per-channel weight
# ranges that differ by orders of magnitude; one scale per tensor loses most of them.
PER_CHANNEL = True
# Convolutions kept in float at the input end (the stem and, in EfficientNet/MobileNet, the first
# depthwise-separable block): quantization error starts there and compounds through the network.
# Measured on lite0 (sample set, 48 val+test images): with every layer INT8 the activations'
# SQNR was 24 dB after the stem and ~7 dB at the end, top-1 agreement with FP32 0.90; with the
# first 3 convolutions and the classifier in float, agreement 1.0 and mean |dp| 0.006, for about
# 5% of lite0's multiply-adds left in float.
FLOAT_CONVS = 3
# Weights at 7 bits: without VNNI (most x86 CPUs before Ice Lake, this machine included) ORT's
# uint8 x int8 kernels can saturate their 16-bit intermediate sums; ORT's guide recommends
# reduce_range there, and a bundle cannot know which CPU it will run on.
REDUCE_RANGE = True


class BatchReader(CalibrationDataReader):
    """Calibration batches for ORT; `set_range` lets quantize_static calibrate in passes of
    one batch each (`CalibStridedMinMax`, which applies to every method)."""

    def __init__(self, arrays: np.ndarray, batch: int = CALIBRATION_BATCH):
        self.batches = list(batches(arrays, batch))
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pending = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict | None:
        batch = next(self.pending, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize(job) -> dict[str, str]:
    """Write `model.int8.onnx` from the bundle's `model.onnx`; record how in `job.notes`."""
    drawn = as_trained(job.calibration, job.preprocessing, job.progress, "INT8 calibration")
    if not drawn.kept:
        why = (f"no train image of the run decodes as it was trained on (first: "
               f"{drawn.bad[0][0]}: {drawn.bad[0][1]})" if drawn.bad else
               "the run has no train split")
        raise InputError(f"--to onnx-int8: {why}; INT8 needs real images to calibrate on: "
                         f"restore the files, or assign a train split with `shotlab curate` and "
                         f"train again, then export")
    calibration = drawn.arrays
    val = job.run_manifest.split("val") if job.run_manifest else []
    chosen = as_trained(val, job.preprocessing, job.progress, "INT8 val")
    selection, chosen_on = (chosen.arrays, "val") if chosen.kept else (calibration, (
        "calibration images (no val image decodes as it was trained on)" if val
        else "calibration images (the run has no val split)"))
    fp32, target = job.folder / ONNX_FILE, job.folder / ONNX_INT8_FILE
    reference = run_model(fp32, selection)
    with tempfile.TemporaryDirectory(prefix="shotlab-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        kept_float = float_nodes(prepared)
        scores = {}
        for name, method in METHODS.items():
            path = Path(scratch) / f"{name}.onnx"
            quantize_with(prepared, path, calibration, method, kept_float)
            scores[name] = score(reference, run_model(path, selection), job)
        method = choose(scores)
        shutil.copyfile(Path(scratch) / f"{method}.onnx", target)
    onnx_export.add_metadata(target, job.summary)
    onnx_export.check(target)
    left_out = [("train", *bad) for bad in drawn.bad] + [("val", *bad) for bad in chosen.bad]
    job.notes["quantization"] = {"onnx-int8": {
        "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
        "weights": "int8, per channel" if PER_CHANNEL else "int8", "activations": "uint8",
        "reduce_range": REDUCE_RANGE, "float_nodes": kept_float,
        "calibration": calibration_summary([job.calibration[i] for i in drawn.kept],
                                           skipped=[path for path, _ in drawn.bad]),
        "method": method, "chosen_on": chosen_on, "chosen_on_images": rows_of(selection),
        "candidates": scores,
        **({"left_out": [{"path": p, "split": split, "reason": why}
                         for split, p, why in left_out]} if left_out else {})}}
    return {"onnx-int8": ONNX_INT8_FILE}


def quantize_with(source: Path, target: Path, arrays: np.ndarray, method,
                  kept_float: list[str]) -> None:
    # ORT's histogram calibrators print() their progress: kept off stdout, where `--json` writes.
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(str(source), str(target), BatchReader(arrays),
                        quant_format=QuantFormat.QDQ,
                        per_channel=PER_CHANNEL, reduce_range=REDUCE_RANGE,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=method, nodes_to_exclude=kept_float,
                        extra_options={"CalibStridedMinMax": 1})


def float_nodes(path: Path) -> list[str]:
    """The nodes left in float: the first FLOAT_CONVS convolutions, the classifier (the last
    Gemm/MatMul) and the nodes that write the graph's outputs (the softmax/sigmoid), because
    probabilities in steps of 1/255 break the decision rule (multiclass rows no longer sum to 1,
    and thresholds are finer than that)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    nodes, outputs = graph.node, {output.name for output in graph.output}
    convs = [node.name for node in nodes if node.op_type == "Conv"][:FLOAT_CONVS]
    head = [node.name for node in nodes if node.op_type in ("Gemm", "MatMul")][-1:]
    return convs + head + [node.name for node in nodes if outputs & set(node.output)]


def run_model(path: Path, arrays: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), sess_options=session_options(),
                                   providers=["CPUExecutionProvider"])
    return run_batched(lambda batch: session.run(None, {INPUT_NAME: batch})[0], arrays)


def score(reference: np.ndarray, probs: np.ndarray, job) -> dict:
    """Top-1 agreement with FP32 under the policy's decision rule, and mean/max |dp|."""
    policy = job.summary.get("shotlab.policy") or {}
    found = parity.agreement(reference, probs, job.checkpoint.classes, job.checkpoint.task,
                             policy.get("thresholds"))
    return {"top1_agreement": found["top1_agreement"],
            "mean_abs_diff": float(np.abs(reference - probs).mean()),
            "max_abs_diff": found["max_abs_diff"]}


def choose(scores: dict) -> str:
    """The method with the highest agreement, then the smallest mean |dp|, then table order."""
    order = list(scores)
    return min(scores, key=lambda name: (-scores[name]["top1_agreement"],
                                         scores[name]["mean_abs_diff"], order.index(name)))
