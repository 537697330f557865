"""`shotlab export RUN`: build the bundle, validate it, and ship it only if it passes the gate.

    result = export_run("runs/20261122-...-lite0-partial", formats=["onnx"], fp16=True)
    result.path, result.report["gate"]

The bundle is written into a hidden `.NAME.partial` folder beside its destination; only a
bundle that passes the gate (or `allow_regression=True`) is moved into place. One that fails
is moved to `NAME.rejected/` (replacing an older one), report included, so the failure can be
read, and the command fails naming the metric.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError, ShotlabError
from shotlab.runtime import bundle as bundle_files
from shotlab.export.formats import FORMATS, ExportJob, check_options
from shotlab.export.validate import GateRules, library_versions

class RegressionError(ShotlabError):
    """The exported model is measurably worse than PyTorch; the bundle was not shipped."""


@dataclass
class ExportResult:
    path: Path
    zip_path: Path | None
    manifest: dict
    report: dict

    def to_dict(self) -> dict:
        return {"bundle": str(self.path), "zip": str(self.zip_path) if self.zip_path else None,
                "runtimes": self.manifest["runtimes"], "gate": self.report["gate"],
                "agreement": {name: entry["parity"]
                              for name, entry in self.report["runtimes"].items()},
                "report": str(self.path / bundle_files.REPORT_HTML)}


def run_files(checkpoint) -> tuple[Path, dict]:
    """The run folder of `checkpoint` and its thresholds.json; clear errors when absent."""
    import json

    run_dir = checkpoint.run_dir
    if run_dir is None or not (run_dir / "manifest.json").is_file():
        raise InputError(f"{checkpoint.path}: export needs the whole run folder (manifest.json, "
                         f"thresholds.json, checkpoints/best.pt), not a lone checkpoint; give "
                         f"the folder `shotlab train runs` lists")
    path = run_dir / "thresholds.json"
    thresholds = json.loads(path.read_text()) if path.is_file() else {}
    return run_dir, thresholds


def base_manifest(checkpoint, run_dir: Path, run_thresholds: dict, preprocessing,
                  dataset_hash: str) -> dict:
    """Everything manifest.json says before the runtimes and file hashes are known."""
    from shotlab.export.onnx_export import OPSET
    from shotlab.runtime.contract import INPUT_NAME, OUTPUT_NAME, input_specs

    (spec,) = input_specs({INPUT_NAME: preprocessing})
    policy = {**run_thresholds.get("policy", {}), "thresholds": run_thresholds.get("thresholds",
                                                                                   {})}
    return {
        "classes": checkpoint.classes, "task": checkpoint.task, "policy": policy,
        "preprocessing": preprocessing.to_dict(),
        "input": spec.to_dict(),
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(checkpoint.classes)],
                   "activation": "sigmoid" if checkpoint.task == "multilabel" else "softmax"},
        "opset": OPSET, "backbone": checkpoint.meta.get("backbone"),
        "timm_name": checkpoint.meta.get("timm_name"), "dataset_manifest_hash": dataset_hash,
        "source": {"run": str(run_dir), "checkpoint": str(checkpoint.path),
                   "checkpoint_sha256": bundle_files.sha256_file(checkpoint.path)},
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def onnx_summary(manifest: dict) -> dict:
    """What goes into the ONNX file's metadata_props: enough to run it without the bundle."""
    keys = ("classes", "task", "policy", "preprocessing", "input", "output",
            "dataset_manifest_hash", "source")
    return {"shotlab." + key: manifest[key] for key in keys} | {
        "shotlab.version": manifest["versions"]["shotlab"]}


def default_out(run_dir: Path) -> Path:
    return run_dir / "bundle"  # beside the run that produced it: one place to find both


def staging_folder(out: Path) -> Path:
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted export
    staging.mkdir(parents=True)
    return staging


