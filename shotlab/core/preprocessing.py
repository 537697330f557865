"""The preprocessing contract: one frozen description, saved with every checkpoint and bundle.

Training, evaluation, export and prediction all derive their input pipeline from it, so the
pixels a deployed model sees are the pixels it was validated on. It mirrors timm's
`resolve_model_data_config` (input size, mean, std, interpolation, crop) and adds the channel
order and the class names. `to_array` is implemented with PIL and numpy only, so prediction
through ONNX Runtime needs no torch; it matches timm's eval transform (tested).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                  "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


@dataclass(frozen=True)
class Preprocessing:
    input_size: tuple[int, int]  # (height, width) the model sees
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 0.875  # resize the short side to size / crop_pct, then center-crop
    crop_mode: str = "center"
    channel_order: str = "RGB"
    class_names: tuple[str, ...] = field(default=())

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
        fields = dict(data)
        for key in ("input_size", "mean", "std", "class_names"):
            fields[key] = tuple(fields[key])
        return cls(**fields)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_classes(self, class_names) -> "Preprocessing":
        return Preprocessing.from_dict({**self.to_dict(), "class_names": tuple(class_names)})

    def fingerprint(self) -> str:
        """A hash of the pixel pipeline (class names excluded): a cache key for embeddings."""
        pipeline = {k: v for k, v in self.to_dict().items() if k != "class_names"}
        return hashlib.sha256(json.dumps(pipeline, sort_keys=True).encode()).hexdigest()[:16]

    def resize_and_crop(self, image: Image.Image) -> Image.Image:
        """timm's eval transform: resize to size / crop_pct (the short side, for a square
        input, keeping the aspect ratio, as torchvision's Resize(int)), then center-crop."""
        height, width = self.input_size
        scale_h, scale_w = (math.floor(s / self.crop_pct) for s in (height, width))
        if scale_h == scale_w:
            w, h = image.size
            long = int(scale_h * max(w, h) / min(w, h))
            size = (scale_h, long) if w <= h else (long, scale_h)
        else:
            size = (scale_w, scale_h)
        image = image.resize(size, INTERPOLATIONS[self.interpolation])
        left = int(round((image.width - width) / 2.0))
        top = int(round((image.height - height) / 2.0))
        return image.crop((left, top, left + width, top + height))

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 HWC RGB -> float32 CHW, normalised."""
        array = pixels.astype(np.float32) / 255.0
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.channel_order == "BGR":
            array = array[..., ::-1]
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def to_array(self, image: Image.Image) -> np.ndarray:
        """The model input for one RGB image: float32, (3, height, width)."""
        return self.normalize(np.asarray(self.resize_and_crop(image.convert("RGB"))))


class ModelContract:
    """What a checkpoint's meta and a bundle's manifest both carry, under the same keys:
    `preprocessing`, `classes` and `task`. A subclass says where its dict is (`contract`)."""

    @property
    def contract(self) -> dict:
        raise NotImplementedError

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.contract["preprocessing"])

    @property
    def classes(self) -> list[str]:
        return list(self.contract["classes"])

    @property
    def task(self) -> str:
        return self.contract["task"]


@dataclass
class Inputs:
    arrays: np.ndarray  # float32 (N,3,H,W)
    kept: list[int]  # indices into the requested paths
    bad: list[tuple[str, str]]  # (path, reason) skipped


def load_inputs(paths, preprocessing, *, progress=None, desc="Preprocessing") -> Inputs:
    """Decode and preprocess `paths`; bad images are skipped and listed, never raised."""
    from shotlab.core.errors import BadImageError
    from shotlab.core.images import load_rgb
    from shotlab.core.progress import progress_bar

    arrays, kept, bad = [], [], []
    height, width = preprocessing.input_size
    for i, path in enumerate(progress_bar(paths, enabled=progress, unit="img", desc=desc)):
        try:
            arrays.append(preprocessing.to_array(load_rgb(path)))
            kept.append(i)
        except BadImageError as exc:
            bad.append((str(path), exc.reason))
    stacked = np.stack(arrays) if arrays else np.zeros((0, 3, height, width), np.float32)
    return Inputs(stacked, kept, bad)
