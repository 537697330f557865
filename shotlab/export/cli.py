"""`shotlab export` and `shotlab predict`: bundles and decisions.

Only click is imported here; each command imports its work when it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

COMMANDS: list[click.Command] = []  # registered on the parent group by the parent's cli module

from shotlab.core.output import printable
from shotlab.export.formats import FORMATS
from shotlab.export.runtime_choice import chosen_runtime, runtime_options, warn_regression
from shotlab.runtime.signing import trusted_key_option


def read_preprocessing(path: Path | None):
    """A preprocessing contract from a JSON file (the keys of a bundle's `preprocessing`)."""
    if path is None:
        return None
    import json

    from shotlab.core.errors import InputError
    from shotlab.runtime.contract import Preprocessing

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        # Class names come from the checkpoint; a device contract need not repeat them.
        return Preprocessing.from_dict({"class_names": [], **data})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError,
            AttributeError) as exc:
        raise InputError(f"{path}: not a preprocessing contract ({exc}); expected JSON with "
                         f"input_size, mean, std, interpolation, crop_pct, crop_mode, "
                         f"channel_order as in a bundle's manifest.json") from None
    except InputError as exc:  # a field the pipeline cannot run with, named by the contract
        raise InputError(f"{path}: {exc}") from None


@click.command("export")
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.option("--to", "to", default="onnx", show_default=True, metavar="FORMATS",
              help=f"Comma-separated formats: {', '.join(FORMATS)} (tensorrt implies onnx).")
@click.option("--fp16", is_flag=True, help="Also an FP16 model (ONNX; TensorRT FP16 flag).")
@click.option("--int8", is_flag=True, help="TensorRT INT8, calibrated on the train split.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Bundle folder [default: RUN/bundle].")
@click.option("--zip", "zip_bundle", is_flag=True, help="Also write the bundle as one .zip.")
@click.option("--force", is_flag=True, help="Replace an existing bundle at --out.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.99, show_default=True,
              help="Refuse when top-1 agreement with PyTorch is lower.")
@click.option("--recall-tolerance", type=click.FloatRange(0, 1), default=0.02,
              show_default=True, help="Refuse when recall on an unsafe class drops by more.")
@click.option("--allow-regression", is_flag=True,
              help="Ship even when the gate fails (the report says so loudly).")
@click.option("--preprocessing", "preprocessing_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Deploy with this preprocessing contract (JSON) instead of the "
                   "checkpoint's; the gate measures what it costs.")
@click.option("--no-explain", is_flag=True, help="Leave Grad-CAM/LIME out of the report.")
@click.option("--sign-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Sign the bundle with this Ed25519 private key (`shotlab keygen`).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_command(run, to, fp16, int8, out, zip_bundle, force, min_agreement,
                   recall_tolerance, allow_regression, preprocessing_file, no_explain,
                   sign_key, as_json) -> None:
    """Export the best model of training run RUN as a validated bundle.

    The bundle holds the model(s), manifest.json (classes, policy, thresholds, preprocessing,
    hashes of every file) and report.html/json measured through each runtime on the run's test
    split. Export refuses to ship a model that regressed against PyTorch (see --min-agreement,
    --recall-tolerance); the refused bundle is left in OUT.rejected/ for reading.

    \b
    Examples:
      shotlab export ~/.shotlab/runs/20261122-101500-vehicles-lite0-partial
      shotlab export RUN --to onnx --fp16 --zip --out bundles/vehicles
      shotlab export RUN --to onnx,tensorrt --fp16 --int8      # on a GPU machine
    """
    from shotlab.core.output import echo_json
    from shotlab.export.exporter import export_run
    from shotlab.export.formats import parse_formats
    from shotlab.export.validate import GateRules

    formats = parse_formats(to)
    result = export_run(run, formats=formats, fp16=fp16, int8=int8, out=out,
                        zip_bundle=zip_bundle, force=force,
                        rules=GateRules(min_agreement, recall_tolerance, allow_regression),
                        preprocessing=read_preprocessing(preprocessing_file),
                        explain=not no_explain, sign_key=sign_key)
    if as_json:
        return echo_json(result.to_dict())
    echo_export(result)


