"""`shotlab curate ...` commands. Only click is imported here; each command imports its work."""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = ("auto", "folder", "csv", "roboflow", "fiftyone", "text", "posts")
EXPORT_FORMATS = ("folder", "csv", "fiftyone")


@click.group("curate")
def curate() -> None:
    """Import, inspect, export and review datasets in the FiftyOne store."""


def echo_import_report(report, as_json: bool) -> None:
    from shotlab.core.output import echo_json, plural, printable
    from shotlab.curate.summary import dataset_case_variants

    report.warnings = [*report.warnings, *dataset_case_variants(report.name)]

    if as_json:
        return echo_json(report.to_dict())
    text = report.kind == "text"
    counts = f"{report.already_present} already there, {len(report.skipped)} skipped"
    counts += "" if text else f", {report.ignored} ignored (not image files)"
    counts += f", {report.unlisted} not listed in their label file" if report.unlisted else ""
    click.echo(f"Imported {plural(report.added, 'new sample')} into '{report.name}' "
               f"({report.task}) from {report.source} [{report.format}]; {counts}.")
    if report.frames_dataset:
        how = (f"{report.frames_decoded} video frames decoded to reach them"
               if report.frames_decoded else "all from the workspace's frame cache, none decoded")
        click.echo(f"Frames ({report.sampling}): {plural(report.frames_added, 'frame')} added to "
                   f"'{report.frames_dataset}'; {how}.")
    for item in report.skipped:
        click.echo(printable(f"  skipped {item.path}: {item.reason}"))
    for warning in report.warnings:
        click.echo(printable(f"warning: {warning}"), err=True)
    if report.duplicate_groups and text:
        click.echo(f"Repeated texts: {plural(report.duplicate_groups, 'text')} on several lines, "
                   f"each imported once ({report.conflicting_groups} conflicting labels, listed "
                   f"above).")
    elif report.conflicting_groups and text:
        click.echo(f"Conflicting labels: {report.conflicting_groups} (see the warnings).")
    elif report.duplicate_groups:
        click.echo(f"Exact duplicates: {plural(report.duplicate_groups, 'group')} of identical "
                   f"files ({report.conflicting_groups} with conflicting labels); "
                   f"all copies were kept.")


@curate.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Dataset to create or add to.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="Source layout; auto detects FiftyOne exports, Roboflow exports, CSVs, folders, "
                   "comments (text: a .csv or .jsonl with a 'text' column) and posts (posts: "
                   "'image_path' and 'text' columns).")
@click.option("--multilabel", is_flag=True, help="Each sample may carry several labels.")
@click.option("--strict", is_flag=True, help="Fail (importing nothing) if any file would be skipped.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Refuse images (and clip frames) larger than this many pixels "
                   "(decompression bombs) [default 89,478,485; clips 33,177,600 a frame].")
@click.option("--allow-empty", is_flag=True,
              help="Accept a source with no image to import (else exit 2: usually a wrong path).")
@click.option("--zip-max-bytes", type=click.IntRange(min=1), default=None,
              help="A .zip may expand to at most this many bytes [env SHOTLAB_ZIP_MAX_BYTES; "
                   "default 16 GiB].")
@click.option("--zip-max-files", type=click.IntRange(min=1), default=None,
              help="A .zip may hold at most this many files [env SHOTLAB_ZIP_MAX_FILES; "
                   "default 200,000].")
@click.option("--zip-max-ratio", type=click.FloatRange(min=1), default=None,
              help="Largest compression ratio of a .zip or its members, against zip bombs "
                   "[env SHOTLAB_ZIP_MAX_RATIO; default 100].")
@click.option("--sampling", default=None, metavar="SPEC",
              help="Clips: which frames to take, uniform:N (N frames, both ends), fps:F or "
                   "keyframes [default: uniform:8].")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Clips: warn about clips longer than this (they are still imported) "
                   "[default: 30].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_command(path: Path, name: str, fmt: str, multilabel: bool, strict: bool,
                   max_pixels: int | None, allow_empty: bool, zip_max_bytes: int | None,
                   zip_max_files: int | None, zip_max_ratio: float | None, sampling: str | None,
                   max_seconds: float | None, as_json: bool) -> None:
    """Import images and labels from PATH: a folder (class/img or split/class/img), a CSV,
    a Roboflow export (folder or zip) or a FiftyOne export directory; or comments from a CSV or
    JSONL file with a `text` column.

    Files are checked (hashed and fully decoded) and referenced where they are; nothing is
    moved or modified. Re-importing the same files adds nothing twice.

    Clips (mp4, mov, m4v, avi, mkv, webm, mpg) in the same layouts make a clip dataset NAME and
    its frames dataset NAME-frames: frames are sampled with PyAV, written once as lossless PNGs
    into the workspace and carry clip_id and timestamp (docs/video.md).

    Comments (columns text, then label or one-hot tag columns, optional split and group) make a
    text dataset: each comment is stored once in the workspace, named by its sha256; bad rows
    are skipped and reported by line (docs/text.md).

    \b
    Examples:
      shotlab curate import ~/photos/vehicles --name vehicles
      shotlab curate import ~/clips --name clips --sampling fps:1
      shotlab curate import comments.csv --name comments
    """
    from shotlab.core.archive_limits import ZipLimits
    from shotlab.core.images import DEFAULT_MAX_PIXELS
    from shotlab.curate.importer import import_path

    if posts_source(path, fmt):
        return echo_import_report(import_posts_of(path, name, multilabel, strict, max_pixels,
                                                  allow_empty), as_json)
    limits = ZipLimits.resolve(zip_max_bytes, zip_max_files, zip_max_ratio)
    report = import_path(path, name, fmt=fmt, multilabel=multilabel, strict=strict,
                         max_pixels=max_pixels or DEFAULT_MAX_PIXELS, allow_empty=allow_empty,
                         zip_limits=limits, sampling=sampling, max_seconds=max_seconds)
    echo_import_report(report, as_json)


