"""The page (Streamlit): "Decide and explain" and "Open decision".

Streamlit runs `script.py` once per browser session and again on every interaction, each session
in its own thread: one user's LIME does not hold up another user's decision. What a session has
decided and explained is kept in its `st.session_state`, keyed by the input's hash, so moving the
opacity slider redraws without deciding again (and without a new decision id).
"""

from __future__ import annotations

import hashlib
import html
import json
import sys

import streamlit as st

from shotlab.core.errors import ShotlabError
from shotlab.page.panels import (METHOD_TITLES, faithfulness_table, panels_for, picture_row,
                                 plain, split_line, words_html)


def current_model():
    """The model `launch` loaded; when the script is run on its own (`streamlit run script.py
    BUNDLE [STORE]`), the bundle named by its arguments, loaded once per process."""
    from shotlab.page.model import served

    return served() or opened(*sys.argv[1:3])


@st.cache_resource(show_spinner="Loading the bundle")
def opened(source: str, store: str = ""):
    from shotlab.page.model import open_model

    return open_model(source, store=store or None)


def main() -> None:
    st.set_page_config(page_title="shotlab: why this decision", layout="wide")
    model = current_model()
    sidebar(model)
    decide_tab, stored_tab = st.tabs(["Decide and explain", "Open decision"])
    with decide_tab:
        decide_view(model)
    with stored_tab:
        stored_view(model)


def sidebar(model) -> None:
    bundle = model.bundle
    st.sidebar.markdown(f"**Bundle** {plain(bundle.origin)}")
    st.sidebar.markdown(f"task {bundle.task}; classes {', '.join(map(plain, bundle.classes))}; "
                        f"policy version {bundle.policy.get('version', 'none')}; runtime onnx")
    st.sidebar.caption("Decisions come from the same rule and record as `shotlab predict`; "
                       "nothing here is stored.")


# --- Decide and explain -------------------------------------------------------------------------

def decide_view(model) -> None:
    panels = panels_for(model.kind)
    panel = panels[0]
    if len(panels) > 1:  # an image model also scores clips, as `shotlab predict` does
        nouns = [p.noun for p in panels]
        panel = panels[nouns.index(st.radio("Input", nouns, horizontal=True, key="panel"))]
    picked = panel.pick(st, model)
    if picked is None:
        st.info(f"Upload {panel.noun} to see the decision and why.")
        return
    decided = decision_of(model, panel, *picked)
    if decided is None:
        return
    decision_summary(model, decided)
    opacity = (st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")
               if panel.pictures else None)
    results = st.session_state.setdefault("explained", {})
    first_methods(model, panel, decided, results)
    panel.show(st, model, decided, results, opacity)
    deeper_form(model, panel, decided, results)
    scores_view(results)


def first_methods(model, panel, decided, results: dict) -> None:
    """The panel's tier-1 methods (Grad-CAM; IG for a comment), run once with the decision;
    when they cannot run (e.g. the checkpoint behind the bundle is gone) the page says why."""
    missing = [m for m in panel.tier1 if m not in shown_methods(results)]
    if missing and "tier1_error" not in results:
        titles = ", ".join(METHOD_TITLES.get(m, m) for m in missing)
        with st.spinner(titles):
            try:
                merge(results, panel.explain(model, decided, missing,
                                             score=not panel.score_on_request))
            except ShotlabError as exc:
                results["tier1_error"] = f"{titles}: {exc}"
    if "tier1_error" in results:
        st.warning(plain(results["tier1_error"]))


def shown_methods(results: dict) -> set:
    return set(results.get("maps", {})) | set(results.get("words", {}))


def decision_of(model, panel, name: str, data: bytes, path):
    """The session's decision for this input: made once per input (the session keeps only the
    latest, with its explanations), so a redraw keeps its decision id."""
    key = f"{panel.kind}:{digest(data)}:{name}"
    current = st.session_state.get("decided")
    if current is None or current[0] != key:
        try:
            with st.spinner(f"Deciding {panel.noun}"):
                decided = panel.decide(model, name, data, path)
        except ShotlabError as exc:
            st.error(plain(exc))  # the one line `shotlab predict` prints for this file
            return None
        st.session_state["decided"] = (key, decided)
        st.session_state["explained"] = {}
    return st.session_state["decided"][1]


def digest(data) -> str:
    """sha256 over an input's bytes (a post's: its image bytes and its caption)."""
    total = hashlib.sha256()
    for part in data if isinstance(data, tuple) else (data,):
        total.update(hashlib.sha256(part.encode() if isinstance(part, str) else part).digest())
    return total.hexdigest()


def merge(results: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict):
            results.setdefault(key, {}).update(value)
        else:
            results[key] = value


