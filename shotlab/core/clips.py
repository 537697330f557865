"""Safe clip decoding with PyAV: probe once, decode only the frames asked for.

    with ClipReader(path) as clip:            # opens, guards, reads the packet index (no decoding)
        clip.facts                            # ClipFacts: duration, fps, size after rotation, ...
        times = Sampling.parse("uniform:8").times(clip)
        for frame in clip.frames_at(times):   # SampledFrame: timestamp, upright RGB pixels
            ...
        clip.decoded, clip.gaps               # frames the decoder produced; spans that failed

`ClipReader` demuxes the whole file once (cheap: no pixel is decoded) to learn every frame's
presentation time and every keyframe. A requested frame is then decoded from the keyframe before
it, continuing instead of jumping back when the decoder is already between them, and frames the
caller did not ask for are never converted to RGB. That is what makes sampling a few frames much
cheaper than decoding a clip (benchmarks/clip_sampling.py). Variable frame rate needs nothing
special: times come from each packet's own timestamp.

A file that is not a usable clip raises `BadClipError` with a short reason (empty, not a video,
truncated, audio only, no decoder, frames too large, more frames than `max_frames`, a single
frame). A reader given a `deadline` stops between frames once it passes (`DeadlinePassed`). A stream whose frames
partly fail to decode keeps the frames that decode and lists the failed spans in `gaps`.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shotlab.core.errors import BadImageError, InputError
from shotlab.core.images import RAISE_LIMIT, check_regular, read_bytes, sha256_file

CLIP_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})
# The FFmpeg demuxers a clip is read with: the containers of CLIP_EXTENSIONS and the animations
# (GIF, APNG). Any other is refused before it reads a byte: a playlist or a concat list names
# other files to read (a concat list named upload.mp4 naming itself was opened again and again
# until the server ran out of file descriptors).
DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,mpegvideo,gif,apng"
# 8K UHD is 33.2 million pixels a frame; a header claiming more is almost certainly hostile or
# broken, and decoding it would take gigabytes per frame (the image bomb guard's counterpart).
DEFAULT_MAX_FRAME_PIXELS = 7680 * 4320
# A clip whose frame intervals vary by more than this (relative spread) has a variable frame rate.
VFR_SPREAD = 0.1
# Frames of a cut-off file's end whose times may hold holes: B-frames are stored after the frame
# they are shown before (x264 puts up to 3 between, so up to 4 times are suspect).
REORDER_TAIL = 4
# fps:F sampling lays a grid of points over the clip's timestamps: at most this many (fps:240 over
# 69 minutes). More means timestamps no short clip has (a damaged or hostile file putting one
# frame years after the rest), and the grid alone would take gigabytes.
MAX_GRID_POINTS = 1_000_000
# Two frames more than this apart (seconds) mean damaged or hostile timestamps, not a clip: every
# sampling would hand reviewers seconds decades from the rest (a time-lapse encodes at a normal
# rate; a recording with a pause of an hour is two clips).
MAX_FRAME_JUMP = 3600.0
# Frames a clip may have: 18,000 is 5 minutes at 60 fps or 10 at 30, ten times the short clips
# shotlab moderates (docs/video.md: under 30 s). Without a bound a clip's cost is not its size:
# sampling a clip with one keyframe decodes every frame up to the last sample, and its packet
# index is held in memory (a 205 KB clip of 12,000 static 2000x2000 frames took 15 s of CPU).
DEFAULT_MAX_FRAMES = 18_000
# Where the frame limit can be raised (curate import and the page keep the default).
RAISE_FRAMES = ("predict and serve take --max-clip-frames to raise it; curate import and "
                "the page keep it: cut the clip into shorter ones")


class DeadlinePassed(Exception):
    """Decoding stopped at its deadline (the service's --timeout-ms): not a fault of the clip,
    so not a BadClipError; the service answers its timeout."""

    def __init__(self, path, decoded: int):
        self.path, self.decoded = str(path), decoded
        super().__init__(f"{path}: decoding stopped at its deadline after {decoded} frames")


class BadClipError(BadImageError):
    """A file that cannot be used as a clip; `reason` is a short phrase."""


def check_readable(path: Path) -> None:
    """BadClipError naming why `path` cannot be read at all (the image reader's reasons)."""
    try:
        check_regular(path)
        if path.stat().st_size == 0:
            raise BadClipError(path, "empty file (0 bytes)")
        with open(path, "rb"):
            pass
    except BadImageError as exc:
        raise BadClipError(path, exc.reason) from None
    except OSError:
        try:
            read_bytes(path)
        except BadImageError as exc:
            raise BadClipError(path, exc.reason) from None
        raise


UPLOAD_PREFIX = "shotlab-clip-"  # + the pid: folders of killed processes are swept


@contextmanager
def clip_file(data: bytes, name: str):
    """A clip's bytes (an upload, a request body) as a file PyAV can open: a private temporary
    folder (mode 0700) holding `upload<suffix of name>`, removed on exit. A process killed
    meanwhile cannot remove it: its name holds the pid, and the next upload folder made on this
    machine removes those of processes that are gone (`core.scratch`)."""
    import shutil

    from shotlab.core.scratch import scratch_folder

    folder = scratch_folder(UPLOAD_PREFIX)
    try:
        path = folder / f"upload{Path(name).suffix.lower()}"
        path.write_bytes(data)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def is_clip_path(path) -> bool:
    return Path(path).suffix.lower() in CLIP_EXTENSIONS


@dataclass(frozen=True)
class ClipFacts:
    """What the store records about a valid clip."""

    sha256: str
    duration: float  # seconds, first frame shown to the end of the last one
    fps: float  # average frames per second
    variable_frame_rate: bool
    frames: int
    keyframes: int
    width: int  # as displayed, after the rotation metadata
    height: int
    rotation: int  # degrees counterclockwise the player turns the frame (0, 90, 180, -90)
    codec: str
    size_bytes: int

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass(frozen=True)
class SampledFrame:
    timestamp: float  # seconds from the clip's first frame
    pixels: np.ndarray  # uint8 (H, W, 3) RGB, upright


@dataclass(frozen=True)
class Gap:
    start: float  # seconds from the first frame
    end: float
    reason: str

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "reason": self.reason}


@dataclass
class _Packet:
    packet: object  # av.Packet, kept to decode later
    time: float  # presentation time, seconds from the first frame
    keyframe: bool


@dataclass(frozen=True)
class Sampling:
    """Which frames to take: `uniform:N` (N frames on a time grid, both ends included; N = 1:
    the middle frame),
    `fps:F` (F frames a second), `keyframes` (the keyframes only, decoded without the rest)."""

    method: str
    value: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "Sampling":
        name, _, number = str(text).strip().partition(":")
        try:
            if name == "keyframes" and not number:
                return cls("keyframes")
            if name == "uniform" and int(number) >= 1 and str(int(number)) == number:
                return cls("uniform", int(number))
            if name == "fps" and 0 < float(number) <= 240:
                return cls("fps", float(number))
        except ValueError:
            pass
        raise InputError(f"sampling {text!r} is not one shotlab knows; use uniform:N (N frames, "
                         f"e.g. uniform:8), fps:F (e.g. fps:1) or keyframes")

    @property
    def key(self) -> str:
        """The text form, also the cache key's sampling part: `uniform:8`, `fps:1`, `keyframes`."""
        if self.method == "keyframes":
            return "keyframes"
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.method}:{value}"

    def times(self, clip: "ClipReader") -> list[float]:
        """The frame times to decode: each grid point moved to the nearest real frame (so a
        timestamp is exact to the frame), repeats removed, in order."""
        if self.method == "keyframes":
            return [p.time for p in clip.packets if p.keyframe]
        frame_times = clip.frame_times
        last = frame_times[-1]
        if self.method == "uniform":
            # one frame: the middle one (t = 0 alone stood for the whole clip)
            grid = np.linspace(0.0, last, int(self.value)) if self.value > 1 else \
                np.array([last / 2])
        else:
            points = math.floor((last + 1e-9) * self.value) + 1
            if points > MAX_GRID_POINTS:
                raise BadClipError(clip.path, f"timestamps span {last:,.0f} s over "
                                              f"{len(frame_times)} frames: {self.key} would "
                                              f"sample {points:,} points (damaged timestamps?); "
                                              f"use uniform:N")
            grid = np.arange(0.0, last + 1e-9, 1.0 / self.value)
        index = np.clip(np.searchsorted(frame_times, grid), 0, len(frame_times) - 1)
        before = np.clip(index - 1, 0, None)
        nearer = np.where(np.abs(frame_times[before] - grid) <= np.abs(frame_times[index] - grid),
                          before, index)
        return [float(frame_times[i]) for i in sorted(set(nearer.tolist()))]