def posts_source(path: Path, fmt: str) -> bool:
    """--format posts, or (auto) a .csv/.jsonl with an image column and a text column."""
    if fmt == "posts":
        return True
    from shotlab.curate.post_import import looks_like_posts

    return fmt == "auto" and looks_like_posts(path)


def import_posts_of(path, name, multilabel, strict, max_pixels, allow_empty):
    from shotlab.core.images import DEFAULT_MAX_PIXELS
    from shotlab.curate.post_import import import_posts

    return import_posts(path, name, multilabel=multilabel, strict=strict,
                        max_pixels=max_pixels or DEFAULT_MAX_PIXELS, allow_empty=allow_empty)


@curate.group("pull")
def pull() -> None:
    """Download a dataset from a hosted service, then import it."""


@pull.command("roboflow")
@click.argument("ref", metavar="WORKSPACE/PROJECT/VERSION")
@click.option("--name", help="Dataset to import into [default: the project name].")
@click.option("--format", "fmt", type=click.Choice(["folder", "multiclass"]), default="folder",
              show_default=True, help="Roboflow export format to download.")
@click.option("--multilabel", is_flag=True, help="Import multiclass exports as multilabel.")
@click.option("--api-key", envvar="ROBOFLOW_API_KEY",
              help="Roboflow API key; prefer the env ROBOFLOW_API_KEY or Roboflow's own config "
                   "(`roboflow login`), as a key on the command line shows in `ps`. "
                   "shotlab never stores it.")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
def pull_roboflow(ref: str, name: str | None, fmt: str, multilabel: bool, api_key: str | None,
                  as_json: bool) -> None:
    """Download a Roboflow dataset version and import it.

    \b
    Example:
      shotlab curate pull roboflow my-team/vehicles/3 --name vehicles
    """
    from shotlab.curate.roboflow_pull import parse_ref, pull_and_import

    parsed = parse_ref(ref)
    report = pull_and_import(parsed, name or parsed.project, fmt=fmt, multilabel=multilabel,
                             api_key=api_key)
    echo_import_report(report, as_json)


@curate.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_command(as_json: bool) -> None:
    """List the datasets in the store with their task and size."""
    from shotlab.core import store
    from shotlab.core.output import echo_json, table

    rows = [{"name": n, "task": "half-made" if store.is_half_made(d) else store.task_of(d),
             "samples": len(d)}
            for n in store.list_datasets() for d in [store.load(n, half_made_ok=True)]]
    if as_json:
        return echo_json(rows)
    if not rows:
        return click.echo("No datasets yet; create one with `shotlab curate import PATH --name NAME`.")
    click.echo(table(["name", "task", "samples"], [list(r.values()) for r in rows]))


@curate.command("info")
@click.argument("name")
@click.option("--min-per-class", type=click.IntRange(min=1), default=5, show_default=True,
              help="Warn about classes with fewer images than this.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info_command(name: str, min_per_class: int, as_json: bool) -> None:
    """Class counts per split, class imbalance and tiny-class warnings for dataset NAME."""
    from shotlab.core.output import echo_json
    from shotlab.curate.summary import summarize

    summary = summarize(name, min_per_class=min_per_class)
    if as_json:
        return echo_json(summary.to_dict())
    click.echo(summary.render())


@curate.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_command(name: str, yes: bool) -> None:
    """Delete dataset NAME from the store. Image files are not touched.

    A clip dataset's frames dataset (NAME-frames) is deleted with it: left behind, a later
    import under NAME would take its stale frames for the new clips'."""
    from shotlab.core import store

    dataset = store.load(name, half_made_ok=True)
    frames = store.linked_frames(dataset)
    also = f" and its frames dataset '{frames.name}'" if frames is not None else ""
    if not yes:
        sizes = f"{len(dataset)} samples" + (f", {len(frames)} frames" if also else "")
        click.confirm(f"Delete dataset '{name}'{also} ({sizes})? Image files are kept",
                      abort=True)
    if frames is not None:
        frames.delete()
    dataset.delete()
    click.echo(f"Deleted dataset '{name}'{also}; image files were not touched.")


@curate.command("export")
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="folder",
              show_default=True, help="folder: split/class/img; csv: images/ + labels.csv; "
                                      "fiftyone: a FiftyOneDataset directory.")
