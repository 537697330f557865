"""The input kinds the page can show: one entry per kind, each an input widget and a view.

    PANELS["image"].pick(st, model)                  -> (name, bytes, path or None) or None
    PANELS["image"].decide(model, name, data, path)  -> page.deciding.Decided
    PANELS["image"].explain(model, decided, ["gradcam"], score=False, progress=...) -> results
    PANELS["image"].show(st, model, decided, results, opacity)
    panels_for("image")                              -> [image panel, clip panel]

A panel draws with the `st` (Streamlit) module it is handed, so this table imports no Streamlit
and `model.open_model` can refuse a kind the page has no panel for before anything is served.
`model_kind` is the bundle input kind a panel serves: a clip is scored by an image model (as
`shotlab predict` scores clips), so an image bundle offers both panels and the page asks which.
A panel's `tier1` methods are shown with the decision, its `deeper` ones on request (progress,
Cancel); `explain` returns {"maps": {method: (H, W)}} and/or {"words": {method: WordScores}}.

    image  an upload or a report sample; Grad-CAM, then Grad-CAM++, IG, LIME, SHAP
    clip   the timeline of frame scores with the segments a reviewer watches; the maps on the
           clip's top frame
    text   a typed comment or a .txt (one comment): `shotlab predict`'s comment record; the
           words highlighted by IG, then SHAP and LIME, each with ERASER faithfulness
    post   an image and its caption (a bundle with the parts image + text): predict's post
           record; the modality split, Grad-CAM on the image, the caption's words by IG
The decision, the bars and "Open decision" are shared by all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError


def explain_maps(model, decided, methods, *, score: bool, progress=None) -> dict:
    from shotlab.page.explaining import explain_decided

    return explain_decided(model, decided, methods, score=score, progress=progress)


def explain_words(model, decided, methods, *, score: bool, progress=None) -> dict:
    from shotlab.page.explaining import explain_comment

    return explain_comment(model, decided, methods, progress=progress)  # always scored: cheap


@dataclass(frozen=True)
class Panel:
    kind: str
    noun: str  # "an image": what the page asks for
    pick: Callable  # (st, model) -> (name, data, path | None) | None
    show: Callable  # (st, model, decided, results {"maps"/"words": {method: ...}}, opacity)
    decide: Callable  # (model, name, data, path | None) -> page.deciding.Decided
    model_kind: str = "image"  # the bundle input kind this panel's inputs are scored by
    # (model, decided, methods, score=, progress=) -> {"maps" or "words": {method: ...}, ...}
    explain: Callable = explain_maps
    tier1: tuple[str, ...] = ("gradcam",)  # shown with the decision (cheap)
    deeper: tuple[str, ...] = ("gradcampp", "ig", "lime", "shap")  # on request, cancellable
    score_on_request: bool = True  # a "Score faithfulness" box; False: every method is scored
    pictures: bool = True  # maps over a picture (an opacity slider)
    reads: tuple[str, ...] = ()  # the runtime input kinds (runtime.kinds.KINDS) it reads: (kind,)

    @property
    def input_kinds(self) -> tuple[str, ...]:
        return self.reads or (self.kind,)


def report_samples(bundle) -> list[Path]:
    """The inputs the bundle's report explains (one right and one wrong per class) that are
    still on disk: ready-made examples to pick instead of uploading."""
    import json

    from shotlab.runtime.bundle import REPORT_JSON

    try:
        report = json.loads((Path(bundle.path) / REPORT_JSON).read_text())
        items = report.get("explanations", {}).get("items", [])
        paths = [Path(item["path"]) for item in items]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []  # a bundle without a readable report simply offers no samples
    return list(dict.fromkeys(p for p in paths if p.is_file()))


def upload(st, kind: str, noun: str, also: tuple[str, ...] = ()):
    """(name, bytes, None) of a file the user dropped, with one of `kind`'s suffixes (or of
    `also`)."""
    from shotlab.runtime.kinds import get_kind

    suffixes = sorted({s.lstrip(".") for s in get_kind(kind).extensions} | set(also))
    uploaded = st.file_uploader(f"Upload {noun}", type=suffixes, key=f"upload-{kind}")
    return None if uploaded is None else (uploaded.name, uploaded.getvalue(), None)


def pick_image(st, model):
    uploaded = upload(st, "image", "an image")
    if uploaded is not None:
        return uploaded
    samples = report_samples(model.bundle)
    if not samples:
        return None
    labels = ["(none)", *[f"{p.parent.name}/{p.name}" for p in samples]]
    chosen = st.selectbox("or pick one of the bundle's report samples", labels, key="sample")
    if chosen == labels[0]:
        return None
    path = samples[labels.index(chosen) - 1]
    from shotlab.core.images import read_bytes

    return str(path), read_bytes(path), path


def show_image(st, model, decided, results: dict, opacity: float) -> None:
    import numpy as np

    from shotlab.core.images import rgb_from_bytes
    from shotlab.explain.plots import overlay

    rgb = np.asarray(model.bundle.preprocessing.resize_and_crop(
        rgb_from_bytes(decided.data, decided.name)))
    pictures = [(rgb, "input, as the model sees it")]
    pictures += [(overlay(rgb, heatmap, alpha=opacity), METHOD_TITLES.get(method, method))
                 for method, heatmap in results.get("maps", {}).items()]
    picture_row(st, pictures)


def pick_clip(st, model):
    # an animated GIF or PNG is decided as a clip (as `shotlab predict` decides it)
    return upload(st, "clip", "a short clip or an animated GIF", also=("gif", "png"))


def show_clip(st, model, decided, results: dict, opacity: float) -> None:
    """The timeline of frame scores with the segments, then the maps on the top frame."""
    from shotlab.explain.plots import overlay

    from shotlab.export.predict_clips import clip_thresholds

    times, probs = decided.timeline
    figure = timeline_figure(model.bundle.classes, clip_thresholds(model.bundle),
                             decided.record, times, probs)
    st.pyplot(figure, clear_figure=True)
    segments = decided.record["segments"]
    st.markdown("**Watch**: " + ("; ".join(
        f"{plain(s['class'])} {s['start']:.1f}-{s['end']:.1f} s (peak {s['peak']:.2f}"
        f"{', FLAGGED' if s['flagged'] else ', review'})" for s in segments)
        if segments else "nothing: no sampled frame reached a review band or threshold"))
    rgb = model_view(decided.array, model.bundle.preprocessing)
    pictures = [(rgb, "top frame, as the model sees it")]
    pictures += [(overlay(rgb, heatmap, alpha=opacity), METHOD_TITLES.get(method, method))
                 for method, heatmap in results.get("maps", {}).items()]
    picture_row(st, pictures)


def model_view(array, preprocessing):
    """A preprocessed (3, H, W) sample back to the uint8 RGB picture the model saw."""
    import numpy as np

    rgb = array.transpose(1, 2, 0) * np.asarray(preprocessing.std) + np.asarray(preprocessing.mean)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def timeline_figure(classes, thresholds: dict, record: dict, times, probs):
    """Matplotlib figure: one line per class over the clip's seconds, each policy class's
    threshold (the one its segments use) dashed, the segments shaded (red flagged, amber
    review)."""
    from shotlab.core.figures import figure as new_figure
    from shotlab.core.figures import literal

    figure = new_figure(8, 2.6)
    axes = figure.subplots()
    for index, name in enumerate(classes):
        line, = axes.plot(times, probs[:, index], marker="o", markersize=3, label=literal(name))
        cut = thresholds.get(name)
        if cut is not None:
            cut = cut["threshold"] if isinstance(cut, dict) else cut
            axes.axhline(float(cut), color=line.get_color(), linestyle="--", linewidth=0.8)
    for segment in record["segments"]:
        axes.axvspan(segment["start"], segment["end"], alpha=0.18,
                     color="#d64541" if segment["flagged"] else "#f0ad4e")
    axes.set(xlabel="seconds", ylabel="score", ylim=(0, 1.02),
             xlim=(0, max(record.get("duration") or 0, max(times, default=0)) or 1))
    axes.legend(loc="upper right", fontsize="small", ncols=min(len(classes), 4))
    return figure


def picture_row(st, pictures) -> None:
    """[(uint8 (H, W, 3), caption)] side by side, at most a quarter of the page wide each;
    captions (which name classes) are Markdown to Streamlit, so shown `plain`."""
    for column, (picture, caption) in zip(st.columns(max(len(pictures), PICTURES_PER_ROW)),
                                          pictures):
        column.image(picture, caption=plain(caption), width="stretch")


# Characters Streamlit's Markdown may read as markup: CommonMark's escapable punctuation that
# matters, ':' (a URL's "http://" autolinked, `:red[...]` colour directives, emoji shortcodes),
# '@' (e-mail autolinks), '$' (LaTeX) and '&' (an entity such as &#47; spelling a URL's slashes).
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:@$&])")
PICTURES_PER_ROW = 4  # the page's pictures share a row of this many columns at least

METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "ig": "Integrated Gradients",
                 "lime": "LIME", "shap": "SHAP"}

def decide_image(model, name, data, path=None):
    from shotlab.page.deciding import decide

    return decide(model, name, data, path)


def decide_clip(model, name, data, path=None):
    from shotlab.page.deciding import decide_clip

    return decide_clip(model, name, data, path)


def pick_text(st, model):
    """A comment typed (sent with "Decide") or a .txt upload (the whole file is one comment)."""
    uploaded = st.file_uploader("Upload a comment (.txt: the whole file is one comment)",
                                type=["txt"], key="upload-text")
    if uploaded is not None:
        return uploaded.name, uploaded.getvalue(), None
    with st.form("comment-form"):
        typed = st.text_area("Comment", key="comment", height=110)
        sent = st.form_submit_button("Decide")
    if sent:
        st.session_state["comment-sent"] = typed
    if "comment-sent" not in st.session_state:
        return None
    return "comment", st.session_state["comment-sent"].encode("utf-8"), None


def show_text(st, model, decided, results: dict, opacity) -> None:
    """One line per method: the comment with its words highlighted (`explain.text_render`,
    escaped), then each method's faithfulness against random word rankings."""
    st.markdown(f"**Words** for **{plain(results.get('target', ''))}**: red pushes the score "
                f"towards it, blue away; the stronger the colour, the larger the word's share of "
                f"the strongest word's (hover a word for its score).")
    words = results.get("words", {})
    for method, explanation in words.items():
        st.markdown(words_html(method, explanation), unsafe_allow_html=True)
    faithfulness_table(st, words)


