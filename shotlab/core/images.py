"""Safe image decoding: every stage reads images through here.

`inspect_image` reads a file once, hashes it and fully decodes it, so a file that passes can be
trained on; a file that does not raises `BadImageError` with a short reason. `load_rgb` gives the
pixels every model sees: EXIF orientation applied, 16-bit, 32-bit and float greyscale scaled to
8-bit, CMYK and palettes converted, transparency composited onto white.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shotlab.core.errors import BadImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# PIL's own default limit (about 9,459 x 9,459). A hand-collected photo is far below it; a file
# above it is almost always a decompression bomb, which would take gigabytes to decode.
DEFAULT_MAX_PIXELS = 89_478_485
# Where the pixel limit can be raised (predict and the training commands keep the default).
RAISE_LIMIT = "curate import, predict and serve take --max-pixels to raise it"
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # these swap width and height
_WHITE = (255, 255, 255)
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
# Modes PIL shrinks as plain pixels (alpha premultiplied); others are converted to RGB first.
_SHRINKABLE = frozenset({"RGB", "RGBA", "L", "LA"})
# Greyscale deeper than 8 bits: 16- and 32-bit integers, 32-bit floats.
_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_BITS_PER_SAMPLE, _SAMPLE_FORMAT = 258, 339  # TIFF tags; sample format 2 is signed integers
TIFF_PAGES_COUNTED = 16  # a TIFF's pages counted for the refusal's message, at most


@dataclass(frozen=True)
class ImageFacts:
    """What the store records about a valid image file."""

    sha256: str
    width: int  # as displayed, after EXIF orientation
    height: int
    format: str  # PIL's name: PNG, JPEG, ...
    mode: str  # PIL's pixel mode before conversion: RGB, CMYK, I;16, P, RGBA, ...
    channels: int
    size_bytes: int

    @property
    def mime_type(self) -> str:
        return Image.MIME.get(self.format, "application/octet-stream")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


# The raster formats shotlab decodes (JPEG's opener also gives a phone's MPO). PIL would otherwise
# open whatever it recognises, and its EPS plugin runs Ghostscript, an interpreter, on the file:
# an upload or an imported file named photo.jpg could start `gs` on PostScript of anyone's.
DECODED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")

# Formats whose extra frames are an animation. A JPEG's extra images (MPO: a phone's preview or
# HDR gain map) are not: those stay stills. A TIFF of several pages is refused (`tiff_pages`).
ANIMATION_FORMATS = frozenset({"GIF", "PNG", "WEBP"})


def is_animated(source: str | Path | bytes) -> bool:
    """Whether an image file (a path, or its bytes) is an animation: a GIF, PNG or WebP of
    several frames, which predict and serve decide as a clip (every frame scored, not the first
    alone). False for a still, for anything PIL cannot open (its decoder says why later) and
    for a path that is not a regular file (a pipe would block the open)."""
    if not isinstance(source, bytes) and not Path(source).is_file():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source,
                            formats=DECODED_FORMATS) as image:
                return image.format in ANIMATION_FORMATS and bool(getattr(image, "is_animated",
                                                                            False))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return False


def header_pixels(data: bytes) -> int:
    """The pixels an image's header promises (width x height), read without decoding (PIL
    opens lazily): what decoding it will cost, known before paying. 0 for bytes PIL cannot
    open, and for a header over twice PIL's limit (PIL refuses it on open): decoding says why."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=DECODED_FORMATS) as image:
                width, height = image.size
                return width * height
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return 0


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_regular(path: Path) -> None:
    """BadImageError for a pipe, socket or device: reading a pipe would wait forever."""
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise BadImageError(path, "not a regular file (a pipe, socket or device)")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or BadImageError naming why they cannot be read."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise BadImageError(path, f"broken symlink (points to {path.readlink()})")
    check_regular(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except PermissionError:
        raise BadImageError(path, "unreadable file (permission denied)") from None
    except IsADirectoryError:
        raise BadImageError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise BadImageError(path, f"unreadable file ({exc.strerror or exc})") from None
    if not data:
        raise BadImageError(path, "empty file (0 bytes)")
    return data


def open_image(path: Path, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open (not yet decode) `data`, refusing non-images and decompression bombs."""
    if max_pixels > (Image.MAX_IMAGE_PIXELS or max_pixels):
        # PIL refuses at twice its own limit inside open(), before ours below can run, so a
        # --max-pixels above PIL's limit lifts it. It is only ever raised, never lowered: ours,
        # below, is the limit every file shotlab opens is held to.
        Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        # We apply our own limit below; PIL's warning would only duplicate it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=DECODED_FORMATS)
        except UnidentifiedImageError:
            raise BadImageError(path, "not an image (format not recognised)") from None
        except Image.DecompressionBombError as exc:
            raise BadImageError(path, f"decompression bomb: over the {max_pixels:,}-pixel limit "
                                      f"({exc}; {RAISE_LIMIT})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadImageError(path, f"corrupt image header ({exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadImageError(path, f"decompression bomb: {width}x{height} pixels is over the "
                                  f"{max_pixels:,}-pixel limit ({RAISE_LIMIT})")
    pages = tiff_pages(path, image)
    if pages > 1:
        count = f"more than {TIFF_PAGES_COUNTED}" if pages > TIFF_PAGES_COUNTED else pages
        raise BadImageError(path, f"a TIFF of {count} pages: its first page cannot stand for "
                                  f"the others (a page shotlab never read would pass unseen); "
                                  f"save each page as its own file (e.g. `tiffsplit`)")
    return image


def tiff_pages(path: Path, image: Image.Image) -> int:
    """Pages of a TIFF (1 for a still), counted up to TIFF_PAGES_COUNTED + 1; 0 for other
    formats. Every directory after the first counts: one marked as a preview (NewSubfileType)
    may hold any picture. Walks directories one by one to the cap, never all of them (PIL's
    n_frames reads every one, in time growing with their square), and reads no pixels; a
    directory that cannot be read makes the file corrupt."""
    if image.format != "TIFF":
        return 0
    pages = 1
    try:
        with warnings.catch_warnings():  # PIL warns of a broken directory before failing on it
            warnings.simplefilter("ignore")
            while pages <= TIFF_PAGES_COUNTED:
                image.seek(pages)  # EOFError past the last page, the image left on its first
                pages += 1
    except EOFError:
        pass
    except (OSError, SyntaxError, ValueError, TypeError, KeyError) as exc:
        raise BadImageError(path, f"corrupt TIFF directory ({type(exc).__name__}: {exc})"
                            ) from None
    return pages


def decode(path: Path, image: Image.Image) -> None:
    """Decode every pixel, so truncated and corrupt data is caught now, not mid-training."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImageError(path, f"truncated or corrupt image data ({exc})") from None
    except Image.DecompressionBombError as exc:
        raise BadImageError(path, f"decompression bomb ({exc})") from None


def exif_orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(_EXIF_ORIENTATION)
    except (OSError, SyntaxError, ValueError):  # a broken EXIF block is not a broken image
        return None


def displayed_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    return (height, width) if exif_orientation(image) in _ROTATED_ORIENTATIONS else (width, height)


def inspect_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageFacts:
    """Hash and fully decode one file; raise BadImageError with the reason if it is not valid."""
    path = Path(path)
    data = read_bytes(path)
    with open_image(path, data, max_pixels) as image:
        decode(path, image)
        width, height = displayed_size(image)
        return ImageFacts(sha256=hashlib.sha256(data).hexdigest(), width=width, height=height,
                          format=image.format or "unknown", mode=image.mode,
                          channels=len(image.getbands()), size_bytes=len(data))


def to_rgb(image: Image.Image, depth: tuple[int, bool] | None = None) -> Image.Image:
    """RGB pixels from any mode: deep greyscale scaled to 8 bits (`deep_to_grey`), CMYK and
    palettes converted, alpha on white. `depth` is `sample_depth` of the file's image, for an
    `image` that is a copy of it (a copy no longer carries the TIFF's tags)."""
    if image.mode in _DEEP_MODES:
        image = deep_to_grey(image, depth or sample_depth(image))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def sample_depth(image: Image.Image) -> tuple[int, bool]:
    """(bits per sample, signed) of an integer greyscale image: a TIFF's own tags, else 16 bits
    unsigned (PNG, PPM and the like hold at most 16)."""
    tags = getattr(image, "tag_v2", None)
    if tags is None:
        return 16, False
    bits, sample_format = tags.get(_BITS_PER_SAMPLE, 16), tags.get(_SAMPLE_FORMAT, 1)
    first = lambda value: value[0] if isinstance(value, tuple) else value  # noqa: E731
    return int(first(bits)), first(sample_format) == 2


def deep_to_grey(image: Image.Image, depth: tuple[int, bool]) -> Image.Image:
    """8-bit grey from 16- or 32-bit integers (the top 8 bits of the type's range; negatives
    black) or floats (0..1 when they lie within it, as scikit-image and TIFF writers keep them;
    otherwise 0..255, clipped). PIL's own convert clips every one of them at 255."""
    values = np.asarray(image)
    if image.mode == "F":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        unit = values.size and values.min() >= 0 and values.max() <= 1
        grey = np.rint(values * 255 if unit else values)
    else:
        bits, signed = depth
        grey = values.astype(np.int64).clip(0, None) >> max(bits - 8 - signed, 0)
    return Image.fromarray(grey.clip(0, 255).astype(np.uint8), mode="L")


def load_rgb(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The image as every model sees it: upright (EXIF applied) 8-bit RGB."""
    path = Path(path)
    return rgb_from_bytes(read_bytes(path), path, max_pixels=max_pixels)


def rgb_from_bytes(data: bytes, name="upload", *, max_pixels: int = DEFAULT_MAX_PIXELS
                   ) -> Image.Image:
    """`load_rgb` for bytes already in memory (an HTTP body); `name` is what errors call it.
    The same guards: empty data, non-images, the pixel bomb limit, truncated data."""
    if not data:
        raise BadImageError(name, "empty (0 bytes)")
    with open_image(name, data, max_pixels) as image:
        decode(name, image)
        return to_rgb(ImageOps.exif_transpose(image), sample_depth(image))


@dataclass(frozen=True)
class Thumbnail:
    """One read of a file: its pixels shrunk, its displayed size and the hash of its bytes."""

    image: Image.Image  # upright 8-bit RGB, as load_rgb gives it, at most `side` px long
    width: int  # the file's own size as displayed (after EXIF orientation), not the thumbnail's
    height: int
    sha256: str  # of the bytes that were decoded


def load_thumbnail(path: str | Path, side: int, *,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> Thumbnail:
    """`load_rgb` shrunk to at most `side` px on its long side, decoding as little as the format
    allows: a JPEG is decoded at 1/2, 1/4 or 1/8 scale (DCT scaling, PIL's `draft`) when it is at
    least twice the size asked for, then box-reduced and resampled (`Image.thumbnail` with a
    reducing gap of 2). Transparency is composited after shrinking (PIL premultiplies alpha), and
    EXIF orientation is applied to the small image."""
    path = Path(path)
    data = read_bytes(path)
    with open_image(path, data, max_pixels) as image:
        size = image.size
        if max(size) > side:  # only JPEG honours this; other formats decode in full
            scale = 2 * side / max(size)  # a reducing gap of 2, as thumbnail() asks for
            image.draft(None, (int(size[0] * scale), int(size[1] * scale)))
        decode(path, image)
        orientation = exif_orientation(image)
        small = shrink_rgb(image, side)
    if orientation in _UPRIGHT:
        small = small.transpose(_UPRIGHT[orientation])
    width, height = size[::-1] if orientation in _ROTATED_ORIENTATIONS else size
    return Thumbnail(small, width, height, hashlib.sha256(data).hexdigest())


def shrink_rgb(image: Image.Image, side: int) -> Image.Image:
    """A decoded image as RGB, at most `side` px long; may shrink `image` in place."""
    if image.mode not in _SHRINKABLE:
        image = to_rgb(image)  # palettes, 16-bit, CMYK: PIL would resample them poorly
    if max(image.size) > side:
        # A box reduction first, then an antialiased resize: indistinguishable at this size and
        # several times faster than resampling the full image.
        image.thumbnail((side, side), reducing_gap=2.0)
    return image if image.mode == "RGB" else to_rgb(image)