def export_command(name: str, out: Path, fmt: str) -> None:
    """Copy dataset NAME with its labels and splits to OUT, in a layout `curate import` reads back.

    \b
    Example:
      shotlab curate export vehicles ./vehicles-export --format csv
    """
    from shotlab.curate.exporter import excluded_count, export_dataset

    count = export_dataset(name, out, fmt)
    click.echo(f"Exported {count} samples of '{name}' to {out} [{fmt}].")
    excluded = excluded_count(name)
    if excluded:
        click.echo(f"{excluded} sample(s) tagged 'exclude' "
                   + ("kept with their tags; `curate import` leaves them out." if fmt == "fiftyone"
                      else "left out (this layout holds no tags: they would come back as "
                           "ordinary labelled data)."))


@curate.command("policy")
@click.argument("name")
@click.option("--unsafe", help="Comma-separated classes to treat as unsafe (replaces the list).")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True),
              help="Recall thresholds must reach on unsafe classes [default 0.95].")
@click.option("--review-margin", type=click.FloatRange(0, 0.5, max_open=True),
              help="Scores this close to a threshold go to human review [default 0.1].")
@click.option("--version", "version", type=click.IntRange(min=1),
              help="Show this version (a decision's policy_version) instead of the current one.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def policy_command(name: str, unsafe: str | None, target_recall: float | None,
                   review_margin: float | None, version: int | None, as_json: bool) -> None:
    """Show or set dataset NAME's moderation policy (unsafe classes, target recall, review band).

    \b
    Example:
      shotlab curate policy moderation --unsafe violence,explicit --target-recall 0.97
      shotlab curate policy moderation --version 3     # the policy a decision names
    """
    from dataclasses import replace

    from shotlab.core import store
    from shotlab.core.output import echo_json, printable
    from shotlab.core.policy import policy_of, set_policy, version_of

    dataset = store.load(name)
    policy = policy_of(dataset)
    changes = {k: v for k, v in (("target_recall", target_recall), ("review_margin", review_margin))
               if v is not None}
    if unsafe is not None:
        changes["unsafe"] = unsafe_classes(unsafe)
    if version is not None:
        if changes:
            raise click.UsageError("--version shows a kept version; it cannot be set (set the "
                                   "current policy without --version)")
        policy = version_of(dataset, version)
    elif changes:
        policy = set_policy(dataset, replace(policy, **changes))
    if as_json:
        return echo_json(policy.to_dict())
    current = "" if policy.version == policy_of(dataset).version else ", not current"
    click.echo(printable(f"Policy of '{name}' (version {policy.version}{current}): unsafe "
                         f"classes {', '.join(policy.unsafe) or 'none'}; target recall "
                         f"{policy.target_recall}; review band +-{policy.review_margin} around "
                         f"each threshold."))


def unsafe_classes(value: str) -> tuple[str, ...]:
    """--unsafe's class names; '' clears the list, a value naming no class (',,') is refused."""
    names = tuple(dict.fromkeys(c.strip() for c in value.split(",") if c.strip()))
    if value.strip() and not names:
        raise click.BadParameter(f"{value!r} names no class; give class names separated by "
                                 f"commas, or '' to mark none unsafe", param_hint="--unsafe")
    return names


@curate.command("app")
@click.argument("name")
@click.option("--port", type=click.IntRange(1, 65535), default=5151, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to serve on. Any address other than loopback needs "
                   "--expose-files-to-network.")
@click.option("--expose-files-to-network", "expose", is_flag=True,
              help="Allow a non-loopback --address, knowing that the App has no login and serves "
                   "any file this user can read (/media?filepath=) to whoever reaches it.")
def app_command(name: str, port: int, address: str, expose: bool) -> None:
    """Open dataset NAME in the FiftyOne App, served at http://ADDRESS:PORT (Ctrl-C stops it)."""
    from shotlab.curate.app import serve

    serve(name, port=port, address=address, expose=expose)


def add_command_modules() -> None:
    """Commands defined in their own modules, kept small: the review loop. `check` and
    `augment-preview` need training code too: shotlab/cli.py adds them (shotlab.commands)."""
    from shotlab.curate import review_cli

    for command in review_cli.COMMANDS:
        curate.add_command(command)


add_command_modules()
