"""`shotlab curate suggest NAME --budget N`: which unlabeled images to label next.

In the CLI layer for the same reason as `curate check`: the embeddings come from
`shotlab.train`, the ranking from `shotlab.curate.suggest` (docs/curate-suggest.md).
"""

from __future__ import annotations

import click

from shotlab.commands.check import DEFAULT_BACKBONE, embedder_for
from shotlab.core.output import SEED, printable


@click.command("suggest")
@click.argument("name")
@click.option("--budget", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many images to suggest.")
@click.option("--backbone", default=None,
              help=f"Backbone for the embeddings (cached, shared with `curate check`) [default: "
                   f"{DEFAULT_BACKBONE}; a text dataset uses the text encoder].")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the suggestions as JSON.")
def suggest_command(name: str, budget: int, backbone: str | None, seed: int, as_json: bool) -> None:
    """Rank NAME's unlabeled images by what labelling them would teach the model.

    Uncertain images far from anything labelled, in dense parts of the pool, come first
    (uncertainty of a logistic regression on the labelled images' embeddings x distance to the
    nearest labelled or already suggested image x local density). Writes the field `to_label_rank` and the saved view `to-label` for the
    App; image files are only read.

    \b
    Example:
      shotlab curate suggest moderation-pool --budget 50
      shotlab curate app moderation-pool        # then open the view 'to-label'
    """
    from functools import partial

    from shotlab.core.output import echo_json, table
    from shotlab.curate.checks.run import changed_warning
    from shotlab.curate.suggest import suggest_for
    from shotlab.train.baselines import make_classifier

    embed, _ = embedder_for(name, backbone)  # an unknown backbone fails before any work
    classifier = partial(make_classifier, "logreg", seed=seed)  # train's few-shot recipe
    summary = suggest_for(name, budget, embed, classifier)
    if as_json:
        return echo_json(summary)
    rows = [[i + 1, s["filepath"], f"{s['uncertainty']:.2f}", f"{s['coverage']:.2f}",
             f"{s['density']:.2f}"] for i, s in enumerate(summary["suggested"])]
    click.echo(f"{len(rows)} of {summary['pool']} unlabeled images suggested for '{name}' "
               f"({summary['labelled']} labelled):")
    click.echo(table(["rank", "file", "uncertainty", "coverage", "density"], rows))
    click.echo(f"Saved view '{summary['view']}' (open with `shotlab curate app {name}`).")
    for line in changed_warning(summary["changed"]):  # as `curate check` says it
        click.echo(printable(f"Warning: {line}"))
    copies = summary["copies"]
    if copies:
        what = ("byte copy of a labelled image" if len(copies) == 1 else
                "byte copies of labelled images")
        click.echo(printable(f"Left out {len(copies)} unlabeled {what} (first: {copies[0]}): "
                             f"labelling {'it' if len(copies) == 1 else 'them'} teaches nothing "
                             f"new; tag {'it' if len(copies) == 1 else 'them'} 'exclude' in the "
                             f"App."))
