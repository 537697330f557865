"""`shotlab train ...` commands. Only click is imported here; each command imports its work."""

from __future__ import annotations

from pathlib import Path

import click

from shotlab.core.output import SEED, printable
from shotlab.train.choices import MODES, PRESETS, describe


class TrainGroup(click.Group):
    """`shotlab train NAME ...` (or `train --resume RUN`) is `shotlab train run ...`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("train", cls=TrainGroup)
def train() -> None:
    """Train classifiers on a dataset: `shotlab train NAME [OPTIONS]` (see `train run --help`)."""


def split_names(value: str | None) -> list[str]:
    """`a, b,a` -> [a, b]: a name given twice counts once (--shots 2,2 made two columns)."""
    return list(dict.fromkeys(v.strip() for v in (value or "").split(",") if v.strip()))


@train.command("run")
@click.argument("name", required=False)
@click.option("--backbone", default=None,
              help="See `shotlab train backbones` [default: for images, chosen by cross-validation "
                   "when --mode is not given, else lite0; minilm for text, lite0 for posts].")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help=describe(MODES) + " [default: for images, chosen by cross-validation on "
                   "the train split (the linear head on each offline backbone, or on --backbone; "
                   "see docs/train.md); for text, setfit up to 8 train comments in a class, "
                   "else logreg].")
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Head learning rate.")
@click.option("--layer-decay", type=click.FloatRange(0, 1), default=0.7, show_default=True)
@click.option("--unfreeze-stages", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--augment", type=click.Choice(PRESETS), default="standard", show_default=True,
              help=describe(PRESETS) + ".")
@click.option("--balance", type=click.Choice(["sampler", "loss", "none"]), default="sampler",
              show_default=True)
@click.option("--label-smoothing", type=click.FloatRange(0, 0.5), default=0.1, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=4, show_default=True,
              help="Epochs without validation improvement before stopping (0 would stop "
                   "before the first).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", help="cpu or cuda[:N] [default: cuda if available].")
@click.option("--workers", type=click.IntRange(min=0), help="DataLoader workers.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Pretrained weights file.")
@click.option("--allow-download", is_flag=True, help="Let timm fetch weights from its hub.")
@click.option("--unsafe", help="Comma-separated unsafe classes (overrides the dataset policy).")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Recall to reach on unsafe classes (overrides the dataset policy's) "
                   "[default: the policy's, else 0.95].")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Continue an interrupted run from its last checkpoint.")
@click.option("--tracking-uri", help="MLflow server [default: the workspace's own store].")
@click.option("--no-track", is_flag=True, help="Do not log to MLflow.")
@click.option("--pseudo-label", is_flag=True,
              help="Train, add the unlabeled samples the calibrated model is sure of (marked "
                   "pseudo, train split only), train again (docs/train.md).")
@click.option("--pseudo-threshold", type=click.FloatRange(0, 1, min_open=True),
              help="Top calibrated score a pseudo-label needs [default: the lowest with val "
                   "precision and expected pool precision >= 0.95].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run_command(name, resume_dir, tracking_uri, no_track, as_json, unsafe, pseudo_label,
                pseudo_threshold, **options) -> None:
    """Fine-tune a backbone on dataset NAME; writes a run folder and logs to MLflow.

    \b
    Examples:
      shotlab train vehicles --backbone lite0 --mode partial
      shotlab train moderation --unsafe violence,explicit --target-recall 0.97
      shotlab train --resume ~/.shotlab/runs/20261122-101500-vehicles-lite0-partial
      shotlab train vehicles --pseudo-label
    """
    from shotlab.core.errors import InputError
    from shotlab.core.names import check_dataset_name
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.report import echo_run
    from shotlab.train.runs import train_run

    if name is None and not resume_dir:
        raise click.UsageError("give a dataset NAME, or --resume RUN_DIR")
    if name is not None and resume_dir:
        raise InputError("give either a dataset NAME or --resume RUN_DIR, not both")
    finished = bool(resume_dir) and (resume_dir / "metrics.json").is_file()
    if resume_dir:
        refuse_with_resume(click.get_current_context())
    if name is not None:
        check_dataset_name(name)
    config = TrainConfig(unsafe=split_names(unsafe), **options)
    if pseudo_label or pseudo_threshold is not None:
        result = pseudo_run(name, config, resume_dir, pseudo_label, pseudo_threshold,
                            tracking_uri=tracking_uri, track=not no_track)
    else:
        result = train_run(name, config, resume_dir=resume_dir, tracking_uri=tracking_uri,
                           track=not no_track)
    echo_run(result, as_json)
    if finished and not as_json:  # it quietly redid the ending, tracked again
        tracked = "" if no_track else ", MLflow: --no-track skips it"
        click.echo(printable(f"Note: {resume_dir} had finished already; resuming it redid what "
                             f"a run does once its model is fitted (evaluation, thresholds, "
                             f"plots, write-back{tracked}) from checkpoints/best.pt"))


# What --resume may change: where it runs and what it reports, never what it trains.
RESUMABLE = {"resume_dir", "device", "workers", "tracking_uri", "no_track", "as_json",
             "pseudo_label", "pseudo_threshold"}  # pseudo options: pseudo_run says why


def refuse_with_resume(ctx) -> None:
    """A training option given with --resume was ignored in silence (the run continues as its
    config.yaml says): refused, naming it."""
    from click.core import ParameterSource

    from shotlab.core.errors import InputError

    given = [p.opts[0] for p in ctx.command.params if p.name not in RESUMABLE
             and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
    if given:
        raise InputError(f"{', '.join(given)} with --resume: a resumed run continues with the "
                         f"settings in its config.yaml; drop {'it' if len(given) == 1 else 'them'}"
                         f", or start a new run with `shotlab train NAME ...`")


def pseudo_run(name, config, resume_dir, pseudo_label: bool, threshold, **options):
    """`train NAME --pseudo-label [--pseudo-threshold P]` (train/pseudo.py)."""
    from shotlab.core.errors import InputError
    from shotlab.train.pseudo import train_with_pseudo_labels

    if not pseudo_label:
        raise InputError("--pseudo-threshold is the threshold of --pseudo-label; add "
                         "--pseudo-label or leave --pseudo-threshold out")
    if resume_dir:
        raise InputError("--resume continues a run with the pseudo-labels it chose; leave "
                         "--pseudo-label out when resuming")
    return train_with_pseudo_labels(name, config, threshold=threshold, **options)


@train.command("backbones")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def backbones_command(as_json: bool) -> None:
    """List registered backbones: weights available offline, input size, parameters."""
    from shotlab.core.output import echo_json, table
    from shotlab.train.report import backbone_rows

    rows = backbone_rows()
    if as_json:
        return echo_json(rows)
    click.echo(table(["backbone", "timm model", "weights", "input", "params (M)", "about"],
                     [[r["name"], r["timm_name"], r["weights"], r["input_size"],
                       f"{r['params_m']:.1f}", r["description"]] for r in rows]))


@train.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def runs_command(as_json: bool) -> None:
    """List training runs in the workspace with their key metrics, newest first."""
    from shotlab.core.output import echo_json, table
    from shotlab.train.runs import list_runs

    rows = list_runs()
    if as_json:
        return echo_json(rows)
    if not rows:
        return click.echo("No runs yet; start one with `shotlab train NAME`.")

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    click.echo(table(["run", "split", "accuracy", "macro F1", "macro AUPRC"],
                     [[r["run"], "unreadable" if r["unreadable"] else
                       split_label(r) if r["finished"] else "unfinished",
                       fmt(r["accuracy"]), fmt(r["macro_f1"]), fmt(r["macro_auprc"])]
                      for r in rows]))
    for r in rows:
        if r["unreadable"]:
            click.echo(f"{r['run']}: unreadable ({r['unreadable']}); not a run shotlab wrote, "
                       f"or a damaged one: move it out of {Path(r['path']).parent}")
        elif not r["finished"]:
            click.echo(f"{r['run']}: unfinished (no metrics.json): training now, or stopped; "
                       f"`shotlab train --resume {r['path']}` continues a stopped one")


def split_label(row: dict) -> str:
    """'test', or 'test (clips)' for a clip run: its figures are the pooled clip decisions."""
    return f"{row['split']} (clips)" if row.get("level") == "clips" else row["split"]


@train.command("benchmark")
@click.argument("name")
@click.option("--backbones", default=None,
              help="Comma-separated [default: lite0 for images, minilm for text].")
@click.option("--shots", default=None,
              help="Samples per class drawn from the train split, comma-separated [default: "
                   "5,10,20, those the train split can fill].")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--finetune", default=None,
              help="Fine-tuning modes to include (comma-separated; empty for none); auto: what "
                   "`shotlab train` without --mode would train, its row naming what it chose "
                   "[default: linear,partial,auto for images, setfit for text].")
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), help="DataLoader workers.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for results.csv, results.md, learning_curve.png "
                   "[default: WORKSPACE/benchmarks/NAME-TIME].")
def benchmark_command(name, backbones, shots, repeats, finetune, epochs, workers, out) -> None:
    """Compare baselines and fine-tuning on dataset NAME at several shot counts.

    Every method trains on the same sampled images (or comments) and is measured on the same
    test split; prints the table of mean +- std accuracy and macro-F1 over repeats, with the
    time taken. On a text dataset the methods are TF-IDF (word 1-2 grams) and character 2-5
    grams with logistic regression, classifiers on MiniLM embeddings, and SetFit.

    \b
    Example:
      shotlab train benchmark fmnist --backbones lite0 --shots 5,10,20 --repeats 3
      shotlab train benchmark comments --shots 8,16
    """
    import time as _time

    from shotlab.core import workspace
    from shotlab.core.errors import InputError
    from shotlab.core.files import check_can_write
    from shotlab.core.names import check_dataset_name, child_path
    from shotlab.train.benchmark import DEFAULTS, FINETUNE_METHODS, Benchmark, write_results
    from shotlab.train.manifest import freeze

    check_dataset_name(name)
    out = out or child_path(workspace.current().home / "benchmarks",
                            f"{name}-{_time.strftime('%Y%m%d-%H%M%S')}")
    check_can_write(out, "--out")  # before the benchmark, whose results would be lost
    try:
        shot_counts = [int(s) for s in split_names(shots or DEFAULT_SHOTS)]
    except ValueError:
        raise InputError(f"--shots {shots}: expected whole numbers such as 5,10,20") from None
    manifest = freeze(name)
    default_backbones, default_modes = DEFAULTS[manifest.kind]
    backbones = default_backbones if backbones is None else backbones
    finetune = default_modes if finetune is None else finetune
    modes = split_names(finetune)
    unknown = sorted(set(modes) - set(FINETUNE_METHODS))
    if unknown or not shot_counts or min(shot_counts) < 1:
        raise InputError(f"--finetune takes {', '.join(FINETUNE_METHODS)} and --shots positive "
                         f"numbers; got --finetune {finetune} --shots {shots}")
    bench = Benchmark(manifest, backbones=split_names(backbones), finetune=modes,
                      epochs=epochs, workers=workers, progress=None)
    shot_counts = check_shots(manifest, shot_counts, given=shots is not None)
    rows = bench.run(shot_counts, repeats)
    result = write_results(rows, out, shot_counts, bench.embedding_seconds)
    click.echo((out / "results.md").read_text())
    click.echo(f"Wrote {', '.join(result['files'])}")


DEFAULT_SHOTS = "5,10,20"


def check_shots(manifest, shot_counts: list[int], *, given: bool) -> list[int]:
    """The shot counts to run. One no class can fill repeated a smaller count's draws under its
    own name: refused when given, dropped (said) from the default; a count some classes are
    smaller than is warned about (they give all they have)."""
    from collections import Counter

    from shotlab.core.errors import InputError

    sizes = Counter(e.labels[0] for e in manifest.split("train") if e.labels)
    if not sizes:
        return shot_counts
    largest = max(sizes.values())
    over = [s for s in shot_counts if s > largest]
    if over and given:
        raise InputError(f"--shots {','.join(map(str, over))}: the train split holds at most "
                         f"{largest} samples a class, so those columns would repeat {largest} "
                         f"shots; give counts up to {largest}, or label more")
    if over:
        shot_counts = [s for s in shot_counts if s <= largest] or [largest]
        click.echo(f"Shots {','.join(map(str, shot_counts))}: the train split holds at most "
                   f"{largest} samples a class (--shots sets the counts)", err=True)
    for shots in shot_counts:
        short = sorted(c for c, n in sizes.items() if n < shots)
        if short:
            click.echo(printable(f"Warning: at {shots} shots, fewer train samples than that in "
                                 f"{', '.join(short)}: all of them are used"), err=True)
    return shot_counts


@train.command("writeback")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
def writeback_command(run_dir: Path) -> None:
    """Write the predictions saved in run folder RUN back to its dataset (when the database was
    unreachable at the end of the run), with the `mistakes` view."""
    from shotlab.train.writeback import write_saved

    name, mistakes = write_saved(run_dir)
    click.echo(f"Wrote the predictions of {run_dir.name} back to '{name}'; the 'mistakes' view "
               f"holds {mistakes} samples.")
