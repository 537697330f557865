"""The review loop and splits: `curate apply`, `history`, `split` and `augment-preview`.

Only click is imported here; each command imports its work when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

COMMANDS: list[click.Command] = []  # registered on the parent group by the parent's cli module


def command(name: str):
    def register(function):
        COMMANDS.append(click.command(name)(function))
        return COMMANDS[-1]
    return register


def show_label(value) -> str:
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    return "-" if value is None else str(value)


@command("apply")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--new-class", "new_classes", multiple=True, metavar="CLASS",
              help="Allow `relabel:` tags to introduce this class (repeatable); other unknown "
                   "classes are refused, as they are usually typos.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def apply_command(name: str, dry_run: bool, new_classes: tuple[str, ...], as_json: bool) -> None:
    """Apply the review decisions made in the FiftyOne App on dataset NAME.

    \b
    Tags: relabel:<class> (multilabel: relabel:a,b), exclude, keep; edits of ground_truth are
    found too. Every change is logged (`shotlab curate history NAME`); no sample is deleted.

    \b
    Example:
      shotlab curate apply vehicles --dry-run
    """
    from shotlab.core.output import echo_json, plural, table
    from shotlab.curate.review import apply_reviews

    report = apply_reviews(name, dry_run=dry_run, allow_new=new_classes)
    if as_json:
        return echo_json(report.to_dict())
    verb = "Would apply" if dry_run else "Applied"
    click.echo(f"{verb} {plural(len(report.changes), 'change')} to '{name}'; "
               f"{plural(report.tags_removed, 'relabel tag')} "
               f"{'to remove' if dry_run else 'removed'}; "
               f"{plural(len(report.problems), 'problem')}.")
    if report.changes:
        click.echo(table(["sample", "field", "old", "new", "source"],
                         [[Path(c["filepath"]).name, c["kind"], show_label(c["old"]),
                           show_label(c["new"]), c["source"]] for c in report.changes]))
    for problem in report.problems:
        click.echo(f"  not applied: {problem.filepath} ({problem.sample_id}): {problem.message}")
    for note in report.notes:
        click.echo(f"  note: {note}")


@command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Show only the newest N entries [default: all].")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def history_command(name: str, limit: int | None, as_json: bool) -> None:
    """Show the change log of dataset NAME, newest first: relabels, exclusions, keeps, splits."""
    from shotlab.core.output import echo_json, table
    from shotlab.curate.review import history

    entries = history(name, limit)
    if as_json:
        return echo_json(entries)
    if not entries:
        return click.echo(f"No changes logged for '{name}' yet; `shotlab curate apply {name}` "
                          f"applies review tags and logs them.")

    def what(entry) -> list[str]:
        if entry["kind"] == "split":
            counts = {s: sum(c.get(s, 0) for c in entry["new"].values()) for s in
                      ("train", "val", "test")}
            return ["(all)", "split", "-", " ".join(f"{s}={n}" for s, n in counts.items())]
        return [Path(entry["filepath"]).name, entry["kind"], show_label(entry["old"]),
                show_label(entry["new"])]

    click.echo(table(["time", "user", "sample", "field", "old", "new", "source"],
                     [[e["time"], e.get("user") or "-", *what(e), e["source"]] for e in entries]))


@command("split")
@click.argument("name")
@click.option("--val", type=float, default=0.15, show_default=True,
              help="Fraction of each class for validation.")
@click.option("--test", type=float, default=0.15, show_default=True,
              help="Fraction of each class for test.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The same seed gives the same splits.")
@click.option("--overwrite", is_flag=True,
              help="Re-split every sample; without it, samples that have a split keep it.")
@click.option("--no-holdout", is_flag=True,
              help="Allow --val 0 --test 0 (everything in train); refused without it.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def split_command(name: str, val: float, test: float, seed: int, overwrite: bool,
                  no_holdout: bool, as_json: bool) -> None:
    """Stratified train/val/test splits of dataset NAME that keep duplicate clusters
    (`duplicate_cluster`, or exact duplicates by sha256) and video clips (`clip_id`) together.

    \b
    Example:
      shotlab curate split vehicles --val 0.15 --test 0.15 --seed 1
    """
    from shotlab.core.output import echo_json, plural, table
    from shotlab.curate.splits import SPLITS, split_dataset

    report = split_dataset(name, val=val, test=test, seed=seed, overwrite=overwrite,
                           no_holdout=no_holdout)
    if as_json:
        return echo_json(report.to_dict())
    mode = ("re-split every sample (--overwrite)" if overwrite else
            f"kept {plural(report.kept, 'existing assignment')}, split only unassigned samples")
    click.echo(f"Split '{name}' (seed {seed}): {mode}; "
               f"assigned {plural(report.assigned, 'sample')}, {report.changed} changed; "
               f"{plural(report.grouped, 'group')} of several samples kept together; left out {report.skipped['excluded']} excluded and "
               f"{report.skipped['unlabeled']} unlabeled.")
    rows = [[c, *(counts.get(s, 0) for s in SPLITS), sum(counts.values())]
            for c, counts in report.counts.items()]
    click.echo(table(["class", *SPLITS, "total"], rows))
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)


@command("augment-preview")
@click.argument("name")
@click.option("--preset", required=True, help="Training augmentation preset: none, light, "
                                              "standard or strong.")
@click.option("--samples", type=click.IntRange(1, 100), default=6, show_default=True,
              help="Rows: samples to show, classes taken in turn.")
@click.option("--per-sample", type=click.IntRange(1, 32), default=5, show_default=True,
              help="Augmented variants per sample.")
@click.option("--backbone", default="lite0", show_default=True,
              help="Model whose input size and resize/crop the preview uses.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write [default: augment-NAME-PRESET.png here].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Picks the samples and drives the augmentations.")
def augment_preview_command(name: str, preset: str, samples: int, per_sample: int, backbone: str,
                            out: Path | None, seed: int) -> None:
    """Write a grid PNG of training augmentations on real samples of dataset NAME: each row
    the model's view of one sample, then augmented variants.

    \b
    Example:
      shotlab curate augment-preview vehicles --preset strong --out strong.png
    """
    # The composition root: curate code never imports train; this command hands its presets over.
    from shotlab.curate.augment_preview import write_preview
    from shotlab.train.augment import PRESETS, TrainTransform, build_preset
    from shotlab.train.backbones import create_model

    if preset not in PRESETS:  # before building the model: a typo should fail at once
        raise click.BadParameter(f"unknown preset '{preset}'; presets: {', '.join(PRESETS)}",
                                 param_hint="--preset")
    preprocessing = create_model(backbone, pretrained=False).preprocessing
    transform = TrainTransform(preprocessing, preset)
    if preset == "none":
        augment = transform.augment
    else:
        import numpy as np

        pipeline = build_preset(preset, *preprocessing.input_size, seed=seed)
        augment = lambda image: pipeline(image=np.asarray(image))["image"]  # noqa: E731
    path = write_preview(name, out or Path(f"augment-{name}-{preset}.png"),
                         original=preprocessing.resize_and_crop, augment=augment,
                         samples=samples, per_sample=per_sample, seed=seed)
    click.echo(str(path))
