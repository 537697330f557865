"""Fine-tuning a timm backbone: linear probe, partial unfreezing, full with layer-wise LR decay.

`fit(manifest, config, run_dir)` trains on the manifest's train split, early-stops on the val
split, and writes `checkpoints/last.pt` after every epoch (atomically, so a run killed with -9
resumes from its last finished epoch) and `checkpoints/best.pt` when validation improves.

Modes:
- linear: the backbone is frozen; the head is trained on cached embeddings (no augmentation),
  which costs one forward pass per image in total.
- partial: the last `unfreeze_stages` stages (timm's coarse parameter groups) and the head train.
- full: everything trains, with learning rates decaying by `layer_decay` per stage from the head
  down (discriminative learning rates, as in BEiT/timm).
AdamW with linear warm-up then cosine decay, label smoothing, a class-balanced sampler (or
pos_weight for multilabel), albumentations presets, AMP (bf16) and channels_last on CUDA only.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.files import atomic_path
from shotlab.core.images import load_rgb
from shotlab.core.progress import progress_bar
from shotlab.core.seeding import seed_everything, seed_worker, seeded_torch
from shotlab.runtime.decide import probabilities
from shotlab.train.augment import TrainTransform
from shotlab.train.backbones import Created, create_model
from shotlab.train.checkpoint import one_line, read_state
from shotlab.train.device import autocast, on_gpu, place_model, resolve, to_device
from shotlab.train.choices import MODES
from shotlab.train.manifest import Entry, Manifest

BACKBONE_LR_SCALE = 0.1
PROBE_C = 10.0  # on features of norm ~1, as the logreg baseline (flat accuracy from C=3 up)
RANGES = (("lr", 0, 1, False), ("layer_decay", 0, 1, False), ("target_recall", 0, 1, False),
          ("weight_decay", 0, 1, True), ("label_smoothing", 0, 0.5, True))  # (name, low, high, low ok)
BALANCE = ("sampler", "loss", "none")
RESTART = "start a new run (`shotlab train NAME`) instead of resuming this one"


@dataclass
class TrainConfig:
    backbone: str = "lite0"
    mode: str = "partial"
    epochs: int = 15  # few-shot sets converge fast; early stopping ends most runs sooner
    batch_size: int = 16  # small sets: more steps per epoch beat bigger batches
    lr: float = 1e-3  # the head's; backbone stages get lr / 10 (full: times layer_decay per stage)
    layer_decay: float = 0.7  # per stage below the head (full mode)
    unfreeze_stages: int = 2  # partial mode: the last two stages adapt, the rest stay ImageNet
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1  # few labels, some wrong: do not let the model be certain
    balance: str = "sampler"
    augment: str = "standard"
    patience: int = 4  # epochs without validation improvement before stopping
    seed: int = 0
    device: str | None = None
    workers: int | None = None
    weights: str | None = None
    allow_download: bool = False
    unsafe: list[str] = field(default_factory=list)
    target_recall: float | None = None  # None: the dataset policy's (0.95 without a policy)

    def check(self) -> "TrainConfig":
        from shotlab.train.choices import PRESETS

        for name, value, allowed in (("mode", self.mode, MODES), ("balance", self.balance, BALANCE),
                                     ("augment", self.augment, PRESETS)):
            if value not in allowed:
                raise InputError(f"The '{name}' option must be one of {', '.join(allowed)}. "
                                 f"Got '{value}' instead.")
        for name in ("epochs", "batch_size", "unfreeze_stages"):
            if getattr(self, name) < 1:
                raise InputError(f"The '{name}' option must be at least 1. "
                                 f"Got {getattr(self, name)} instead.")
        for name, low, high, low_allowed in RANGES:
            value = getattr(self, name)
            if value is None and name == "target_recall":
                continue
            if not (low < value <= high or (low_allowed and value == low)):
                bracket = "[" if low_allowed else "("
                raise InputError(f"The '{name}' option must be in {bracket}{low}, {high}]. "
                                 f"Got {value} instead.")
        if self.patience < 1:  # 0 stopped before the first epoch (the probe is epoch -1)
            raise InputError(f"The 'patience' option must be at least 1 (epochs without "
                             f"improvement before stopping; 0 would train none). Got "
                             f"{self.patience} instead.")
        if self.warmup_epochs < 0:
            raise InputError(f"The 'warmup_epochs' option must be at least 0. Got "
                             f"{self.warmup_epochs} instead.")
        resolve(self.device)  # a device that is not there fails now, not after the set-up
        return self

    def to_dict(self) -> dict:
        return asdict(self)


class LabelledImages:
    """(input, target) pairs for entries, decoded in DataLoader workers."""

    def __init__(self, entries: list[Entry], targets: np.ndarray, transform):
        self.entries, self.targets, self.transform = entries, targets, transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        return self.transform(load_rgb(self.entries[index].filepath)), self.targets[index]


def class_weights(targets: np.ndarray, task: str, num_classes: int) -> np.ndarray:
    """Inverse class frequency per sample (multiclass) or per class pos_weight (multilabel)."""
    if task == "multilabel":
        positives = targets.sum(axis=0).clip(min=1)
        return ((len(targets) - positives) / positives).astype(np.float32)
    counts = np.bincount(targets, minlength=num_classes).clip(min=1)
    return (1.0 / counts[targets]).astype(np.float64)


def train_loader(entries, targets, created: Created, config: TrainConfig, task: str, generator,
                 device: str):
    import torch
    from torch.utils.data import DataLoader, WeightedRandomSampler

    from shotlab.train.embeddings import default_workers

    dataset = LabelledImages(entries, targets, TrainTransform(created.preprocessing, config.augment))
    sampler = None
    if config.balance == "sampler" and task == "multiclass":
        weights = torch.as_tensor(class_weights(targets, task, len(created.preprocessing.class_names)))
        sampler = WeightedRandomSampler(weights, num_samples=len(entries), replacement=True,
                                        generator=generator)
    workers = default_workers() if config.workers is None else config.workers
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=sampler is None,
                      sampler=sampler, generator=generator, num_workers=workers,
                      worker_init_fn=seed_worker, drop_last=False,
                      pin_memory=on_gpu(device))


def stage_groups(model) -> list[list[str]]:
    """Parameter names by stage, stem first, the classifier excluded (timm's coarse groups)."""
    from timm.models import group_parameters

    head = {f"{n}" for n, _ in named_head_parameters(model)}
    groups = group_parameters(model, model.group_matcher(coarse=True))
    return [[n for n in names if n not in head] for _, names in sorted(groups.items())
            if any(n not in head for n in names)]


def named_head_parameters(model):
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    return [(n, p) for n, p in model.named_parameters() if id(p) in head_ids]


def param_groups(model, config: TrainConfig) -> list[dict]:
    """Trainable parameters with their learning rates; freezes the rest (by mode)."""
    stages = stage_groups(model)
    trainable = {"linear": 0, "partial": config.unfreeze_stages, "full": len(stages)}[config.mode]
    by_name = dict(model.named_parameters())
    groups = [{"params": [p for _, p in named_head_parameters(model)], "lr": config.lr}]
    for depth, names in enumerate(reversed(stages), start=1):
        train_it = depth <= trainable
        for name in names:
            by_name[name].requires_grad_(train_it)
        if train_it and names:
            # The backbone learns 10x slower than the head, and (full mode) slower still per
            # stage further from it: the pretrained features are the asset to keep.
            scale = BACKBONE_LR_SCALE * (config.layer_decay ** (depth - 1) if config.mode == "full" else 1)
            groups.append({"params": [by_name[n] for n in names], "lr": config.lr * scale})
    return groups


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def loss_function(task: str, config: TrainConfig, targets: np.ndarray, num_classes: int):
    import torch

    if task == "multilabel":
        pos_weight = (torch.as_tensor(class_weights(targets, task, num_classes))
                      if config.balance == "loss" else None)
        bce = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        eps = config.label_smoothing
        return lambda logits, y: bce(logits, y.float() * (1 - eps) + eps / 2)
    weight = None
    if config.balance == "loss":
        counts = np.bincount(targets, minlength=num_classes).clip(min=1)
        weight = torch.as_tensor(len(targets) / (num_classes * counts), dtype=torch.float32)
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def validation_score(targets: np.ndarray, probs: np.ndarray, task: str) -> float:
    """What early stopping maximises: macro-F1 (multiclass) or macro average precision."""
    from sklearn.metrics import average_precision_score, f1_score

    if task == "multilabel":
        present = targets.sum(axis=0) > 0
        return float(average_precision_score(targets[:, present], probs[:, present], average="macro"))
    return float(f1_score(targets, probs.argmax(axis=1), average="macro", zero_division=0))


def predict(model, paths: list[str], created: Created, task: str, *, device: str,
            batch_size: int = 32, workers: int | None = None, progress: bool | None = False):
    """Class probabilities (n, k) for image files, with the evaluation preprocessing."""
    import torch

    from shotlab.train.embeddings import default_workers, forward_batches

    out = [probabilities(torch.from_numpy(logits), task).numpy() for _, logits in forward_batches(
        model, created.preprocessing, paths, batch_size=batch_size, device=device,
        workers=default_workers() if workers is None else workers, progress=progress,
        desc="Predicting")]
    return np.concatenate(out) if out else np.zeros((0, len(created.preprocessing.class_names)))


def save_atomic(state: dict, path: Path) -> None:
    """Write then rename: a run killed mid-write keeps its previous checkpoint intact."""
    import torch

    with atomic_path(path) as partial:
        torch.save(state, partial)


def rng_state(generator) -> dict:
    """Every random generator's state as tensors, numbers and lists: what a weights-only load
    accepts (numpy's state holds an ndarray, which it does not)."""
    import torch

    version, words, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(words), gauss],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "torch": torch.get_rng_state(), "generator": generator.get_state()}