def words_html(method: str, explanation) -> str:
    """The comment as one line of HTML for `st.markdown(unsafe_allow_html=True)`: its line
    breaks become <br>, since a blank line would end the HTML block and let Markdown read the
    rest of the comment (links, headings, pictures fetched from anywhere)."""
    import html

    from shotlab.explain.text_render import html_comment

    comment = re.sub(r"\r\n|\r|\n", "<br>", html_comment(explanation))
    return (f"<div class='shotlab-words' data-method='{html.escape(method)}' "
            f"style='margin:6px 0;line-height:1.8'><span style='display:inline-block;"
            f"width:170px;color:#555'>{html.escape(METHOD_TITLES.get(method, method))}</span>"
            f"{comment}</div>")


def plain(text) -> str:
    """`text` (a file or class name, a message quoting one) shown as itself in Streamlit Markdown
    (`st.markdown`, and the alerts: `st.error`, `st.warning`), never as markup: a class named
    `![b](http://host/x.png)` made every reviewer's browser fetch that address."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def faithfulness_table(st, words: dict) -> None:
    scored = {m: e.faithfulness for m, e in words.items() if e.faithfulness}
    if not scored:
        return
    st.markdown("**Faithfulness** (ERASER; comprehensiveness: higher is better; sufficiency: "
                "lower is better; each against random word rankings)")
    st.table([{"method": METHOD_TITLES.get(m, m),
               "comprehensiveness": round(f["comprehensiveness"], 3),
               "random comprehensiveness": round(f["random_comprehensiveness"], 3),
               "sufficiency": round(f["sufficiency"], 3),
               "random sufficiency": round(f["random_sufficiency"], 3),
               "beats random": "yes" if f["beats_random_comprehensiveness"]
               and f["beats_random_sufficiency"] else "NO"} for m, f in scored.items()])


def decide_text(model, name, data, path=None):
    from shotlab.page.deciding import decide_text

    return decide_text(model, name, data, path)


def pick_post(st, model):
    """A post: its image uploaded and its caption (sent with "Decide")."""
    from shotlab.runtime.kinds import get_kind

    suffixes = sorted(s.lstrip(".") for s in get_kind("image").extensions)
    uploaded = st.file_uploader("Upload the post's image", type=suffixes, key="upload-post")
    with st.form("post-form"):
        caption = st.text_area("Caption", key="caption", height=80)
        sent = st.form_submit_button("Decide")
    if sent:
        st.session_state["caption-sent"] = caption
    if uploaded is None or "caption-sent" not in st.session_state:
        return None
    return uploaded.name, (uploaded.getvalue(), st.session_state["caption-sent"]), None


def show_post(st, model, decided, results: dict, opacity: float) -> None:
    """The modality split, the picture with its Grad-CAM (caption held fixed) and the caption's
    words by IG (picture held fixed), as `shotlab predict --explain` stores them for a post."""
    from shotlab.explain.plots import overlay

    if results.get("split"):
        st.markdown(split_line(results["split"]))
    rgb = model_view(decided.array["image"][0], model.bundle.parts["image"])
    pictures = [(rgb, "image, as the model sees it")]
    pictures += [(overlay(rgb, heatmap, alpha=opacity),
                  f"{METHOD_TITLES.get(method, method)} (caption held fixed)")
                 for method, heatmap in results.get("maps", {}).items()]
    picture_row(st, pictures)
    words = results.get("words", {})
    for method, explanation in words.items():
        st.markdown(words_html(method, explanation), unsafe_allow_html=True)
    faithfulness_table(st, words)


def split_line(split: dict) -> str:
    """One line for a post's modality split (`explain.post_split.ModalitySplit.as_dict`)."""
    share = split.get("image_share")
    shares = (f"image {share:.0%}, caption {1 - share:.0%} of the change" if share is not None
              else "neither part moved the score")
    return (f"**Modality split** for **{plain(split['target'])}** (exact two-player Shapley): "
            f"image {split['phi_image']:+.3f}, caption {split['phi_text']:+.3f}; {shares}; score "
            f"{split['both']:.3f} with both, {split['neither']:.3f} with neither (an all-mean "
            f"image, an empty caption)")


