"""`shotlab curate check`: run the data checks and write their fields, tags, views and report.

A command that needs two stages lives here, in the CLI layer: it builds the embedding function
from `shotlab.train` and hands it to curate's detectors, which only ever see arrays (curate never
imports train). Only click and the import-free check table are imported at module level.
"""

from __future__ import annotations

from pathlib import Path

import click

from shotlab.curate.checks.registry import CHECKS

DEFAULT_BACKBONE = "lite0"  # ImageNet weights that ship offline; fast on a CPU
TEXT_ENCODER = "minilm"  # train/text_model.py ENCODER_NAME (not imported here: it loads torch)


def embedder(backbone: str, progress: bool | None):
    """(paths, sha256s) -> embeddings through the cached extractor of `shotlab.train`."""
    def embed(paths, sha256s):
        from shotlab.core.errors import BadImageError, InputError
        from shotlab.train.backbones import create_model
        from shotlab.train.embeddings import extract

        try:
            return extract(create_model(backbone, num_classes=0), paths, sha256s,
                           progress=progress)
        except BadImageError as exc:
            raise InputError(unreadable(exc)) from None
    return embed


def unreadable(exc) -> str:
    """Why a dataset file the embedder could not read stops the command, and the fix. A file
    over the default pixel limit never changed: `curate import --max-pixels` let it in, and
    check and suggest read every file at the default (as train and export do)."""
    from shotlab.core.images import DEFAULT_MAX_PIXELS

    leave_out = "tag its sample 'exclude' in the App to leave it out"
    if exc.reason.startswith("decompression bomb"):
        return (f"{exc.path}: over the {DEFAULT_MAX_PIXELS:,}-pixel limit that curate check and "
                f"suggest read dataset files at (as train and export do; a larger --max-pixels "
                f"at import let it in): downscale it, or {leave_out}")
    return (f"{exc}; the file changed or went missing since import: restore it, or "
            f"{leave_out}")


def image_embedder(backbone: str | None, progress: bool | None):
    from shotlab.train.backbones import get_backbone

    backbone = backbone or DEFAULT_BACKBONE
    get_backbone(backbone)  # an unknown name fails now, before any work
    return embedder(backbone, progress), backbone


def text_embedder(backbone: str | None, progress: bool | None):
    """(comments, sha256s) -> the text encoder's cached embeddings."""
    from shotlab.core.errors import InputError

    if backbone not in (None, TEXT_ENCODER):
        raise InputError(f"--backbone {backbone}: a text dataset is embedded by the text "
                         f"encoder '{TEXT_ENCODER}'; drop --backbone")

    def embed(texts, sha256s):
        from shotlab.commands.text_embeddings import embed_cached

        return embed_cached(texts, sha256s, progress=progress)
    return embed, TEXT_ENCODER


EMBEDDERS = {"image": image_embedder, "text": text_embedder}  # by store.kind_of(dataset)


def embedder_for(name: str, backbone: str | None, progress: bool | None = None):
    """The embedding function for dataset NAME's kind, and the name of what it runs."""
    from shotlab.core import store

    return EMBEDDERS[store.kind_of(store.load(name))](backbone, progress)


def checked_dataset(name: str) -> str:
    """NAME, or for a clip dataset its frames dataset (said on stderr): the checks read
    pictures, and a clip's are its sampled frames, which `curate import` stored as images (a
    clip file given to the image checks was reported as changed since import)."""
    from shotlab.core import store
    from shotlab.core.errors import InputError

    dataset = store.load(name)
    if store.media_of(dataset) != "video":
        return name
    frames = store.linked_frames(dataset)
    if frames is None:
        raise InputError(f"dataset '{name}' holds clips and has no frames dataset to check; "
                         f"import the clips again (`shotlab curate import FOLDER --name {name}`)")
    click.echo(f"'{name}' holds clips: checking its frames, dataset '{frames.name}' (the "
               f"App's views are there)", err=True)
    return frames.name


class ThresholdOption(click.Option):
    """--threshold, whose help lists the names the detectors accept, read when help is shown
    (the detectors import numpy: `shotlab --help` must not)."""

    def get_help_record(self, ctx):
        from shotlab.curate.checks.detect import threshold_names

        record = super().get_help_record(ctx)
        return record and (record[0], record[1].replace("{names}", ", ".join(threshold_names())))