def echo_export(result) -> None:
    from shotlab.core.output import table
    from shotlab.export.exporter import int8_use

    data = result.to_dict()
    click.echo(f"Bundle: {data['bundle']}" + (f"  (zip: {data['zip']})" if data["zip"] else ""))
    if data["removed_rejected"]:
        this = ("was shipped with --allow-regression" if data["gate"]["allowed_regression"]
                else "passed")
        click.echo(f"Removed {data['removed_rejected']}: an earlier export to this --out the "
                   f"gate refused (this one {this}).")
    rows = [[name, f"{p['max_abs_diff']:.2e}", f"{p['top1_agreement']:.3f}"]
            for name, p in data["agreement"].items()]
    rows += [[f"{name} ({p['n']} clips)", f"{p['max_abs_diff']:.2e}", f"{p['top1_agreement']:.3f}"]
             for name, p in data.get("clip_agreement", {}).items()]
    click.echo(table(["runtime", "max |dp|", "top-1 agreement"], rows))
    for item in data["skipped"]:
        click.echo(printable(f"Warning: {data['split']} sample {item['path']} left out of the "
                             f"report: {item['reason']}"), err=True)
    if data["skipped"]:
        click.echo(f"Measured on {data['measured']} {data['split']} samples; restore the files "
                   f"left out, or train again on the dataset as it is now", err=True)
    for item in data["int8_left_out"]:
        click.echo(printable(f"Warning: INT8 {int8_use(item)} left out {item['path']}: "
                             f"{item['reason']}"), err=True)
    for note in data["gate"].get("unchecked", []):
        click.echo(printable(f"Warning: {note}; add some to that split to check the export"),
                   err=True)
    if data["gate"]["allowed_regression"]:
        click.echo("WARNING: shipped with a regression (--allow-regression): "
                   + "; ".join(data["gate"]["failures"]), err=True)
    click.echo(f"Report: {data['report']}")


COMMANDS.append(export_command)


@click.command("predict")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("decisions.jsonl"), show_default=True,
              help="Decisions file (replaced when the run succeeds); review_queue.jsonl is "
                   "written beside it.")