def restore_rng(state: dict, generator) -> None:
    import torch

    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])


@dataclass
class FitResult:
    model: object
    created: Created
    best_epoch: int
    best_score: float
    history: list[dict]
    device: str
    # {filepath: vector}: frozen features the fit already computed for its train samples (a text
    # logreg run's embeddings), so `frozen_features` need not compute them again; else None.
    features: dict | None = None


class Trainer:
    """One run's training state: model, optimiser, schedule, checkpoints."""

    def __init__(self, manifest: Manifest, config: TrainConfig, run_dir: Path, progress=None):
        import torch

        self.manifest, self.config, self.progress = manifest, config.check(), progress
        self.task = manifest.task
        self.train, self.val = check_trainable(manifest)
        seed_everything(config.seed)
        self.device = resolve(config.device)
        self.created = create_model(config.backbone, num_classes=len(manifest.classes),
                                    class_names=manifest.classes, weights_file=config.weights,
                                    allow_download=config.allow_download)
        self.model = place_model(self.created.model, self.device)
        self.y_train = manifest.targets(self.train)
        self.y_val = manifest.targets(self.val)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.probe = None  # linear mode: the head, trained on centred, scaled embeddings
        self.features, self.standardise = None, None  # linear mode: embeddings and (mu, sigma)
        self.optimizer = self.scheduler = None  # build_optimizer(), once the head is known
        self.loss = loss_function(self.task, config, self.y_train, len(manifest.classes))
        self.checkpoints = Path(run_dir) / "checkpoints"
        self.epoch, self.best_epoch, self.best_score, self.history = 0, -1, -math.inf, []

    def score(self) -> float:
        """The validation score early stopping and best.pt are judged on."""
        return validation_score(self.y_val, self.validate(), self.task)

    def keep_if_best(self, score: float, epoch: int) -> None:
        """Save the model as checkpoints/best.pt if `score` beats the best so far."""
        if score > self.best_score:
            self.best_epoch, self.best_score = epoch, score
            self.fold_probe()
            save_atomic({"model": self.model.state_dict(),
                         **checkpoint_meta(self.created, self.manifest, self.config)},
                        self.checkpoints / "best.pt")

    def end_epoch(self, loss: float, score: float) -> None:
        """Record the epoch, keep the model if best, save last.pt (resume starts after it)."""
        self.history.append({"epoch": self.epoch, "train_loss": loss, "val_score": score})
        self.keep_if_best(score, self.epoch)
        save_atomic(self.state(), self.checkpoints / "last.pt")
        self.epoch += 1

    def load_best(self) -> None:
        self.model.load_state_dict(read_state(self.checkpoints / "best.pt", RESTART)["model"])

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.config.batch_size)

    def build_optimizer(self) -> None:
        import torch

        groups = (param_groups(self.model, self.config) if self.probe is None
                  else [{"params": list(self.probe.parameters()), "lr": self.config.lr}])
        self.optimizer = torch.optim.AdamW(groups, weight_decay=self.config.weight_decay)
        steps = self.steps_per_epoch()
        total = steps * self.config.epochs
        warmup = max(1, int(steps * self.config.warmup_epochs))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: warmup_cosine(step, warmup, total))

    def fold_probe(self) -> None:
        """Write the probe into the model's classifier (fold_linear)."""
        if self.probe is None:
            return
        fold_linear(self.probe, self.model.get_classifier(), *self.standardise)

    def unfold_probe(self) -> None:
        """The inverse of fold_probe, after loading a checkpoint."""
        import torch

        if self.probe is None:
            return
        mu, sigma = self.standardise
        head = self.model.get_classifier()
        with torch.no_grad():
            self.probe.weight.copy_(head.weight * sigma)
            self.probe.bias.copy_(head.bias + head.weight @ mu)

    def state(self) -> dict:
        self.fold_probe()
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch,
                "best_epoch": self.best_epoch, "best_score": self.best_score,
                "history": self.history, "rng": rng_state(self.generator),
                **checkpoint_meta(self.created, self.manifest, self.config)}

    def resume(self) -> bool:
        last = self.checkpoints / "last.pt"
        if not last.is_file():
            return False
        state = read_state(last, RESTART)  # on the CPU: the RNG states must stay there
        if state.get("manifest_hash") != self.manifest.hash:
            raise InputError(f"{last} was trained on another version of the dataset (manifest "
                             f"{str(state.get('manifest_hash'))[:12]}, now {self.manifest.hash[:12]});"
                             f" start a new run instead of resuming")
        try:
            self.load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise InputError(f"{last}: not a checkpoint this run can resume from "
                             f"({type(exc).__name__}: {one_line(exc)}); {RESTART}") from None
        return True

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.unfold_probe()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"]) + 1
        self.best_epoch, self.best_score = int(state["best_epoch"]), float(state["best_score"])
        self.history = list(state["history"])
        restore_rng(state["rng"], self.generator)

    def finished(self) -> bool:
        return (self.epoch >= self.config.epochs
                or self.epoch - self.best_epoch > self.config.patience)

    def prepare(self) -> None:
        """Embed the train and val splits once (cached), centred and scaled, then set up the head.

        Linear mode trains a probe on the centred, scaled embeddings: Adam moves each weight by
        about lr per step whatever the feature scale, so on raw features of small magnitude the
        logits would hardly move. Partial and full modes start from a linear probe fitted the
        same way (LP-FT, Kumar et al. 2022: better than fine-tuning from a random head,
        especially with few examples). fold_probe maps a probe onto the model's own classifier,
        so the deployed model is the plain timm model.
        """
        import torch

        self.embed()
        head = self.model.get_classifier()
        with seeded_torch(self.config.seed):
            self.probe = torch.nn.Linear(head.in_features, head.out_features).to(self.device)
        init_probe(self.probe, self.features["train"].cpu().numpy(), self.y_train, self.task)
        self.fold_probe()
        if self.config.mode == "linear":
            for parameter in self.model.parameters():
                parameter.requires_grad_(False)
        else:
            self.probe = None  # from here on the whole model trains on images

    def embed(self) -> None:
        import torch

        from shotlab.train.embeddings import extract

        extractor = feature_extractor(self.created)
        features = {name: extract(
            extractor, [e.filepath for e in entries], [e.sha256 for e in entries],
            device=self.device, workers=self.config.workers, progress=self.progress)
            for name, entries in (("train", self.train), ("val", self.val))}
        # Centre, then one scale for all dimensions (the mean feature norm), not a per-dimension
        # std: with a few images per class per-dimension scales are noise (per-dimension
        # standardising cost ~0.12 accuracy at 2 shots in the baselines' measurements).
        mu, scale = probe_scaling(features["train"])
        mu = torch.as_tensor(mu).to(self.device)
        sigma = torch.full_like(mu, scale)
        self.standardise = (mu, sigma)
        self.features = {k: (torch.as_tensor(v).to(self.device) - mu) / sigma
                         for k, v in features.items()}

    def batches(self):
        """Index batches over the train split: class-balanced draws or a seeded shuffle."""
        import torch

        n = len(self.train)
        if self.config.balance == "sampler" and self.task == "multiclass":
            weights = torch.as_tensor(class_weights(self.y_train, self.task, len(self.manifest.classes)))
            order = torch.multinomial(weights, n, replacement=True, generator=self.generator)
        else:
            order = torch.randperm(n, generator=self.generator)
        return order.split(self.config.batch_size)

    def train_epoch(self) -> float:
        import torch

        self.model.train()
        freeze_batchnorm(self.model)
        if self.probe is not None:
            targets = torch.as_tensor(self.y_train)
            steps = ((self.probe(self.features["train"][i]), targets[i]) for i in self.batches())
        else:
            steps = self.image_steps()
        losses = [self.step(logits, targets) for logits, targets in steps]
        return float(np.mean(losses))

    def image_steps(self):
        loader = train_loader(self.train, self.y_train, self.created, self.config, self.task,
                              self.generator, self.device)
        for inputs, targets in progress_bar(loader, enabled=self.progress, unit="batch",
                                            desc=f"Epoch {self.epoch + 1}/{self.config.epochs}"):
            with autocast(self.device):
                yield self.model(to_device(inputs, self.device)), targets

    def step(self, logits, targets) -> float:
        loss = self.loss(logits.float(), targets.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def validate(self) -> np.ndarray:
        import torch

        if self.probe is not None:
            with torch.inference_mode():
                logits = self.probe(self.features["val"])
            return probabilities(logits, self.task).cpu().numpy()
        return predict(self.model, [e.filepath for e in self.val], self.created, self.task,
                       device=self.device, workers=self.config.workers)


def check_trainable(manifest: Manifest) -> tuple[list[Entry], list[Entry]]:
    """The train and val entries, once the manifest is known to give a classifier to learn."""
    train, val = manifest.split("train"), manifest.split("val")
    check_classes(manifest)
    if not train or not val:
        raise InputError(f"dataset '{manifest.dataset}' has {len(train)} train and {len(val)} "
                         f"val samples; both are needed: split it with `shotlab curate split "
                         f"{manifest.dataset}`, or assign splits when importing (train/ and val/ "
                         f"folders, or a split column)")
    missing = sorted(set(manifest.classes) - {l for e in train for l in e.labels})
    if missing:
        raise InputError(f"dataset '{manifest.dataset}': classes {missing} have no train "
                         f"samples; add some or exclude them")
    return train, val


def check_classes(manifest: Manifest) -> None:
    """Multiclass needs two classes to tell apart; multilabel needs one class some image has."""
    needed = 2 if manifest.task == "multiclass" else 1
    if len(manifest.classes) >= needed:
        return
    if manifest.task == "multilabel":
        raise InputError(f"dataset '{manifest.dataset}' is multilabel but none of its "
                         f"{len(manifest.entries)} samples has a label (every row is all zeros); "
                         f"label some images with their classes before training")
    found = f"only the class '{manifest.classes[0]}'" if manifest.classes else "no labelled samples"
    raise InputError(f"dataset '{manifest.dataset}' has {found}; a classifier needs at least "
                     f"two classes: import images of another class (e.g. a folder of "
                     f"'other' or 'safe' images) with `shotlab curate import PATH --name "
                     f"{manifest.dataset}`")


def checkpoint_meta(created: Created, manifest: Manifest, config: TrainConfig) -> dict:
    """What a checkpoint needs to be loaded and deployed without the run's other files."""
    return {"backbone": created.backbone.name, "timm_name": created.backbone.timm_name,
            "preprocessing": created.preprocessing.to_dict(), "task": manifest.task,
            "classes": list(manifest.classes), "manifest_hash": manifest.hash,
            "weights": {"source": created.weights.source, "sha256": created.weights.sha256},
            "config": config.to_dict()}


def feature_extractor(created: Created) -> Created:
    """The same backbone and weights without a head (pooled embeddings), without loading the
    weights again; its fingerprint, and so its embedding cache, is the same as create_model's."""
    import copy

    model = copy.deepcopy(created.model)
    model.reset_classifier(0)
    return Created(model, created.preprocessing, created.weights, created.backbone)


def init_probe(probe, features: np.ndarray, targets: np.ndarray, task: str) -> None:
    """Set `probe` to an L2-regularised logistic regression fitted on (centred, scaled) features."""
    import torch

    weight, bias = logistic_head(features, targets, task, probe.out_features)
    with torch.no_grad():
        probe.weight.copy_(torch.as_tensor(weight))
        probe.bias.copy_(torch.as_tensor(bias))


def probe_scaling(features: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean, scale) the probe's features are centred on and divided by: one scale for every
    dimension, the mean norm of the centred features (see `Trainer.embed` for why)."""
    mu = features.mean(axis=0)
    return mu, max(float(np.linalg.norm(features - mu, axis=1).mean()), 1e-6)


def logistic_head(features: np.ndarray, targets: np.ndarray, task: str,
                  classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight (classes, d), bias (classes,)) of the probe's logistic regression on `features`;
    a class missing from `targets` (or one-sided, multilabel) keeps zeros."""
    from sklearn.linear_model import LogisticRegression

    weight = np.zeros((classes, features.shape[1]), dtype=np.float32)
    bias = np.zeros(classes, dtype=np.float32)
    if task == "multilabel":
        for k in range(targets.shape[1]):
            if 0 < targets[:, k].sum() < len(targets):  # a one-sided class has nothing to fit
                fitted = LogisticRegression(C=PROBE_C, max_iter=1000).fit(features, targets[:, k])
                weight[k], bias[k] = fitted.coef_[0], fitted.intercept_[0]
    else:
        fitted = LogisticRegression(C=PROBE_C, max_iter=1000).fit(features, targets)
        coef, intercept = fitted.coef_, fitted.intercept_
        if len(fitted.classes_) == 2:  # sklearn keeps one row for two classes
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        weight[fitted.classes_], bias[fitted.classes_] = coef, intercept
    return weight, bias


def fold_linear(probe, head, mu, sigma) -> None:
    """Write a probe fitted on (x - mu) / sigma into `head`, which reads x: W = V / sigma,
    b = c - W . mu."""
    import torch

    with torch.no_grad():
        head.weight.copy_(probe.weight / sigma)
        head.bias.copy_(probe.bias - head.weight @ mu)


def freeze_batchnorm(model) -> None:
    """Keep every batch-norm layer on its pretrained statistics while training: batch statistics
    of ~16 few-shot images shift the features under the fitted head and wreck the model
    (measured: val F1 1.0 -> 0.31 for lite0 in full mode; with this, it holds)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def frozen_features(fitted: FitResult, entries: list[Entry], config: TrainConfig,
                    progress=None) -> np.ndarray | None:
    """Embeddings of `entries` from the part of the model training left untouched, on which the
    head alone was fitted (linear mode: the whole backbone; cached); None for partial and full
    runs, whose features learnt from the train split."""
    if config.mode != "linear":
        return None
    from shotlab.train.embeddings import extract

    return extract(feature_extractor(fitted.created), [e.filepath for e in entries],
                   [e.sha256 for e in entries], device=fitted.device, workers=config.workers,
                   progress=progress)


def default_mode(manifest: Manifest) -> str:
    """The mode an image run trains in when `--mode` is not given: the linear head, whose
    backbone `runs.prepare` then chooses by cross-validation (train/auto_choice.py, its MODE)."""
    return "linear"


def options_read(mode: str) -> set[str] | None:
    """The tuning options (runs.TUNING) a run in `mode` reads: None, all of them."""
    return None


def fit(manifest: Manifest, config: TrainConfig, run_dir: Path, *, resume: bool = False,
        progress: bool | None = None) -> FitResult:
    """Train on the train split, early-stop on val; the returned model has the best weights."""
    trainer = Trainer(manifest, config, run_dir, progress)
    trainer.prepare()
    trainer.build_optimizer()
    if not (resume and trainer.resume()):
        # The linear-probe head before any epoch is a candidate too (best_epoch -1): with very
        # few images, training on can only lose to it, and early stopping then keeps it.
        trainer.keep_if_best(trainer.score(), -1)
    while not trainer.finished():
        loss = trainer.train_epoch()
        trainer.end_epoch(loss, trainer.score())
    trainer.load_best()
    return FitResult(trainer.model, trainer.created, trainer.best_epoch, trainer.best_score,
                     trainer.history, trainer.device)