def shown(check: dict, width: int = 40) -> list[str]:
    """How the terminal names a check's worst samples: file names (a frame: its clip and time),
    or the comments, clipped."""
    if "top_texts" in check:
        return [repr(t if len(t) <= width else t[:width - 3] + "...") for t in check["top_texts"]]
    names = check.get("top_names") or [None] * len(check["top"])
    return [name or Path(p).name for p, name in zip(check["top"], names)]


def render_summary(summary) -> str:
    from shotlab.core.output import plural, table

    rows = [[name, c["count"], "; ".join(shown(c)) or "-"] for name, c in summary.checks.items()]
    lines = [f"Checked {plural(summary.checked, 'sample')} of '{summary.name}' "
             f"({summary.excluded} tagged 'exclude' left out).",
             *(f"Warning: {warning}" for warning in summary.warnings), ""]
    lines += [table(["check", "flagged", "worst samples"], rows), ""] if rows else []
    lines += [f"{name}: {note}" for name, c in summary.checks.items() for note in c["notes"]]
    lines += [f"{name}: {why}" for name, why in summary.skipped.items()]
    if summary.views:
        lines.append(f"Saved views: {', '.join(summary.views)} (open with `shotlab curate app "
                     f"{summary.name}`).")
    if summary.report:
        lines.append(f"Report: {summary.report}")
    return "\n".join(lines)


@click.command("check")
@click.argument("name")
@click.option("--checks", "checks_text", default="all", show_default=True,
              help="Comma-separated, or all. " + "; ".join(
                  f"{name}: {info.summary}" for name, info in CHECKS.items()) + ".")
@click.option("--backbone", default=None,
              help=f"Backbone for the embeddings (cached, so a re-run is cheap) [default: "
                   f"{DEFAULT_BACKBONE}; a text dataset always uses the text encoder "
                   f"{TEXT_ENCODER}].")
@click.option("--threshold", "thresholds", multiple=True, metavar="NAME=VALUE", cls=ThresholdOption,
              help="Override an adaptive cut (repeatable): {names}.")
@click.option("--min-per-class", type=click.IntRange(min=1), default=5, show_default=True,
              help="Balance check: warn about classes with fewer images.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="HTML report to write [default: WORKSPACE/reports/NAME-check.html].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def check_command(name: str, checks_text: str, backbone: str | None, thresholds: tuple[str, ...],
                  min_per_class: int, report_path: Path | None, as_json: bool) -> None:
    """Find label errors, duplicates, leakage, quality problems and imbalance in dataset NAME.

    On a text dataset (comments) the checks that measure pixels are skipped, each with one line
    saying so; the others run on the text encoder's embeddings.

    Writes `<check>_score` / `is_<check>_issue` fields and `issue:<check>` tags on the samples
    (`duplicate` for duplicates; those tagged `exclude` are left out), saves the views
    label-issues, duplicates, leakage, quality and outliers (worst first) for
    `shotlab curate app`, and writes an HTML report.
    Image files are only read.

    \b
    Example:
      shotlab curate check vehicles --checks label,duplicates --threshold blurry=-1.5
    """
    from shotlab.core import workspace
    from shotlab.core.names import child_path
    from shotlab.core.output import echo_json
    from shotlab.curate.check_report import check_report_path, write_report
    from shotlab.curate.checks.run import (EMBEDDING_CHECKS, parse_checks, parse_thresholds,
                                           run_checks)

    if report_path:
        check_report_path(report_path)
    checks = parse_checks(checks_text)
    parsed = parse_thresholds(thresholds)
    name = checked_dataset(name)
    embed = None
    if EMBEDDING_CHECKS & set(checks):
        embed, backbone = embedder_for(name, backbone)
    options = {"checks": list(checks), "backbone": backbone or DEFAULT_BACKBONE,
               "thresholds": parsed, "min_per_class": min_per_class}
    summary, results, samples = run_checks(
        name, checks=checks, embed=embed, thresholds=parsed,
        min_per_class=min_per_class, options=options)
    path = report_path or child_path(workspace.current().home / "reports", f"{name}-check.html")
    summary.report = str(write_report(path, summary, results, samples))
    if as_json:
        return echo_json(summary.to_dict())
    click.echo(render_summary(summary))

