"""Pictures of explanations: a heatmap over the image, methods side by side, LIME's superpixels.

    overlay(rgb_uint8, heatmap01)                          -> uint8 (H, W, 3)
    methods_figure(rgb, {"gradcam": m1, "lime": m2}, ...)  -> PNG bytes (written to `path` if given)
    pictures_figure([("frame at 2.0 s", rgb, maps), ...])  -> the same, several pictures in a row
    lime_superpixels(rgb, lime_map, top=5)                 -> uint8 (H, W, 3)
    data_uri(png_bytes)                                    -> "data:image/png;base64,..." for HTML

As in `shotlab.train.plots`, figures are standalone matplotlib `Figure`s on an Agg canvas: nothing
touches pyplot's global state, so this is safe in servers and notebooks.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.figures import figure, literal

COLORMAP = "jet"  # the Grad-CAM papers' colour map: readers know red = most evidence
DPI = 110  # a 4-method figure stays under ~300 KB
# Written into every figure's and overlay's PNG (a tEXt chunk before the pixels): marks the only
# existing PNG `explain --out` and `explain show --out` may replace.
SOFTWARE = "shotlab explain"


def _resized(heatmap: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    from PIL import Image

    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.shape == (height, width):
        return heatmap
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    resized = Image.fromarray(heatmap, mode="F").resize((width, height), resample)
    return np.asarray(resized, dtype=np.float32)


def overlay(image_rgb, heatmap, alpha: float = 0.5) -> np.ndarray:
    """The heatmap (values in [0, 1], resized to the image if needed) coloured and blended."""
    from matplotlib import colormaps

    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"overlay needs an RGB image (H, W, 3); got shape {image.shape}")
    if not 0 <= alpha <= 1:
        raise InputError(f"alpha must be in [0, 1]; got {alpha}")
    heat = np.clip(_resized(heatmap, *image.shape[:2]), 0, 1)
    colour = colormaps[COLORMAP](heat)[..., :3] * 255.0
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colour
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def lime_superpixels(image_rgb, lime_map, top: int = 5) -> np.ndarray:
    """The image with all but the `top` superpixels of a LIME map dimmed, their outlines drawn.

    A LIME map is constant on each superpixel, so its regions are recovered from its values."""
    from skimage.segmentation import mark_boundaries

    image = np.asarray(image_rgb)
    values = np.round(_resized(lime_map, *image.shape[:2], nearest=True), 6)
    levels = np.unique(values[values > 0])[::-1][:top]  # one level per superpixel weight
    keep = np.isin(values, levels)
    dimmed = np.where(keep[..., None], image, (image * 0.3).astype(np.uint8))
    marked = mark_boundaries(dimmed, keep.astype(int), color=(1, 1, 0))
    return np.clip(marked * 255, 0, 255).astype(np.uint8)


def to_png(fig, path=None) -> bytes:
    """The figure as PNG bytes, also written to `path` when given; the figure is freed."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight",
                    metadata={"Software": SOFTWARE})
    finally:
        fig.clear()
    return write_png(buffer.getvalue(), path)


def is_own_figure(path) -> bool:
    """True for a regular file that is a PNG this module's figures wrote (its Software chunk)."""
    from shotlab.core.files import file_head

    head = file_head(path, 4096) or b""
    text = b"Software\x00" + SOFTWARE.encode()
    chunk = len(text).to_bytes(4, "big") + b"tEXt" + text
    return head.startswith(b"\x89PNG\r\n\x1a\n") and chunk in head


def write_png(data: bytes, path=None) -> bytes:
    """Write `data` to `path` (when given) under a temporary name first: a failed write leaves
    the previous picture, never half of one."""
    if path is not None:
        from shotlab.core.files import atomic_path

        with atomic_path(path) as partial:
            partial.write_bytes(data)
    return data


def image_png(image_rgb, path=None) -> bytes:
    """A uint8 RGB array as PNG bytes (written to `path` when given), marked as explain's
    (`is_own_figure`)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    marked = PngInfo()
    marked.add_text("Software", SOFTWARE)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image_rgb, dtype=np.uint8)).save(buffer, format="PNG",
                                                                 pnginfo=marked)
    return write_png(buffer.getvalue(), path)


def methods_figure(image_rgb, maps: dict, path=None, *, title: str | None = None,
                   captions: dict | None = None, alpha: float = 0.5) -> bytes:
    """The image, then one overlay per method, side by side; PNG bytes (and `path` if given).

    `captions` adds a line under a method's name (e.g. its deletion AUC)."""
    return pictures_figure([("image", image_rgb, maps)], path, title=title, captions=captions,
                           alpha=alpha)


def pictures_figure(groups: list, path=None, *, title: str | None = None,
                    captions: dict | None = None, alpha: float = 0.5) -> bytes:
    """`methods_figure` for several pictures (a clip's explained frames): per (caption, rgb,
    {method: map}) of `groups`, the picture under its caption, then its overlays; one row."""
    if not any(maps for _, _, maps in groups):
        raise InputError("methods_figure needs at least one map")
    panels = []
    for caption, image_rgb, maps in groups:
        panels.append((caption, np.asarray(image_rgb)))
        panels += [(name, overlay(image_rgb, heat, alpha)) for name, heat in maps.items()]
    fig = figure(2.4 * len(panels), 2.9)
    for axis, (name, picture) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        axis.imshow(picture)
        axis.set_title(literal(name if not captions or name not in captions
                               else f"{name}\n{captions[name]}"), fontsize=9)
        axis.set_axis_off()
    if title:
        fig.suptitle(literal(title), fontsize=10)
    return to_png(fig, path)


def data_uri(png: bytes) -> str:
    """PNG bytes as a data URI, to inline in HTML: `<img src="{data_uri(png)}">`."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(png: bytes, alt: str = "", width: int | None = None) -> str:
    """An `<img>` element with the PNG inlined (the alt text HTML-escaped)."""
    import html

    size = f' width="{width}"' if width else ""
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt, quote=True)}"{size}>'
