"""The automatic method choice of `shotlab train NAME` without `--mode` (image datasets).

    choice = choose(manifest, seed=0)              # cross-validates on the train split only
    choice["backbone"], choice["mode"], line(choice)

Candidates are the linear head (`--mode linear`: the backbone frozen, a logistic regression on its
cached embeddings, then fine-tuned on them) on each image backbone with offline weights (lite0,
lite1, lite2), or on the one `--backbone` names. Each is scored by seeded, stratified k-fold
cross-validation on the TRAIN split alone: the classifier the linear head starts from
(`baselines.make_classifier("logreg")`) is fitted on k-1 folds and predicts the held-out one; the
pooled out-of-fold predictions are scored with the measure early stopping uses
(`finetune.validation_score`: macro-F1, or macro average precision for multilabel). Images that
belong together (the manifest's groups: near duplicates `curate check` found, byte copies) are
held out together, so a copy in the other folds cannot vouch for its twin. Validation
and test images are never embedded or read here: val stays for early stopping and calibration,
test for the honest figure. The highest score wins; a tie goes to the cheaper backbone (listed
first). With 5-20 images a class, backbones 2-3 points apart cannot be told apart this way (on
Fashion-MNIST the best backbone on test was picked in 16 of 30 draws; docs/train.md), so the
choice also says when it was a close call: when the winner outscores the runner-up on fewer than
90% of bootstrap resamples of the train images' out-of-fold predictions (`close_call`). The
chosen candidate then trains as a normal run, so export and predict take it as any.

Partial and full fine-tuning are not candidates: cross-validating them would fine-tune k
networks per candidate (minutes each on a CPU), and where they were measured they did not beat
the linear head. Fashion-MNIST (benchmarks/results/fashion_mnist, lite0, 3 repeats): partial
0.713 / 0.736 / 0.791 test accuracy at 5 / 10 / 20 shots against linear 0.721 / 0.766 / 0.786,
at 100-600x the time; the cut-out set of issue #17 at 10 shots: partial 0.761, linear 0.767.
`--mode partial` still trains one.
"""

from __future__ import annotations

import numpy as np

from shotlab.train.manifest import Manifest

MAX_FOLDS = 5
MODE = "linear"
BOOTSTRAP_ROUNDS = 200
# The winner must lead the runner-up on this share of bootstrap resamples for the choice to be
# called clear (a one-sided 90% bootstrap test); below it the run says the pick is a coin toss.
CLEAR_LEAD = 0.9
WHY_NOT_FINE_TUNING = ("partial/full fine-tuning not tried (never ahead of the linear head in "
                       "the measured few-shot benchmarks; force it with --mode partial)")


def offline_backbones() -> list[str]:
    """Image backbones whose pretrained weights load offline, cheapest first."""
    from shotlab.train.backbones import list_backbones, package_weights_file

    ready = [b for b in list_backbones() if b.kind == "image" and package_weights_file(b)]
    return [b.name for b in ready]


def fold_count(y: np.ndarray, task: str, groups: np.ndarray | None = None) -> int:
    """How many folds the train split allows: up to MAX_FOLDS, at most the rarest class's count
    (every fold must hold each class), counted in groups where `groups` is given (a group is
    held out whole: `Manifest.groups`); 1 means no cross-validation is possible."""
    masks = y.T.astype(bool) if task == "multilabel" else [y == c for c in np.unique(y)]
    sizes = [len(np.unique(groups[m])) if groups is not None else int(m.sum()) for m in masks]
    present = [size for size in sizes if size > 0]
    return int(min(MAX_FOLDS, min(present), len(y))) if present else 1


