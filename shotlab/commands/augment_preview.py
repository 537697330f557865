"""`shotlab curate augment-preview`: curation's preview of training's augmentation presets.

A command that needs two stages lives here, in the CLI layer: curate never imports train.
Only click and the import-free preset table are imported at module level.
"""

from __future__ import annotations

from pathlib import Path

import click

from shotlab.core.output import SEED
from shotlab.train.choices import PRESETS, describe


@click.command("augment-preview")
@click.argument("name")
@click.option("--preset", required=True, type=click.Choice(PRESETS),
              help=f"Training augmentation preset. {describe(PRESETS)}.")
@click.option("--samples", type=click.IntRange(1, 100), default=6, show_default=True,
              help="Rows: samples to show, classes taken in turn.")
@click.option("--per-sample", type=click.IntRange(1, 32), default=5, show_default=True,
              help="Augmented variants per sample.")
@click.option("--backbone", default="lite0", show_default=True,
              help="Model whose input size and resize/crop the preview uses.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write [default: augment-NAME-PRESET.png here].")
@click.option("--seed", type=SEED, default=0, show_default=True,
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
    from shotlab.train.augment import TrainTransform, build_preset
    from shotlab.train.backbones import create_model

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
