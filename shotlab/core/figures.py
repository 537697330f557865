"""Matplotlib figures made without pyplot, and text shown on them as itself.

    fig = figure(6, 4)          # a standalone Agg figure (no pyplot registry, no display)
    ax.set_title(literal(name)) # a class or file name: '$' is not read as mathtext
"""

from __future__ import annotations


def figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def literal(text) -> str:
    """`text` drawn as written: matplotlib reads a pair of '$' as mathtext, so a class named
    `a$\\foo$b` crashed the run's plots (unknown symbol) and `$\\mathrm{x}$.png` drew as x.png.
    A legend leaves out every label that starts with '_' (its mark of an unlabelled line), so
    such a name gets a zero-width space in front: a class `_other` keeps its legend entry."""
    text = str(text).replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text