@dataclass
class ClipReader:
    """One clip opened for reading; use as a context manager."""

    path: Path
    max_pixels: int = DEFAULT_MAX_FRAME_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES  # more is refused before any frame is decoded
    # time.monotonic() past which decoding stops (DeadlinePassed): checked between frames, so a
    # request's cost ends with its timeout; None: no deadline (predict on a local file)
    deadline: float | None = None
    decoded: int = 0  # frames the decoder has produced so far (what early exit saves)
    gaps: list[Gap] = field(default_factory=list)
    truncated: bool = False  # the container declares frames the file does not hold

    def __enter__(self) -> "ClipReader":
        import av

        self.path = Path(self.path)
        check_readable(self.path)
        with open(self.path, "rb") as f:
            if is_webp(f.read(12)):  # routed here as an animation (core.images.is_animated)
                raise BadClipError(self.path, "an animated WebP: this FFmpeg cannot decode its "
                                              "frames; convert it to MP4 or GIF to have every "
                                              "frame scored")
        try:
            self.container = av.open(str(self.path), metadata_errors="ignore",
                                     options={"format_whitelist": DEMUXERS})
        except av.FFmpegError as exc:
            raise BadClipError(self.path, self._open_failure(exc)) from None
        try:
            self.stream = self._video_stream()
            self._guard_size()
            self.packets = self._index()
        except BaseException:
            self.container.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.container.close()

    def _open_failure(self, exc) -> str:
        with open(self.path, "rb") as f:
            head = f.read(12)
        if head[4:8] == b"ftyp":
            return f"truncated clip: the container's index (moov atom) is missing ({exc.strerror})"
        if exc.errno == errno.EINVAL:  # no demuxer of DEMUXERS took it
            return (f"not a video FFmpeg can read ({exc.strerror}); shotlab reads clips in "
                    f"MP4/MOV, Matroska/WebM, AVI or MPEG containers, and GIF or APNG "
                    f"animations")
        return f"not a video FFmpeg can read ({exc.strerror})"

    def _video_stream(self):
        streams = self.container.streams
        if not streams.video:
            kinds = sorted({s.type for s in streams})
            held = f"{', '.join(kinds)} only" if kinds else "the file holds no stream at all"
            raise BadClipError(self.path, f"no video stream ({held})")
        stream = streams.best("video") or streams.video[0]  # FFmpeg's pick: not a cover picture
        if stream.codec_context is None or not stream.codec_context.is_decoder:
            raise BadClipError(self.path, "a video codec this FFmpeg cannot decode")
        stream.thread_type = "AUTO"  # frame and slice threads: the decoder's own parallelism
        # FFmpeg's own limit: a frame over it is refused before its buffers exist (a stream may
        # grow midway; VP9 and AV1 allow 65536 x 65536, gigabytes a frame).
        stream.codec_context.options = {"max_pixels": str(self.max_pixels)}
        return stream

    def _guard_size(self, frame=None, where: str = "") -> None:
        """The header's frame size, or a decoded frame's (a stream may change size midway)."""
        size = frame if frame is not None else self.stream.codec_context
        width, height = size.width, size.height
        if width * height > self.max_pixels:
            raise BadClipError(self.path, f"frame size{where} too large: {width}x{height} "
                                          f"pixels is over the {self.max_pixels:,}-pixel limit "
                                          f"per frame ({RAISE_LIMIT})")
        if width <= 0 or height <= 0:
            raise BadClipError(self.path, f"no frame size in the header ({width}x{height})")

    def _index(self) -> list[_Packet]:
        """Every video packet in decode order with its presentation time (no decoding)."""
        import av

        raw, damaged, demuxed = [], None, 0
        try:
            for packet in self.container.demux(self.stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                demuxed += bool(packet.size or stamp is not None)  # not the closing empty one
                if stamp is not None and packet.size:
                    raw.append((packet, stamp))
                    self._check_frame_count(len(raw))
        except av.FFmpegError as exc:  # a damaged tail: keep what was read, report the rest
            damaged = f"container damaged ({exc.strerror})"
        if not raw:
            raise BadClipError(self.path, "no video frames in the stream")
        base = self.stream.time_base
        first = self._first_stamp = min(stamp for _, stamp in raw)
        packets = [_Packet(p, float((stamp - first) * base), bool(p.is_keyframe))
                   for p, stamp in raw]
        if len(packets) < 2:
            raise BadClipError(self.path, "a single frame, not a clip (give it as an image)")
        if not packets[0].keyframe:
            packets[0].keyframe = True  # some containers (MPEG-PS) do not mark it; FFmpeg copes
        self._check_jumps(packets)
        end = max(p.time for p in packets)
        if damaged:
            self.gaps.append(Gap(end, end, damaged))
        self._note_missing_frames(demuxed, end)
        return packets

    def _check_frame_count(self, frames: int) -> None:
        """Refuse a clip over `max_frames` while its index is read: before any frame is
        decoded, and before the index of a longer one is held in memory."""
        if frames > self.max_frames:
            raise BadClipError(self.path, f"more than {self.max_frames:,} frames, the limit per "
                                          f"clip ({RAISE_FRAMES})")

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeadlinePassed(self.path, self.decoded)

    def _check_jumps(self, packets: list[_Packet]) -> None:
        times = np.array(sorted(p.time for p in packets))
        steps = np.diff(times)
        at = int(steps.argmax())
        if steps[at] > MAX_FRAME_JUMP:
            raise BadClipError(self.path, f"frame timestamps jump {steps[at]:,.0f} s after "
                                          f"{times[at]:.1f} s (damaged timestamps?)")

    def _note_missing_frames(self, read: int, end: float) -> None:
        """A gap for the frames the container declares but the file does not hold (a cut-off
        upload whose index sits at the front): FFmpeg stops at the end without an error. `read`
        counts every packet demuxed, empty ones too (an AVI's dropped frames are declared)."""
        declared = self.stream.frames or 0
        if declared <= read:
            return
        self.truncated = True
        declared_end = (float(self.stream.duration * self.stream.time_base)
                        if self.stream.duration else (self.container.duration or 0) / 1e6)
        start = end + end / (read - 1)  # one (mean) frame after the last one in the file
        self.gaps.append(Gap(start, max(start, declared_end),
                             f"truncated clip: {declared - read} of {declared} frames are not "
                             f"in the file"))

    @property
    def frame_times(self) -> np.ndarray:
        return np.array(sorted({p.time for p in self.packets}))

    @property
    def facts(self) -> ClipFacts:
        times = self.frame_times
        steps = np.diff(times)
        mean_step = float(steps.mean()) if len(steps) else 0.0
        last = float(self.packets[-1].packet.duration or 0) * float(self.stream.time_base)
        tail = last if last > 0 else mean_step
        regular = self._regular_times(times)
        regular_steps = np.diff(regular)
        return ClipFacts(sha256=sha256_file(self.path), duration=float(times[-1] + tail),
                         fps=(len(regular) - 1) / float(regular[-1]) if regular[-1] > 0 else 0.0,
                         variable_frame_rate=bool(len(regular_steps) > 1 and regular_steps.std()
                                                  > VFR_SPREAD * regular_steps.mean()),
                         frames=len(times), **self._picture_facts())

    def _regular_times(self, times: np.ndarray) -> np.ndarray:
        """The frame times the rate is judged on. In a cut-off file the last frames leave holes
        (a B-frame shown before a P-frame is stored after it, and the cut took it): a truncated
        clip read as variable-rate. There, the whole groups of pictures before the last
        keyframe are judged, or, in a clip of one group, all but its last REORDER_TAIL frames."""
        if self.truncated:
            last_key = max(p.time for p in self.packets if p.keyframe)
            for kept in (times[times < last_key], times[:-REORDER_TAIL]):
                if len(kept) >= 3:
                    return kept
        return times

    def _picture_facts(self) -> dict:
        rotation = self._probe_rotation()
        width, height = self.stream.codec_context.width, self.stream.codec_context.height
        if rotation % 180:
            width, height = height, width
        return dict(keyframes=sum(p.keyframe for p in self.packets), width=width, height=height,
                    rotation=rotation, codec=self.stream.codec_context.name,
                    size_bytes=self.path.stat().st_size)

    def _probe_rotation(self) -> int:
        """The display rotation (PyAV reads the display matrix onto each frame): known once a
        frame is decoded, else read from the first frame."""
        if not hasattr(self, "_rotation"):
            for _ in self.frames_at([float(self.frame_times[0])]):
                break
        return getattr(self, "_rotation", 0)

    def frames_at(self, times) -> Iterator[SampledFrame]:
        """Decode the frames shown at `times` (seconds, ascending, from `frame_times`), upright
        RGB. Frames that fail to decode are left out and recorded in `gaps`. Closing the
        generator early (early exit) stops decoding there."""
        targets = sorted(times)
        if not targets:
            return
        keyframe_times = {p.time for p in self.packets if p.keyframe}
        keyframe_only = len(targets) > 1 and set(targets) <= keyframe_times
        yield from self._decode_towards(targets, keyframe_only)

    def _start_index(self, time: float) -> int:
        """Index of the last keyframe packet (decode order) shown at or before `time`: a binary
        search (a scan of every packet per target was quadratic over long clips)."""
        if not hasattr(self, "_keys"):
            keys = sorted((p.time, i) for i, p in enumerate(self.packets) if p.keyframe)
            self._keys = ([t for t, _ in keys],
                          list(itertools.accumulate((i for _, i in keys), max)))
        times, latest = self._keys
        found = bisect.bisect_right(times, time)
        return latest[found - 1] if found else 0

    def _decode_towards(self, targets: list[float], keyframe_only: bool) -> Iterator[SampledFrame]:
        """Feed packets from the keyframe before each target; jump ahead (flushing the decoder)
        only when the next target's keyframe lies past the packets already fed.

        Targets still pending after the last packet are decoded once more without it: a frame
        that fails there (an upload cut off inside it) can take with it the frames the decoder
        still holds (frame threads report the failure when the decoder is drained, and PyAV
        gives up the drain at the first error), though they are whole in the file."""
        codec = self.stream.codec_context
        codec.skip_frame = "NONKEY" if keyframe_only else "DEFAULT"
        starts = {t: self._start_index(t) for t in targets}
        position, pending, wanted = None, list(targets), set(targets)
        end = len(self.packets)
        while pending:
            if position is None or starts[pending[0]] > position:
                codec.flush_buffers()
                position = starts[pending[0]]
            if position >= end:
                break
            self._check_deadline()  # between frames: a clip's cost ends at its deadline
            item = self.packets[position]
            position += 1
            if not keyframe_only:  # frames no other frame refers to are skipped unless wanted
                codec.skip_frame = "DEFAULT" if item.time in wanted else "NONREF"
            last = position == end
            for frame in self._decode(codec, item, flush=last):
                taken = self._take(frame, pending)
                if taken is not None:
                    yield taken
            if last:
                if end < len(self.packets):
                    break
                end, position = end - 1, None  # once more, without the last packet
        for target in pending:
            self._gap(target, "frame never decoded")

    def _decode(self, codec, item: _Packet, *, flush: bool) -> list:
        import av

        try:
            frames = list(codec.decode(item.packet))
        except av.FFmpegError as exc:
            self._gap(item.time, f"frame failed to decode ({self._decode_failure(exc)})")
            frames = []
        frames += self._flush(codec) if flush else []
        for frame in frames:
            self._guard_size(frame, f" at {item.time:.3f} s")
        return frames

    def _decode_failure(self, exc) -> str:
        if exc.errno == errno.EINVAL:  # how FFmpeg refuses a frame over its max_pixels option
            return (f"{exc.strerror}: a frame over the {self.max_pixels:,}-pixel limit, or "
                    f"invalid data")
        return exc.strerror

    def _take(self, frame, pending: list[float]) -> SampledFrame | None:
        """The frame as a SampledFrame if it is the next one wanted (popped from `pending`);
        wanted frames it has passed are recorded as gaps."""
        self.decoded += 1
        if not hasattr(self, "_rotation"):
            self._rotation = int(frame.rotation or 0)
        time, tolerance = self._frame_time(frame), self._half_frame()
        while pending and pending[0] < time - tolerance:
            self._gap(pending.pop(0), "frame missing after a decode error")
        if not pending or abs(time - pending[0]) > tolerance:
            return None
        if frame.is_corrupt:
            self._gap(pending.pop(0), "frame decoded corrupt")
            return None
        pending.pop(0)
        return SampledFrame(time, self._upright(frame))

    def _flush(self, codec) -> list:
        import av

        try:
            return list(codec.decode(None))
        except av.FFmpegError:
            return []

    def _frame_time(self, frame) -> float:
        stamp = frame.pts if frame.pts is not None else self._first_stamp
        return float((stamp - self._first_stamp) * self.stream.time_base)

    def _half_frame(self) -> float:
        if not hasattr(self, "_half"):
            steps = np.diff(self.frame_times)
            self._half = float(steps.min()) / 2 if len(steps) else 0.0
        return self._half

    def _gap(self, time: float, reason: str) -> None:
        """Record a failed frame once (a frame that failed and then is missing is one gap)."""
        if not any(g.start == time for g in self.gaps):
            self.gaps.append(Gap(time, time, reason))

    def _upright(self, frame) -> np.ndarray:
        pixels = frame.to_ndarray(format="rgb24")
        quarter_turns = round((frame.rotation or 0) / 90) % 4
        return np.ascontiguousarray(np.rot90(pixels, quarter_turns)) if quarter_turns else pixels


def is_webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def merge_gaps(gaps: list[Gap], step: float) -> list[Gap]:
    """Gaps that touch (within one frame step) joined into one span per reason."""
    merged: list[Gap] = []
    for gap in sorted(gaps, key=lambda g: (g.reason, g.start)):
        last = merged[-1] if merged else None
        if last and last.reason == gap.reason and gap.start - last.end <= step * 1.5:
            merged[-1] = Gap(last.start, max(last.end, gap.end), last.reason)
        else:
            merged.append(gap)
    return merged


def perceptual_hash(pixels: np.ndarray):
    """imagehash's pHash (DCT, 64 bits) of one frame."""
    import imagehash
    from PIL import Image

    return imagehash.phash(Image.fromarray(pixels))


# Two neighbouring frames whose pHashes differ in at most this many of 64 bits show the same
# picture (a static shot, a paused screen): imagehash's own guidance puts near-duplicates at <= 5.
NEAR_IDENTICAL_BITS = 4
# ... and whose mean colour moved less than this on every channel (0-255): pHash reads grey
# levels only, so a recoloured picture (a flat green frame turned red) hashes the same.
NEAR_IDENTICAL_COLOUR = 12.0
# ... and where no cell of a CELLS x CELLS grid changed its mean colour by this much: pHash reads
# the picture's coarse layout, so a small object appearing in a corner (a 24-pixel bird on a
# 160x120 shot: 4 bits) passed as a repeat and was never scored. A cell of a 1080p frame is
# 60x34 pixels; an object filling a tenth of one, in a contrast of 200 levels, moves it 20.
NEAR_IDENTICAL_CELLS = 32
NEAR_IDENTICAL_CELL_CHANGE = 16.0


class NearIdentical:
    """Streaming filter: `is_new(pixels)` is False for a frame whose pHash is within `bits` of
    the last frame it let through, whose mean colour is within NEAR_IDENTICAL_COLOUR of it and
    none of whose grid cells moved NEAR_IDENTICAL_CELL_CHANGE or more (it shows the same
    picture: a still shot, a paused screen)."""

    def __init__(self, bits: int = NEAR_IDENTICAL_BITS):
        self.bits, self.last = bits, None

    def is_new(self, pixels: np.ndarray) -> bool:
        digest, cells = perceptual_hash(pixels), cell_means(pixels)
        colour = cells.reshape(-1, cells.shape[-1]).mean(axis=0)  # equal cells: the frame's mean
        if self.last is not None and digest - self.last[0] <= self.bits and \
                np.abs(colour - self.last[1]).max() < NEAR_IDENTICAL_COLOUR and \
                cells.shape == self.last[2].shape and \
                np.abs(cells - self.last[2]).max() < NEAR_IDENTICAL_CELL_CHANGE:
            return False
        self.last = (digest, colour, cells)
        return True


def cell_means(pixels: np.ndarray) -> np.ndarray:
    """Each cell's mean colour on a NEAR_IDENTICAL_CELLS grid (float32, cells x cells x 3)."""
    from PIL import Image

    size = (min(NEAR_IDENTICAL_CELLS, pixels.shape[1]), min(NEAR_IDENTICAL_CELLS, pixels.shape[0]))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX), np.float32)