def export_run(run, *, formats=("onnx",), fp16: bool = False, int8: bool = False, out=None,
               zip_bundle: bool = False, force: bool = False, rules: GateRules | None = None,
               preprocessing=None, explain: bool = True, progress=None) -> ExportResult:
    """Export the best model of run folder `run`; see the module docstring.

    `preprocessing` replaces the checkpoint's contract in the bundle (a device pipeline that
    differs from training); the report and the gate then measure what that costs.
    """
    from shotlab.export.tensorrt_build import write_trtexec
    from shotlab.runtime.runners import require_tensorrt
    from shotlab.train.checkpoint import load_checkpoint
    from shotlab.train.manifest import Manifest

    formats, rules = list(formats), rules or GateRules()
    check_options(formats, fp16=fp16, int8=int8)
    if "tensorrt" in formats:
        require_tensorrt()  # before any work: the message says how to build on the device
    checkpoint = load_checkpoint(run)
    run_dir, run_thresholds = run_files(checkpoint)
    out = Path(out) if out else default_out(run_dir)
    written = [out, zip_path_of(out)] if zip_bundle else [out]
    taken = [path for path in written if path.exists()]
    if taken and not force:
        raise InputError(f"{taken[0]} already exists; pass --force to replace it or --out for "
                         f"another folder")
    manifest_of_run = Manifest.load(run_dir / "manifest.json")
    preprocessing = (preprocessing or checkpoint.preprocessing).with_classes(checkpoint.classes)
    manifest = base_manifest(checkpoint, run_dir, run_thresholds, preprocessing,
                             manifest_of_run.hash)
    staging = staging_folder(out)
    try:
        job = ExportJob(checkpoint, staging, preprocessing, onnx_summary(manifest), fp16=fp16,
                        int8=int8, progress=progress,
                        calibration_paths=[e.filepath for e in manifest_of_run.split("train")])
        manifest["runtimes"] = {}
        for name in formats:
            manifest["runtimes"].update(FORMATS[name](job))
        write_trtexec(staging, manifest["input"]["name"], preprocessing.sample_shape, fp16=fp16,
                      int8=int8)
        report = write_report(staging, manifest, checkpoint, manifest_of_run, rules,
                              explain=explain, progress=progress)
        manifest["validation"] = {"gate": report["gate"], "split": report["split"],
                                  "n": report["n"]}
        manifest = bundle_files.write_manifest(staging, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ship(staging, out, manifest, report, zip_bundle=zip_bundle, force=force)


def zip_path_of(out: Path) -> Path:
    return out.with_name(out.name + ".zip")


def write_report(folder: Path, manifest: dict, checkpoint, run_manifest, rules, *, explain,
                 progress) -> dict:
    from shotlab.export.report import write_report_files
    from shotlab.runtime.bundle import load_bundle
    from shotlab.export.validate import measure

    bundle_files.write_manifest(folder, manifest)  # provisional: lets the runtimes load
    bundle = load_bundle(folder, verify=False)
    report = measure(bundle, checkpoint, run_manifest, rules, progress=progress, explain=explain)
    write_report_files(folder, report, manifest)
    return report


def ship(staging: Path, out: Path, manifest: dict, report: dict, *, zip_bundle: bool,
         force: bool = False) -> ExportResult:
    """Move the bundle into place, or to NAME.rejected and fail when the gate said no."""
    gate = report["gate"]
    if gate["failures"] and not gate["allowed_regression"]:
        rejected = bundle_files.replace_folder(staging, out.with_name(out.name + ".rejected"))
        raise RegressionError("export refused, the exported model regressed: "
                              + "; ".join(gate["failures"])
                              + f". The rejected bundle and its report are in {rejected}; fix "
                              f"the cause or pass --allow-regression to ship it anyway")
    path = bundle_files.replace_folder(staging, out)
    zip_path = zip_path_of(out)
    if zip_bundle:
        bundle_files.zip_folder(path, zip_path)
    elif force:
        zip_path.unlink(missing_ok=True)  # the replaced bundle's zip would no longer match it
    return ExportResult(path, zip_path if zip_bundle else None, manifest, report)
