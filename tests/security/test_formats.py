"""Only raster formats are decoded: PIL opened whatever it recognised, and its EPS plugin
starts Ghostscript on the file's PostScript. An EPS named photo.jpg, imported or sent to the
service, ran `gs` (a fake one here logs that it was called), and the failure was a traceback
in `curate import` and a 500 in `serve`."""

from __future__ import annotations

import os

import pytest

from shotlab.core.errors import BadImageError
from shotlab.core.images import header_pixels, inspect_image, is_animated
from tests.security.common import run
from tests.train.trainsets import write_colour_tree

EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
       b"newpath 0 0 moveto 100 100 lineto stroke showpage\n")


@pytest.fixture
def fake_gs(tmp_path, monkeypatch):
    """A `gs` first on PATH that logs each call (where Ghostscript is installed, the real one
    would run the file's PostScript)."""
    folder, log = tmp_path / "bin", tmp_path / "gs-calls.log"
    folder.mkdir()
    (folder / "gs").write_text(f"#!/bin/sh\necho \"$*\" >> {log}\nexit 1\n")
    (folder / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def test_an_eps_is_not_an_image_and_runs_nothing(tmp_path, fake_gs):
    eps = tmp_path / "photo.jpg"
    eps.write_bytes(EPS)
    with pytest.raises(BadImageError, match="not an image"):
        inspect_image(eps)
    assert is_animated(EPS) is False
    assert header_pixels(EPS) == 0  # the service's pixel budget reads headers: not an image
    assert not fake_gs.exists()


def test_the_raster_formats_still_open(tmp_path):
    """Every format of IMAGE_EXTENSIONS, and a phone's MPO (a JPEG with a preview)."""
    from PIL import Image

    for name, options in [("a.jpg", {}), ("a.png", {}), ("a.bmp", {}), ("a.gif", {}),
                          ("a.webp", {}), ("a.tif", {}),
                          ("a.mpo", {"format": "MPO", "save_all": True,
                                     "append_images": [Image.new("RGB", (8, 6))]})]:
        Image.new("RGB", (8, 6), (200, 10, 10)).save(tmp_path / name, **options)
        assert inspect_image(tmp_path / name).width == 8


@pytest.mark.fiftyone
def test_import_skips_an_eps_in_one_line(tmp_path, fake_gs, dataset_name):
    root = write_colour_tree(tmp_path / "images", counts={"train": 2})
    (root / "train" / "red" / "photo.jpg").write_bytes(EPS)
    result = run("curate", "import", str(root), "--name", dataset_name)
    assert result.exit_code == 0, result.output
    assert "photo.jpg: not an image" in result.output and "Traceback" not in result.output
    assert not fake_gs.exists()


def tiff_pages_file(path, pages, *, previews=()):
    """A TIFF of `pages` colours, one a page; a page listed in `previews` is marked as a
    reduced-resolution copy (NewSubfileType 1), as a scanner's thumbnail is."""
    from PIL import Image, TiffImagePlugin

    with TiffImagePlugin.AppendingTiffWriter(str(path), new=True) as tiff:
        for index, colour in enumerate(pages):
            info = TiffImagePlugin.ImageFileDirectory_v2()
            info[254] = 1 if index in previews else 0
            Image.new("RGB", (16, 12) if index not in previews else (4, 3), colour).save(
                tiff, tiffinfo=info)
            tiff.newFrame()
    return path


def test_a_tiff_of_several_pages_is_refused_its_previews_are_not_pages(tmp_path):
    """A TIFF's second page was never read: a page of unsafe content behind a harmless first
    page was decided on the first alone (by predict, serve and the page)."""
    from shotlab.core.images import load_rgb, rgb_from_bytes

    two = tiff_pages_file(tmp_path / "two.tif", [(0, 200, 0), (200, 0, 0)])
    for load in (inspect_image, load_rgb, lambda p: rgb_from_bytes(p.read_bytes(), p.name)):
        with pytest.raises(BadImageError, match=r"a TIFF of 2 pages: .* save each page as its own"):
            load(two)
    # a page marked as a preview (NewSubfileType 1) may hold any picture: it counts
    previewed = tiff_pages_file(tmp_path / "scan.tif", [(0, 200, 0), (200, 0, 0)], previews={1})
    with pytest.raises(BadImageError, match="a TIFF of 2 pages"):
        inspect_image(previewed)
    # pages are counted to a cap, never all of them (PIL's n_frames reads every directory)
    many = tiff_pages_file(tmp_path / "many.tif", [(i, 0, 0) for i in range(40)])
    with pytest.raises(BadImageError, match="a TIFF of more than 16 pages"):
        inspect_image(many)
    still = tiff_pages_file(tmp_path / "still.tif", [(0, 200, 0)])
    assert inspect_image(still).width == 16 and load_rgb(still).getpixel((0, 0)) == (0, 200, 0)


def test_a_tiff_whose_next_directory_is_garbage_is_refused_in_one_line(tmp_path):
    """Its page count raised PIL's bare TypeError ('Missing dimensions') through import."""
    import io
    import struct

    from PIL import Image

    from shotlab.core.images import rgb_from_bytes

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    first = struct.unpack("<I", data[4:8])[0]
    entries = struct.unpack("<H", data[first:first + 2])[0]
    pointer = first + 2 + 12 * entries  # the offset of the next directory
    data[pointer:pointer + 4] = struct.pack("<I", 0xFFFFFF00)
    with pytest.raises(BadImageError, match=r"corrupt TIFF directory \(TypeError"):
        rgb_from_bytes(bytes(data), "bad.tif")
