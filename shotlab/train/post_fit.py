"""Training on a post dataset (image + caption): late fusion with a logistic-regression head.

    fitted = fit_posts(manifest, config, run_dir)     # a FitResult with `scores(entries)`

Both encoders are frozen: the image half is the backbone's pooled embedding (cached per image
by `train/embeddings.extract`, as a linear probe on images), the text half MiniLM's sentence
embedding of the caption. Each half is centred and scaled by its own mean norm on the train
split (so neither dominates by scale), a logistic regression (`finetune.init_probe`, the image
probe's) is fitted on the concatenation, and the standardisation is folded into the torch head:
the saved `PostClassifier` takes raw images and token ids. The run's mode is "fusion" (nothing
else trains; `--backbone` names the image encoder, the caption's is always MiniLM).

The captions of the manifest's samples are frozen beside it in the run folder
(`captions.json`, {sample id: text}) since the manifest's entries name the image only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.core.files import write_json_atomic
from shotlab.runtime.text import visible
from shotlab.train.finetune import FitResult, TrainConfig, save_atomic, validation_score
from shotlab.train.manifest import Manifest
from shotlab.train.post_model import MODEL_KIND, PostClassifier

CAPTIONS_FILE = "captions.json"
SPLITS = ("train", "val", "test")


@dataclass
class PostFit(FitResult):
    """A fitted post model and its scores on any manifest entries (from cached embeddings)."""

    scores: object = None  # (entries) -> probabilities (N, K)


def freeze_captions(manifest: Manifest, run_dir: Path) -> dict[str, str]:
    """{sample id: caption} for the manifest's entries, written to the run folder."""
    dataset = store.load(manifest.dataset)
    texts = dict(zip(dataset.values("id"), dataset.values("text")))
    captions = {}
    for entry in manifest.entries:
        text = texts.get(entry.sample_id)
        if not isinstance(text, str) or not visible(text):  # invisible: imported before
            raise InputError(f"dataset '{manifest.dataset}': sample {entry.filepath} has no "
                             f"caption (field 'text'); re-import the posts CSV with a text "
                             f"for every row")
        captions[entry.sample_id] = text
    write_json_atomic(run_dir / CAPTIONS_FILE, captions)
    return captions


def read_captions(run_dir: Path) -> dict[str, str]:
    path = Path(run_dir) / CAPTIONS_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: the run's captions are missing or unreadable ({exc}); "
                         f"train the post dataset again") from None


def captions_hash(captions: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(captions, sort_keys=True).encode()).hexdigest()


def embeddings(manifest: Manifest, captions: dict, created, encoder, config: TrainConfig,
               progress) -> dict[str, np.ndarray]:
    """{sample id: concatenated (image, text) embedding} for every entry of the manifest."""
    from shotlab.train.embeddings import extract
    from shotlab.train.text_model import embed_texts

    entries = list(manifest.entries)
    images = extract(created, [e.filepath for e in entries], [e.sha256 for e in entries],
                     workers=config.workers, device="cpu", progress=progress)
    texts = embed_texts([captions[e.sample_id] for e in entries], encoder=encoder,
                        progress=progress)
    both = np.concatenate([images, texts], axis=1).astype(np.float32)
    return {e.sample_id: row for e, row in zip(entries, both)}


