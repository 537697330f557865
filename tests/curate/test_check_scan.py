"""The quality and duplicate scan: one decode per file at reduced size, worker processes, the
cache by sha256 (decodes counted), and hashes equal to imagehash's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shotlab.core.images import load_rgb, load_thumbnail, sha256_file
from shotlab.curate.checks import image_stats as scan
from shotlab.curate.checks.image_stats import image_stats
from tests.curate.test_check_quality import photo_like


class OpenCounter:
    """Counts PIL's Image.open calls (every decode starts with one) and still opens the file."""

    def __init__(self, monkeypatch):
        self.calls = 0
        self.real = Image.open
        monkeypatch.setattr(Image, "open", self.open)

    def open(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


def write_photos(folder, count, *, start=0, size=(96, 72)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"{i:03d}.{'png' if i % 2 else 'jpg'}"
        photo_like(i, size).save(path)
        paths.append(str(path))
    return paths


def same_stats(a, b):
    for name in scan.STAT_NAMES:
        np.testing.assert_array_equal(a.values[name], b.values[name], err_msg=name)
    np.testing.assert_array_equal(a.phashes, b.phashes)
    assert a.unreadable == b.unreadable


def test_recheck_of_unchanged_images_decodes_nothing(tmp_path, monkeypatch):
    paths = write_photos(tmp_path / "images", 12)
    digests = [sha256_file(p) for p in paths]
    cache = tmp_path / "cache" / "stats.sqlite3"
    counter = OpenCounter(monkeypatch)
    first = image_stats(paths, sha256s=digests, cache=cache, progress=False)
    assert counter.calls == 12

    counter.calls = 0
    again = image_stats(paths, sha256s=digests, cache=cache, progress=False)
    assert counter.calls == 0  # every file was measured before: no pixels read
    same_stats(first, again)

    photo_like(99).save(paths[3])  # the file edited in place: a new sha256
    digests[3] = sha256_file(paths[3])
    counter.calls = 0
    changed = image_stats(paths, sha256s=digests, cache=cache, progress=False)
    assert counter.calls == 1  # only the edited file
    assert changed.values["brightness"][3] != first.values["brightness"][3]


def test_unreadable_files_are_not_cached(tmp_path, monkeypatch):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    cache = tmp_path / "stats.sqlite3"
    digest = [sha256_file(broken)]
    image_stats([str(broken)], sha256s=digest, cache=cache, progress=False)
    counter = OpenCounter(monkeypatch)
    stats = image_stats([str(broken)], sha256s=digest, cache=cache, progress=False)
    assert counter.calls == 1 and stats.unreadable == {0: "not an image (format not recognised)"}


def test_a_corrupt_cache_file_is_replaced(tmp_path):
    paths = write_photos(tmp_path / "images", 3)
    cache = tmp_path / "stats.sqlite3"
    cache.write_bytes(b"this is not a database" * 100)
    stats = image_stats(paths, sha256s=[sha256_file(p) for p in paths], cache=cache,
                        progress=False)
    assert np.isfinite(stats.values["brightness"]).all()
    assert cache.read_bytes().startswith(b"SQLite format 3")


def test_worker_processes_give_the_same_numbers_in_order(tmp_path):
    """Three chunks over two spawned workers, an unreadable file in the middle one."""
    paths = write_photos(tmp_path / "images", 2 * scan.CHUNK + 5)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    paths.insert(scan.CHUNK + 3, str(broken))
    here = image_stats(paths, workers=0, progress=False)
    pooled = image_stats(paths, workers=2, progress=False)
    same_stats(here, pooled)
    assert list(pooled.unreadable) == [scan.CHUNK + 3]


def test_phash_is_imagehash_phash(tmp_path):
    import imagehash

    paths = write_photos(tmp_path / "images", 10, size=(150, 100))
    paths += write_photos(tmp_path / "images", 4, start=10, size=(60, 60))
    stats = image_stats(paths, workers=0, progress=False)
    for path, bits in zip(paths, stats.phashes):
        expected = imagehash.phash(load_rgb(path)).hash.ravel()
        np.testing.assert_array_equal(bits, expected, err_msg=path)


def test_a_large_jpeg_is_decoded_small_with_its_own_size(tmp_path):
    path = tmp_path / "big.jpg"
    photo_like(5, size=(2048, 1536)).save(path, quality=92)
    thumb = load_thumbnail(path, 256)
    assert (thumb.width, thumb.height) == (2048, 1536)
    assert thumb.image.size == (256, 192) and thumb.image.mode == "RGB"
    assert thumb.sha256 == sha256_file(path)
    full = load_rgb(path)
    full.thumbnail((256, 256), reducing_gap=2.0)
    difference = np.abs(np.asarray(thumb.image, float) - np.asarray(full, float))
    assert difference.mean() < 2.0  # DCT-scaled decoding: the same picture


@pytest.mark.parametrize("orientation, size", [(6, (120, 300)), (3, (300, 120))])
def test_exif_orientation_is_applied_to_the_thumbnail(tmp_path, orientation, size):
    path = tmp_path / "turned.jpg"
    image = photo_like(7, size=(300, 120))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, quality=95)
    thumb = load_thumbnail(path, 256)
    upright = load_rgb(path)
    assert (thumb.width, thumb.height) == upright.size == size
    upright.thumbnail((256, 256), reducing_gap=2.0)
    assert thumb.image.size == upright.size
    difference = np.abs(np.asarray(thumb.image, float) - np.asarray(upright, float))
    assert difference.mean() < 2.0


def test_transparency_is_composited_on_white_after_shrinking(tmp_path):
    rgba = np.zeros((600, 800, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :400, 3] = 255  # left half opaque red-ish, right half fully transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    small = np.asarray(load_thumbnail(path, 256).image)
    assert small.shape == (192, 256, 3)
    assert small[:, :120].tolist() == [[[200, 0, 0]] * 120] * 192
    assert (small[:, 136:] == 255).all()


def test_a_bar_drawn_on_a_terminal_scans_every_chunk(tmp_path, monkeypatch):
    """On a terminal, tqdm's update() returns True when it redraws (a chunk took 0.1 s or
    more), and `bar.update(n) or scan_files(chunk)` took that True for the chunk's scan:
    `curate check` ended in an AttributeError on any set of more than 64 new images. The bar
    here redraws on every update (mininterval 0), as a slow chunk on a terminal does."""
    from shotlab.core.progress import progress_bar

    paths = write_photos(tmp_path / "p", scan.CHUNK + 3)
    monkeypatch.setattr(scan, "progress_bar",
                        lambda **options: progress_bar(**options, mininterval=0))
    found = scan.scan(paths, workers=0, progress=True)
    assert found.sha256s == [sha256_file(p) for p in paths]
