"""`shotlab train NAME`: one training run, from the frozen manifest to metrics, plots and MLflow.

A run folder (`<workspace>/runs/<time>-<dataset>-<backbone>-<mode>[-N]/`, private to the user)
holds everything needed to reproduce, resume, judge and export the run:

    manifest.json    the dataset version (every sample's path, sha256, labels, split) and its hash
    config.yaml      the resolved configuration, policy, versions and manifest hash
    checkpoints/     last.pt (every epoch, for --resume) and best.pt (the model to export, with
                     its calibration: a temperature fitted on val, see train/calibration.py)
    metrics.json     val and test metrics on calibrated scores, with 95% intervals, the
                     thresholds applied, the raw scores' ECE beside ("ece_raw"), the calibration
                     and best.pt's sha256 ("checkpoint_sha256": export and explain refuse a
                     best.pt changed since)
    thresholds.json  per-class thresholds for the policy's unsafe classes, with review bands, and
                     what they were chosen on ("scored_on": train folds + val, or val alone;
                     train/threshold_scores.py)
    pseudo.json, teacher/   a --pseudo-label run only: how many pseudo-labels were added per
                     class at which threshold, and the first model's checkpoint (train/pseudo.py)
    clip_metrics.json, clip.json   a clip dataset only: clip-level metrics (aggregated and the
                     middle-frame baseline) and the clip contract (train/clip_eval.py)
    plots/           confusion matrix, precision-recall curves and the reliability diagram (raw
                     and calibrated) on the test split

Everything that can be checked is checked before the folder is made, and a start that fails before
its first epoch's checkpoint removes the folder again: a folder in `runs/` is a run that trained
(finished, or resumable with `--resume`), never the debris of a refused start.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from shotlab import __version__
from shotlab.core import store, workspace
from shotlab.core.errors import InputError, Interrupted, ShotlabError
from shotlab.core.files import remove, write_json_atomic, write_text_atomic
from shotlab.core.names import child_path
from shotlab.core.policy import Policy, policy_of, registered, same_rules
from shotlab.train.checkpoint import one_line
from shotlab.train.finetune import TrainConfig, check_trainable
from shotlab.train.manifest import (Manifest, changed_note, check_files, freeze,
                                    jpeg_frames_note, unsplit_note)

# What fits and predicts for each input kind: a module with `fit(manifest, config, run_dir, *,
# resume, progress) -> FitResult` and `predict(model, paths, created, task, *, device, workers,
# progress) -> probabilities`. Everything else a run does is the same for every kind.
# Per dataset kind, the module that trains it: `fit(manifest, config, run_dir, resume=,
# progress=)`, `default_mode(manifest)`, and `predict(model, paths, ...)` unless its fit result
# scores its own entries (`.scores(entries)`: a post's caption is found by sample id).
TRAINERS = {"image": "shotlab.train.finetune", "text": "shotlab.train.text_fit",
            "post": "shotlab.train.post_fit"}


def trainer_of(kind: str):
    import importlib

    if kind not in TRAINERS:
        raise InputError(f"datasets of {kind} inputs cannot be trained by this shotlab (it "
                         f"trains {', '.join(TRAINERS)}); upgrade shotlab")
    return importlib.import_module(TRAINERS[kind])


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    thresholds: dict
    best_epoch: int
    mistakes: int | None
    mlflow_run_id: str | None
    calibration: dict | None = None
    clips: dict | None = None  # a clip dataset's clip headline (train/clip_eval.py), else None
    pseudo: dict | None = None  # a --pseudo-label run's record (pseudo.json), else None
    choice: dict | None = None  # the automatic method choice (train/auto_choice.py), if made
    thresholds_scored_on: dict | None = None  # see train/threshold_scores.py; None: no policy
    kind: str = "image"  # the manifest's kind: text and post runs are one fit, no epochs
    left_out: dict | None = None  # the manifest's samples no run reads, by reason
    warnings: list[str] | None = None  # about the data trained on (labelled samples in no split)


PSEUDO_FILE = "pseudo.json"  # a --pseudo-label run's record, written by train/pseudo.py
SAME_SECOND = 100  # runs of one dataset and backbone started in one second; more is a runaway loop


def runs_folder() -> Path:
    """The workspace's runs folder (made or not yet); refused where something that is not a
    folder holds its path, before a run does any work there or the listing reads it."""
    runs = workspace.current().runs_dir
    if (runs.exists() or runs.is_symlink()) and not runs.is_dir():
        raise InputError(f"{runs} is not a folder, and the workspace keeps its training runs "
                         f"there; move that file away (or give another --workspace)")
    return runs


def new_run_dir(dataset: str, config: TrainConfig) -> Path:
    """A new, empty run folder (0700), made exclusively: runs started in the same second, even by
    two processes at once, each get their own (the later ones with a -2, -3, ... suffix)."""
    runs = runs_folder()
    runs.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{dataset}-{config.backbone}-{config.mode}"
    for attempt in range(1, SAME_SECOND + 1):
        folder = child_path(runs, base if attempt == 1 else f"{base}-{attempt}")
        try:
            folder.mkdir(mode=0o700)
            return folder
        except FileExistsError:
            continue
    raise ShotlabError(f"{runs}: {SAME_SECOND} run folders named {base}* exist already; "
                       f"wait a second and start the run again")


def versions() -> dict:
    import timm
    import torch

    return {"shotlab": __version__, "torch": str(torch.__version__), "timm": str(timm.__version__),
            "python": platform.python_version()}


def write_config(run_dir: Path, config: TrainConfig, policy: Policy, manifest: Manifest,
                 choice: dict | None = None) -> None:
    data = {"dataset": manifest.dataset, "manifest_hash": manifest.hash, "train": config.to_dict(),
            "policy": policy.to_dict(), "versions": versions()}
    if choice:
        data["auto_choice"] = choice
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))


def read_config(run_dir: Path) -> tuple[TrainConfig, Policy]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise InputError(f"{run_dir} is not a run folder (no config.yaml); give the folder that "
                         f"`shotlab train` printed, or see `shotlab train runs`")
    try:
        data = yaml.safe_load(path.read_text())
        return TrainConfig(**data["train"]).check(), Policy.from_dict(data["policy"])
    except (yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a shotlab run configuration ({one_line(exc)}); start a "
                         f"new run with `shotlab train NAME`") from None


def resolve_policy(name: str, config: TrainConfig, classes) -> Policy:
    """The dataset's policy, with --unsafe and --target-recall from the command line each taking
    over where given (its version still the dataset's: `versioned` gives it its own)."""
    stored = policy_of(store.load(name))
    unsafe = tuple(config.unsafe) or stored.unsafe
    if config.target_recall is not None and not unsafe:  # it would only make a policy version
        raise InputError(f"--target-recall {config.target_recall}: dataset '{name}' has no "
                         f"unsafe classes, so no threshold would use it; give --unsafe CLASS "
                         f"too, or set them with `shotlab curate policy {name} --unsafe CLASS`")
    recall = stored.target_recall if config.target_recall is None else config.target_recall
    return Policy(unsafe, recall, stored.review_margin, stored.version).check(classes)


def versioned(name: str, policy: Policy) -> Policy:
    """`policy` under the version that names it: a run's policy that differs from the dataset's
    is kept under a version of its own (`core.policy.registered`), the number its decisions
    will carry. Called once every check has passed: a refused run registers nothing."""
    dataset = store.load(name)
    dataset.reload()  # loaded before the checks (the automatic choice can take minutes)
    return policy if same_rules(policy, policy_of(dataset)) else registered(dataset, policy)


def score_entries(fitted, entries, manifest: Manifest, config: TrainConfig, progress):
    """The fitted model's scores on `entries` (calibrated once `evaluate` has folded the
    temperature into it)."""
    if getattr(fitted, "scores", None) is not None:  # scores its own entries (posts: by id)
        return fitted.scores(entries)
    return trainer_of(manifest.kind).predict(
        fitted.model, [e.filepath for e in entries], fitted.created, manifest.task,
        device=fitted.device, workers=config.workers, progress=progress)


@dataclass
class Evaluation:
    raw: dict  # split -> the model's own scores
    probs: dict  # split -> calibrated scores (what the exported model gives)
    thresholds: dict
    metrics: dict
    calibration: dict
    threshold_scores: dict | None = None  # what the thresholds were chosen on (threshold_scores)


def evaluate(fitted, manifest: Manifest, policy: Policy, config: TrainConfig,
             progress) -> Evaluation:
    """Probabilities per split (calibrated on val, see train.calibration), thresholds chosen on
    calibrated scores (`unsafe_thresholds`), metrics on val and test (with the raw scores' ECE
    beside)."""
    from shotlab.train.calibration import apply, calibration_for, fold_into_head
    from shotlab.train.metrics import classification_metrics, ece

    raw = {split: score_entries(fitted, manifest.split(split), manifest, config, progress)
           for split in ("train", "val", "test")}
    classes = list(manifest.classes)
    y = {split: manifest.targets(manifest.split(split)) for split in raw}
    calibration = calibration_for(fitted.model, y["val"], raw["val"], task=manifest.task)
    fold_into_head(fitted.model, calibration)
    probs = {split: apply(p, calibration, manifest.task) for split, p in raw.items()}
    thresholds, scored_on = (unsafe_thresholds(fitted, manifest, policy, config, y, probs,
                                               calibration, progress)
                             if policy.unsafe else ({}, None))
    metrics = {split: {**classification_metrics(y[split], probs[split], classes,
                                                task=manifest.task, thresholds=thresholds or None),
                       "ece_raw": ece(y[split], raw[split], task=manifest.task)}
               for split in ("val", "test") if len(y[split])}
    return Evaluation(raw, probs, thresholds, metrics, calibration, scored_on)


NOT_FROZEN = "the model's features learnt from the train split, so it cannot be scored out of fold"
CLIP_FRAMES = ("the train split holds frames of whole clips, which folds would split (a frame's "
               "neighbours would score it)")


def unsafe_thresholds(fitted, manifest: Manifest, policy: Policy, config: TrainConfig, y: dict,
                      probs: dict, calibration: dict, progress) -> tuple[dict, dict]:
    """The policy's thresholds, chosen on train folds + val where the model's features are frozen
    (train/threshold_scores.py), else on val; and the record of which."""
    from shotlab.train.clip_eval import clip_dataset_of
    from shotlab.train.threshold_scores import pooled_scores
    from shotlab.train.thresholds import choose_thresholds

    frozen = getattr(trainer_of(manifest.kind), "frozen_features", None)
    features, why_not = None, NOT_FROZEN
    # Pseudo-labels are the model's own confident calls: as positives they would lift the cut.
    train = manifest.split("train")
    human = [i for i, e in enumerate(train) if e.pseudo is None]
    if clip_dataset_of(manifest.dataset):  # a clip's frames: folds would split clips
        why_not = CLIP_FRAMES
    elif frozen:
        features = frozen(fitted, [train[i] for i in human], config, progress)
    labels, scores, record = pooled_scores(features, {**y, "train": y["train"][human]}, probs,
                                           task=manifest.task, seed=config.seed, why_not=why_not,
                                           calibrated=calibration["method"] == "temperature",
                                           groups=manifest.groups([train[i] for i in human]))
    return choose_thresholds(labels, scores, list(manifest.classes), unsafe=list(policy.unsafe),
                             target_recall=policy.target_recall,
                             review_margin=policy.review_margin, task=manifest.task), record


def record_calibration(run_dir: Path, calibration: dict) -> None:
    """Add the calibration to checkpoints/best.pt (its weights stay the raw ones, so a resumed
    run fits the same temperature again); `load_checkpoint` folds it into the head."""
    from shotlab.train.checkpoint import read_state
    from shotlab.train.finetune import save_atomic

    best = run_dir / "checkpoints" / "best.pt"
    state = read_state(best, "re-run `shotlab train` to produce one")
    save_atomic({**state, "calibration": calibration}, best)


def write_plots(run_dir: Path, manifest: Manifest, result: Evaluation) -> None:
    from shotlab.train.plots import confusion_matrix_png, pr_curves_png, reliability_png

    split = "test" if "test" in result.metrics else "val"
    classes, y = list(manifest.classes), manifest.targets(manifest.split(split))
    confusion_matrix_png(result.metrics[split]["confusion_matrix"], classes,
                         run_dir / "plots" / f"confusion_{split}.png")
    pr_curves_png(y, result.probs[split], classes, run_dir / "plots" / f"pr_{split}.png",
                  task=manifest.task, thresholds=result.thresholds or None)
    reliability_png(y, {"raw": result.raw[split], "calibrated": result.probs[split]}, classes,
                    run_dir / "plots" / f"reliability_{split}.png", task=manifest.task,
                    title=f"Reliability on {split} (temperature fitted on val)")


def write_back(manifest: Manifest, probs: dict, run_dir: Path, thresholds) -> int:
    from shotlab.train.writeback import write_predictions

    entries = [e for split in ("train", "val", "test") for e in manifest.split(split)]
    stacked = np.concatenate([probs[s] for s in ("train", "val", "test") if len(probs[s])])
    human = [i for i, e in enumerate(entries) if e.pseudo is None]  # pseudo-labels judge nothing
    entries, stacked = [entries[i] for i in human], stacked[human]
    return write_predictions(manifest.dataset, [e.sample_id for e in entries],
                             [e.labels for e in entries], stacked, manifest.classes,
                             task=manifest.task, run=run_dir.name, thresholds=thresholds or None)


def train_run(name: str, config: TrainConfig, *, resume_dir: Path | None = None,
              tracking_uri: str | None = None, track: bool = True, writeback: bool = True,
              progress: bool | None = None) -> RunResult:
    """Train on dataset `name` (or resume the run in `resume_dir`) and record everything."""
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        given = config
        config, policy = read_config(run_dir)
        config = replace(config, **{key: getattr(given, key) for key in ("device", "workers")
                                    if getattr(given, key) is not None})  # where it runs
        manifest = Manifest.load(run_dir / "manifest.json")
        check_files(manifest)
    else:
        manifest, policy, config, choice = prepare(name, config, progress)
        run_dir = new_run_dir(name, config)
    try:
        if resume_dir is not None:
            fitted = trainer_of(manifest.kind).fit(manifest, config, run_dir, resume=True,
                                                   progress=progress)
        else:
            fitted = start(run_dir, manifest, config, policy, progress, choice)
        return finish(run_dir, manifest, policy, config, fitted, tracking_uri=tracking_uri,
                      track=track, writeback=writeback, progress=progress)
    except KeyboardInterrupt:  # Ctrl-C said a bare "Aborted!"
        if (run_dir / "checkpoints" / "last.pt").is_file():
            raise Interrupted(f"interrupted; the run keeps what it finished: continue it with "
                               f"`shotlab train --resume {run_dir}`") from None
        raise Interrupted("interrupted before a first epoch finished: nothing was kept; "
                           "start the run again") from None


def finish(run_dir: Path, manifest: Manifest, policy: Policy, config: TrainConfig, fitted, *,
           tracking_uri: str | None, track: bool, writeback: bool, progress) -> RunResult:
    """Everything a run does once its model is fitted: calibration, metrics, thresholds, plots,
    write-back and MLflow. What started it is read from its folder: the automatic choice from
    config.yaml, a --pseudo-label run's record from pseudo.json."""
    from shotlab.core.images import sha256_file
    from shotlab.train.checkpoint import CHECKPOINT_SHA256

    result = evaluate(fitted, manifest, policy, config, progress)
    record_calibration(run_dir, result.calibration)
    pseudo_path = run_dir / PSEUDO_FILE
    pseudo = json.loads(pseudo_path.read_text()) if pseudo_path.is_file() else None
    choice = yaml.safe_load((run_dir / "config.yaml").read_text()).get("auto_choice")
    write_json_atomic(run_dir / "metrics.json",
                      {**result.metrics, "calibration": result.calibration,
                       CHECKPOINT_SHA256: sha256_file(run_dir / "checkpoints" / "best.pt"),
                       "best_epoch": fitted.best_epoch, "history": fitted.history,
                       **({"pseudo": pseudo} if pseudo else {}),
                       **({"auto_choice": choice} if choice else {})})
    write_json_atomic(run_dir / "thresholds.json",
                      {"policy": policy.to_dict(), "thresholds": result.thresholds,
                       **({"scored_on": result.threshold_scores}
                          if result.threshold_scores else {})})
    write_plots(run_dir, manifest, result)
    clip_results = evaluate_clips_of(run_dir, manifest, result.probs, policy)
    mistakes = write_back(manifest, result.probs, run_dir, result.thresholds) if writeback else None
    if writeback and pseudo:  # here, not in train_with_pseudo_labels: a resumed run marks too
        from shotlab.train.pseudo_marks import write_marks

        write_marks(manifest.dataset, [e for e in manifest.entries if e.pseudo is not None],
                    run_dir.name)
    run_id = None
    if track:
        from shotlab.train.tracking import log_run

        run_id = log_run(run_dir, dataset=manifest.dataset, history=fitted.history,
                         params={**config.to_dict(), "manifest_hash": manifest.hash,
                                 **({"auto_choice": f"{choice['backbone']} {choice['mode']}"}
                                    if choice else {})},
                         metrics=result.metrics, tracking_uri=tracking_uri)
    return RunResult(run_dir, result.metrics, result.thresholds, fitted.best_epoch, mistakes, run_id,
                     calibration=result.calibration, clips=clip_results or None, pseudo=pseudo,
                     choice=choice, thresholds_scored_on=result.threshold_scores,
                     kind=manifest.kind, left_out=manifest.left_out,
                     warnings=[w for w in (changed_note(manifest), unsplit_note(manifest),
                                           jpeg_frames_note(manifest)) if w])


def evaluate_clips_of(run_dir: Path, manifest: Manifest, probs: dict, policy: Policy) -> dict:
    """For a run on a clip dataset's frames: clip metrics (aggregated and the middle-frame
    baseline) in clip_metrics.json and the clip contract in clip.json; {} for image datasets."""
    from shotlab.train.clip_eval import clip_dataset_of, evaluate_clips, headline

    clips_name = clip_dataset_of(manifest.dataset)
    if clips_name is None:
        return {}
    sampling = next((s for s in store.load(clips_name).values("sampling") if s), None)
    results, contract = evaluate_clips(manifest, probs, policy, sampling=sampling)
    write_json_atomic(run_dir / "clip_metrics.json", {"clip_dataset": clips_name, **results})
    write_json_atomic(run_dir / "clip.json", contract)
    return headline(results)


def prepare(name: str, config: TrainConfig, progress=None):
    """The frozen dataset, its policy, the configuration with the dataset kind's defaults
    filled in and the automatic choice (None where none was made), once every check that needs
    no training has passed: the runs folder, options and device, policy, classes and splits,
    backbone and mode for the kind (before any run folder exists). An image dataset trained
    without --mode gets its backbone and mode chosen by cross-validation on its train split
    (train/auto_choice.py). A clip dataset trains its frames dataset (frames carry the clip's
    labels); the policy is the clip dataset's."""
    from shotlab.train.backbones import get_backbone

    runs_folder()
    manifest = freeze(store.frames_dataset_of(store.load(name)) or name)
    auto, forced_backbone = config.mode is None and manifest.kind == "image", config.backbone
    config = with_kind_defaults(config, manifest)
    policy = resolve_policy(name, config.check(), manifest.classes)
    check_trainable(manifest)
    check_files(manifest)
    get_backbone(config.backbone, manifest.kind)
    check_mode(config.mode, manifest)
    check_tuning(config, manifest)
    choice = None
    if auto:
        from shotlab.train.auto_choice import chosen_config

        config, choice = chosen_config(manifest, config, forced_backbone, progress)
    return manifest, versioned(name, policy), config, choice


def with_kind_defaults(config: TrainConfig, manifest: Manifest) -> TrainConfig:
    """`config` with an unset backbone or mode (None: the CLI's default) chosen for the
    dataset's kind by its trainer: lite0 / linear for images (`prepare` then chooses the
    backbone by cross-validation); minilm / setfit or logreg (by the train split's size) for
    text; lite0 / fusion for posts."""
    from shotlab.train.backbones import default_backbone

    backbone = config.backbone or default_backbone(manifest.kind)
    mode = config.mode or trainer_of(manifest.kind).default_mode(manifest)
    return replace(config, backbone=backbone, mode=mode)


# Options only some trainers read (each says which: `options_read(mode)`); one given to a run
# that would ignore it is refused, not recorded in config.yaml as if it had applied.
TUNING = ("epochs", "batch_size", "lr", "layer_decay", "unfreeze_stages", "augment", "balance",
          "label_smoothing", "patience", "weights", "allow_download")


def check_tuning(config: TrainConfig, manifest: Manifest) -> None:
    read = trainer_of(manifest.kind).options_read(config.mode)
    defaults = TrainConfig()
    ignored = [f"--{name.replace('_', '-')}" for name in TUNING if (read is not None and name
               not in read and getattr(config, name) != getattr(defaults, name))]
    if ignored:
        raise InputError(f"{', '.join(ignored)}: not read by a {config.mode} run on "
                         f"{manifest.kind}s ('{manifest.dataset}'), which would ignore "
                         f"{'it' if len(ignored) == 1 else 'them'}; leave "
                         f"{'it' if len(ignored) == 1 else 'them'} out")


def check_mode(mode: str, manifest: Manifest) -> None:
    from shotlab.train.choices import MODE_KINDS

    if MODE_KINDS[mode] != manifest.kind:
        fits = ", ".join(m for m, k in MODE_KINDS.items() if k == manifest.kind)
        raise InputError(f"--mode {mode} trains {MODE_KINDS[mode]} models and dataset "
                         f"'{manifest.dataset}' holds {manifest.kind}s; give --mode {fits}, "
                         f"or leave --mode out")


def start(run_dir: Path, manifest: Manifest, config: TrainConfig, policy: Policy, progress,
          choice: dict | None = None):
    """Fit in the new `run_dir`; a start that fails before its first checkpoint (last.pt, which
    --resume needs) removes the folder, so no orphan is left in `train runs`."""
    try:
        manifest.save(run_dir / "manifest.json")
        write_config(run_dir, config, policy, manifest, choice)
        return trainer_of(manifest.kind).fit(manifest, config, run_dir, progress=progress)
    except BaseException:
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            remove(run_dir)
        raise


# The per-kind fit seam: a dataset kind (`dataset.info["kind"]`, "image" when absent) whose
# model is not a fine-tuned timm model names its fit here: (manifest, config, run_dir, *,
# resume, progress) -> FitResult, with `scores(entries)` when it scores its own entries.
def list_runs() -> list[dict]:
    """Every run folder in the workspace with its key test (else val) metrics, newest first; a
    folder whose config.yaml or metrics.json cannot be read is listed with the reason
    (`unreadable`) and no metrics, so one broken or foreign folder never stops the listing."""
    return [run_row(path.parent) for path in
            sorted(runs_folder().glob("*/config.yaml"), reverse=True)]


def run_row(run_dir: Path) -> dict:
    row = {"run": run_dir.name, "dataset": None, "backbone": None, "mode": None, "split": "-",
           "level": None, "accuracy": None, "macro_f1": None, "macro_auprc": None,
           "finished": False, "path": str(run_dir), "unreadable": None}
    try:
        return {**row, **run_summary(run_dir)}
    except ValueError as exc:
        return {**row, "unreadable": str(exc)}


def run_summary(run_dir: Path) -> dict:
    """The run's dataset, backbone, mode and key metrics; ValueError naming the file that is
    not a run's."""
    config = read_run_file(run_dir / "config.yaml", yaml.safe_load)
    if not isinstance(config, dict) or "dataset" not in config or not isinstance(
            config.get("train"), dict):
        raise ValueError("config.yaml: not a shotlab run configuration (no dataset and train "
                         "settings)")
    metrics_path = run_dir / "metrics.json"
    metrics = read_run_file(metrics_path, json.loads) if metrics_path.is_file() else {}
    if not isinstance(metrics, dict):
        raise ValueError("metrics.json: not a run's metrics")
    level, split, scores = key_scores(run_dir, metrics)
    return {"dataset": config["dataset"], "backbone": config["train"].get("backbone"),
            "mode": config["train"].get("mode"), "split": split if metrics else "-",
            "level": level, "accuracy": scores.get("accuracy"),
            "macro_f1": scores.get("macro_f1"), "macro_auprc": scores.get("macro_auprc"),
            "finished": metrics_path.is_file()}


def key_scores(run_dir: Path, metrics: dict) -> tuple[str, str, dict]:
    """(level, split, metrics) a run is listed by: a clip run's pooled clip decisions (what its
    bundle decides), else the samples'; test where there is one, else val."""
    clip_path = run_dir / "clip_metrics.json"
    if clip_path.is_file():
        clips = read_run_file(clip_path, json.loads)
        aggregated = clips.get("aggregated") if isinstance(clips, dict) else None
        if not isinstance(aggregated, dict):
            raise ValueError("clip_metrics.json: not a run's clip metrics")
        metrics, level = aggregated, "clips"
    else:
        level = "samples"
    split = "test" if "test" in metrics else "val"
    return level, split, metrics.get(split, {})


def read_run_file(path: Path, parse):
    """`parse` of the file's text; ValueError naming the file when it cannot be read or parsed."""
    try:
        return parse(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path.name}: {one_line(exc)}") from None
