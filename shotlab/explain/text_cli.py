"""`shotlab explain RUN_OR_BUNDLE --text ... | comments.csv` for a text model: read the comments,
explain them, print coloured words (or JSON) and write the HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from shotlab.core.errors import InputError


def read_comments(paths, texts) -> tuple[list[str], list[dict]]:
    """(comments from `--text` then from each .csv/.jsonl's `text` column, bad rows as
    {"path", "line", "reason"}). An empty or over-long comment is a bad row, never raised."""
    from shotlab.core.rows import column_key, read_rows
    from shotlab.runtime.text import TEXT_FIELD, check_text

    comments, bad = [], []
    for i, text in enumerate(texts):
        comments.append(check_text(argv_text(text, f"--text {i + 1}"), f"--text {i + 1}"))
    for path in map(Path, paths):
        rows, broken = read_rows(path)
        bad += [{"path": str(path), "line": line, "reason": reason} for line, reason in broken]
        key = column_key(rows[0].fields, TEXT_FIELD) if rows else TEXT_FIELD
        if key is None:
            raise InputError(f"{path}: no '{TEXT_FIELD}' column (found: "
                             f"{', '.join(rows[0].fields) or 'none'}); name the comments' "
                             f"column '{TEXT_FIELD}'")
        for row in rows:
            try:
                comments.append(check_text(row.fields.get(key), f"{path}:{row.line}"))
            except InputError as exc:
                bad.append({"path": str(path), "line": row.line,
                            "reason": str(exc).split(": ", 1)[-1]})
    return comments, bad


def argv_text(text: str, where: str) -> str:
    """A comment given on the command line, or InputError where its bytes were not UTF-8
    (Python hands such bytes over as lone surrogates, which no tokenizer takes)."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError as exc:
        raise InputError(f"{where}: not UTF-8 (byte {exc.start + 1} of the text); type the "
                         f"comment as UTF-8, or give it in a UTF-8 .csv/.jsonl file") from None


def run_text(source, paths, texts, methods: str, target, html_path, as_json: bool) -> None:
    from shotlab.core.files import write_text_atomic
    from shotlab.core.output import echo_json
    from shotlab.explain.report import parse_methods
    from shotlab.explain.text_render import html_page
    from shotlab.explain.text_report import as_json as plain, explain_texts

    chosen = parse_methods(methods, "text")
    if html_path is not None:
        check_page_target(Path(html_path))
    comments, bad = read_comments(paths, texts)
    if not comments:
        raise InputError("no comment to explain: " + "; ".join(
            f"{b['path']}:{b['line']}: {b['reason']}" for b in bad))
    result = explain_texts(source, comments, chosen, target=target)
    if html_path is not None:
        write_text_atomic(Path(html_path), html_page(result))
    data = {**plain(result), "bad_rows": bad}
    if html_path is not None:
        data["html"] = str(html_path)
    if as_json:
        return echo_json(data)
    echo_text_result(result, bad, html_path)


def check_page_target(path: Path) -> None:
    """--html may replace only a page it wrote before: never the comments file it explains,
    a user's page or notes, a device or a folder."""
    from shotlab.core.files import check_own_output
    from shotlab.explain.text_render import is_own_page

    check_own_output(path, "--html", is_own_page,
                     f"--html {path}: the file exists and is not a page `shotlab explain` "
                     f"wrote; explain replaces only its own pages: choose another --html")


def echo_text_result(result: dict, bad: list[dict], html_path) -> None:
    from shotlab.core.output import printable
    from shotlab.explain.text_render import terminal_line, top_words

    for row in bad:
        click.echo(printable(f"skipped {row['path']}:{row['line']}: {row['reason']}"), err=True)
    for entry in result["comments"]:
        click.echo(printable(f"predicted {entry['predicted']} ({entry['score']:.3f}); "
                             f"explaining {entry['target']} ({entry['target_score']:.3f})"))
        for method, explanation in entry["explanations"].items():
            click.echo(f"  {method:<5} {terminal_line(explanation)}")
            extra = explanation.info.get("convergence_delta")
            faith = explanation.faithfulness or {}
            line = f"        top: {printable(top_words(explanation))}"
            if faith:
                line += (f"; comprehensiveness {faith['comprehensiveness']:.3f} (random "
                         f"{faith['random_comprehensiveness']:.3f}), sufficiency "
                         f"{faith['sufficiency']:.3f} (random {faith['random_sufficiency']:.3f})")
            if extra is not None:
                line += f"; delta {extra:+.4f}"
            click.echo(line)
    if html_path is not None:
        click.echo(f"page: {html_path}")