def run_explanations(model, panel, decided, methods, *, score: bool, bar=None) -> dict:
    def progress(fraction, text):
        if bar is not None:  # also where a cancelled run stops (Streamlit's next page update)
            bar.progress(min(max(fraction, 0.0), 1.0), text=text)

    return panel.explain(model, decided, methods, score=score, progress=progress)


def decision_summary(model, decided) -> None:
    from shotlab.page.deciding import bars

    record = decided.record
    verdict = ("FLAGGED: " + ", ".join(map(plain, record["flagged"])) if record["flagged"]
               else "not flagged")
    review = "needs review" if record["needs_review"] else "no review needed"
    st.subheader(f"{plain(decided.name)}: {', '.join(map(plain, record['labels']))}")
    st.markdown(f"**{verdict}**; {review}; decided in {decided.latency_ms:.1f} ms")
    st.markdown(bars_html(bars(model.bundle, record)), unsafe_allow_html=True)
    with st.expander("Decision record (as `shotlab predict` writes it)"):
        st.code(json.dumps(record, indent=1), language="json")


def bars_html(rows: list[dict]) -> str:
    """One bar per class: its score, the review band shaded, the threshold as a tick."""
    parts = ["<div class='shotlab-bars' style='max-width:720px'>"]
    for row in rows:
        score = row["score"]
        band = row["band"]
        band_div = (f"<div style='position:absolute;left:{band[0] * 100:.2f}%;width:"
                    f"{(band[1] - band[0]) * 100:.2f}%;top:0;bottom:0;background:#f6d365;"
                    f"opacity:.6' title='review band {band[0]:.2f}-{band[1]:.2f}'></div>"
                    if band else "")
        tick = (f"<div style='position:absolute;left:{row['threshold'] * 100:.2f}%;top:-3px;"
                f"bottom:-3px;width:2px;background:#222' title='threshold "
                f"{row['threshold']:.2f}'></div>" if row["threshold"] is not None else "")
        colour = "#d64541" if row["flagged"] else ("#4a90d9" if row["label"] else "#9aa5b1")
        notes = [f"threshold {row['threshold']:.2f}"] if row["threshold"] is not None else []
        notes += [f"review band {band[0]:.2f}-{band[1]:.2f}"] if band else []
        notes += ["FLAGGED"] if row["flagged"] else []
        name = html.escape(row["class"])
        parts.append(
            f"<div class='shotlab-bar' data-class='{name}' data-score='{score!r}' "
            f"data-flagged='{str(row['flagged']).lower()}' style='display:flex;"
            f"align-items:center;gap:8px;margin:4px 0'>"
            f"<span style='width:110px;font-weight:{600 if row['policy'] else 400}'>{name}</span>"
            f"<div style='position:relative;flex:1;height:16px;background:#eef0f3;"
            f"border-radius:3px'>{band_div}<div style='position:absolute;left:0;top:3px;"
            f"height:10px;width:{score * 100:.2f}%;background:{colour};border-radius:2px'></div>"
            f"{tick}</div><span style='width:300px;font-size:0.85em'>{score:.3f}"
            f"{'; ' + '; '.join(notes) if notes else ''}</span></div>")
    parts.append("</div>")
    return "".join(parts)


def deeper_form(model, panel, decided, results: dict) -> None:
    if not panel.deeper:  # a post: its tier-1 explanations are all there is
        return
    if panel.pictures:
        st.markdown("**More explanations**: LIME and SHAP run the model hundreds of times "
                    "(tens of seconds); IG and Grad-CAM++ use the PyTorch checkpoint.")
    else:
        st.markdown("**More explanations**: SHAP and LIME run the model hundreds of times "
                    "(seconds to tens of seconds), each scored against random word rankings.")
    columns = st.columns(len(panel.deeper) + 1)
    methods = [m for m, column in zip(panel.deeper, columns)
               if column.checkbox(METHOD_TITLES.get(m, m), key=f"method-{m}")]
    score = panel.score_on_request and columns[-1].checkbox(
        "Score faithfulness", key="score", help="Deletion/insertion AUC against random maps, "
        "and the model-randomisation sanity check for the CAM methods.")
    running_key = f"running:{decided.record['decision_id']}"
    if st.session_state.pop(running_key, None):
        st.warning("Explanation cancelled.")  # the run before this one did not finish
    if not st.button("Explain", key="explain", type="primary"):
        return
    shown = shown_methods(results)
    first = [] if "tier1_error" in results else list(panel.tier1)  # none when they failed
    chosen = [m for m in [*first, *methods] if score or m not in shown]
    if not chosen:
        st.info("Those explanations are shown already.")
        return
    st.session_state[running_key] = True
    st.button("Cancel", key="cancel")  # any click re-runs the page, which stops this run
    bar = st.progress(0.0, text="starting")
    try:
        merge(results, run_explanations(model, panel, decided, chosen,
                                        score=score or not panel.score_on_request, bar=bar))
    except ShotlabError as exc:
        st.session_state.pop(running_key, None)
        st.error(plain(exc))
        return
    st.session_state.pop(running_key, None)
    st.rerun()  # draw the new explanations in their place above