def cv_probs(x: np.ndarray, y: np.ndarray, task: str, folds: int, seed: int,
             groups: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold probabilities of the linear head's starting classifier on features `x`."""
    from sklearn.model_selection import cross_val_predict

    from shotlab.core.folds import splitter
    from shotlab.train.baselines import make_classifier

    model = make_classifier("logreg", task=task, seed=seed)
    cv = splitter(folds, seed, stratified=task != "multilabel", grouped=groups is not None)
    return np.asarray(cross_val_predict(model, x, y, cv=cv, groups=groups,
                                        method="predict_proba"))


def lead_share(y: np.ndarray, best: np.ndarray, runner_up: np.ndarray, task: str,
               seed: int) -> float:
    """The share of bootstrap resamples of the train samples on which the winner's out-of-fold
    predictions `best` still score higher than the runner-up's (paired: the same resample)."""
    from shotlab.train.finetune import validation_score

    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(BOOTSTRAP_ROUNDS):
        rows = rng.integers(0, len(y), len(y))
        wins += validation_score(y[rows], best[rows], task) > \
            validation_score(y[rows], runner_up[rows], task)
    return wins / BOOTSTRAP_ROUNDS


def close_call(names: list[str], best: str, scores: dict, probs: dict, y, task: str,
               seed: int) -> str:
    """'' when the winner leads clearly; else the sentence `line` adds about the coin toss."""
    runner_up = max((n for n in names if n != best), key=lambda n: scores[f"{n} {MODE}"])
    share = lead_share(y, probs[best], probs[runner_up], task, seed)
    if share >= CLEAR_LEAD:
        return ""
    return (f"a close call: {best} scored higher than {runner_up} on only {share:.0%} of "
            f"{BOOTSTRAP_ROUNDS} bootstrap resamples of the train images, so at this size the two "
            f"cannot be told apart (compare them with --backbone, or label more images)")


def decide(features: dict[str, np.ndarray], y: np.ndarray, task: str, seed: int,
           groups: np.ndarray | None = None) -> dict:
    """The choice among `features` (backbone -> train embeddings, cheapest first), recorded as
    a dict: chosen backbone and mode, every candidate's score, the folds, seed and why.
    `groups` (`Manifest.groups`): samples that belong together are held out together."""
    from shotlab.core.groups import grouped_count
    from shotlab.train.finetune import validation_score

    names = list(features)
    folds = fold_count(y, task, groups)
    metric = "macro average precision" if task == "multilabel" else "macro-F1"
    record = {"mode": MODE, "metric": metric, "folds": folds, "seed": seed, "train": len(y),
              "grouped": grouped_count(groups), "scores": {}}
    if len(names) == 1:
        return {**record, "backbone": names[0],
                "reason": f"the only candidate ({names[0]} {MODE}); {WHY_NOT_FINE_TUNING}"}
    if folds < 2:
        return {**record, "backbone": names[0],
                "reason": f"a class has a single train image (or group of images that "
                          f"belong together), so no cross-validation is "
                          f"possible: {names[0]} {MODE}, the cheapest candidate; "
                          f"{WHY_NOT_FINE_TUNING}"}
    probs = {name: cv_probs(features[name], y, task, folds, seed, groups) for name in names}
    scores = {f"{name} {MODE}": round(validation_score(y, probs[name], task), 4) for name in names}
    best = max(names, key=lambda name: scores[f"{name} {MODE}"])  # ties: the first, cheapest
    close = close_call(names, best, scores, probs, y, task, seed)
    return {**record, "backbone": best, "scores": scores, **({"close_call": close} if close else {}),
            "reason": f"the highest score (ties go to the cheaper backbone); "
                      f"{WHY_NOT_FINE_TUNING}"}


def choose(manifest: Manifest, *, backbone: str | None = None, seed: int = 0,
           device: str | None = None, workers: int | None = None,
           progress: bool | None = None) -> dict:
    """The method a run on `manifest` trains with when `--mode` is not given, chosen on its
    train split alone (see the module docstring); `backbone` (--backbone) limits the
    candidates to that one. Embeddings are cached, so the chosen run reuses its own."""
    from shotlab.train.backbones import create_model, default_backbone
    from shotlab.train.embeddings import extract

    names = [backbone] if backbone else (offline_backbones() or [default_backbone("image")])
    train = manifest.split("train")
    y, groups = manifest.targets(train), manifest.groups(train)
    if len(names) == 1 or fold_count(y, manifest.task, groups) < 2:  # nothing to cross-validate
        return decide({name: np.zeros((len(y), 0)) for name in names}, y, manifest.task, seed,
                      groups)
    paths, digests = [e.filepath for e in train], [e.sha256 for e in train]
    features = {name: extract(create_model(name, num_classes=0), paths, digests, device=device,
                              workers=workers, progress=progress) for name in names}
    return decide(features, y, manifest.task, seed, groups)



def chosen_config(manifest: Manifest, config, backbone: str | None, progress):
    """`config` (a TrainConfig) with the backbone and mode `choose` picks, and the choice;
    `backbone` is --backbone (None: every offline backbone is a candidate)."""
    from dataclasses import replace

    choice = choose(manifest, backbone=backbone, seed=config.seed, device=config.device,
                    workers=config.workers, progress=progress)
    return replace(config, backbone=choice["backbone"], mode=choice["mode"]), choice


def line(choice: dict) -> str:
    """The one line `shotlab train` prints about its choice."""
    scores = ", ".join(f"{name} {score:.3f}" for name, score in choice["scores"].items())
    return (f"Automatic choice: {choice['backbone']} {choice['mode']}"
            + (f" ({choice['metric']}, {choice['folds']}-fold cross-validation on the "
               f"{choice['train']} train images{grouped_words(choice)}: {scores})"
               if scores else "")
            + f"; why: {choice['reason']}"
            + (f"; {choice['close_call']}" if choice.get("close_call") else "") + ".")


def grouped_words(record: dict) -> str:
    """', N of them held out with the images they belong with' where folds were grouped."""
    grouped = record.get("grouped", 0)
    return f", {grouped} of them held out with the images they belong with" if grouped else ""
