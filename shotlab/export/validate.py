"""Validation of a bundle being exported: every runtime measured on the run's test split.

Produces the report's data (`report.json`): the PyTorch reference metrics, per runtime its
metrics (through that runtime), parity with PyTorch and the gate's verdict, latency and
throughput at batch 1 and 32, explanations for a sample of images, and the environment.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from shotlab.core.errors import InputError, ShotlabError, one_line
from shotlab.runtime.kinds import load_inputs, stored_sources
from shotlab.export import parity, speed
from shotlab.runtime.runners import (TorchRunner, make_runner, rows_of, run_batched,
                                     select_rows)

TEXT_EXPLANATIONS = ("the report's Grad-CAM and LIME cards are for images; explain a comment's "
                     "words with `shotlab explain` (docs/text.md)")
LIBRARIES = ("torch", "timm", "onnx", "onnxruntime", "onnxscript", "numpy", "tensorrt")


@dataclass
class GateRules:
    min_agreement: float = parity.MIN_AGREEMENT
    recall_tolerance: float = parity.RECALL_TOLERANCE
    allow_regression: bool = False


def evaluation_split(manifest) -> tuple[str, list]:
    """The test split, else val (a run trained without a test split), else an error."""
    for name in ("test", "val"):
        entries = manifest.split(name)
        if entries:
            return name, entries
    raise InputError(f"the run's manifest (dataset {manifest.dataset}) has no test or val "
                     f"samples to validate the export on; assign splits with `shotlab curate` "
                     f"and retrain")


@dataclass
class Scoring:
    """What every runtime's probabilities are scored by: the split's targets and the bundle's
    decision rule."""

    y: object
    bundle: object
    clip_thresholds: dict | None = None  # scoring clips: the bundle's clip thresholds

    @property
    def thresholds(self) -> dict:
        return self.bundle.thresholds if self.clip_thresholds is None else self.clip_thresholds

    @property
    def pooled(self) -> bool:
        return self.clip_thresholds is not None

    def metrics(self, probs) -> dict:
        from shotlab.train.metrics import classification_metrics

        b = self.bundle
        return classification_metrics(self.y, probs, b.classes, task=b.task,
                                      thresholds=self.thresholds or None,
                                      pooled=self.pooled)

    def flags(self, probs) -> dict:
        b = self.bundle
        return parity.flag_recall(self.y, probs, b.classes, b.task, self.thresholds, self.unsafe)

    @property
    def unsafe(self) -> list:
        return self.bundle.policy.get("unsafe", [])


def measure(bundle, checkpoint, manifest, rules: GateRules, *, progress=None,
            explain: bool = True) -> dict:
    """The report's data for `bundle` (loaded from its folder) against `checkpoint`."""
    split, entries = evaluation_split(manifest)
    ref_x, x, kept, bad, same_pipeline = evaluation_inputs(bundle, checkpoint, manifest, split,
                                                           entries, progress)
    y = manifest.targets([entries[i] for i in kept])
    scoring, several = Scoring(y, bundle), len(checkpoint.parts) > 1
    torch_runner = TorchRunner(checkpoint.model, bundle.task, len(bundle.classes),
                               specs=checkpoint.input_specs() if several else None)
    reference = run_batched(torch_runner, ref_x)
    report = {"split": split, "n": len(kept), "skipped": bad,
              "same_preprocessing": same_pipeline,
              "pytorch": {"metrics": scoring.metrics(reference),
                          "flag_recall": scoring.flags(reference)}, "runtimes": {}}
    runners, probs_of = measure_runtimes(bundle, x, reference, scoring, report, rules)
    if bundle.clip and not several:  # a clip bundle decides clips: judged on clips too
        clip_gate(report, bundle, manifest, [entries[i] for i in kept], reference, probs_of,
                  rules)
    report["speed"] = speed_section({"pytorch": torch_runner, **runners}, x)
    if explain and bundle.preprocessing.kind == "text":
        report["explanations"] = {"available": False, "reason": TEXT_EXPLANATIONS}
    elif explain and not several:  # a post's explanations are the modality split (explain/)
        from shotlab.export.explanations import explain_sample

        report["explanations"] = explain_sample(
            bundle, checkpoint, [entries[i] for i in kept], x, y,
            probs_of.get("onnx", reference), runners.get("onnx"), progress=progress)
    report["environment"] = environment()
    return report


