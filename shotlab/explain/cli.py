"""`shotlab explain`: explanations of predictions, their scores and the explanation store.

    shotlab explain RUN_OR_BUNDLE IMAGE... [--method gradcam,lime] [--out DIR] [--score]
    shotlab explain RUN_OR_BUNDLE --text "this joke kills me" [--method ig,shap,lime] [--html F]
    shotlab explain RUN_OR_BUNDLE comments.csv [--method ig] [--json]
    shotlab explain show DECISION_ID --store STORE [--out PNG]
    shotlab explain appeal STORE DECISION_ID... [--method lime,shap]
    shotlab explain --pending STORE [--method lime,shap] [--batch N]

Only click is imported here; each command imports its work when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from shotlab.runtime.signing import trusted_key_option

COMMANDS: list[click.Command] = []  # registered on the parent group by the parent's cli module
METHOD_NAMES = "gradcam, gradcampp, ig, lime, shap"  # shotlab.explain.METHODS, kept import-free
TEXT_METHOD_NAMES = "ig, shap, lime"  # shotlab.explain.TEXT_METHODS
COMMENT_SHOWN = 60  # characters of a comment `explain show` prints
TOP_WORDS = 5  # words `explain show` prints for a comment, highest scores first


class ExplainGroup(click.Group):
    """`explain RUN IMAGE...` is `explain run ...`; `explain --pending STORE` is `explain pending
    STORE`."""

    def parse_args(self, ctx, args):
        if args and args[0] == "--pending":
            args = ["pending", *args[1:]]
        elif args and args[0].startswith("--pending="):
            args = ["pending", args[0].split("=", 1)[1], *args[1:]]
        elif args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("explain", cls=ExplainGroup)
def explain() -> None:
    """Explain predictions: `shotlab explain RUN_OR_BUNDLE IMAGE... [OPTIONS]` (see `explain run
    --help`), `explain show`, `explain appeal`, `explain --pending STORE`."""


@explain.command("run")
@click.argument("source", metavar="RUN_OR_BUNDLE", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--method", "methods", help=f"Comma-separated: {METHOD_NAMES} (text models: "
              f"{TEXT_METHOD_NAMES}) [default: gradcam for images, ig for text].")
@click.option("--target", help="Class to explain (name or index) [default: the class "
                                "`predict` decides, the bundle's thresholds included].")
@click.option("--text", "texts", multiple=True,
              help="A comment to explain, for a text model (repeatable; or give a .csv/.jsonl "
                   "of comments with a `text` column as the file).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write an overlay per method and a side-by-side figure here (images).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the comments with their words highlighted as one HTML page (text).")
@click.option("--score", is_flag=True,
              help="Deletion/insertion AUC vs random maps, and the model-randomisation check "
                   "(text models always report comprehensiveness and sufficiency).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@trusted_key_option
def run_command(source, images, methods, target, texts, out, html_path, score, as_json,
                trusted_keys) -> None:
    """Explain what RUN_OR_BUNDLE sees in each IMAGE, or which words of each comment drove a
    text model's decision.

    A run folder (or .pt) gives the PyTorch model for every method. A bundle runs LIME and SHAP
    through its ONNX model and the gradient methods on the checkpoint it was exported from.

    \b
    Examples:
      shotlab explain ~/.shotlab/runs/20261122-vehicles-lite0 photo.jpg --method gradcam,lime
      shotlab explain bundle.zip photo.jpg --method lime,shap --out why/ --score
      shotlab explain comments-bundle --text "this joke kills me" --method ig,shap --html why.html
      shotlab explain comments-bundle flagged.csv --json
    """
    from shotlab.core.output import echo_json
    from shotlab.explain.sources import open_source

    if not images and not texts:
        raise click.UsageError("give an IMAGE (or, for a text model, --text or a .csv/.jsonl of "
                               "comments) to explain")
    loaded = open_source(source, trusted_keys=tuple(map(str, trusted_keys)) or None)
    if loaded.preprocessing.kind == "text":
        if out is not None:
            raise click.BadParameter("applies to image models; use --html for text",
                                     param_hint="--out")
        from shotlab.explain.text_cli import run_text

        return run_text(loaded, images, texts, methods or "ig", target, html_path, as_json)
    for given, hint in ((texts, "--text"), (html_path, "--html")):
        if given:
            raise click.BadParameter(f"{source} takes {loaded.preprocessing.kind}s, not text",
                                     param_hint=hint)
    if not images:
        raise click.UsageError(f"give an IMAGE to explain; {source} takes images")
    from shotlab.core.errors import InputError
    from shotlab.explain.pending import clip_reason

    reason = next(filter(None, map(clip_reason, images)), None)
    if reason:  # the methods here explain one image; predict --explain explains clips
        raise InputError(reason)
    from shotlab.explain.report import explain_images, parse_methods

    chosen = parse_methods(methods or "gradcam")
    result = explain_images(loaded, images, chosen, target=target, out=out, score=score)
    if not result["images"]:
        from shotlab.core.errors import InputError

        raise InputError("no readable image: " + "; ".join(
            f"{bad['path']}: {bad['reason']}" for bad in result["bad_files"]))
    if as_json:
        return echo_json(result)
    echo_result(result)


def echo_result(result: dict) -> None:
    from shotlab.core.output import printable, table
    from shotlab.explain.faithfulness import beats_random

    for bad in result["bad_files"]:
        click.echo(printable(f"skipped {bad['path']}: {bad['reason']}"), err=True)
    for entry in result["images"]:
        click.echo(printable(f"{entry['path']}: predicted {entry['predicted']} "
                             f"({entry['score']:.3f}); explaining {entry['target']} "
                             f"({entry['target_score']:.3f})"))
        if "faithfulness" in entry:
            rows = [[m, f"{f['deletion_auc']:.3f}", f"{f['random_deletion_auc']:.3f}",
                     f"{f['insertion_auc']:.3f}", f"{f['random_insertion_auc']:.3f}",
                     beats_random(f)]
                    for m, f in entry["faithfulness"].items()]
            click.echo(table(["method", "deletion", "random", "insertion", "random",
                              "beats random"], rows))
        if "files" in entry:
            click.echo(printable(f"  figure: {entry['files']['figure']}"))
    for method, check in result.get("sanity", {}).items():
        verdict = "passed" if check["passed"] else "FAILED"
        click.echo(f"sanity check ({method}, cascading randomisation): mean |Spearman| {check['spearman']:.2f}"
                   f" vs threshold {check['threshold']}: {verdict}")


def latest_of_each(items: list[dict]) -> list[tuple[dict, int]]:
    """(the latest explanation, how many were stored) per method, class, clip frame and model,
    in the order first stored. The service explains a decision again when its worker stopped
    between storing and marking done: nothing is lost, but the same lines twice read as two
    findings."""
    groups: dict[tuple, list[dict]] = {}
    for item in items:
        seconds = (item.get("params") or {}).get("timestamp")
        key = (item["method"], item["target"], seconds, item.get("model_sha256"))
        groups.setdefault(key, []).append(item)
    return [(found[-1], len(found)) for found in groups.values()]


def stored_detail(item: dict) -> str:
    """A line of what an explanation found, where it is a few numbers: a comment's top words
    by score, a post's split between its picture and caption."""
    if item.get("words"):
        top = sorted(item["words"], key=lambda w: -w["score"])[:TOP_WORDS]
        return "top words: " + ", ".join(f"{w['word']} {w['score']:+.3f}" for w in top)
    split = item.get("scores") or {}
    if "image_share" in split:
        share = split["image_share"]
        return (f"picture {split['phi_image']:+.3f}, caption {split['phi_text']:+.3f} ("
                + (f"picture's share {share:.0%})" if share is not None else
                   "neither moved the score)"))
    return ""


