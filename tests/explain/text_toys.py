"""Text models whose right attribution is known, and a small real one, for the text tests.

`OneWordModel` reads token ids like `TextClassifier` (the same `encoder.word_embeddings` layer)
but its class-1 logit is `4 * (number of times WORD's token appears) - 2`: the decision depends on
that one word only, so a faithful method puts (almost) all the evidence on it.

`fitted_classifier` is the real thing at test size: all-MiniLM-L6-v2 with a logistic regression
fitted on `embed_texts` of a few written comments, copied into `TextClassifier.head`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

WORD = "kills"
CLASSES = ("fine", "violent")

# Written for the tests (illustrative, not real user content): violent threats vs. everyday talk,
# some of it with violent-sounding idioms on the "fine" side.
COMMENTS = [
    ("I will hurt you and your family", "violent"),
    ("I am going to beat you until you bleed", "violent"),
    ("someone should stab him tonight", "violent"),
    ("I'll break your neck if I see you", "violent"),
    ("we will burn your house down", "violent"),
    ("I want to shoot everyone at that school", "violent"),
    ("you deserve to be beaten to death", "violent"),
    ("I'm coming for you with a knife", "violent"),
    ("what a lovely day at the beach", "fine"),
    ("thanks for sharing this recipe", "fine"),
    ("the concert last night was great", "fine"),
    ("this movie made me laugh so hard", "fine"),
    ("I love the colours in this photo", "fine"),
    ("happy birthday, have a wonderful year", "fine"),
    ("the new update fixed my problem", "fine"),
    ("great goal in the second half", "fine"),
]


class OneWordModel(nn.Module):
    def __init__(self, tokenizer, word: str = WORD):
        super().__init__()
        self.word_id = tokenizer.token_to_id(word)
        vocab = tokenizer.get_vocab_size()
        self.encoder = nn.Module()
        self.encoder.word_embeddings = nn.Embedding(vocab, 2)
        with torch.no_grad():
            self.encoder.word_embeddings.weight.zero_()
            self.encoder.word_embeddings.weight[self.word_id, 0] = 1.0
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0], [4.0]]))
            self.head.bias.copy_(torch.tensor([0.0, -2.0]))

    def forward(self, ids):
        count = self.encoder.word_embeddings(ids)[..., 0].sum(dim=1, keepdim=True)
        return self.head(count)


def fitted_classifier(encoder, comments=COMMENTS, classes=CLASSES):
    """A TextClassifier whose head is a logistic regression fitted on the comments' embeddings."""
    from sklearn.linear_model import LogisticRegression

    from shotlab.train.text_model import TextClassifier, embed_texts

    texts = [t for t, _ in comments]
    labels = np.array([list(classes).index(c) for _, c in comments])
    fitted = LogisticRegression(C=10.0, max_iter=1000).fit(embed_texts(texts, encoder=encoder),
                                                             labels)
    model = TextClassifier(encoder, classes=len(classes))
    with torch.no_grad():  # binary LR: logit_1 - logit_0 = w.x + b, as softmax over [0, w.x + b]
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[1] = torch.from_numpy(fitted.coef_[0].astype(np.float32))
        model.head.bias[1] = float(fitted.intercept_[0])
    return model.eval()


class TwoTagModel(OneWordModel):
    """Multilabel: both classes' logits are `4 * count(WORD) - 2`, so their sigmoid scores rise
    with the word while a softmax over the two stays at 0.5 whatever the text."""

    def __init__(self, tokenizer, word: str = WORD):
        super().__init__(tokenizer, word)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[4.0], [4.0]]))
            self.head.bias.copy_(torch.tensor([-2.0, -2.0]))


def write_bundle(model, prep, folder, task: str = "multiclass"):
    """A bundle folder for a text `model`, through runtime/bundle.py (as export writes one)."""
    import shutil
    import warnings

    from shotlab.runtime.bundle import ONNX_FILE, TOKENIZER_FILE, write_manifest
    from shotlab.runtime.runners import probability_model

    folder.mkdir(parents=True)
    ids = torch.tensor([[101, 2023, 102]], dtype=torch.int64)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(probability_model(model, task).eval(), (ids,),
                          str(folder / ONNX_FILE), input_names=["input"],
                          output_names=["scores"], dynamo=False,
                          dynamic_axes={"input": {0: "batch", 1: "tokens"},
                                        "scores": {0: "batch"}})
    shutil.copyfile(prep.tokenizer, folder / TOKENIZER_FILE)
    write_manifest(folder, {
        "classes": list(prep.class_names), "task": task,
        "preprocessing": {**prep.to_dict(), "tokenizer": TOKENIZER_FILE},
        "policy": {"unsafe": ["violent"], "thresholds": {}},
        "source": {"checkpoint": str(folder.parent / "no-checkpoint" / "best.pt")},
        "runtimes": {"onnx": ONNX_FILE}})
    return folder