def measure_runtimes(bundle, x, reference, scoring: Scoring, report: dict, rules: GateRules):
    """Each runtime's entry in `report["runtimes"]` (metrics, parity with PyTorch, the gate's
    failures) and `report["gate"]`; returns the runners and their probabilities by name."""
    runners, probs_of, failures = {}, {}, []
    pytorch = report["pytorch"]
    for runtime in bundle.runtimes:
        runners[runtime] = make_runner(bundle, runtime)
        probs = probs_of[runtime] = run_batched(runners[runtime], x)
        entry = {**judged(runtime, reference, probs, scoring, pytorch, rules),
                 "model_file": bundle.runtimes[runtime]}
        failures += entry["gate_failures"]
        report["runtimes"][runtime] = entry
    report["gate"] = {"passed": not failures, "failures": failures,
                      "unchecked": parity.unchecked(pytorch["metrics"], scoring.unsafe,
                                                    report["split"]),
                      "allowed_regression": bool(failures) and rules.allow_regression,
                      "min_agreement": rules.min_agreement,
                      "recall_tolerance": rules.recall_tolerance}
    return runners, probs_of


def judged(runtime: str, reference, probs, scoring: Scoring, pytorch: dict,
           rules: GateRules) -> dict:
    """A runtime's metrics, its parity with PyTorch's `reference`, and the gate's failures."""
    bundle = scoring.bundle
    entry = {"metrics": scoring.metrics(probs),
             "parity": {**parity.agreement(reference, probs, bundle.classes, bundle.task,
                                           scoring.thresholds, pooled=scoring.pooled),
                        "flag_recall": scoring.flags(probs)}}
    entry["gate_failures"] = parity.gate_failures(
        runtime, entry["parity"], entry["metrics"], pytorch["metrics"], scoring.unsafe,
        min_agreement=rules.min_agreement, recall_tolerance=rules.recall_tolerance,
        reference_flags=pytorch["flag_recall"])
    return entry


def clip_gate(report: dict, bundle, manifest, entries, reference, probs_of: dict,
              rules: GateRules) -> None:
    """`report["clips"]`: the split's clips pooled under the bundle's clip contract from each
    runtime's frame scores and decided with its clip thresholds, as `predict` decides clips;
    the gate's rules applied to them too (a runtime can keep frame agreement and still move a
    pooled clip score over a threshold)."""
    from shotlab.export.predict_clips import clip_contract, clip_thresholds
    from shotlab.train import clip_eval

    contract = clip_contract(bundle)
    try:  # one grouping (a read of the frames dataset) for every runtime's scores
        groups = clip_eval.grouping(entries, clip_eval.frame_places(manifest))
    except (ShotlabError, ValueError, KeyError) as exc:  # its frames dataset gone or changed
        why = f"clips not checked: the {report.get('split', 'test')} frames could not be " \
              f"grouped by clip in dataset {manifest.dataset} ({one_line(exc)})"
        report["clips"] = {"available": False, "reason": why}
        report["gate"].setdefault("unchecked", []).append(why)
        return
    def pooled(probs):
        return clip_eval.score(groups.of(probs), contract, "aggregated")

    scoring = Scoring(clip_eval.targets(manifest, groups.labels), bundle, clip_thresholds(bundle))
    reference = pooled(reference)
    pytorch = {"metrics": scoring.metrics(reference), "flag_recall": scoring.flags(reference)}
    runtimes = {runtime: judged(f"{runtime} (clips)", reference, pooled(probs), scoring, pytorch,
                                rules) for runtime, probs in probs_of.items()}
    report["clips"] = {"n": len(groups.clip_ids), "contract": contract.to_dict(),
                       "pytorch": pytorch, "runtimes": runtimes}
    gate = report["gate"]
    gate["failures"] += [f for entry in runtimes.values() for f in entry["gate_failures"]]
    gate["passed"] = not gate["failures"]
    gate["allowed_regression"] = bool(gate["failures"]) and rules.allow_regression


