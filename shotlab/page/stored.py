""""Open decision": what the explanation store holds for one decision id, read-only.

    shown = stored_decision(model.store, "3f2a9c...")   # InputError when nothing is stored

`explain.show.read_decision` opens the store read-only (its bytes, mtime and folder are left as
they were, as for `shotlab explain show`); the backdrop is the decision's image as the model saw
it (`explain.show.backdrop`), for a clip the frame each map explains (at its stored timestamp),
grey, with a note saying so, when the image or clip is gone or its bytes are no longer the ones
decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shotlab.core.errors import InputError

MAX_ID = 128  # decision ids are uuid4 hex (32); an appeal may name one of its own


@dataclass
class Stored:
    decision_id: str
    decision: dict  # the decisions row ({} when only explanations were stored)
    explanations: list  # explain.store.Explanation, each with its map (every row stored)
    appeals: list
    backdrop: np.ndarray | None  # uint8 (H, W, 3) under the maps; None when none is a picture
    maps: list = field(default_factory=list)  # the rows whose map is over the picture
    words: list = field(default_factory=list)  # text_words.WordScores of the text rows
    splits: list = field(default_factory=list)  # a post's modality split rows
    note: str | None = None  # why the backdrop is grey (the image gone or changed), if it is
    # per row of `maps`, the picture under it: the image, or a clip's frame at the row's time
    backdrops: list = field(default_factory=list)


def stored_decision(store, decision_id: str) -> Stored:
    from shotlab.explain.post_split import METHOD as SPLIT
    from shotlab.explain.show import (backdrop, backdrops, grey_note, image_decided,
                                      read_decision)
    from shotlab.explain.text_store import from_row, is_text

    if store is None:
        raise InputError("no explanation store: start the page with --store "
                         "out/explanations.sqlite (the file `shotlab predict --explain` wrote)")
    decision_id = decision_id.strip()
    if not decision_id or len(decision_id) > MAX_ID or not decision_id.isprintable():
        raise InputError(f"decision id {decision_id[:40]!r}: expected the decision_id field of "
                         f"decisions.jsonl (32 hex digits)")
    decision, explanations, appeals, _ = read_decision(store, decision_id)
    words = [from_row(e) for e in explanations if is_text(e)]
    splits = [e for e in explanations if e.method == SPLIT]
    maps = [e for e in explanations if not is_text(e) and e.method != SPLIT]
    picture, pictures, note = None, [], None
    if maps:  # an image's, or a clip's maps each over the frame it explains
        pictures, note = backdrops(decision, maps)
        picture = pictures[0]
    elif not (words or splits):  # nothing stored yet: the decision's picture
        image = image_decided(decision.get("path"), decision.get("sha256"))
        picture = backdrop(image, decision.get("bundle"), (224, 224))
        note = grey_note(decision["path"]) if image is None and decision.get("path") else None
    return Stored(decision_id, decision, explanations, appeals, picture, maps, words, splits,
                  note, pictures)
