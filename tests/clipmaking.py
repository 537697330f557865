"""Tiny clips for tests, encoded on the spot with PyAV: valid ones (rotated, variable frame rate,
with a subject in some seconds only) and every kind of bad one the importer must skip."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# Codec per container: H.264 where the container takes it, MPEG-4 part 2 in AVI (its classic
# pairing), MJPEG where each frame must decode on its own (the partial-failure case).
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4"}


def frame_pixels(index: int, size: tuple[int, int], colour=None) -> np.ndarray:
    """A frame that differs from its neighbours (a moving bar), so none is near-identical."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[...] = colour if colour is not None else (40, 40, 40)
    bar = (index * 7) % max(1, width - 8)
    pixels[:, bar:bar + 8] = (255, 255, 255)
    pixels[: height // 8, : width // 8] = (255, 0, 0)  # a marker in the top-left corner
    return pixels


def write_clip(path: Path, *, frames: int = 20, fps: int = 10, size=(64, 48), gop: int = 10,
               rotation: int = 0, times_ms=None, colours=None, codec: str | None = None,
               pixels=None, faststart: bool = False) -> Path:
    """Encode `frames` frames; `times_ms` gives each frame's time (a variable frame rate),
    `colours` each frame's background (a subject present in some frames), `pixels(i)` each
    frame outright; `faststart`: the MP4's index before the frames (as web uploads have it)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec or CODECS.get(path.suffix, "libx264"),
                                      rate=1000 if times_ms is not None else fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if (codec or "") == "mjpeg" else "yuv420p"
        stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            array = (pixels(i) if pixels is not None else
                     frame_pixels(i, size, None if colours is None else colours[i]))
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = times_ms[i] if times_ms is not None else i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = int(16000 * seconds)
        tone = (np.sin(np.arange(samples) / 10) * 0.3).astype(np.float32)[None, :]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start:start + 1024], format="fltp",
                                               layout="mono")
            frame.sample_rate = 16000
            frame.pts = start
            frame.time_base = Fraction(1, 16000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def packet_spans(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of each video packet in the file, in file order."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pos, p.size) for p in container.demux(stream) if p.size and p.pos is not None]


def damage_packets(path: Path, indices) -> Path:
    """Overwrite the payload of the packets at `indices` with noise (the container stays valid,
    those frames fail to decode)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for index in indices:
        offset, size = packet_spans(path)[index]
        start, end = offset + 16, offset + size - 16  # the frame data, not the container's framing
        data[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def unknown_codec(path: Path) -> Path:
    """An AVI whose codec tag (FourCC) names no decoder: the container reads, the frames cannot."""
    data = path.read_bytes()
    for tag in (b"FMP4", b"fmp4"):
        data = data.replace(tag, b"QQQ9")
    path.write_bytes(data)
    return path


def truncated_mp4(source: Path, path: Path) -> Path:
    """The first part of an MP4 whose index (the moov atom, written last) is cut off."""
    data = source.read_bytes()
    moov = data.find(b"moov")
    path.write_bytes(data[:moov - 4 if moov > 0 else len(data) // 2])
    return path


def cut_inside_frame(source: Path, path: Path, seconds: float) -> Path:
    """`source` (a faststart MP4: its index first) cut off halfway through the frame shown at
    `seconds`, as an upload cut short leaves it: the frames before are whole, the rest lost."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        spans = [(p.pos, p.size) for p in container.demux(stream)
                 if p.size and abs(float(p.pts * stream.time_base) - seconds) < 1e-6]
    offset, size = spans[0]
    path.write_bytes(source.read_bytes()[:offset + size // 2])
    return path


def write_with_cover(path: Path, *, frames: int = 20) -> Path:
    """A Matroska file whose first video stream is a one-frame cover picture (attached_pic),
    the clip itself second."""
    import av

    with av.open(str(path), "w", format="matroska") as container:
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 24, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        clip = container.add_stream("libx264", rate=10)
        clip.width, clip.height, clip.pix_fmt = 64, 48, "yuv420p"
        picture = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 200, np.uint8), format="rgb24")
        for packet in [*cover.encode(picture), *cover.encode()]:
            container.mux(packet)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(i, (64, 48)), format="rgb24")
            for packet in clip.encode(frame):
                container.mux(packet)
        for packet in clip.encode():
            container.mux(packet)
    return path


def growing_stream(path: Path) -> Path:
    """An MPEG program stream of 64 x 48 frames followed by 128 x 96 ones (two streams joined
    byte for byte): a header that understates the frames to come."""
    parts = [write_clip(path.with_name(f"part{i}.mpg"), frames=10, size=size,
                        codec="mpeg2video") for i, size in enumerate([(64, 48), (128, 96)])]
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    for part in parts:
        part.unlink()
    return path