def evaluation_inputs(bundle, checkpoint, manifest, split: str, entries, progress):
    """(reference inputs, bundle inputs, kept entry indices, bad sources, same pipeline): the
    split's inputs under the checkpoint's contract and under the bundle's (one load when they
    are the same pipeline). A multi-part model (a post) loads each part by its kind."""
    if len(checkpoint.parts) > 1:
        from shotlab.export.post_export import post_inputs

        reference_inputs = post_inputs(checkpoint, checkpoint.parts, entries, progress)
        inputs, same_pipeline = post_inputs(checkpoint, bundle.parts, entries, progress), True
    else:
        paths = [e.filepath for e in entries]
        sources = stored_sources(paths, checkpoint.preprocessing)  # a text dataset: the comments
        reference_inputs = load_inputs(sources, checkpoint.preprocessing, progress=progress)
        same_pipeline = bundle.preprocessing.fingerprint() == checkpoint.preprocessing.fingerprint()
        inputs = (reference_inputs if same_pipeline else
                  load_inputs(sources, bundle.preprocessing, progress=progress))
    changed = changed_since_run(entries, reference_inputs)
    kept = sorted(set(reference_inputs.kept) & set(inputs.kept) - {i for i, _ in changed})
    if not kept:
        what = ("posts" if len(checkpoint.parts) > 1 else
                "comments" if checkpoint.preprocessing.kind == "text" else "images")
        raise InputError(f"none of the {len(entries)} {split} {what} of dataset "
                         f"{manifest.dataset} decodes (first: {entries[0].filepath}); restore the "
                         f"files or re-import the dataset before exporting")
    ref_x = select_rows(reference_inputs.arrays, [reference_inputs.kept.index(i) for i in kept])
    x = select_rows(inputs.arrays, [inputs.kept.index(i) for i in kept])
    bad = reference_inputs.bad + [(entries[i].filepath, why) for i, why in changed]
    return ref_x, x, kept, bad, same_pipeline


def changed_since_run(entries, inputs) -> list[tuple[int, str]]:
    """(entry index, why) for each image whose bytes are not the ones the run's manifest froze
    (edited or replaced since training): scored under its old label, it would measure the
    export against a test set the run never had. Left out of the report, and listed."""
    if inputs.sha256s is None:  # comments and posts: read from the dataset's own copies
        return []
    return [(i, "changed since the run (its sha256 is not the manifest's): left out")
            for i, digest in zip(inputs.kept, inputs.sha256s)
            if entries[i].sha256 and digest != entries[i].sha256]


def speed_section(runners: dict, x) -> dict:
    """Latency/throughput per runner at batch 1 and 32 (interleaved), with the load average."""
    sample = select_rows(x, slice(0, 1)) if rows_of(x) else None
    if sample is None:
        return {"note": "no test images to time"}
    timings = speed.compare(runners, sample, repeats=3, warmup=1)
    gpu = " TensorRT runs on the GPU, so its ratio to CPU PyTorch is not like for like." \
        if "tensorrt" in runners else ""
    return {"batches": {str(size): rows for size, rows in timings.items()},
            "load_average": speed.load_average(),
            "note": "CPU, eager PyTorch in inference mode vs each runtime; interleaved, median "
                    "of 3 rounds; a busy machine moves the absolute numbers." + gpu}


def library_versions() -> dict:
    from importlib import metadata

    from shotlab import __version__

    versions = {"shotlab": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict:
    import os

    return {"versions": library_versions(), "platform": platform.platform(),
            "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "load_average": speed.load_average()}
