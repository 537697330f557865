"""`shotlab predict BUNDLE clip.mp4`: one decision per clip from its sampled frames.

Each clip is sampled under the clip contract (`runtime/clip_scores.py`: the bundle's own, or the
command's --sampling / --aggregate over it), its frames are preprocessed and scored by the
bundle's image model, the scores are pooled per class, and the pooled row goes through the one
decision rule (`export.predict.decision_records`). The record adds, beside the image fields:

    kind            "clip"
    duration        seconds
    frames          the timestamps scored (seconds from the first frame)
    frames_decoded  how many frames the decoder produced (early exit makes it smaller)
    early_exit      {"class", "at"} when --early-exit stopped decoding on a clear flag, else None
    segments        per unsafe class, the runs of sampled frames at or over its review band or
                    threshold: {class, start, end, peak, flagged}; what a reviewer watches
    gaps            spans that failed to decode (the rest of the clip was still scored)
    clip            the sampling and aggregation the decision was made under
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shotlab.core.errors import BadImageError


@dataclass
class ClipScores:
    """What scoring one clip gave: per-frame scores and how decoding went."""

    facts: object  # core.clips.ClipFacts
    times: list[float] = field(default_factory=list)
    # per scored frame, the last sampled time it was still on screen (its near-identical
    # repeats are dropped unscored); `segments` stretches a run over them
    last_seen: list[float] = field(default_factory=list)
    sampled: list[float] = field(default_factory=list)  # every sampled time, repeats too
    probs: list[np.ndarray] = field(default_factory=list)
    inputs: list[np.ndarray] = field(default_factory=list)
    decoded: int = 0
    stopped_on: dict | None = None
    gaps: list = field(default_factory=list)
    until: float | None = None  # where the last scored sample's stretch ends (`segments`)


def fresh_frames(clip, preprocessing, times):
    """(timestamp, preprocessed frame) for each frame of an open `clip` at `times`, in time
    order; a near-identical repeat of the frame before comes as (timestamp, None), unprocessed.
    `.close()` stops the decoder."""
    from PIL import Image

    from shotlab.core.clips import NearIdentical

    fresh = NearIdentical()
    frames = clip.frames_at(times)
    try:
        for frame in frames:
            yield frame.timestamp, (preprocessing.to_array(Image.fromarray(frame.pixels))
                                    if fresh.is_new(frame.pixels) else None)
    finally:
        frames.close()


def score_clip(path: Path, runner, preprocessing, contract, thresholds, *,
               early_exit: bool = False, keep_inputs: bool = False,
               max_pixels: int | None = None, max_frames: int | None = None,
               deadline: float | None = None) -> ClipScores:
    """Decode the sampled frames of `path` in time order and score them. With `early_exit`,
    each frame is scored as it is decoded and decoding stops once `contract.clear_flag` says an
    unsafe class is flagged beyond doubt; otherwise the frames are scored in one batch. With
    `runner=None` nothing is scored: `inputs` holds the frames (the service batches them).
    `max_pixels`, `max_frames`: the per-frame and per-clip limits (None: the clip reader's
    defaults); `deadline`: a time.monotonic() past which decoding stops (core.clips.
    DeadlinePassed: the service's timeout)."""
    from shotlab.core.clips import (DEFAULT_MAX_FRAME_PIXELS, DEFAULT_MAX_FRAMES, ClipReader,
                                    Sampling, merge_gaps)

    with ClipReader(path, max_pixels=max_pixels or DEFAULT_MAX_FRAME_PIXELS,
                    max_frames=max_frames or DEFAULT_MAX_FRAMES, deadline=deadline) as clip:
        result, pending = ClipScores(None), []
        planned = Sampling.parse(contract.sampling).times(clip)
        frames = fresh_frames(clip, preprocessing, planned)
        for timestamp, array in frames:
            result.sampled.append(timestamp)
            if array is None:  # a repeat: unscored, but the frame before is still on screen
                result.last_seen[-1] = timestamp
                continue
            result.times.append(timestamp)
            result.last_seen.append(timestamp)
            pending.append(array)
            if early_exit:
                result.probs += list(runner(np.stack(pending)))
                result.inputs += pending if keep_inputs else []
                pending = []
                flagged = contract.clear_flag(np.stack(result.probs), thresholds)
                if flagged:
                    result.stopped_on = {"class": flagged, "at": timestamp}
                    frames.close()  # stops the decoder: no later frame is read
                    break
        if pending:
            result.probs += list(runner(np.stack(pending))) if runner is not None else []
            result.inputs += pending if keep_inputs or runner is None else []
        result.facts = clip.facts  # after decoding: the rotation is known without another frame
        result.decoded = clip.decoded
        result.until = stretch_end(result, planned)
        step = 1.0 / result.facts.fps if result.facts.fps else 0.0
        result.gaps = merge_gaps(clip.gaps, step)
    if not result.times:
        from shotlab.core.clips import BadClipError

        reasons = "; ".join(sorted({g.reason for g in result.gaps})) or "no frame decoded"
        raise BadClipError(path, f"no frame could be decoded ({reasons})")
    return result


def stretch_end(scored: ClipScores, planned: list[float]) -> float | None:
    """Where the last scored sample's seconds end: the clip's end, or after an early exit
    halfway to the next planned sample (what comes later was never looked at)."""
    if not scored.times:
        return None
    later = [t for t in planned if t > scored.times[-1]]
    if scored.stopped_on and later:
        return (scored.times[-1] + later[0]) / 2
    return scored.facts.duration


def top_frame(frame_probs: np.ndarray, classes, name: str) -> int:
    """The frame scoring highest for class `name`: the frame the maps of a clip explain for it
    (for a decision's own class, `explain.tier1.target_class(record)`)."""
    return int(np.asarray(frame_probs)[:, list(classes).index(name)].argmax())


def clip_record(bundle, path: Path, scored: ClipScores, contract, thresholds, *,
                runtime: str) -> dict:
    """The decision record of one clip: the image record over the pooled scores, plus the
    clip's own fields (see the module docstring)."""
    from shotlab.export.predict import decision_records
    from shotlab.runtime.clip_scores import segments

    probs = np.stack(scored.probs)
    record = decision_records(bundle, contract.pool(probs)[None], [scored.facts.sha256],
                              runtime=runtime, paths=[path], thresholds=thresholds,
                              pooled=True)[0]
    return {**record, "kind": "clip", "duration": round(scored.facts.duration, 3),
            "frames": [round(t, 3) for t in scored.times], "frames_decoded": scored.decoded,
            "sampling_step": round(widest_gap(scored.sampled, None if scored.stopped_on
                                              else scored.facts.duration), 3),
            "early_exit": scored.stopped_on,
            "segments": segments(scored.times, probs, bundle.classes, thresholds,
                                 end=scored.until, last_seen=scored.last_seen or None),
            "gaps": [g.to_dict() for g in scored.gaps], "clip": contract.to_dict()}


def widest_gap(times, end: float | None = None) -> float:
    """The widest gap between sampled `times` (seconds), the one to `end` counted: how short a
    scene can be and still fall between the samples. Near-identical repeats count as sampled:
    their content was seen (it is the frame before's)."""
    times = list(times) + ([max(end, times[-1])] if end is not None and times else [])
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def contract_departures(bundle, contract, *, early_exit: bool) -> list[str]:
    """Warnings for --sampling/--aggregate that leave the clip contract the bundle's clip
    thresholds were chosen under (its scores then differ: the thresholds may not keep their
    recall), and for --early-exit where no unsafe class can stop a clip."""
    from shotlab.runtime.clip_scores import parse_rule

    own, said, unsafe = clip_contract(bundle), [], list(clip_thresholds(bundle))
    if (bundle.clip or {}).get("thresholds"):  # chosen under the bundle's own contract
        if contract.sampling != own.sampling:
            said.append(f"--sampling {contract.sampling}: the clip thresholds were chosen on "
                        f"validation clips sampled {own.sampling}; scores sampled otherwise "
                        f"differ, so the thresholds may not keep their recall")
        moved = [c for c in unsafe if contract.aggregation[c] != own.aggregation[c]]
        if moved:
            said.append(f"--aggregate: {', '.join(f'{c}={contract.aggregation[c]}' for c in moved)}"
                        f" departs from the pooling the clip thresholds were chosen under ("
                        f"{', '.join(f'{c}={own.aggregation[c]}' for c in moved)}); they may "
                        f"not keep their recall")
    if early_exit and unsafe and all(parse_rule(contract.aggregation[c])[0] == "mean"
                                     for c in unsafe):
        said.append("--early-exit: every unsafe class is pooled by mean, which a later frame "
                    "can lower, so no clip stops early (max or topk:K can)")
    return said


def clip_contract(bundle, *, sampling=None, rules=None, margin=None):
    """The bundle's clip contract with the command's settings over it."""
    from shotlab.runtime.clip_scores import ClipContract

    return ClipContract.resolve(bundle.clip, bundle.classes, bundle.policy.get("unsafe", ()),
                                sampling=sampling, rules=rules, margin=margin)


def clip_thresholds(bundle) -> dict:
    """Thresholds chosen on validation clips where the bundle has them, else the frame ones."""
    return dict((bundle.clip or {}).get("thresholds") or bundle.thresholds)


def predict_clips(bundle, paths, *, contract=None, runtime: str = "onnx",
                  early_exit: bool = False, progress=None, keep_inputs: bool = False,
                  max_pixels: int | None = None, max_frames: int | None = None):
    """Decisions for the clips at `paths` (an `export.predict.Prediction`); bad clips are
    listed in `.bad` with the reason, not raised. With `keep_inputs`, `.inputs` holds each
    decision's frames (F, 3, H, W) and `.frame_probs` their scores (for --explain)."""
    from shotlab.core.progress import progress_bar
    from shotlab.export.predict import Prediction
    from shotlab.runtime.runners import make_runner

    contract = contract or clip_contract(bundle)
    thresholds = clip_thresholds(bundle)
    runner = make_runner(bundle, runtime)
    result = Prediction()
    result.frame_probs = []
    for path in progress_bar(paths, enabled=progress, unit="clip", desc="Predicting clips"):
        try:
            scored = score_clip(Path(path), runner, bundle.preprocessing, contract, thresholds,
                                early_exit=early_exit, keep_inputs=keep_inputs,
                                max_pixels=max_pixels, max_frames=max_frames)
        except BadImageError as exc:
            result.bad.append((str(path), exc.reason))
            continue
        result.decisions.append(clip_record(bundle, Path(path), scored, contract, thresholds,
                                            runtime=runtime))
        if keep_inputs:
            result.inputs.append(np.stack(scored.inputs))
            result.frame_probs.append(np.stack(scored.probs))
    return result
