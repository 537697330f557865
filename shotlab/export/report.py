"""The validation report inside every bundle: report.json (the data) and report.html
(self-contained: CSS inline, figures as base64 PNGs), from `validate.measure`'s dict."""

from __future__ import annotations

import base64
import html
import json
import string
import tempfile
from importlib import resources
from pathlib import Path

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


def json_ready(value):
    """Drop private keys (leading "_": inline images) so report.json stays data."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def write_report_files(folder: Path, report: dict, manifest: dict) -> None:
    (folder / REPORT_JSON).write_text(json.dumps(json_ready(report), indent=1))
    (folder / REPORT_HTML).write_text(render_html(report, manifest))


def render_html(report: dict, manifest: dict) -> str:
    template = string.Template(
        resources.files("shotlab.export").joinpath("report_template.html").read_text())
    esc = html.escape
    return template.substitute(
        title=esc(Path(manifest["source"]["run"]).name), run=esc(manifest["source"]["run"]),
        dataset_hash=esc(str(manifest["dataset_manifest_hash"])[:16]),
        created=esc(manifest["created"]), task=esc(manifest["task"]),
        classes=esc(", ".join(manifest["classes"])), split=esc(report["split"]), n=report["n"],
        verdict=verdict_html(report),
        policy=policy_html(manifest["policy"]) + calibration_html(manifest.get("calibration"),
                                                                  report.get("calibration")),
        agreement=agreement_html(report, manifest),
        runtimes=runtimes_html(report, manifest), speed=speed_html(report["speed"]),
        explanations=explanations_html(report.get("explanations")),
        preprocessing=key_value_html(manifest["preprocessing"]),
        environment=environment_html(report["environment"]))


def verdict_html(report: dict) -> str:
    gate = report["gate"]
    rules = (f"rules: top-1 agreement &ge; {gate['min_agreement']:.3f}, unsafe-class recall "
             f"and share flagged drop &le; {gate['recall_tolerance']:.3f}")
    unchecked = "".join(f"<li>{html.escape(u)}</li>" for u in gate.get("unchecked", []))
    if not gate["failures"]:
        return (f'<div class="verdict pass">Regression gate passed ({rules}).'
                + (f'<ul>{unchecked}</ul>' if unchecked else "") + '</div>')
    items = "".join(f"<li>{html.escape(f)}</li>" for f in gate["failures"]) + unchecked
    if gate["allowed_regression"]:
        return (f'<div class="verdict allowed">&#9888; Shipped with a regression '
                f'(--allow-regression): this bundle is measurably worse than the PyTorch model '
                f'<ul>{items}</ul></div>')
    return f'<div class="verdict fail">Export refused by the regression gate ({rules})<ul>{items}</ul></div>'


def policy_html(policy: dict) -> str:
    unsafe = policy.get("unsafe") or []
    if not unsafe:
        return "<p>No unsafe classes: plain argmax decisions, no review band.</p>"
    rows = []
    for name in unsafe:
        entry = policy.get("thresholds", {}).get(name, {})
        band = entry.get("review_band") or [None, None]
        rows.append([html.escape(name), fmt(entry.get("threshold")),
                     f"{fmt(band[0])} &ndash; {fmt(band[1])}", fmt(entry.get("recall")),
                     fmt(entry.get("precision")), share(entry.get("flag_rate")),
                     share(entry.get("review_rate"))])
    from shotlab.train.threshold_scores import VALIDATION

    scored = policy.get("scored_on") or {"scored_on": VALIDATION}  # bundles before it: val alone
    pooled = scored["scored_on"] != VALIDATION
    where = (f"{scored['train']} train samples scored out of fold ({scored['folds']} folds) and "
             f"{scored['validation']} validation samples" if pooled else "the validation split")
    scored_name = "train folds + val" if pooled else "val"
    return (table_html(["unsafe class", "threshold", "review band", f"{scored_name} recall",
                        "precision", "flagged", "sent to review"], rows)
            + f"<p class='meta'>target recall {fmt(policy.get('target_recall'), 2)}, policy "
              f"version {policy.get('version')}; thresholds chosen on {where} by "
              f"`shotlab train`; flagged and sent to review: the shares of those samples "
              f"at or over the threshold and inside the review band</p>")


def calibration_html(calibration: dict | None, effect: dict | None = None) -> str:
    """The calibration record, with the ECE before and after it: on the validation split it
    was fitted on (the record's) and on the split the report measures (`effect`, the run's
    metrics.json, as `shotlab train` printed it)."""
    if not calibration or calibration.get("method") != "temperature":
        reason = (calibration or {}).get("reason", "no calibration recorded")
        return f"<p class='meta'>Scores not calibrated: {html.escape(reason)}.</p>"
    t = calibration["temperature"]
    shown = fmt(t, 2) if isinstance(t, (int, float)) else f"{fmt(min(t), 2)}-{fmt(max(t), 2)} per class"
    return (f"<p class='meta'>Scores calibrated by temperature scaling folded into the model "
            f"(T = {shown}, fitted on {calibration['fitted_on']} val samples; val log-loss "
            f"{fmt(calibration.get('val_nll_before'))} &rarr; {fmt(calibration.get('val_nll_after'))}"
            + before_after("val ECE", calibration.get("val_ece_before"),
                           calibration.get("val_ece_after"))
            + (before_after(f"ECE on {html.escape(effect['split'])}", effect["ece_raw"],
                            effect.get("ece")) if effect else "")
            + "). Thresholds and the review band were chosen on these scores"
            + (f"; {html.escape(calibration['rule'])}" if calibration.get("rule") else "")
            + ".</p>")


def before_after(name: str, before, after) -> str:
    """', ECE on test 0.231 &rarr; 0.187'; nothing where the record lacks the figure before."""
    return "" if before is None else f", {name} {fmt(before)} &rarr; {fmt(after)}"


def fmt(value, digits: int = 3) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}f}"


def share(value) -> str:
    """A rate as a percentage; a dash where the run did not record it (a bundle from before)."""
    return "&ndash;" if value is None else f"{value:.0%}"


def interval(metrics: dict, key: str) -> str:
    bounds = metrics.get("intervals", {}).get(key)
    if not bounds or bounds[0] is None:
        return ""
    return f" <span class='meta'>[{fmt(bounds[0])}, {fmt(bounds[1])}]</span>"


def table_html(headers, rows) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def agreement_html(report: dict, manifest: dict) -> str:
    unsafe = manifest["policy"].get("unsafe", [])
    rows = []
    flagged = [u for u in unsafe if u in report["pytorch"].get("flag_recall", {})]

    def unsafe_cells(metrics, flags):
        return ([fmt(metrics["per_class"][u]["recall"]) for u in unsafe]
                + [fmt(flags.get(u)) for u in flagged])

    def row(name, metrics, parity, flags):
        return ([html.escape(name), f"{parity['max_abs_diff']:.2e}" if parity else "&ndash;",
                 fmt(parity["top1_agreement"]) if parity else "&ndash;",
                 fmt(metrics["accuracy"]), fmt(metrics["macro_f1"])]
                + unsafe_cells(metrics, flags))

    # a clip bundle's clips, pooled and decided per runtime, are measured the same way
    clips = report.get("clips") or {}
    sections = [("", report)] + ([(f" ({clips['n']} clips)", clips)] if "runtimes" in clips
                                 else [])
    for suffix, measured in sections:
        reference = measured["pytorch"]
        rows.append(row(f"pytorch{suffix} (reference)", reference["metrics"], None,
                        reference.get("flag_recall", {})))
        rows += [row(name + suffix, entry["metrics"], entry["parity"],
                     entry["parity"].get("flag_recall", {}))
                 for name, entry in measured["runtimes"].items()]
    headers = ["runtime", "max |&Delta;p|", "top-1 agreement", "accuracy", "macro-F1"] + [
        f"recall {html.escape(u)} (unsafe)" for u in unsafe] + [
        f"{html.escape(u)} positives flagged" for u in flagged]
    note = ("" if report["same_preprocessing"] else
            "<p><b>The bundle's preprocessing differs from the checkpoint's</b>: the runtimes "
            "below see the bundle's pipeline, PyTorch its training pipeline.</p>")
    skipped = (f"<p class='meta'>{len(report['skipped'])} {html.escape(report['split'])} "
               f"file(s) skipped as unreadable.</p>" if report["skipped"] else "")
    return note + table_html(headers, rows) + skipped


def runtimes_html(report: dict, manifest: dict) -> str:
    sections = [runtime_html("pytorch (reference)", report["pytorch"]["metrics"], manifest)]
    sections += [runtime_html(name, entry["metrics"], manifest)
                 for name, entry in report["runtimes"].items()]
    return "".join(sections)


def runtime_html(name: str, metrics: dict, manifest: dict) -> str:
    rows = []
    for cls, m in metrics["per_class"].items():
        rows.append([html.escape(cls), fmt(m["precision"]),
                     fmt(m["recall"]) + interval(metrics, f"recall/{cls}"), fmt(m["f2"]),
                     fmt(m["auprc"]), m["support"]])
    summary = (f"<p>accuracy {fmt(metrics['accuracy'])}{interval(metrics, 'accuracy')} &middot; "
               f"macro-F1 {fmt(metrics['macro_f1'])}{interval(metrics, 'macro_f1')} &middot; "
               f"macro-AUPRC {fmt(metrics['macro_auprc'])}{interval(metrics, 'macro_auprc')}"
               f" &middot; ECE {fmt(metrics.get('ece'))}"
               f"<br><span class='meta'>95% bootstrap intervals, "
               f"{metrics['bootstrap']['n_resamples']} resamples; recall's exact binomial "
               f"(Clopper-Pearson)</span></p>")
    table = table_html(["class", "precision", "recall [95% CI]", "F2", "AUPRC", "support"], rows)
    image = confusion_png(metrics["confusion_matrix"], manifest["classes"], name)
    return (f"<h3>{html.escape(name)}</h3>{summary}<div class='runtime'><div>{table}</div>"
            f"<img alt='confusion matrix {html.escape(name)}' src='data:image/png;base64,{image}'>"
            f"</div>")


def confusion_png(matrix, classes, name: str) -> str:
    from shotlab.train.plots import confusion_matrix_png

    with tempfile.TemporaryDirectory() as folder:
        path = confusion_matrix_png(matrix, classes, Path(folder) / "cm.png",
                                    title=f"Confusion matrix: {name}")
        return base64.b64encode(path.read_bytes()).decode("ascii")


def speed_html(section: dict) -> str:
    if "batches" not in section:
        return f"<p>{html.escape(section.get('note', ''))}</p>"
    rows = []
    for batch, runners in section["batches"].items():
        base = runners["pytorch"]["images_per_s"]
        for name, t in runners.items():
            ratio = t["images_per_s"] / base if base and t["images_per_s"] else None
            rows.append([html.escape(name), batch, f"{t['median_ms']:.2f}",
                         f"{t['images_per_s']:.1f}", fmt(ratio, 2) + "&times;"])
    load = section.get("load_average")
    return (table_html(["runtime", "batch", "median latency (ms)", "images/s", "vs PyTorch"],
                       rows)
            + f"<p class='meta'>{html.escape(section['note'])}; load average {load}</p>")


def explanations_html(section: dict | None) -> str:
    if not section:
        return "<p>Not computed for this bundle.</p>"
    if not section.get("available"):
        return f"<p>Not available: {html.escape(section.get('reason', ''))}</p>"
    cards = []
    for item in section["items"]:
        status = ("<span class='right'>correct</span>" if item["correct"]
                  else "<span class='wrong'>wrong</span>")
        cards.append(
            f"<div class='card'>{status} &middot; true <b>{html.escape(item['true'])}</b>, "
            f"predicted <b>{html.escape(item['predicted'])}</b> ({item['score']:.2f})<br>"
            f"<img alt='Grad-CAM' src='data:image/png;base64,{item['_gradcam_png']}'> "
            f"<img alt='LIME' src='data:image/png;base64,{item['_lime_png']}'><br>"
            f"<span class='meta'>Grad-CAM (PyTorch) &middot; LIME (ONNX) &middot; "
            f"{html.escape(Path(item['path']).name)}</span></div>")
    note = html.escape(section.get("note", ""))
    return f"<p class='meta'>{note}</p><div class='grid'>{''.join(cards)}</div>"


def key_value_html(data: dict) -> str:
    return table_html(["key", "value"], [[html.escape(str(k)), html.escape(str(v))]
                                         for k, v in data.items()])


def environment_html(env: dict) -> str:
    rows = {**{k: v for k, v in env.items() if k != "versions"}, **env["versions"]}
    return key_value_html(rows)