def scores_view(results: dict) -> None:
    from shotlab.explain.faithfulness import beats_random

    faith = results.get("faithfulness") or {}
    if faith:
        st.markdown("**Faithfulness** (deletion: lower is better; insertion: higher is better; "
                    "each against random maps)")
        st.table([{"method": METHOD_TITLES.get(m, m),
                   "deletion AUC": round(f["deletion_auc"], 3),
                   "random deletion": round(f["random_deletion_auc"], 3),
                   "insertion AUC": round(f["insertion_auc"], 3),
                   "random insertion": round(f["random_insertion_auc"], 3),
                   "beats random": beats_random(f)}
                  for m, f in faith.items()])
    for method, check in (results.get("sanity") or {}).items():
        verdict = "passed" if check["passed"] else "FAILED"
        st.markdown(f"Sanity check ({METHOD_TITLES.get(method, method)}, cascading model "
                    f"randomisation): mean |Spearman| {check['spearman']:.2f} vs threshold "
                    f"{check['threshold']}: **{verdict}**")
    if results.get("seconds"):
        st.caption("seconds per method: " + ", ".join(
            f"{METHOD_TITLES.get(m, m)} {s:.2f}" for m, s in results["seconds"].items()))


# --- Open decision ------------------------------------------------------------------------------

def stored_view(model) -> None:
    from shotlab.explain.plots import overlay
    from shotlab.page.stored import stored_decision

    if model.store is None:
        st.info("Start the page with --store out/explanations.sqlite to open stored decisions.")
        return
    st.caption(f"Store {plain(model.store)} (opened read-only)")
    with st.form("open-decision"):
        decision_id = st.text_input("Decision id", key="decision_id")
        opened_now = st.form_submit_button("Open decision")
    if not (opened_now or st.session_state.get("decision_id")):
        return
    try:
        shown = stored_decision(model.store, decision_id)
    except ShotlabError as exc:
        st.error(plain(exc))
        return
    decision = shown.decision
    st.subheader(f"Decision {plain(shown.decision_id)}")
    if decision:
        st.markdown(f"labels **{', '.join(map(plain, decision['labels']))}**; flagged "
                    f"{', '.join(map(plain, decision['flagged'])) or 'none'}; "
                    f"{'needs review' if decision['needs_review'] else 'no review needed'}; "
                    f"decided {decision['created']}")
        st.markdown("scores " + ", ".join(f"{plain(name)} {score:.3f}" for name, score in
                                          decision["scores"].items())
                    + f"; input sha256 `{decision['sha256']}`; model sha256 "
                      f"`{decision['model_sha256']}`")
    if shown.note:
        st.warning(plain(shown.note))
    if shown.maps:
        opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="stored-opacity")
        picture_row(st, [(overlay(picture, e.map, alpha=opacity),
                          f"{METHOD_TITLES.get(e.method, e.method)} ({e.target})"
                          + (f" at {float(e.params['timestamp']):.3f} s" if "timestamp" in e.params
                             else ""))
                         for e, picture in zip(shown.maps, shown.backdrops)])
    for split in shown.splits:
        st.markdown(split_line(split.scores))
    for words in shown.words:
        st.markdown(words_html(words.method, words), unsafe_allow_html=True)
    faithfulness_table(st, {w.method: w for w in shown.words})
    st.table([{"method": plain(e.method), "target": plain(e.target), "created": e.created,
               "model sha256": (e.model_sha256 or "")[:16], "input sha256":
               (e.input_sha256 or "")[:16], "scores": json.dumps(e.scores)}
              for e in shown.explanations] or [{"explanations": "none stored yet"}])
    for appeal in shown.appeals:
        st.markdown(f"Appeal {appeal.status}: {', '.join(appeal.methods)}"
                    + (f" ({plain(appeal.error)})" if appeal.error else ""))
    with st.expander("Stored record"):
        st.code(json.dumps({**decision, "explanations": [
            {"method": e.method, "target": e.target, "params": e.params, "scores": e.scores,
             "model_sha256": e.model_sha256, "input_sha256": e.input_sha256,
             "created": e.created} for e in shown.explanations]}, indent=1), language="json")
