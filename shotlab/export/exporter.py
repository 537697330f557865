"""`shotlab export RUN`: build the bundle, validate it, and ship it only if it passes the gate.

    result = export_run("runs/20261122-...-lite0-partial", formats=["onnx"], fp16=True)
    result.path, result.report["gate"]

The bundle is written into a `NAME.partial` folder beside its destination (`core.files`); only
a bundle that passes the gate (or `allow_regression=True`) is moved into place. One that fails
is moved to `NAME.rejected/` (replacing an older one), report included, so the failure can be
read, and the command fails naming the metric.

What export replaces (`NAME/` with `force=True`, `NAME.zip`, `NAME.rejected/`) must be
recognisably a bundle it wrote (`shotlab.export.targets`), checked before any work and again just before
the replacement; anything else is refused, `force` or not: export never deletes a user's folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.clock import utc_now
from shotlab.core.errors import InputError, ShotlabError
from shotlab.core.files import atomic_path, check_can_write, remove
from shotlab.export import post_export
from shotlab.export.formats import FORMATS, ExportJob, check_kind, check_options
from shotlab.export.targets import (bundle_problem, check_replaceable, check_targets,
                                    rejected_path_of, zip_path_of)
from shotlab.export.validate import GateRules, library_versions
from shotlab.runtime import bundle as bundle_files
from shotlab.runtime import signing



class RegressionError(ShotlabError):
    """The exported model is measurably worse than PyTorch; the bundle was not shipped."""


@dataclass
class ExportResult:
    path: Path
    zip_path: Path | None
    manifest: dict
    report: dict
    removed_rejected: Path | None = None  # OUT.rejected of an earlier, refused export

    def to_dict(self) -> dict:
        return {"bundle": str(self.path), "zip": str(self.zip_path) if self.zip_path else None,
                "runtimes": self.manifest["runtimes"], "gate": self.report["gate"],
                "agreement": {name: entry["parity"]
                              for name, entry in self.report["runtimes"].items()},
                **({"clip_agreement": {name: entry["parity"] for name, entry
                                       in self.report["clips"]["runtimes"].items()}}
                   if "runtimes" in self.report.get("clips", {}) else {}),
                "split": self.report["split"], "measured": self.report["n"],
                "skipped": [{"path": path, "reason": why}
                            for path, why in self.report.get("skipped", [])],
                "report": str(self.path / bundle_files.REPORT_HTML),
                "removed_rejected": str(self.removed_rejected) if self.removed_rejected else None,
                "int8_left_out": int8_left_out(self.manifest)}


def run_files(checkpoint) -> tuple[Path, dict]:
    """The run folder of `checkpoint` and its thresholds.json; clear errors when absent."""

    run_dir = checkpoint.run_dir
    if run_dir is None or not (run_dir / "manifest.json").is_file():
        raise InputError(f"{checkpoint.path}: export needs the whole run folder (manifest.json, "
                         f"thresholds.json, checkpoints/best.pt), not a lone checkpoint; give "
                         f"the folder `shotlab train runs` lists")
    path = run_dir / "thresholds.json"
    if not path.is_file():
        raise InputError(f"{path} is missing: the run did not finish (`shotlab train` writes it "
                         f"last); resume it with `shotlab train --resume {run_dir}`")
    return run_dir, run_json(path)


def check_best(run) -> None:
    """Refuse a checkpoint file other than its run's best.pt, before loading it: the run's
    thresholds and calibration were chosen on best.pt (a text or post run's last.pt is only
    a marker that the fit finished)."""
    from shotlab.train.checkpoint import run_folder

    path = Path(run)
    folder = run_folder(path)
    if path.is_file() and folder is not None and path.name != "best.pt":
        raise InputError(f"{path}: the run's thresholds and calibration were chosen on "
                         f"checkpoints/best.pt, not on this checkpoint; export the run folder "
                         f"{folder}")


def run_json(path: Path) -> dict:
    """A JSON file the run wrote, or a one-line error naming it."""
    from shotlab.train.checkpoint import one_line

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({one_line(exc)}); the run folder is "
                         f"damaged: train the run again") from None


def base_manifest(checkpoint, run_dir: Path, run_thresholds: dict, preprocessing,
                  dataset_hash: str) -> dict:
    """Everything manifest.json says before the runtimes and file hashes are known."""
    from shotlab.export.onnx_export import OPSET
    from shotlab.runtime.contract import INPUT_NAME, OUTPUT_NAME, input_specs

    (spec,) = input_specs({INPUT_NAME: preprocessing})
    policy = {**run_thresholds.get("policy", {}), "thresholds": run_thresholds.get("thresholds",
                                                                                   {}),
              **({"scored_on": run_thresholds["scored_on"]} if "scored_on" in run_thresholds
                 else {})}  # what the thresholds were read off (train/threshold_scores.py)
    clip = run_dir / "clip.json"  # a run on a clip dataset: the clip contract (train/clip_eval.py)
    several = post_export.manifest_parts(checkpoint) if post_export.is_multi_part(checkpoint) \
        else {"input": spec.to_dict()}  # a post: its parts and their inputs
    return {**({"clip": run_json(clip)} if clip.is_file() else {}), **several,
        "classes": checkpoint.classes, "task": checkpoint.task, "policy": policy,
        "preprocessing": preprocessing.to_dict(),
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(checkpoint.classes)],
                   "activation": "sigmoid" if checkpoint.task == "multilabel" else "softmax"},
        # folded into the classifier's weights: every runtime's scores are the calibrated ones
        "calibration": checkpoint.meta.get("calibration") or NOT_CALIBRATED,
        "opset": OPSET, "backbone": checkpoint.meta.get("backbone"),
        "timm_name": checkpoint.meta.get("timm_name"), "dataset_manifest_hash": dataset_hash,
        "source": {"run": os.path.abspath(run_dir), "checkpoint": os.path.abspath(checkpoint.path),
                   "checkpoint_sha256": checkpoint.sha256},
        "versions": library_versions(),
        "created": utc_now(),
    }


NOT_CALIBRATED = {"method": "none", "reason": "no calibration recorded in the checkpoint"}


def onnx_summary(manifest: dict) -> dict:
    """What goes into the ONNX file's metadata_props: enough to run it without the bundle."""
    keys = ("classes", "task", "policy", "preprocessing", "input", "parts", "inputs", "output",
            "calibration", "dataset_manifest_hash", "source")
    return {"shotlab." + key: manifest[key] for key in keys if key in manifest} | {
        "shotlab.version": manifest["versions"]["shotlab"]}