def explain_post(model, decided, methods, *, score: bool, progress=None) -> dict:
    from shotlab.page.explaining import explain_post

    return explain_post(model, decided, methods, progress=progress)


def decide_post(model, name, data, path=None):
    from shotlab.page.deciding import decide_post

    return decide_post(model, name, data, path)


PANELS: dict[str, Panel] = {
    "image": Panel("image", "an image", pick_image, show_image, decide_image),
    "clip": Panel("clip", "a short clip", pick_clip, show_clip, decide_clip),
    "text": Panel("text", "a comment", pick_text, show_text, decide_text, model_kind="text",
                  explain=explain_words, tier1=("ig",), deeper=("shap", "lime"),
                  score_on_request=False, pictures=False),
    "post": Panel("post", "a post (image and caption)", pick_post, show_post, decide_post,
                  model_kind="post", explain=explain_post, tier1=("gradcam", "ig"), deeper=(),
                  score_on_request=False, reads=("image", "text")),  # a two-part model
}


def panels_for(model_kind: str) -> list[Panel]:
    """The panels whose inputs a bundle of `model_kind` scores; InputError when none."""
    found = [panel for panel in PANELS.values() if panel.model_kind == model_kind]
    if not found:
        raise InputError(f"the page has no view for input kind '{model_kind}' yet (it shows "
                         f"inputs of {', '.join(sorted({p.model_kind for p in PANELS.values()}))} "
                         f"models); use `shotlab explain` and `shotlab predict` for this bundle")
    return found