@click.option("--dataset", help="Also write predictions into this FiftyOne dataset.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@runtime_options
@click.option("--explain", is_flag=True,
              help="Store explanations for flagged and needs-review decisions "
                   "(explanations.sqlite beside --out).")
@trusted_key_option
@click.option("--allow-empty", is_flag=True,
              help="Write empty decisions when PATHS hold no readable image (else exit 2).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Pixel bomb limit per image and per clip frame [default: 89,478,485 per "
                   "image (PIL's), 33,177,600 per frame (8K)].")
@click.option("--max-clip-frames", type=click.IntRange(min=2), default=None,
              help="Clips: most frames a clip may have; a longer one is skipped with the "
                   "reason before decoding [default: 18,000: 5 minutes at 60 fps].")
@click.option("--sampling", default=None, metavar="SPEC",
              help="Clips: frames to score, uniform:N, fps:F or keyframes [default: the "
                   "bundle's clip contract, else uniform:8].")
@click.option("--aggregate", "aggregate", multiple=True, metavar="[CLASS=]RULE",
              help="Clips: pool a class's frame scores with mean, max or topk:K (repeatable; "
                   "a bare RULE applies to every class not named) [default: the bundle's, else "
                   "max for unsafe classes and mean for the rest].")
@click.option("--early-exit", is_flag=True,
              help="Clips: stop decoding a clip once an unsafe class (max or topk) is over its "
                   "threshold by the margin; the decision says so.")
@click.option("--margin", type=click.FloatRange(0, 1), default=None,
              help="Clips: how far over the threshold --early-exit waits for [default: 0.1].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--ray", "on_ray", is_flag=True,
              help="Predict on Ray Data: an actor pool (one CPU each) spread over the cluster.")
@click.option("--address", help="With --ray: the Ray cluster to join (e.g. HEAD:6379) "
                                "[default: start a local Ray on 127.0.0.1].")
def predict_command(bundle, paths, out, dataset, batch_size, fp16, runtime, explain, trusted_keys,
                    allow_empty, max_pixels, max_clip_frames, sampling, aggregate, early_exit,
                    margin, as_json, on_ray, address) -> None:
    """Run BUNDLE on image and clip files or folders (PATHS); one decision per image or clip.
    A text bundle reads comments from CSV or JSONL files (a `text` column) or .txt files
    (one comment per line); one decision per comment, bad rows listed by line.

    Hashes of the bundle's files are verified first; preprocessing comes from its manifest.
    Unreadable files are listed with the reason and skipped. The decisions and the review
    queue replace the old ones only when the whole run (--explain, --dataset) succeeds.
    A clip's frames are sampled, scored as images and pooled per class; its decision adds
    the segments (seconds) a reviewer should watch (docs/video.md).

    \b
    Examples:
      shotlab predict runs/.../bundle photos/ --out decisions.jsonl
      shotlab predict bundle.zip incoming/ --dataset moderation-inbox
      shotlab predict bundle clip.mp4 --sampling fps:1 --early-exit
      shotlab predict runs/.../bundle /library --ray --address HEAD:6379
      shotlab predict comments-bundle comments.csv --out decisions.jsonl
    """
    from shotlab.core.output import echo_json
    from shotlab.export import predict
    from shotlab.runtime.bundle import load_bundle

    check_ray_options(on_ray, address, explain)
    if dataset is not None:  # an empty name (an unset $DS) would skip the store without a word
        from shotlab.core.names import check_dataset_name

        check_dataset_name(dataset)
    predict.check_outputs(out, bundle)
    with predict.writing_outputs(out):  # a second run into --out is refused, not lost
        loaded = load_bundle(bundle, trusted_keys=trusted_keys or None)
        noun = input_noun(loaded)
        if noun != "image":
            refuse_folders(paths, noun)
        unwalked = []  # folders not walked: loops of links, folders that cannot be listed
        files = predict.collect_paths(paths, unwalked)
        require_images(files, paths, allow_empty, bad=unwalked)
        runtime = chosen_runtime(runtime, fp16, loaded)
        warn_regression(loaded, runtime)
        if noun == "comment":
            result = text_decisions(loaded, files, runtime=runtime, batch_size=batch_size,
                                    dataset=dataset, on_ray=on_ray, max_pixels=max_pixels)
        elif noun == "post":  # image + caption: PATHS are CSV/JSONL of posts
            result = post_decisions(loaded, files, runtime=runtime, batch_size=batch_size,
                                    dataset=dataset, on_ray=on_ray, explain=explain,
                                    max_pixels=max_pixels)
        else:
            kinds = predict.split_kinds(files)  # (images, clips)
            if dataset:  # before any image is decided
                from shotlab.export.dataset import check_dataset

                check_dataset(dataset, loaded, *kinds)
            result = image_decisions(loaded, kinds, runtime=runtime, batch_size=batch_size,
                                     explain=explain, on_ray=on_ray, address=address,
                                     sampling=sampling, rules=parse_rules(aggregate),
                                     margin=margin, early_exit=early_exit,
                                     max_pixels=max_pixels, max_frames=max_clip_frames)
        result.bad[:0] = unwalked
        require_images(result.decisions, paths, allow_empty, bad=result.bad, noun=noun)
        with predict.staged_decisions(out, result.decisions, locked=True) as written:
            data = outcome(result, loaded.classes, *written)
            if dataset:  # before the store: a rerun after a failure updates the same samples
                from shotlab.export.dataset import write_to_dataset

                data["dataset"] = write_to_dataset(dataset, result.decisions, task=loaded.task,
                                                   bundle_name=os.path.abspath(loaded.origin))
            if explain:
                data["explanations"] = record_explanations(loaded, result, out, runtime=runtime)
    if as_json:
        return echo_json(data)
    echo_predict(data)


def outcome(result, classes, decisions_path: Path, queue_path: Path) -> dict:
    """What `predict` says of a run: counts, where its files are, the seconds to watch of each
    clip that needs attention, bad files, and how coarsely clips were sampled or left unseen."""
    from shotlab.export import predict

    return {**predict.summary(result, classes), "decisions": str(decisions_path),
            "segments": [{"path": d["path"], "segments": d["segments"],
                          "early_exit": d["early_exit"]}
                         for d in result.decisions if d.get("kind") == "clip"
                         and predict.needs_attention(d)],
            "review_queue": str(queue_path),
            "bad_files": [{"path": p, "reason": r} for p, r in result.bad],
            **coarsest_sampling(result.decisions), **unseen_stretches(result.decisions)}


def image_decisions(bundle, kinds, *, runtime, batch_size, explain, on_ray, address, sampling,
                    rules, margin, early_exit, max_pixels, max_frames=None):
    """Decisions for the (images, clips) of `kinds` (export/predict.py, predict_clips.py)."""
    from shotlab.export import predict

    images, clips = kinds
    if on_ray:  # the images on Ray Data; clips (few, long) are decided in this process
        from shotlab.export.ray_predict import predict_paths_ray

        result = predict_paths_ray(bundle, images, address=address, runtime=runtime,
                                   batch_size=batch_size, max_pixels=max_pixels)
    else:
        result = predict.predict_paths(bundle, images, batch_size=batch_size, runtime=runtime,
                                       keep_inputs=explain, max_pixels=max_pixels)
    if clips:
        add_clip_decisions(result, bundle, clips, runtime=runtime, explain=explain,
                           sampling=sampling, rules=rules, margin=margin,
                           early_exit=early_exit, max_pixels=max_pixels, max_frames=max_frames)
    return result


def coarsest_sampling(decisions: list[dict]) -> dict:
    """{"sampling_step": the widest gap between a clip's sampled frames (seconds, its end
    counted), "sampling_step_clip": that clip}, or {} without clips: how short a scene can be
    and still fall between the samples (uniform:8 on a 29 s clip: 4.1 s)."""
    steps = [(d["sampling_step"], d["path"]) for d in decisions
             if d.get("kind") == "clip" and d.get("frames")]
    if not steps:
        return {}
    step, path = max(steps, key=lambda s: s[0])
    return {"sampling_step": round(float(step), 3), "sampling_step_clip": path}


def unseen_stretches(decisions: list[dict]) -> dict:
    """{"unseen": [{path, seconds, reason}]}: the clips with seconds the model never saw (decoding
    gaps: a truncated file, frames that would not decode), or {} when none has any."""
    found = [{"path": d["path"], "seconds": round(sum(g["end"] - g["start"] for g in d["gaps"]), 3),
              "reason": d["gaps"][0]["reason"]}
             for d in decisions if d.get("kind") == "clip" and d.get("gaps")]
    return {"unseen": found} if found else {}


def refuse_options(kind: str, refused: dict) -> None:
    """BadParameter for the first option given that a `kind` bundle does not take."""
    for flag, (given, why) in refused.items():
        if given:
            raise click.BadParameter(f"not for a {kind} bundle yet: {why}; run predict without "
                                     f"{flag}", param_hint=flag)


def text_decisions(bundle, files, *, runtime, batch_size, dataset, on_ray, max_pixels):
    """Decisions for every comment of the CSV, JSONL or .txt `files` (export/predict_texts.py)."""
    from shotlab.export.predict_texts import predict_texts

    refuse_options("text", {"--dataset": (dataset, "a text dataset is made by `shotlab curate "
                                                   "import`"),
                            "--ray": (on_ray, "comments are decided in this process"),
                            "--max-pixels": (max_pixels, "comments have no pixels")})
    return predict_texts(bundle, files, batch_size=batch_size, runtime=runtime)


def post_decisions(bundle, files, *, runtime, batch_size, dataset, on_ray, explain,
                   max_pixels):
    """Decisions for every post (image + caption) of the CSV or JSONL `files`
    (export/predict_posts.py); with `explain`, `.inputs` keeps each post's parts."""
    from shotlab.export.predict_posts import predict_posts

    refuse_options("post", {"--dataset": (dataset, "posts are predicted into the decisions "
                                                   "file"),
                            "--ray": (on_ray, "posts are decided in this process")})
    return predict_posts(bundle, files, batch_size=batch_size, runtime=runtime,
                         keep_inputs=explain, max_pixels=max_pixels)


def check_ray_options(on_ray: bool, address, explain: bool) -> None:
    if address and not on_ray:
        raise click.BadParameter("applies to --ray only; add --ray", param_hint="--address")
    if on_ray and explain:
        raise click.BadParameter("--explain runs in this process on the inputs it decoded; "
                                 "with --ray, queue appeals and run `shotlab explain pending "
                                 "STORE --ray`, or predict without --ray", param_hint="--explain")


def add_clip_decisions(result, bundle, clips, *, runtime: str, explain: bool, sampling, rules,
                       margin, early_exit: bool, max_pixels: int | None = None,
                       max_frames: int | None = None) -> None:
    """Append one decision per clip (and, for --explain, its top frames) to `result`."""
    from shotlab.export.predict_clips import clip_contract, contract_departures, predict_clips

    contract = clip_contract(bundle, sampling=sampling, rules=rules, margin=margin)
    for line in contract_departures(bundle, contract, early_exit=early_exit):
        click.echo(printable(f"warning: {line}"), err=True)
    found = predict_clips(bundle, clips, contract=contract, runtime=runtime,
                          early_exit=early_exit, keep_inputs=explain, max_pixels=max_pixels,
                          max_frames=max_frames)
    result.decisions += found.decisions
    result.bad += found.bad
    result.inputs += [top_frames(bundle, d, frames, probs) for d, frames, probs in
                      zip(found.decisions, found.inputs, found.frame_probs)]


def parse_rules(given) -> dict[str, str]:
    """--aggregate values -> {class: rule}; a bare rule is stored under "*" (every other class)."""
    rules = {}
    for text in given:
        name, sep, rule = text.rpartition("=")
        rules[name.strip() if sep else "*"] = rule.strip()
    return rules


def top_frames(bundle, decision: dict, frames, probs) -> list[tuple]:
    """For --explain on a clip: for each flagged class (else the class explained), the frame
    that scores highest for it, as (class, frame, timestamp); the decision lists them in
    `explained_frames` (the store keeps each under the decision id with its timestamp)."""
    from shotlab.explain.tier1 import target_class
    from shotlab.export.predict_clips import top_frame

    if not (decision["flagged"] or decision["needs_review"]):
        return []
    chosen = []
    for name in decision["flagged"] or [target_class(decision)]:
        best = top_frame(probs, bundle.classes, name)
        chosen.append((name, frames[best], decision["frames"][best]))
    decision["explained_frames"] = [{"class": n, "timestamp": t} for n, _, t in chosen]
    return chosen


# What a bundle's PATHS hold, by its inputs: image and clip files (and folders of them), or
# files of comments or of posts (CSV, JSONL; comments also .txt), never searched for in folders.
# Sampled frames further apart than this (seconds) get a note: a short scene can fall between.
COARSE_STEP_S = 2.0
PATH_NOUNS = {"image": "image or clip files or folders", "comment": "comment files (CSV, JSONL or .txt)",
              "post": "post files (CSV or JSONL with image_path and text)"}


def input_noun(bundle) -> str:
    if bundle.preprocessing.kind == "text":
        return "comment"
    return "post" if len(bundle.parts) > 1 else "image"


def refuse_folders(paths, noun: str) -> None:
    """A comment or post bundle reads the files given; a folder is named, not searched (it may
    hold other tables: labels, exports)."""
    from shotlab.core.errors import InputError

    for path in paths:
        if Path(path).is_dir():
            raise InputError(f"{path}: a folder; a {noun} bundle reads {PATH_NOUNS[noun]}, "
                             f"given one by one: give the files themselves (e.g. {path}/*.csv)")


def require_images(found: list, paths, allow_empty: bool, bad=(), noun: str = "image") -> None:
    """Exit 2 when nothing is left to decide (no input found, or none readable): an empty run
    would replace the decisions with nothing. `--allow-empty` writes the empty files."""
    from shotlab.core.errors import InputError

    if found or allow_empty:
        return
    given = ", ".join(str(p) for p in paths)
    unit = "files" if noun == "image" else "rows"
    shown = "image or clip" if noun == "image" else noun  # an image bundle decides both
    first = f"{bad[0][0]}: {bad[0][1]}" if bad else ""
    why = (f"no {shown} file there" if not bad else
           f"the one {shown} {unit[:-1]} could not be read ({first})" if len(bad) == 1 else
           f"none of the {len(bad)} {shown} {unit} could be read (first: {first})")
    raise InputError(f"{given}: {why}; nothing was predicted and the decisions were left as "
                     f"they were: give {PATH_NOUNS[noun]}, or pass --allow-empty to write "
                     f"empty decisions")


def record_explanations(bundle, result, out: Path, *, runtime: str = "onnx") -> dict:
    """--explain: tier-1 explanations of every flagged or review decision, in
    explanations.sqlite beside `out` (Grad-CAM for images and clips' top frames, IG words for
    comments, the modality split, Grad-CAM and caption IG for posts)."""
    from shotlab.export.predict import needs_attention

    if not any(needs_attention(d) for d in result.decisions):
        return {"stored": 0, "store": None}  # nothing flagged or queued: no store written
    if len(bundle.parts) > 1:
        from shotlab.export.predict_posts import record_post_explanations

        return record_post_explanations(bundle, result, out, runtime=runtime)
    if bundle.preprocessing.kind == "text":
        return record_text_explanations(bundle, result, out)
    return record_image_explanations(bundle, result, out)


def record_image_explanations(bundle, result, out: Path) -> dict:
    """Grad-CAM of every flagged or review image, and of each flagged clip's top frames."""
    import numpy as np

    from shotlab.core.errors import ShotlabError
    from shotlab.export.predict import needs_attention

    try:
        from shotlab.explain.tier1 import record_flagged
    except ImportError as exc:
        raise ShotlabError(f"--explain needs shotlab.explain.tier1 ({exc}); the decisions "
                           f"were left as they were, run again without --explain") from None
    rows = []  # (decision, input, target class or None, extra params or None)
    for decision, given in zip(result.decisions, result.inputs):
        if decision.get("kind") == "clip":
            rows += [(decision, frame, name, {"timestamp": time}) for name, frame, time in given]
        elif needs_attention(decision):
            rows.append((decision, given, None, None))
    store_path = out.parent / "explanations.sqlite"
    decisions, inputs, targets, params = zip(*rows)
    stored = record_flagged(bundle, list(decisions), np.stack(inputs), store_path,
                            targets=list(targets), params=list(params))
    return {"stored": stored, "store": str(store_path)}


def record_text_explanations(bundle, result, out: Path) -> dict:
    """IG word scores (with their faithfulness) of every flagged or review comment."""
    from shotlab.explain.text_tier1 import record_flagged_texts
    from shotlab.export.predict import needs_attention

    chosen = [d for d in result.decisions if needs_attention(d)]
    if not chosen:
        return {"stored": 0, "store": None}
    store_path = out.parent / "explanations.sqlite"
    stored = record_flagged_texts(bundle, chosen, [d["text"] for d in chosen], store_path)
    return {"stored": stored, "store": str(store_path)}


def rows_read(data: dict) -> bool:
    """Whether the inputs were rows of files (comments, posts), whose bad ones are rows."""
    return bool(data.get("texts") or data.get("posts"))


def echo_predict(data: dict) -> None:
    from shotlab.core.output import plural

    for bad in data["bad_files"]:
        click.echo(printable(f"skipped {bad['path']}: {bad['reason']}"), err=True)
    labels = printable(", ".join(f"{name} {count}" for name, count in data["labels"].items()))
    counted = [plural(data[k], word) for k, word in
               (("images", "image"), ("clips", "clip"), ("texts", "comment"), ("posts", "post"))
               if data.get(k)]
    click.echo(f"{' and '.join(counted) or '0 images'} predicted ({labels}); "
               f"{data['flagged']} flagged, {data['needs_review']} need review, "
               f"{plural(data['bad'], 'bad row' if rows_read(data) else 'bad file')} skipped")
    for clip in data.get("segments", []):
        spans = ", ".join(f"{s['class']} {s['start']:.1f}-{s['end']:.1f} s"
                          + ("" if s["flagged"] else " (review)") for s in clip["segments"])
        stopped = (f"; decoding stopped at {clip['early_exit']['at']:.1f} s"
                   if clip["early_exit"] else "")
        click.echo(printable(f"  {clip['path']}: watch {spans or 'the whole clip'}{stopped}"))
    for clip in data.get("unseen", []):
        click.echo(printable(f"note: {clip['path']}: {clip['seconds']:.1f} s the model never "
                             f"saw ({clip['reason']}); its decision is of the rest (the "
                             f"stretches are its `gaps`)"), err=True)
    if data.get("sampling_step", 0) > COARSE_STEP_S:
        click.echo(f"note: frames were sampled up to {data['sampling_step']:.1f} s apart (e.g. "
                   f"{data['sampling_step_clip']}): what is on screen for less than that can "
                   f"fall between samples; --sampling fps:1 samples every second", err=True)
    click.echo(f"Decisions: {data['decisions']}")
    click.echo(f"Review queue: {data['review_queue']}")
    if "dataset" in data:
        d = data["dataset"]
        click.echo(f"Dataset {d['dataset']}: {d['added']} added, {d['updated']} updated; "
                   f"saved view review-queue ({d['review_queue']})")
    if "explanations" in data:
        info = data["explanations"]
        click.echo(f"Explanations stored: {info['stored']} ({info['store']})" if info["store"]
                   else "Explanations stored: none (nothing flagged or queued for review)")


COMMANDS.append(predict_command)


@click.command("keygen")
@click.argument("prefix", type=click.Path(dir_okay=False, path_type=Path))
def keygen_command(prefix: Path) -> None:
    """Make an Ed25519 key pair for signing bundles: PREFIX.key (private, mode 0600; keep it
    off the machines that run models) and PREFIX.pub (give it to `predict --trusted-key` or
    $SHOTLAB_TRUSTED_KEYS where bundles are run).

    \b
    Example:
      shotlab keygen keys/moderation && shotlab export RUN --sign-key keys/moderation.key
    """
    from shotlab.core.files import check_can_write
    from shotlab.runtime.signing import generate_keypair

    check_can_write(prefix, "PREFIX")
    private, public = generate_keypair(prefix)
    click.echo(f"Private key: {private}\nPublic key: {public}")


COMMANDS.append(keygen_command)
