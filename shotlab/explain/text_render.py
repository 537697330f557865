"""Word explanations for people: coloured words in the terminal, highlighted words in HTML.

    click.echo(terminal_line(explanation))        # the comment, words coloured by their score
    Path("why.html").write_text(html_page(result)) # a small self-contained page (no scripts)

A word's colour says which way it pushed the explained class and how hard, relative to the
comment's strongest word: red for evidence for the class, blue against, stronger colour for a
larger share. The comment's own characters are kept (spacing and punctuation between words);
everything from the comment is escaped in HTML, so a comment holding markup shows as text.
"""

from __future__ import annotations

import html

import click
import numpy as np

STRONG, WEAK = 0.5, 0.15  # share of the strongest |score|: bold colour at or above, plain below


def strengths(scores) -> np.ndarray:
    """Each score over the largest |score| of the comment: in [-1, 1]; zeros stay zero."""
    scores = np.asarray(scores, dtype=np.float64)
    peak = float(np.abs(scores).max()) if scores.size else 0.0
    return scores / peak if peak > 0 else np.zeros_like(scores)


def pieces(explanation):
    """(text, strength or None) in order: words with their strength, the characters between
    words (and any left past the model's token limit) with None."""
    comment = explanation.comment
    out, cursor = [], 0
    for (start, end), strength in zip(comment.spans, strengths(explanation.scores)):
        if start > cursor:
            out.append((comment.text[cursor:start], None))
        out.append((comment.text[start:end], float(strength)))
        cursor = end
    if cursor < len(comment.text):
        out.append((comment.text[cursor:], None))
    return out


def terminal_word(word: str, strength: float | None) -> str:
    if strength is None or abs(strength) < WEAK:
        return word
    colour = "red" if strength > 0 else "blue"
    return click.style(word, fg=colour, bold=abs(strength) >= STRONG, underline=strength > 0
                       and abs(strength) >= STRONG)


def terminal_line(explanation) -> str:
    """The comment with its words coloured (click.style; plain where colour is off), on one
    line: its control characters (an escape sequence, a newline that would print a fake
    `predicted ...` line) written as escapes (`core.output.printable`) before colouring."""
    from shotlab.core.output import printable

    return "".join(terminal_word(printable(text), strength)
                   for text, strength in pieces(explanation))


def top_words(explanation, n: int = 3) -> str:
    order = np.argsort(-np.asarray(explanation.scores), kind="stable")[:n]
    return ", ".join(f"{explanation.words[i]} {explanation.scores[i]:+.3f}" for i in order
                     if explanation.scores[i] > 0) or "none"


def html_word(word: str, strength: float | None, score: float | None) -> str:
    if strength is None:
        return html.escape(word)
    alpha = min(1.0, abs(strength))
    colour = "220, 38, 38" if strength > 0 else "37, 99, 235"
    return (f'<span class="w" style="background: rgba({colour}, {alpha:.2f})" '
            f'title="{score:+.4f}">{html.escape(word)}</span>')


def html_comment(explanation) -> str:
    scores = iter(np.asarray(explanation.scores, dtype=np.float64))
    return "".join(html_word(text, strength, next(scores) if strength is not None else None)
                   for text, strength in pieces(explanation))


def html_faithfulness(faith: dict | None) -> str:
    if not faith:
        return ""
    return (f'<span class="f">comprehensiveness {faith["comprehensiveness"]:.3f} (random '
            f'{faith["random_comprehensiveness"]:.3f}), sufficiency {faith["sufficiency"]:.3f} '
            f'(random {faith["random_sufficiency"]:.3f})</span>')


STYLE = """body { font: 15px/1.5 system-ui, sans-serif; margin: 2em; max-width: 60em; }
.w { padding: 0 2px; border-radius: 3px; }
.c { margin: 1.2em 0; } .m { color: #555; font-size: 12px; margin-right: 1em; }
.t { margin: 0.2em 0; } .f { color: #555; font-size: 12px; }"""


# Marks a page `explain --html` wrote: the only kind of existing file it may replace.
GENERATOR = '<meta name="generator" content="shotlab explain">'


def is_own_page(path) -> bool:
    """True for a regular file that begins as `html_page` writes its pages."""
    from shotlab.core.files import file_head

    head = (file_head(path, 512) or b"").decode("utf-8", "replace")
    return head.startswith("<!DOCTYPE html>") and GENERATOR in head


def html_page(result: dict, title: str = "Why the model decided") -> str:
    """One page for `text_report.explain_texts`' result: per comment, its decision and one line
    per method with the words highlighted (hover for the score) and the faithfulness scores."""
    blocks = []
    for entry in result["comments"]:
        lines = [f'<div class="t"><span class="m">{html.escape(method)}</span>'
                 f'{html_comment(explanation)} {html_faithfulness(explanation.faithfulness)}'
                 f'</div>' for method, explanation in entry["explanations"].items()]
        blocks.append(f'<div class="c"><div>predicted <b>{html.escape(entry["predicted"])}</b> '
                      f'({entry["score"]:.3f}); explaining <b>{html.escape(entry["target"])}</b> '
                      f'({entry["target_score"]:.3f})</div>{"".join(lines)}</div>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{GENERATOR}'
            f'<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>'
            f'<h1>{html.escape(title)}</h1><p>{html.escape(result.get("source", ""))}: red words '
            f'push towards the explained class, blue against; stronger colour, larger share of '
            f'the strongest word.</p>{"".join(blocks)}</body></html>\n')


def stored_page(decision_id: str, decision: dict, rows) -> str:
    """The page for a decision's stored text explanations (`explain show --out page.html`)."""
    from shotlab.explain.text_store import from_row

    explained = [from_row(row) for row in rows]
    scores = decision.get("scores") or {}
    predicted = max(scores, key=scores.get) if scores else explained[0].target_name
    entries = []
    # one entry per passage and class: a comment flagged for one class and reviewed for another
    # has a row of each method per class (tier1.attention_classes)
    for text, target in dict.fromkeys((e.comment.text, e.target_name) for e in explained):
        mine = [e for e in explained if (e.comment.text, e.target_name) == (text, target)]
        entries.append({"text": text, "predicted": predicted,
                        "score": float(scores.get(predicted, float("nan"))), "target": target,
                        "target_score": float(scores.get(target, float("nan"))),
                        "explanations": {f"{e.method}": e for e in mine}})
    return html_page({"source": decision.get("bundle") or "", "comments": entries},
                     title=f"decision {decision_id}")
