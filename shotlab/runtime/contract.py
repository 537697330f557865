"""The model's input contract: one frozen description, saved with every checkpoint and bundle.

Training, evaluation, export and prediction all derive their input pipeline from it, so the
pixels a deployed model sees are the pixels it was validated on. It mirrors timm's
`resolve_model_data_config` (input size, mean, std, interpolation, crop) and adds the input
kind (`shotlab.runtime.kinds`: image now; clip and text next), the channel order and the class
names. `to_array` is implemented with PIL and numpy only, so prediction through ONNX Runtime
needs no torch; it matches timm's eval transform (tested).

A model's inputs are named parts, each with its own `Preprocessing`: one part named `input` for
an image model; a post (image + caption) is a contract with two parts. The input spec each
runtime and exporter uses (name, dtype, shape) comes from `ModelContract.input_specs()`, never
from a literal shape.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from shotlab.core.errors import InputError

# The ONNX graph's input and output names: the single part of a one-input model is `input`.
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"

CROP_MODES = ("center", "squash")  # timm's eval crop modes reproduced by resize_and_crop
INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                  "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
CHANNEL_ORDERS = ("RGB", "BGR")  # what `normalize` orders the channels as


@dataclass(frozen=True)
class Preprocessing:
    input_size: tuple[int, ...] = ()  # (height, width) an image model sees; () for text
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    interpolation: str = "bicubic"
    crop_pct: float = 0.875  # resize the short side to size / crop_pct, then center-crop
    crop_mode: str = "center"
    channel_order: str = "RGB"
    class_names: tuple[str, ...] = field(default=())
    kind: str = "image"  # a key of shotlab.runtime.kinds.KINDS
    # Text (kind "text"): the tokenizer file (HF `tokenizers` JSON) and the longest token
    # sequence the model reads; a longer comment is truncated. In a bundle `tokenizer` is the
    # file's name inside it; `ModelContract.localise` makes it a path.
    tokenizer: str = ""
    max_tokens: int = 0

    def __post_init__(self):
        """Refuse a contract the pipeline cannot run, naming the field and what it accepts (a
        device contract given to `export --preprocessing`, a bundle's manifest), before any
        work rather than as a crash in the middle of it."""
        from shotlab.runtime.kinds import get_kind, is_number

        kind = get_kind(self.kind)  # an unknown kind fails here, naming the kinds it reads
        if self.crop_mode not in CROP_MODES:
            raise InputError(f"crop_mode {self.crop_mode!r} is not one this shotlab reproduces "
                             f"({', '.join(CROP_MODES)}; timm's 'border' pads, which it does "
                             f"not); set the backbone's pretrained_cfg crop_mode to one of them")
        check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        check_choice("channel_order", self.channel_order, CHANNEL_ORDERS)
        if not (is_number(self.crop_pct) and 0 < self.crop_pct <= 1):
            raise InputError(f"preprocessing crop_pct {self.crop_pct!r} must be a number in "
                             f"(0, 1]: the fraction of the resized image the center crop keeps "
                             f"(timm's default 0.875; 1.0 keeps it all)")
        if kind.check:
            kind.check(self)

    @classmethod
    def from_timm(cls, data_config: dict, class_names=()) -> "Preprocessing":
        """From `timm.data.resolve_model_data_config(model)`."""
        _, height, width = data_config["input_size"]
        return cls(input_size=(height, width), mean=tuple(data_config["mean"]),
                   std=tuple(data_config["std"]), interpolation=data_config["interpolation"],
                   crop_pct=data_config.get("crop_pct") or 1.0,
                   crop_mode=data_config.get("crop_mode", "center"),
                   class_names=tuple(class_names))

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """The contract `data` holds (a manifest's `preprocessing`, a device's JSON); a key it
        does not know is refused by name, a key left out takes its default (which the checks
        of `__post_init__` may refuse, naming it)."""
        from dataclasses import fields as known_fields

        names = [f.name for f in known_fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise InputError(f"unknown key(s) {', '.join(map(repr, unknown))}: a preprocessing "
                             f"contract has {', '.join(names)}")
        given = dict(data)
        for key in ("input_size", "mean", "std", "class_names"):
            if key in given:
                given[key] = tuple(given[key])
        return cls(**given)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_classes(self, class_names) -> "Preprocessing":
        return Preprocessing.from_dict({**self.to_dict(), "class_names": tuple(class_names)})

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One preprocessed sample's shape, e.g. (3, H, W) for an RGB image."""
        from shotlab.runtime.kinds import get_kind

        return get_kind(self.kind).sample_shape(self)

    def fingerprint(self) -> str:
        """A hash of the pixel pipeline (class names excluded): a cache key for embeddings."""
        # `kind` joins the key only where it is not the original "image", so caches written
        # before kinds existed stay valid.
        # Likewise the text fields join it only when set.
        defaults = {"kind": "image", "tokenizer": "", "max_tokens": 0}
        pipeline = {k: v for k, v in self.to_dict().items()
                    if k != "class_names" and not (k in defaults and v == defaults[k])}
        return hashlib.sha256(json.dumps(pipeline, sort_keys=True).encode()).hexdigest()[:16]

    def resize_and_crop(self, image: Image.Image) -> Image.Image:
        """timm's eval transform (`transforms_imagenet_eval`): resize towards size / crop_pct,
        then center-crop to size. crop_mode "squash" resizes both sides to it (the aspect ratio
        is not kept); "center" keeps the aspect ratio and brings the side that fits tighter to
        it: the short side, as torchvision's Resize(int), for a square input, timm's
        ResizeKeepRatio for a non-square one."""
        height, width = self.input_size
        scale_h, scale_w = (math.floor(s / self.crop_pct) for s in (height, width))
        w, h = image.size
        if self.crop_mode == "squash":
            size = (scale_w, scale_h)
        elif scale_h == scale_w:
            long = int(scale_h * max(w, h) / min(w, h))
            size = (scale_h, long) if w <= h else (long, scale_h)
        else:
            ratio = min(h / scale_h, w / scale_w)
            size = (round(w / ratio), round(h / ratio))
        image = image.resize(size, INTERPOLATIONS[self.interpolation])
        left = int(round((image.width - width) / 2.0))
        top = int(round((image.height - height) / 2.0))
        return image.crop((left, top, left + width, top + height))

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 HWC RGB -> float32 CHW, normalised: (pixels / 255 - mean) / std per channel.

        A uint8 channel has 256 values, so each channel is a lookup in its 256 normalised values
        (the same float32 arithmetic, `scaled`, applied to 0..255: bit-identical, about 1.8x
        faster than the arithmetic on every pixel, which decoding workers do for every image)."""
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)

        def scaled(values: np.ndarray) -> np.ndarray:
            return (values.astype(np.float32) / 255.0 - mean) / std

        order = (2, 1, 0) if self.channel_order == "BGR" else (0, 1, 2)
        if pixels.dtype != np.uint8:
            return np.ascontiguousarray(scaled(pixels)[..., order].transpose(2, 0, 1))
        table = scaled(np.arange(256)[:, None])  # (256, channels)
        return np.stack([np.take(table[:, c], pixels[..., c]) for c in order])

    def to_array(self, image: Image.Image) -> np.ndarray:
        """The model input for one RGB image: float32, `sample_shape` (3, height, width)."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return self.normalize(np.asarray(self.resize_and_crop(rgb)))


def check_choice(field_name: str, value, allowed) -> None:
    if value not in allowed:
        raise InputError(f"preprocessing {field_name} {value!r} is not one this shotlab knows "
                         f"({', '.join(allowed)}); set one of them")


@dataclass(frozen=True)
class InputSpec:
    """One named model input: what ONNX export declares and what a runner checks."""

    name: str
    dtype: str  # numpy dtype name
    shape: tuple  # per batch: ("batch", *sample_shape); "batch" is the dynamic axis

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


class ModelContract:
    """What a checkpoint's meta and a bundle's manifest both carry, under the same keys:
    `preprocessing`, `classes` and `task` (and `parts` for a model with several named inputs).
    A subclass says where its dict is (`contract`)."""

    @property
    def contract(self) -> dict:
        raise NotImplementedError

    @property
    def preprocessing(self) -> Preprocessing:
        return self.localise(Preprocessing.from_dict(self.contract["preprocessing"]))

    def localise(self, preprocessing: Preprocessing) -> Preprocessing:
        """`preprocessing` with the files it names (a text model's tokenizer) made paths the
        holder can open; a bundle resolves them inside its folder. As stored by default."""
        return preprocessing

    @property
    def parts(self) -> dict[str, Preprocessing]:
        """{input name: Preprocessing}; one part named INPUT_NAME unless `parts` says more."""
        named = self.contract.get("parts")
        if named:
            return {name: self.localise(Preprocessing.from_dict(data))
                    for name, data in named.items()}
        return {INPUT_NAME: self.preprocessing}

    def input_specs(self) -> list[InputSpec]:
        return input_specs(self.parts)

    @property
    def input_kind(self) -> str:
        """What the model reads: its one part's kind ("image", "text"), or the parts' kinds
        joined ("image+text", a post) for a model with several inputs."""
        return "+".join(prep.kind for prep in self.parts.values())

    @property
    def classes(self) -> list[str]:
        return list(self.contract["classes"])

    @property
    def task(self) -> str:
        return self.contract["task"]


def input_specs(parts: dict[str, Preprocessing]) -> list[InputSpec]:
    """The model inputs of `parts`, in order: batches of each part's sample shape, in its kind's
    dtype (float32 pixels; int64 token ids for text, whose "tokens" axis is dynamic)."""
    from shotlab.runtime.kinds import get_kind

    return [InputSpec(name, get_kind(prep.kind).dtype, ("batch", *prep.sample_shape))
            for name, prep in parts.items()]
