"""The review loop and splits: `curate apply`, `history` and `split`.

Only click is imported here; each command imports its work when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from shotlab.core.output import SEED, printable

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
    if report.frames_changed:
        click.echo(f"{'Would update' if dry_run else 'Updated'} "
                   f"{plural(report.frames_changed, 'frame')} of '{report.frames_dataset}' "
                   f"to follow their clips (train reads the frames).")
    for problem in report.problems:
        click.echo(printable(f"  not applied: {problem.filepath} ({problem.sample_id}): "
                             f"{problem.message}"))
    for note in report.notes:
        click.echo(printable(f"  note: {note}"))


@command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Show only the newest N entries [default: all].")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def history_command(name: str, limit: int | None, as_json: bool) -> None:
    """Show the change log of dataset NAME, newest first: relabels, exclusions, keeps, splits."""
    from shotlab.core import store
    from shotlab.core.output import echo_json, table
    from shotlab.curate.review import history

    entries = history(name, limit)
    task = store.task_of(store.load(name))
    if as_json:
        return echo_json(entries)
    if not entries:
        return click.echo(f"No changes logged for '{name}' yet; `shotlab curate apply {name}` "
                          f"applies review tags and logs them.")

    def what(entry) -> list[str]:
        if entry["kind"] == "split":
            return ["(all)", "split", "-", logged_split_sizes(entry, task)]
        return [Path(entry["filepath"]).name, entry["kind"], show_label(entry["old"]),
                show_label(entry["new"])]

    click.echo(table(["time", "user", "sample", "field", "old", "new", "source"],
                     [[e["time"], e.get("user") or "-", *what(e), e["source"]] for e in entries]))


def logged_split_sizes(entry: dict, task: str) -> str:
    """A split run's samples per split. Runs logged before the sizes were kept have per-class
    counts only: their sum is the sample count on a multiclass dataset only."""
    sizes = entry.get("samples")
    if sizes is None and task != "multiclass":
        return "(sample counts not logged)"
    if sizes is None:
        sizes = {s: sum(c.get(s, 0) for c in entry["new"].values()) for s in
                 ("train", "val", "test")}
    return " ".join(f"{s}={n}" for s, n in sizes.items())


@command("split")
@click.argument("name")
@click.option("--val", type=float, default=0.15, show_default=True,
              help="Fraction of each class for validation.")
@click.option("--test", type=float, default=0.15, show_default=True,
              help="Fraction of each class for test.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="The same seed gives the same splits.")
@click.option("--overwrite", is_flag=True,
              help="Re-split every sample; without it, samples that have a split keep it.")
@click.option("--no-holdout", is_flag=True,
              help="Allow --val 0 --test 0 (everything in train); refused without it.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def split_command(name: str, val: float, test: float, seed: int, overwrite: bool,
                  no_holdout: bool, as_json: bool) -> None:
    """Stratified train/val/test splits of dataset NAME that keep duplicate clusters
    (`duplicate_cluster`, or exact duplicates by sha256), video clips (`clip_id`) and the
    `group` of imported comments together.

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
        click.echo(printable(f"Warning: {warning}"), err=True)
