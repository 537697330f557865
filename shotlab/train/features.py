"""Classical image features, no network: the floor a deep model must clear.

Each is a scikit-learn transformer over a list of images (PIL images or paths to image files,
decoded with `load_rgb` so EXIF orientation and odd modes are handled as everywhere else), so it
can be the first step of a Pipeline:

    Pipeline([("features", HogFeatures()), ("classifier", LogisticRegression())])

`transform` returns float32 (n, d). The transformers learn nothing from the data: `fit` only checks
the parameters, and `transform` works without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin

from shotlab.core.errors import InputError
from shotlab.core.images import load_rgb, to_rgb

ImageLike = Image.Image | str | os.PathLike
ImagesOrPaths = Sequence[ImageLike]

# Pillow's bilinear resize widens its kernel by the scale factor when shrinking, so a downscale
# averages every source pixel (area-like) instead of sampling a few and aliasing.
_RESAMPLE = Image.Resampling.BILINEAR
_ROWS_PER_CHUNK = 256  # a 4000-px-wide photo: 256 rows are 1M pixels, about 25 MB of indices


def invalid_parameter(owner: object, name: str, expected: str, value: object) -> InputError:
    """The error for a bad parameter value, worded as scikit-learn words it.

    owner: the estimator (its class names it) or the name of a function.
    """
    owner = owner if isinstance(owner, str) else type(owner).__name__
    return InputError(f"The {name!r} parameter of {owner} must be {expected}. "
                      f"Got {value!r} instead.")


def check_int(owner: object, name: str, value: object, low: int, high: int | None = None) -> int:
    """`value` if it is an int in [low, high], else the scikit-learn style error."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if low <= value and (high is None or value <= high):
            return int(value)
    upper = "inf)" if high is None else f"{high}]"
    raise invalid_parameter(owner, name, f"an int in the range [{low}, {upper}", value)


def check_pair(owner: object, name: str, value: object, low: int = 1) -> tuple[int, int]:
    """A (rows, cols) pair of ints >= low; a single int means a square."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    if (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low
                    for v in pair)):
        return int(pair[0]), int(pair[1])
    raise invalid_parameter(owner, name, f"an int or a pair of ints >= {low}", value)


def as_rgb(item: object, position: int) -> Image.Image:
    """One image as RGB pixels: a path loaded with `load_rgb` (EXIF orientation applied), a PIL
    image taken as already upright and converted to RGB the same way."""
    if isinstance(item, Image.Image):
        return item if item.mode == "RGB" else to_rgb(item)
    if isinstance(item, (str, os.PathLike)):
        return load_rgb(item)  # BadImageError (an InputError) names the file and the reason
    raise InputError(f"image {position} is a {type(item).__name__}; expected a PIL image or a "
                     f"path to an image file")


def iter_rgb(images: Iterable[ImageLike]) -> Iterator[Image.Image]:
    """RGB images one at a time, so a long list of paths is never all in memory at once."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        raise InputError(f"expected a list of PIL images or image paths, got a single "
                         f"{type(images).__name__}; wrap one image in a list")
    if isinstance(images, np.ndarray) and not (images.ndim == 1 and images.dtype == object):
        raise InputError(f"expected a list of PIL images or image paths, got a {images.dtype} "
                         f"array of shape {images.shape}; convert pixel arrays with "
                         f"PIL.Image.fromarray")
    for position, item in enumerate(images):
        yield as_rgb(item, position)


class ImageFeatures(TransformerMixin, BaseEstimator):
    """Base class: a subclass checks its parameters, names its width and computes one row."""

    def fit(self, images: ImagesOrPaths, y=None) -> ImageFeatures:
        """Check the parameters; nothing is learned from the images."""
        self.n_features_out_ = self._check_params()
        return self

    def transform(self, images: ImagesOrPaths) -> np.ndarray:
        """float32 (n, d) features, one row per image, in order."""
        width = self._check_params()
        out = [self._features(image) for image in iter_rgb(images)]
        return np.stack(out).astype(np.float32) if out else np.empty((0, width), np.float32)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._check_params())], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: transform works on an unfitted instance
        return tags

    def _check_params(self) -> int:
        """Validate the parameters; return the number of features per image."""
        raise NotImplementedError

    def _features(self, image: Image.Image) -> np.ndarray:
        raise NotImplementedError


class PixelFeatures(ImageFeatures):
    """Raw pixels: each image shrunk to size x size (aspect ignored), flattened, in [0, 1].

    d = size * size * 3 (RGB, row-major, channels last), or size * size with grayscale=True.
    """

    def __init__(self, size: int = 32, grayscale: bool = False):
        self.size = size
        self.grayscale = grayscale

    def _check_params(self) -> int:
        side = check_int(self, "size", self.size, 1)
        if not isinstance(self.grayscale, (bool, np.bool_)):
            raise invalid_parameter(self, "grayscale", "an instance of 'bool'", self.grayscale)
        return side * side * (1 if self.grayscale else 3)

    def _features(self, image: Image.Image) -> np.ndarray:
        small = image.resize((self.size, self.size), _RESAMPLE)
        if self.grayscale:
            small = small.convert("L")  # ITU-R 601 luma
        return np.asarray(small, dtype=np.float32).ravel() / 255.0