def default_out(run_dir: Path) -> Path:
    return run_dir / "bundle"  # beside the run that produced it: one place to find both


def export_run(run, *, formats=("onnx",), fp16: bool = False, int8: bool = False, out=None,
               zip_bundle: bool = False, force: bool = False, rules: GateRules | None = None,
               preprocessing=None, explain: bool = True, sign_key=None,
               progress=None) -> ExportResult:
    """Export the best model of run folder `run`; see the module docstring.

    `sign_key` (an Ed25519 private key file, `shotlab keygen`) signs the manifest's digest.

    `preprocessing` replaces the checkpoint's contract in the bundle (a device pipeline that
    differs from training); the report and the gate then measure what that costs.
    """
    from shotlab.runtime.runners import require_tensorrt
    from shotlab.train.checkpoint import load_checkpoint
    from shotlab.train.manifest import Manifest

    formats, rules = list(formats), rules or GateRules()
    check_options(formats, fp16=fp16, int8=int8)
    check_best(run)
    checkpoint = load_checkpoint(run)
    if post_export.is_multi_part(checkpoint):
        post_export.check_options(checkpoint, formats, fp16=fp16, int8=int8,
                                  preprocessing=preprocessing)
    run_dir, run_thresholds = run_files(checkpoint)
    out = Path(os.path.abspath(out)) if out else default_out(run_dir)
    check_can_write(out, "--out")
    check_targets(out, run_dir, zip_bundle=zip_bundle, force=force)
    if sign_key:
        signing.load_key(sign_key, private=True)  # an unusable key fails before any work
    manifest_of_run = Manifest.load(run_dir / "manifest.json")
    if preprocessing is not None and preprocessing.kind != checkpoint.preprocessing.kind:
        raise InputError(f"--preprocessing: kind '{preprocessing.kind}', but the run's model "
                         f"reads {checkpoint.preprocessing.kind} inputs; give a contract of "
                         f"kind '{checkpoint.preprocessing.kind}'")
    preprocessing = (preprocessing or checkpoint.preprocessing).with_classes(checkpoint.classes)
    check_kind(formats, preprocessing.kind)
    if "tensorrt" in formats:  # after the model's kind (a text model cannot have it at all),
        require_tensorrt()  # before the build: the message says how to build on the device
    manifest = base_manifest(checkpoint, run_dir, run_thresholds,
                             bundle_files.as_bundled(preprocessing), manifest_of_run.hash)
    with atomic_path(out) as staging:  # moved to `out` only when the block finishes
        staging.mkdir()
        manifest, report = build_bundle(staging, manifest, checkpoint, manifest_of_run,
                                        preprocessing, formats, rules, fp16=fp16, int8=int8,
                                        explain=explain, progress=progress)
        if sign_key:
            signing.sign(staging, manifest, sign_key)
        refuse_regression(staging, out, report, manifest)
        if out.exists():  # an empty folder or, with --force, a bundle: checked again first
            check_replaceable(out, "folder")
            remove(out)
    return ExportResult(out, finish_zip(out, zip_bundle=zip_bundle, force=force), manifest,
                        report, remove_stale_rejected(out))


def remove_stale_rejected(out: Path) -> Path | None:
    """Remove OUT.rejected once a bundle passed into OUT: its report was of an earlier export
    and, left beside the new bundle, would read as this one's. Returns it if it was there."""
    rejected = rejected_path_of(out)
    if not rejected.exists():
        return None
    check_replaceable(rejected, "folder", why="a refused export is moved there")
    remove(rejected)
    return rejected


