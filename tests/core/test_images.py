"""Safe decoding: awkward but valid images decode correctly; bad files are named with a reason."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from shotlab.core.errors import BadImageError
from shotlab.core.images import inspect_image, load_rgb
from tests.imaging import png_header_only, truncate, write_image


def reason(path, **kwargs) -> str:
    with pytest.raises(BadImageError) as info:
        inspect_image(path, **kwargs)
    assert info.value.path == str(path)
    return info.value.reason


def test_facts_of_a_valid_png(tmp_path):
    path = write_image(tmp_path / "a.png", size=(40, 30))
    facts = inspect_image(path)
    assert (facts.width, facts.height, facts.format, facts.channels) == (40, 30, "PNG", 3)
    assert facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert facts.size_bytes == path.stat().st_size
    assert facts.mime_type == "image/png"


def test_cmyk_jpeg_decodes_to_the_right_colour(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    assert inspect_image(path).mode == "CMYK"
    r, g, b = np.asarray(load_rgb(path)).reshape(-1, 3).mean(axis=0)
    assert r > 240 and g < 15 and b < 15


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    assert inspect_image(path).mode.startswith("I")
    assert np.asarray(load_rgb(path))[0, :, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("values, expected", [
    (np.array([[0.0, 0.5, 1.0]], np.float32), [0, 128, 255]),  # float in 0..1, as skimage keeps it
    (np.array([[0.0, 127.0, 300.0]], np.float32), [0, 127, 255]),  # float outside 0..1: 0..255
    (np.array([[-5, 2**30, 2**31 - 1]], np.int32), [0, 128, 255]),  # signed 32-bit, top bits
    (np.array([[0, 32768, 65535]], np.uint16), [0, 128, 255]),  # 16-bit TIFF: as the PNG above
])
def test_deep_tiffs_are_scaled_to_their_range_not_clipped(tmp_path, values, expected):
    """PIL's convert clips F and I modes at 255: a 0..1 float image came out black, a 32-bit one
    white. Every path that reads pixels (load_rgb, the scan's thumbnail) scales the same way."""
    from shotlab.core.images import load_thumbnail

    path = tmp_path / "deep.tif"
    Image.fromarray(np.repeat(values, 2, axis=0)).save(path)
    assert np.asarray(load_rgb(path))[0, :, 0].tolist() == expected
    assert np.asarray(load_thumbnail(path, 64).image)[0, :, 1].tolist() == expected


def test_palette_with_transparency_and_alpha_composite_on_white(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    palette.putpixel((0, 0), 1)
    palette.save(tmp_path / "p.png", transparency=1)
    rgb = np.asarray(load_rgb(tmp_path / "p.png"))
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[1, 1].tolist() == [0, 0, 255]

    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert np.asarray(load_rgb(tmp_path / "clear.png"))[0, 0].tolist() == [255, 255, 255]


def test_exif_rotation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red, right half blue
    pixels[:, 20:] = (0, 0, 255)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    facts = inspect_image(tmp_path / "rot.jpg")
    assert (facts.width, facts.height) == (20, 40)
    upright = np.asarray(load_rgb(tmp_path / "rot.jpg")).astype(int)
    assert upright.shape == (40, 20, 3)
    assert upright[2, 10, 0] > 200 and upright[-3, 10, 2] > 200  # red on top, blue below


@pytest.mark.parametrize("name, make, expected", [
    ("empty.jpg", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    ("text.jpg", lambda p: p.write_text("not an image at all\n"), "not an image"),
    ("cut.jpg", lambda p: truncate(write_image(p, size=(64, 64))), "truncated or corrupt"),
    ("cut.png", lambda p: truncate(write_image(p, size=(64, 64))), "truncated or corrupt"),
    ("bomb.png", lambda p: png_header_only(p, 100_000, 100_000), "decompression bomb"),
])
def test_bad_files_are_named_with_their_reason(tmp_path, name, make, expected):
    path = tmp_path / name
    make(path)
    assert expected in reason(path)


def test_pixel_limit_is_adjustable(tmp_path):
    path = write_image(tmp_path / "a.png", size=(100, 100))
    assert "over the 5,000-pixel limit" in reason(path, max_pixels=5_000)
    assert inspect_image(path, max_pixels=10_000).width == 100


def test_pixel_limit_can_be_raised_past_pils_own(tmp_path, monkeypatch):
    """PIL refuses over twice its MAX_IMAGE_PIXELS inside open(); --max-pixels above that must
    still be honoured, and the default refusal must name the option."""
    from shotlab.core.images import open_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after
    path = png_header_only(tmp_path / "big.png", 14_000, 14_000)  # 196 Mpx, over PIL's 179
    assert "--max-pixels" in reason(path)
    with open_image(path, path.read_bytes(), max_pixels=500_000_000) as image:
        assert image.size == (14_000, 14_000)
    assert "over the 100,000,000-pixel limit" in reason(path, max_pixels=100_000_000)


def test_broken_symlink_names_its_target(tmp_path):
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "missing.png")
    assert reason(link) == f"broken symlink (points to {tmp_path / 'missing.png'})"


def test_directory_with_an_image_name(tmp_path):
    (tmp_path / "folder.png").mkdir()
    assert "directory" in reason(tmp_path / "folder.png")


def test_unreadable_file_is_reported(tmp_path):
    """Permission bits do not stop root, so as root a file the kernel refuses to read is used."""
    if os.geteuid() == 0:
        path = tmp_path / "kernel.png"
        path.symlink_to("/proc/self/mem")  # opens, but reading offset 0 fails with EIO
        expected = "unreadable file (Input/output error)"
    else:
        path = write_image(tmp_path / "secret.png")
        path.chmod(0o000)
        expected = "unreadable file (permission denied)"
    assert reason(path) == expected