def what_was_decided(data: dict) -> str:
    """The file a decision read (a comment's with its line) and a comment's or caption's text;
    a decision the service made from a request body has no file."""
    words = next((e["params"] for e in data["explanations"]
                  if (e.get("params") or {}).get("kind") == "text"), None)
    path = data.get("path")
    if words is None:
        return path or "no file (decided from a request body)"
    what = ("a post, caption" if words.get("part") == "text" else
            "a comment, the passage explained" if words.get("offset") else "a comment")
    text = words["text"]
    said = f"{what} {text[:COMMENT_SHOWN]!r}" + ("..." if len(text) > COMMENT_SHOWN else "")
    if not path:
        return said
    return f"{path}" + (f", line {words['line']}" if words.get("line") else "") + f": {said}"


def verdict_line(data: dict) -> str:
    """'labels fish; FLAGGED fish; needs review; decided TIME' from a stored decision."""
    flagged = ", ".join(data["flagged"] or [])
    return (f"labels {', '.join(data['labels']) or '(none)'}; "
            + (f"FLAGGED {flagged}" if flagged else "not flagged")
            + ("; needs review" if data["needs_review"] else "")
            + (f"; decided {data['decided']}" if data["decided"] else ""))


@explain.command("show")
@click.argument("decision_id")
@click.option("--store", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The explanations.sqlite that `shotlab predict --explain` wrote.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the stored maps over the image as one .png (a comment's words: an "
                   ".html page); an existing file only if explain wrote it.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show_command(decision_id, store, out, as_json) -> None:
    """Show the explanations stored for DECISION_ID (and render them with --out)."""
    from shotlab.core.output import echo_json, printable
    from shotlab.explain.show import describe, render

    data = describe(store, decision_id)
    if out is not None:
        figure, note = render(store, decision_id, out)
        data["figure"] = str(figure)
        if note:  # the maps over grey: say why, as the page does
            data["figure_note"] = note
            click.echo(printable(f"Warning: {note}"), err=True)
    if as_json:
        return echo_json(data)
    click.echo(printable(f"decision {decision_id}: {what_was_decided(data)}"))
    if data["labels"] is not None:  # what the reviewer is asked about, before the why
        click.echo(printable("  " + verdict_line(data)))
    for item, times in latest_of_each(data["explanations"]):
        faith = item["scores"]
        extra = (f", deletion AUC {faith['deletion_auc']:.3f} (random "
                 f"{faith['random_deletion_auc']:.3f})" if "deletion_auc" in faith else "")
        if "comprehensiveness" in faith:
            extra = (f", comprehensiveness {faith['comprehensiveness']:.3f} (random "
                     f"{faith['random_comprehensiveness']:.3f}), sufficiency "
                     f"{faith['sufficiency']:.3f} (random {faith['random_sufficiency']:.3f})")
        seconds = (item["params"] or {}).get("timestamp")  # a clip's map: the frame it explains
        at = f", frame at {float(seconds):.3f} s" if seconds is not None else ""
        again = f" (explained {times} times; the latest shown)" if times > 1 else ""
        click.echo(printable(f"  {item['method']}: target {item['target']}{at}, "
                             f"{item['created']}{extra}{again}"))
        detail = stored_detail(item)
        if detail:
            click.echo(printable(f"    {detail}"))
    if data["tier1_failed"]:  # the service's tier 1 (no map of its own; an appeal may add one)
        failed = data["tier1_failed"]
        click.echo(printable(f"  tier-1 explanation failed ({failed['finished']}): "
                             f"{failed['error']}"))
    for appeal in data["appeals"]:
        click.echo(printable(f"  appeal {appeal['status']}: {', '.join(appeal['methods'])}"
                             + (f" ({appeal['error']})" if appeal["error"] else "")))
    if "figure" in data:
        click.echo(printable(f"figure: {data['figure']}"))


@explain.command("appeal")
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("decision_ids", nargs=-1, required=True)
@click.option("--method", "methods", default="lime,shap", show_default=True,
              help=f"Comma-separated: {METHOD_NAMES}.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path),
              help="The image, for a decision the store does not know.")
@click.option("--bundle", type=click.Path(path_type=Path),
              help="The bundle, for a decision the store does not know.")
def appeal_command(store, decision_ids, methods, image, bundle) -> None:
    """Queue DECISION_IDS for a deeper explanation (processed by `explain --pending STORE`)."""
    from shotlab.core.output import plural
    from shotlab.explain.report import parse_methods
    from shotlab.explain.store import ExplanationStore

    with ExplanationStore(store, create=False) as opened:
        # A comment's decision takes the text methods (an image method left it "done" with
        # nothing stored); every appeal is checked before any is queued.
        chosen = {d: parse_methods(methods, "text" if opened.has_text(d) else "image")
                  for d in decision_ids}
        refuse_clips(opened, decision_ids, image)
        if image:
            refuse_other_image(opened, decision_ids, image)
        waiting = [d for d in dict.fromkeys(decision_ids)
                   if opened.already_queued(d, chosen[d])]
        fresh = [d for d in dict.fromkeys(decision_ids) if d not in waiting]
        for decision_id in fresh:
            opened.queue(decision_id, chosen[decision_id], image_path=image, bundle_path=bundle)
    shown = dict.fromkeys(m for asked in chosen.values() for m in asked)
    if waiting:
        click.echo(f"already queued, not queued again: {', '.join(waiting)}")
    click.echo(f"queued {plural(len(fresh), 'appeal')} ({', '.join(shown)}); process "
               f"them with `shotlab explain --pending {store}`")


def refuse_clips(opened, decision_ids, image) -> None:
    """A clip's decision (its maps are of frames, or its file is a clip) is refused now: the
    appeal's methods explain one image, and it would fail later as "not an image"."""
    from shotlab.core.errors import InputError
    from shotlab.explain.pending import CLIPS_EXPLAINED, clip_reason

    for decision_id in decision_ids:
        path = image or (opened.decision(decision_id) or {}).get("path")
        reason = clip_reason(path)
        if reason is None and opened.has_frames(decision_id):  # an animation decided as a clip
            reason = f"{path or 'its input'}: decided as a clip; {CLIPS_EXPLAINED}"
        if reason:
            raise InputError(f"decision {decision_id}: {reason}")


def refuse_other_image(opened, decision_ids, image: Path) -> None:
    """An --image that is not the picture a stored decision was made on (its sha256 differs) is
    refused now, not queued to fail later."""
    from types import SimpleNamespace

    from shotlab.core.errors import InputError
    from shotlab.explain.pending import changed_image

    for decision_id in decision_ids:
        if changed_image(opened.decision(decision_id),
                         SimpleNamespace(image_path=image, decision_id=decision_id)):
            raise InputError(f"--image {image}: not the image decision {decision_id} was made "
                             f"on (its sha256 differs); give that image")


@explain.command("pending")
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--method", "methods", help="Methods for every appeal [default: what each asked "
                                          "for, else lime,shap].")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Appeals per batch.")
@click.option("--no-score", is_flag=True, help="Skip the deletion/insertion scores.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--ray", "on_ray", is_flag=True,
              help="Spread the batches over Ray actors (one CPU each); STORE is written here.")
@click.option("--address", help="With --ray: the Ray cluster to join (e.g. HEAD:6379) "
                                "[default: start a local Ray on 127.0.0.1].")
def pending_command(store, methods, batch, no_score, as_json, on_ray, address) -> None:
    """Process the queued appeals in STORE (`shotlab explain --pending STORE`); exits 1 when
    any failed (each named, with its reason)."""
    from shotlab.core.output import echo_json, plural, printable
    from shotlab.explain.report import parse_methods

    if address and not on_ray:
        raise click.BadParameter("applies to --ray only; add --ray", param_hint="--address")
    chosen = parse_methods(methods) if methods else None
    if on_ray:
        from shotlab.explain.ray_pending import process_pending_ray

        summary = process_pending_ray(store, address=address, methods=chosen, batch=batch,
                                      score=not no_score)
    else:
        from shotlab.explain.pending import process_pending

        summary = process_pending(store, methods=chosen, batch=batch, score=not no_score)
    if as_json:
        echo_json(summary)
    else:
        for error in summary["errors"]:
            click.echo(printable(f"failed {error['decision_id']}: {error['error']}"), err=True)
        click.echo(f"{plural(summary['processed'], 'appeal')} processed, "
                   f"{plural(summary['stored'], 'explanation')} stored, {summary['failed']} "
                   f"failed")
    if summary["failed"]:  # a script or a cron job must see that an appeal was not explained
        raise click.exceptions.Exit(1)


COMMANDS.append(explain)