class ColorHistogram(ImageFeatures):
    """Joint RGB colour histogram (bins**3 cells: 8 -> 512), L1-normalised over every pixel.

    Joint rather than per-channel: three 1-D histograms cannot tell a red-and-green image from
    a yellow one; the joint one can. With hsv=True a joint HSV histogram (Pillow's 8-bit H, S, V)
    of the same size is appended, and each half sums to 0.5, so the whole row still sums to 1.
    """

    def __init__(self, bins: int = 8, hsv: bool = False):
        self.bins = bins
        self.hsv = hsv

    def _check_params(self) -> int:
        # 64**3 = 262,144 cells per space: already far more than a few-shot set can use.
        bins = check_int(self, "bins", self.bins, 1, 64)
        if not isinstance(self.hsv, (bool, np.bool_)):
            raise invalid_parameter(self, "hsv", "an instance of 'bool'", self.hsv)
        return bins ** 3 * (2 if self.hsv else 1)

    def _features(self, image: Image.Image) -> np.ndarray:
        spaces = [image, image.convert("HSV")] if self.hsv else [image]
        parts = [self._joint(np.asarray(s)) for s in spaces]
        return np.concatenate(parts) / len(parts)

    def _joint(self, pixels: np.ndarray) -> np.ndarray:
        """Counts per (r, g, b) cell / pixel count; rows in chunks to keep memory flat on photos."""
        level = ((np.arange(256) * self.bins) >> 8).astype(np.intp)  # 0 .. bins-1 per value
        step = [level * self.bins * self.bins, level * self.bins, level]
        counts = np.zeros(self.bins ** 3, np.int64)
        for start in range(0, len(pixels), _ROWS_PER_CHUNK):
            rows = pixels[start:start + _ROWS_PER_CHUNK]
            cells = step[0][rows[..., 0]] + step[1][rows[..., 1]] + step[2][rows[..., 2]]
            counts += np.bincount(cells.ravel(), minlength=self.bins ** 3)
        return counts / max(pixels.shape[0] * pixels.shape[1], 1)


class HogFeatures(ImageFeatures):
    """Histogram of oriented gradients (`skimage.feature.hog`, L2-Hys blocks) of the grayscale
    image shrunk to size x size. The defaults are Dalal and Triggs': 9 orientations, 8x8-pixel
    cells, 2x2-cell blocks; at 64 px that is 7 x 7 blocks x 4 cells x 9 = 1,764 features.
    """

    def __init__(self, size: int = 64, orientations: int = 9,
                 pixels_per_cell: tuple[int, int] = (8, 8),
                 cells_per_block: tuple[int, int] = (2, 2)):
        self.size = size
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block

    def _check_params(self) -> int:
        side = check_int(self, "size", self.size, 1)
        orientations = check_int(self, "orientations", self.orientations, 1)
        cell = check_pair(self, "pixels_per_cell", self.pixels_per_cell)
        block = check_pair(self, "cells_per_block", self.cells_per_block)
        blocks = [side // c - b + 1 for c, b in zip(cell, block)]
        if min(blocks) < 1:
            raise invalid_parameter(
                self, "size", f"at least pixels_per_cell * cells_per_block = "
                              f"{max(c * b for c, b in zip(cell, block))} (one whole block)", side)
        return blocks[0] * blocks[1] * block[0] * block[1] * orientations

    def _features(self, image: Image.Image) -> np.ndarray:
        from skimage.feature import hog  # skimage is slow to import: only when used

        gray = image.resize((self.size, self.size), _RESAMPLE).convert("L")
        return hog(np.asarray(gray, dtype=np.float32) / 255.0, orientations=self.orientations,
                   pixels_per_cell=check_pair(self, "pixels_per_cell", self.pixels_per_cell),
                   cells_per_block=check_pair(self, "cells_per_block", self.cells_per_block),
                   block_norm="L2-Hys", feature_vector=True)


CLASSICAL_FEATURES: dict[str, type[ImageFeatures]] = {
    "pixels": PixelFeatures,
    "color-histogram": ColorHistogram,
    "hog": HogFeatures,
}


def make_features(name: str, **params) -> ImageFeatures:
    """A classical feature transformer by registry name, e.g. make_features("hog", size=128)."""
    if name not in CLASSICAL_FEATURES:
        raise InputError(f"unknown features {name!r}; choose one of: "
                         f"{', '.join(CLASSICAL_FEATURES)}")
    kind = CLASSICAL_FEATURES[name]
    valid = sorted(kind().get_params())
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InputError(f"{kind.__name__} has no parameter {', '.join(unknown)}; its "
                         f"parameters are: {', '.join(valid)}")
    return kind(**params)