def build_bundle(staging: Path, manifest: dict, checkpoint, manifest_of_run, preprocessing,
                 formats, rules, *, fp16, int8, explain, progress) -> tuple[dict, dict]:
    """Write every file of the bundle into `staging`; returns its manifest and report."""
    from shotlab.export.tensorrt_build import write_trtexec

    job = ExportJob(checkpoint, staging, preprocessing, onnx_summary(manifest), fp16=fp16,
                    int8=int8, progress=progress, run_manifest=manifest_of_run)
    manifest["runtimes"] = {}
    post_export.write_part_files(staging, checkpoint)  # a text part's tokenizer
    for name in formats:
        manifest["runtimes"].update(FORMATS[name](job))
    manifest.update(job.notes)  # e.g. "quantization": how the INT8 model was calibrated
    if "input" in manifest and preprocessing.kind != "text":  # one image input: trtexec's line
        write_trtexec(staging, manifest["input"]["name"], preprocessing.sample_shape, fp16=fp16,
                      int8=int8)
    report = write_report(staging, manifest, checkpoint, manifest_of_run, rules,
                          explain=explain, progress=progress)
    manifest["validation"] = {"gate": report["gate"], "split": report["split"], "n": report["n"]}
    return bundle_files.write_manifest(staging, manifest), report


def write_report(folder: Path, manifest: dict, checkpoint, run_manifest, rules, *, explain,
                 progress) -> dict:
    from shotlab.export.report import write_report_files
    from shotlab.runtime.bundle import load_bundle
    from shotlab.export.validate import measure

    bundle_files.write_manifest(folder, manifest)  # provisional: lets the runtimes load
    bundle = load_bundle(folder, verify=False)
    report = measure(bundle, checkpoint, run_manifest, rules, progress=progress, explain=explain)
    report["calibration"] = calibration_effect(checkpoint.run_dir, report["split"])
    write_report_files(folder, report, manifest)
    return report


def calibration_effect(run_dir: Path, split: str) -> dict | None:
    """The ECE on `split` of the raw and the calibrated scores, as the run measured them
    (metrics.json's `ece_raw` and `ece`): the measured bundle has only the calibrated scores, so
    what calibration changed comes from the run. None for a run that did not record them."""
    path = run_dir / "metrics.json"
    metrics = run_json(path).get(split, {}) if path.is_file() else {}
    if metrics.get("ece_raw") is None:
        return None
    return {"split": split, "ece_raw": metrics["ece_raw"], "ece": metrics.get("ece")}


def refuse_regression(staging: Path, out: Path, report: dict, manifest: dict) -> None:
    """When the gate said no: move the bundle to OUT.rejected and fail naming the metrics."""
    gate = report["gate"]
    if not gate["failures"] or gate["allowed_regression"]:
        return
    rejected = rejected_path_of(out)
    check_replaceable(rejected, "folder", why="a refused export is moved there")
    bundle_files.replace_folder(staging, rejected)
    raise RegressionError("export refused, the exported model regressed: "
                          + "; ".join(gate["failures"]) + measured_on(report, manifest)
                          + f". The rejected bundle and its report are in {rejected}; fix "
                          f"the cause or pass --allow-regression to ship it anyway")


def measured_on(report: dict, manifest: dict) -> str:
    """What a refusal's figures were measured on, where samples were left out, a class could
    not be checked or INT8 calibration images were left out (a passing export prints the same
    as warnings)."""
    said = ""
    if report.get("skipped"):
        path, why = report["skipped"][0]
        said += (f" (measured on {report['n']} {report['split']} samples: "
                 f"{len(report['skipped'])} left out, first {path}: {why})")
    unchecked = report["gate"].get("unchecked", [])
    said += f" ({'; '.join(unchecked)})" if unchecked else ""
    left = int8_left_out(manifest)  # a thinned calibration set: a likely cause of a refusal
    if left:
        said += (f" (INT8 left out {len(left)} image{'s' * (len(left) > 1)}, first "
                 f"{int8_use(left[0])} image {left[0]['path']}: {left[0]['reason']})")
    return said


def int8_left_out(manifest: dict) -> list[dict]:
    """The INT8 calibration and val images left out ({path, split, reason}: gone, unreadable,
    changed since the run), as `export.quantize` recorded them in the manifest."""
    return manifest.get("quantization", {}).get("onnx-int8", {}).get("left_out", [])


def int8_use(item: dict) -> str:
    """What a left-out image was drawn for: calibration (train) or choosing the calibration
    method (val). Bundles from before the split was recorded say calibration."""
    return "method choice" if item.get("split") == "val" else "calibration"


def finish_zip(out: Path, *, zip_bundle: bool, force: bool) -> Path | None:
    """Write OUT.zip with `zip_bundle`; with `force` alone, remove a bundle zip left there (it
    would no longer match the bundle). Returns the zip written, if any."""
    zip_path = zip_path_of(out)
    if zip_bundle:
        check_replaceable(zip_path, "zip")
        return bundle_files.zip_folder(out, zip_path)
    if force and zip_path.exists() and not bundle_problem(zip_path, "zip"):
        zip_path.unlink()  # only a bundle zip: someone else's file of that name is left alone
    return None
