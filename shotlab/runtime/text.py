"""Text inputs without torch: a comment becomes token ids through the model's own tokenizer.

    tokenizer = load_tokenizer(preprocessing)        # HF `tokenizers`, from the contract's file
    ids = encode(tokenizer, texts, max_tokens)       # int64 (N, L), padded with PAD_ID
    spans = text_windows(tokenizer, text, max_tokens) # a long comment's windows, read one by one
    words = word_tokens(tokenizer, text, max_tokens) # [(word, [token positions])], no specials

The model reads token ids only: its attention mask is `ids != PAD_ID`, computed inside the
model (and so inside the exported ONNX graph), so a text part is one int64 input like an image
part is one float32 input. `word_tokens` is how sub-word attributions are merged back to the
words a reader sees.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.rows import surrogate_reason

TEXT_FIELD = "text"  # the column of a comment, or of a post's caption, in CSV and JSONL rows

PAD_ID = 0  # BERT's [PAD]; the tokenizer is checked to agree when it is loaded
MAX_TEXT_CHARS = 5000  # a longer comment is refused on import and by predict and serve
# Word pieces two windows of a long comment share (`text_windows`): about 20 words.
WINDOW_OVERLAP = 32


@lru_cache(maxsize=4)
def _tokenizer(path: str):
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises its own Exception type for a bad file
        raise InputError(f"{path}: not a tokenizer file this shotlab reads ({exc}); re-export "
                         f"the model") from None
    if tokenizer.token_to_id("[PAD]") != PAD_ID:
        raise InputError(f"{path}: the tokenizer's [PAD] token is not id {PAD_ID}; shotlab's "
                         f"text models expect a BERT-style vocabulary")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def load_tokenizer(preprocessing):
    """The tokenizer a text contract names (cached per file)."""
    if preprocessing.kind != "text" or not preprocessing.tokenizer:
        raise InputError(f"this model's input is '{preprocessing.kind}', not text with a "
                         f"tokenizer")
    return _tokenizer(str(preprocessing.tokenizer))


def encode(tokenizer, texts, max_tokens: int) -> np.ndarray:
    """int64 (N, L) token ids, each text truncated to `max_tokens` (its [SEP] kept) and padded
    with PAD_ID to the longest in `texts`."""
    return pad([truncate(tokenizer.encode(text).ids, max_tokens) for text in texts])


def text_windows(tokenizer, text: str, max_tokens: int) -> list[tuple[int, int]]:
    """Character spans of `text` that together cover all of it, each short enough for the model
    to read whole: [(0, len(text))] when the text fits in `max_tokens` (nearly every comment),
    else windows of up to `max_tokens` - 2 word pieces that begin and end on word boundaries and
    overlap by `WINDOW_OVERLAP` pieces, so a phrase cut by one boundary is whole in the next.
    Without them a long comment was read to its first `max_tokens` pieces only, and a threat
    after 1,800 characters of filler was never seen."""
    encoding = tokenizer.encode(text)
    words = encoding.word_ids
    inner = [k for k, word in enumerate(words) if word is not None]  # no [CLS], [SEP]
    body = max_tokens - 2
    if len(inner) <= body:
        return [(0, len(text))]

    def word_start(i: int, floor: int) -> int:  # back to the first piece of inner[i]'s word
        while i > floor and words[inner[i]] == words[inner[i - 1]]:
            i -= 1
        return i

    overlap = min(WINDOW_OVERLAP, body // 4)
    spans, first = [], 0
    while True:
        last = min(first + body, len(inner))  # exclusive
        if last < len(inner):  # end on a word boundary, giving back at most half the overlap
            last = word_start(last, max(first + 1, last - overlap // 2))
        spans.append((encoding.offsets[inner[first]][0], encoding.offsets[inner[last - 1]][1]))
        if last == len(inner):
            return spans
        # the next window starts `overlap` pieces back, on a word's start if one is near: a word
        # of many pieces (a long number) snapped it back to here + 1, one piece a window
        start = last - overlap
        first = word_start(start, max(first + 1, start - overlap // 2))


def window_texts(tokenizer, texts, max_tokens: int) -> tuple[list[str], list[int], list]:
    """(the windows' texts, each window's text index, each text's window spans): what
    `text_windows` cuts every text of `texts` into, in order."""
    parts, owners, spans = [], [], []
    for i, text in enumerate(texts):
        found = text_windows(tokenizer, text, max_tokens)
        spans.append(found)
        parts += [text[start:end] for start, end in found]
        owners += [i] * len(found)
    return parts, owners, spans


def pool_windows(probs: np.ndarray, owners, count: int, classes, unsafe) -> np.ndarray:
    """(count, K) scores of `count` texts from their windows' (W, K) scores: the highest
    window for an unsafe class (one threatening passage is enough to flag, as one frame is
    for a clip), the mean for the others (runtime/clip_scores.py's default rules)."""
    from shotlab.runtime.clip_scores import DEFAULT_TAG_RULE, DEFAULT_UNSAFE_RULE, pool_column

    probs, owners = np.asarray(probs, dtype=np.float64), np.asarray(owners)
    rules = [DEFAULT_UNSAFE_RULE if c in set(unsafe) else DEFAULT_TAG_RULE for c in classes]
    return np.array([[pool_column(probs[owners == i, k], rule) for k, rule in enumerate(rules)]
                     for i in range(count)]).reshape(count, len(classes))


def windowed_review_class(scores, classes, unsafe) -> str | None:
    """The class a comment read in several windows, and flagged for none, goes to review
    about: its highest-scoring unsafe class (None where the model has no unsafe class).
    `scores`: {class: score} or a row in `classes`' order. A short threat inside a window of
    filler is diluted in the window's one embedding (one scoring 0.60 alone scored 0.20 after
    1,800 characters of friendly filler, as the filler alone did), so padding a comment must
    not be a way past the model."""
    row = scores if isinstance(scores, dict) else dict(zip(classes, scores))
    named = [c for c in classes if c in set(unsafe)]
    return max(named, key=lambda c: row[c]) if named else None


def decided_passage(record: dict, target: str) -> str:
    """The text an explanation of `record` explains for class `target`: the whole comment, or,
    for one read in windows, the window that scored `target` highest (the model reads no more
    than one window at a time, so that is the passage its score came from)."""
    start, end = decided_span(record, target)
    return record["text"][start:end]


def decided_span(record: dict, target: str) -> tuple[int, int]:
    """`decided_passage`'s characters of the comment: (start, end)."""
    windows = record.get("windows")
    if not windows:
        return 0, len(record["text"])
    top = max(windows, key=lambda w: w["scores"].get(target, 0.0))
    return top["start"], top["end"]


def pad(rows) -> np.ndarray:
    """int64 (N, L): rows of token ids (lists or 1-D arrays, any lengths) padded with PAD_ID to
    the longest (the model masks PAD_ID, so padding changes no score)."""
    width = max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), width), PAD_ID, np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    return ids


