"""Train-time augmentation presets (albumentations), shared by training and `augment-preview`.

Each preset ends in the preprocessing contract's normalisation, so augmented and evaluation
inputs differ only in the geometry and colour a preset changes, never in scale or statistics.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from shotlab.core.errors import InputError
from shotlab.runtime.contract import Preprocessing
from shotlab.core.workspace import apply_offline_environment
from shotlab.train.choices import PRESETS



def build_preset(name: str, height: int, width: int, seed: int | None = None):
    """The albumentations pipeline of preset `name` producing (height, width) uint8 images.

    Without a seed albumentations draws from the OS, and runs could not be reproduced."""
    apply_offline_environment()  # albumentations checks PyPI for updates at import otherwise
    import albumentations as A
    import cv2

    crop = {"light": (0.8, 1.0), "standard": (0.5, 1.0), "strong": (0.3, 1.0)}
    steps = {
        "light": [A.HorizontalFlip(p=0.5)],
        "standard": [A.HorizontalFlip(p=0.5),
                     A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=0.8)],
        # Rotation reflects the image into its corners: a constant fill draws black wedges that
        # no test image has (most visible on white-background sets).
        "strong": [A.HorizontalFlip(p=0.5),
                   A.Affine(rotate=(-15, 15), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
                   A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.08, p=0.8),
                   A.GaussianBlur(blur_limit=(3, 5), p=0.2), A.ToGray(p=0.1),
                   A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(0.05, 0.2),
                                   hole_width_range=(0.05, 0.2), p=0.3)],
    }
    # Few-shot sets are small: cropping less than 30% of an image often removes the object.
    first = A.RandomResizedCrop(size=(height, width), scale=crop[name], ratio=(3 / 4, 4 / 3))
    return A.Compose([first, *steps[name]], seed=seed)


class TrainTransform:
    """PIL RGB image -> float32 (3, H, W) model input, augmented by a preset (picklable)."""

    def __init__(self, preprocessing: Preprocessing, preset: str = "standard"):
        if preset not in PRESETS:
            raise InputError(f"unknown augmentation preset '{preset}'; expected one of "
                             f"{', '.join(PRESETS)}")
        self.preprocessing = preprocessing
        self.preset = preset
        self._pipeline = None

    def augment(self, image: Image.Image) -> np.ndarray:
        """The augmented uint8 (H, W, 3) image (for previews)."""
        if self.preset == "none":
            return np.asarray(self.preprocessing.resize_and_crop(image))
        if self._pipeline is None:  # built lazily: once per DataLoader worker
            import torch

            # torch's seed differs per worker and per epoch, and follows the run's generator.
            seed = torch.initial_seed() % 2 ** 32
            self._pipeline = build_preset(self.preset, *self.preprocessing.input_size, seed=seed)
        return self._pipeline(image=np.asarray(image))["image"]

    def __call__(self, image: Image.Image) -> np.ndarray:
        return self.preprocessing.normalize(self.augment(image))