def standardisation(train: np.ndarray, image_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) per dimension: the train mean, and per half one scale (its mean centred
    norm), so the image and text halves weigh the same before the regression."""
    mu = train.mean(axis=0)
    sigma = np.empty_like(mu)
    for half in (slice(0, image_dim), slice(image_dim, None)):
        scale = np.linalg.norm(train[:, half] - mu[half], axis=1).mean()
        sigma[half] = max(float(scale), 1e-6)
    return mu, sigma


def fitted_head(features: np.ndarray, targets: np.ndarray, task: str, image_dim: int, classes):
    """The torch head: a logistic regression on standardised features, the standardisation
    folded in (W = V / sigma, b = c - W . mu)."""
    import torch

    from shotlab.core.seeding import seeded_torch
    from shotlab.train.finetune import init_probe

    mu, sigma = standardisation(features, image_dim)
    with seeded_torch(0):
        head = torch.nn.Linear(features.shape[1], len(classes))
    init_probe(head, (features - mu) / sigma, targets, task)
    with torch.no_grad():
        head.weight.div_(torch.as_tensor(sigma))
        head.bias.sub_(head.weight @ torch.as_tensor(mu))
    return head


def post_meta(created, manifest: Manifest, config: TrainConfig, image_dim: int,
              captions: dict) -> dict:
    """The checkpoint's meta: the image meta of `finetune.checkpoint_meta` plus the two-part
    contract and what `build_post_model` needs."""
    from shotlab.train.finetune import checkpoint_meta
    from shotlab.train.text_model import ENCODER_NAME, text_preprocessing

    meta = checkpoint_meta(created, manifest, config)
    image = created.preprocessing.with_classes(manifest.classes)
    text = text_preprocessing(manifest.classes)
    return {**meta, "model_kind": MODEL_KIND, "preprocessing": image.to_dict(),
            "parts": {"image": image.to_dict(), "text": text.to_dict()},
            "text_encoder": ENCODER_NAME, "image_dim": image_dim,
            "captions_sha256": captions_hash(captions)}


def image_backbone_of(name: str, *, weights_file=None, allow_download: bool = False):
    """`Created` for backbone `name` as a feature extractor (pooled embeddings, no head)."""
    from shotlab.train.backbones import create_model

    return create_model(name, num_classes=0, weights_file=weights_file,
                        allow_download=allow_download)


def fit_posts(manifest: Manifest, config: TrainConfig, run_dir: Path, *, resume: bool = False,
              progress: bool | None = None) -> PostFit:
    """Fit the late-fusion head; writes checkpoints/best.pt (the whole PostClassifier) and
    last.pt (a marker: a post run has no epochs to resume). A resumed run fits on the captions
    its start froze (captions.json): a caption edited since would be trained on unseen, as the
    captions are not in the manifest's hash."""
    import torch

    from shotlab.runtime.decide import probabilities
    from shotlab.train.finetune import check_trainable
    from shotlab.train.text_model import load_encoder

    train, val = check_trainable(manifest)
    frozen = resume and (Path(run_dir) / CAPTIONS_FILE).is_file()
    captions = read_captions(run_dir) if frozen else freeze_captions(manifest, Path(run_dir))
    created = image_backbone_of(config.backbone, weights_file=config.weights,
                                allow_download=config.allow_download)
    encoder = load_encoder()
    features = embeddings(manifest, captions, created, encoder, config, progress)
    image_dim = int(created.model.num_features)
    stack = lambda entries: np.stack([features[e.sample_id] for e in entries])  # noqa: E731
    head = fitted_head(stack(train), manifest.targets(train), manifest.task, image_dim,
                       manifest.classes)
    model = PostClassifier(created.model.eval(), encoder, head).eval()

    def scores(entries) -> np.ndarray:
        if not entries:
            return np.zeros((0, len(manifest.classes)), np.float32)
        with torch.inference_mode():
            logits = model.head(torch.as_tensor(stack(entries)))
        return probabilities(logits, manifest.task).numpy()

    from shotlab.train.calibration import nll

    score = validation_score(manifest.targets(val), scores(val), manifest.task)
    train_loss = nll(manifest.targets(train), scores(train), manifest.task)
    checkpoints = Path(run_dir) / "checkpoints"
    meta = post_meta(created, manifest, config, image_dim, captions)
    save_atomic({"model": model.state_dict(), **meta}, checkpoints / "best.pt")
    save_atomic({"model_kind": MODEL_KIND, "epoch": 0, "manifest_hash": manifest.hash},
                checkpoints / "last.pt")
    history = [{"epoch": 0, "train_loss": train_loss, "val_score": score}]
    return PostFit(model, created, 0, score, history, "cpu", scores=scores)


def default_mode(manifest: Manifest) -> str:
    return "fusion"


def options_read(mode: str) -> set[str]:
    """The tuning options (runs.TUNING) a post run reads: the image backbone's weights."""
    return {"weights", "allow_download"}


def fit(manifest: Manifest, config: TrainConfig, run_dir: Path, *, resume: bool = False,
        progress: bool | None = None) -> PostFit:
    """`train/runs.py`'s fit for a post dataset; `resume` fits again (one pass, no epochs) on
    the captions the run froze."""
    return fit_posts(manifest, config, run_dir, resume=resume, progress=progress)