def truncate(ids: list[int], max_tokens: int) -> list[int]:
    """`ids` cut to `max_tokens`, keeping the closing special token ([SEP]) last."""
    return ids if len(ids) <= max_tokens else ids[:max_tokens - 1] + ids[-1:]


def word_tokens(tokenizer, text: str, max_tokens: int) -> list[tuple[str, list[int]]]:
    """The words of `text` as the tokenizer splits them, each with the positions of its tokens
    in `encode`'s row (special tokens dropped; words past the truncation left out)."""
    encoding = tokenizer.encode(text)
    kept = len(truncate(encoding.ids, max_tokens)) - 1  # positions before the closing [SEP]
    words: dict[int, list[int]] = {}
    for position, word in enumerate(encoding.word_ids[:kept]):
        if word is not None:
            words.setdefault(word, []).append(position)
    spans = []
    for word, positions in words.items():
        start, end = encoding.word_to_chars(word)
        spans.append((text[start:end], positions))
    return spans


def read_text_file(path) -> str:
    """The comment a text dataset stores in `path` (a UTF-8 file holding exactly the comment)."""
    from pathlib import Path

    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read this comment ({type(exc).__name__}); the "
                         f"dataset's text files are missing or damaged: import the comments "
                         f"again") from None


def text_column(fields: dict, where: str, what: str = "comments") -> str:
    """The 'text' field of a row (any letter case, spaces around ignored) as checked text, or
    InputError naming `where`, the columns the row has and the fix."""
    from shotlab.core.rows import column_key

    key = column_key(fields, TEXT_FIELD)
    if key is None:
        raise InputError(f"{where}: no '{TEXT_FIELD}' field (the row has "
                         f"{', '.join(map(str, fields))}); name the {what}' column "
                         f"'{TEXT_FIELD}'")
    return check_text(fields[key], where)


def visible(text: str) -> bool:
    """Whether `text` has a character a reader sees: not whitespace, not a control character
    (NUL, ...) and not a format one (zero-width space, joiner, BOM: Unicode's Cc and Cf)."""
    import unicodedata

    return any(not c.isspace() and unicodedata.category(c) not in ("Cc", "Cf") for c in text)


def check_text(text, where: str) -> str:
    """`text` as a str, or InputError naming `where` (a file and line) and the fix."""
    if not isinstance(text, str):
        raise InputError(f"{where}: the text is not a string ({type(text).__name__})")
    if not text.strip():
        raise InputError(f"{where}: the text is empty; fill it in or leave it out")
    if not visible(text):  # decided, it scored as an empty text does, and was flagged so
        raise InputError(f"{where}: the text holds only invisible characters (control or "
                         f"zero-width ones); fill it in or leave it out")
    if (reason := surrogate_reason("the text", text)) is not None:
        raise InputError(f"{where}: {reason}")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"{where}: the text has {len(text)} characters, over the limit of "
                         f"{MAX_TEXT_CHARS}; shorten it or split it into several comments")
    return text