def drop_near_identical(frames: list[SampledFrame], *, bits: int = NEAR_IDENTICAL_BITS
                        ) -> list[SampledFrame]:
    """Frames whose picture differs from the last kept one by more than `bits` pHash bits."""
    seen = NearIdentical(bits)
    return [frame for frame in frames if seen.is_new(frame.pixels)]


@dataclass(frozen=True)
class SampledClip:
    facts: ClipFacts
    frames: list[SampledFrame]
    gaps: list[Gap]
    decoded: int  # frames the decoder produced to get them

    def __iter__(self):  # facts, frames, gaps = sample_clip(...)
        return iter((self.facts, self.frames, self.gaps))


def sample_clip(path, sampling: "Sampling | str" = "uniform:8", *, dedupe: bool = True,
                max_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
                max_frames: int = DEFAULT_MAX_FRAMES) -> SampledClip:
    """Probe `path` and decode its sampled frames (near-identical neighbours dropped unless
    `dedupe` is False); BadClipError when it is not a usable clip or no frame decodes."""
    sampling = Sampling.parse(sampling) if isinstance(sampling, str) else sampling
    with ClipReader(Path(path), max_pixels=max_pixels, max_frames=max_frames) as clip:
        frames = list(clip.frames_at(sampling.times(clip)))
        facts = clip.facts
        if not frames:
            reasons = "; ".join(sorted({g.reason for g in clip.gaps})) or "no frame decoded"
            raise BadClipError(path, f"no frame could be decoded ({reasons})")
        step = 1.0 / facts.fps if facts.fps else 0.0
        gaps = merge_gaps(clip.gaps, step)
        decoded = clip.decoded
    return SampledClip(facts, drop_near_identical(frames) if dedupe else frames, gaps, decoded)
