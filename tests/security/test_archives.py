"""Zip bombs and forged zips: refused from the central directory before anything is written, and
a member that inflates past its declared size is stopped (issue #11, item 4)."""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core import archive_limits, workspace
from shotlab.core.archive_limits import ZipLimits, check_zip, extract_zip
from shotlab.core.errors import InputError
from shotlab.curate import archives
from tests.imaging import write_image

MB = 1024 ** 2


def zeros_zip(path: Path, megabytes: int, *, extra: dict[str, bytes] | None = None) -> Path:
    """A zip with `megabytes` MB of zeros in one deflated member (about 1000:1), written in
    chunks so the test never holds it in memory."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("data/zeros.bin", "w") as member:
            for _ in range(megabytes):
                member.write(bytes(MB))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def many_files_zip(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            archive.writestr(f"cat/{i}.txt", b"x")
    return path


def forge_declared_size(path: Path, declared: int) -> Path:
    """Rewrite the central directory so the (only) member claims `declared` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    at = data.rindex(b"PK\x01\x02")  # central directory file header
    data[at + 24:at + 28] = struct.pack("<I", declared)  # uncompressed size
    path.write_bytes(bytes(data))
    return path


def media_entries() -> set[str]:
    media = workspace.current().media_dir
    return {p.name for p in media.iterdir()} if media.is_dir() else set()


def test_a_zip_bomb_is_refused_before_writing(tmp_path):
    bomb = zeros_zip(tmp_path / "bomb.zip", 20)
    assert bomb.stat().st_size < 100_000  # 20 MB in well under 100 KB
    before = media_entries()
    with pytest.raises(InputError, match=r"bomb.zip: data/zeros.bin is compressed [\d,]+:1 "
                                         r".*--zip-max-ratio or \$SHOTLAB_ZIP_MAX_RATIO"):
        archives.extract(bomb, workspace.current().media_dir)
    assert media_entries() == before  # no folder, no partial folder, no lock file


def test_total_size_and_file_count_limits(tmp_path):
    crowd = many_files_zip(tmp_path / "crowd.zip", 30)
    with zipfile.ZipFile(crowd) as archive:
        with pytest.raises(InputError, match="30 files, over the limit of 20; nothing was extracted"):
            check_zip(archive, crowd, max_files=20)
        with pytest.raises(InputError, match="expands to 30 bytes, over the limit of 10"):
            check_zip(archive, crowd, max_bytes=10)
        check_zip(archive, crowd, max_files=30, max_bytes=30)
    with pytest.raises(InputError, match="--zip-max-files"):
        archives.extract(crowd, tmp_path / "media", ZipLimits(max_files=20))
    assert not (tmp_path / "media").exists()


def test_small_compressible_members_are_not_judged_by_ratio(tmp_path):
    """A labels.csv of repeated lines compresses far past 100:1 but is harmless."""
    path = tmp_path / "small.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("labels.csv", "a.png,cat\n" * 50_000)  # 500 KB
    target = archives.extract(path, tmp_path / "media")
    assert (target / "labels.csv").stat().st_size == 500_000


def test_limits_can_be_raised_by_option_and_environment(tmp_path, monkeypatch):
    bomb = zeros_zip(tmp_path / "bomb.zip", 3)
    target = archives.extract(bomb, tmp_path / "media", ZipLimits(max_ratio=5000))
    assert (target / "data" / "zeros.bin").stat().st_size == 3 * MB
    monkeypatch.setenv(archive_limits.ENV["max_ratio"], "5000")
    with zipfile.ZipFile(bomb) as archive:
        assert check_zip(archive, bomb).max_ratio == 5000
    monkeypatch.setenv(archive_limits.ENV["max_files"], "many")
    with zipfile.ZipFile(bomb) as archive, \
            pytest.raises(InputError, match=r"\$SHOTLAB_ZIP_MAX_FILES='many': expected a positive"):
        check_zip(archive, bomb)


def test_a_member_that_lies_about_its_size_is_stopped(tmp_path):
    """The central directory says 1,000 bytes, the data inflates to 2 MB: extraction stops at
    the declared size and refuses the zip; the workspace keeps nothing of it."""
    forged = forge_declared_size(zeros_zip(tmp_path / "forged.zip", 2), 1000)
    with zipfile.ZipFile(forged) as archive:
        assert archive.infolist()[0].file_size == 1000
        check_zip(archive, forged)  # the declared numbers look harmless
        with pytest.raises(InputError, match="forged.zip"):
            extract_zip(archive, forged, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "zeros.bin").stat().st_size <= 1000
    with pytest.raises(InputError, match="forged.zip"):
        archives.extract(forged, tmp_path / "media")
    assert [p.name for p in (tmp_path / "media").iterdir()] == [
        p.name for p in (tmp_path / "media").glob("*.lock")]  # only the lock file


def test_copy_at_most_stops_past_the_declared_size(tmp_path):
    """The guard itself, for a reader that does not stop at the declared size as CPython's does."""
    import io

    out = io.BytesIO()
    with pytest.raises(InputError, match="member m holds more than the 10 bytes its entry declares"):
        archive_limits.copy_at_most(io.BytesIO(bytes(1000)), out, 10, "z.zip", "m")
    assert len(out.getvalue()) <= 10


@pytest.mark.fiftyone
def test_curate_import_refuses_a_bomb_with_one_line_and_no_dataset(tmp_path, dataset_name):
    write_image(tmp_path / "src" / "cat" / "a.png")
    bomb = zeros_zip(tmp_path / "photos.zip", 20,
                     extra={"cat/a.png": (tmp_path / "src" / "cat" / "a.png").read_bytes()})
    before = media_entries()
    result = CliRunner().invoke(cli, ["curate", "import", str(bomb), "--name", dataset_name])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "compressed" in result.output and "nothing was extracted" in result.output
    assert media_entries() == before
    from shotlab.core import store

    assert dataset_name not in store.list_datasets()


@pytest.mark.parametrize("entries,refusal", [
    (["."], r"hostile.zip: entry '\.' names no file"),
    (["a/.."], r"hostile.zip: entry 'a/\.\.' names no file"),
    (["a", "a/b"], r"hostile.zip: cannot extract entry 'a/b' \(.+\); re-create the zip"),
    (["a/b", "a"], r"hostile.zip: cannot extract entry 'a' \(.+\); re-create the zip"),
], ids=["dot", "up-and-back", "file-then-dir", "dir-then-file"])
def test_entries_that_name_the_folder_or_clash_are_refused_in_one_line(tmp_path, entries,
                                                                        refusal):
    """These crashed with IsADirectoryError / FileExistsError / NotADirectoryError tracebacks."""
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as archive:
        for name in entries:
            archive.writestr(name, b"x")
    with zipfile.ZipFile(hostile) as archive, pytest.raises(InputError, match=refusal):
        extract_zip(archive, hostile, tmp_path / "out")
    write_image(tmp_path / "photo.png")
    result = CliRunner().invoke(cli, ["predict", str(hostile), str(tmp_path / "photo.png"),
                                      "--out", str(tmp_path / "o" / "d.jsonl")])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert re.search(refusal, result.output)
