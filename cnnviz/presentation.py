"""Presenter mode: figure and page styling that stays legible on a lecture projector.

Pure functions on plotly figures; the Streamlit side (the sidebar toggle, the CSS injection)
lives in `views/ui.py`.
"""

from __future__ import annotations

import plotly.graph_objects as go

# Okabe & Ito's colour-blind-safe qualitative palette (black first is replaced by a dark blue
# so that the first series never looks like an axis).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

PRESENTER_FONT_SIZE = 20
PRESENTER_LINE_WIDTH = 4
PRESENTER_MARKER_SIZE = 11

# Page CSS for presenter mode: larger text and widgets, no horizontal overflow at 1280x720.
PRESENTER_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 21px; }
[data-testid="stAppViewContainer"] .block-container { padding: 1.2rem 1.5rem 2rem; max-width: 100%; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.1rem; }
h1 { font-size: 2.8rem !important; }
h2 { font-size: 2.1rem !important; }
[data-testid="stMetricValue"] { font-size: 2.4rem; }
</style>
"""


def style_figure(figure: go.Figure, *, presenter: bool) -> go.Figure:
    """Return the figure styled for the screen (unchanged) or for a projector (presenter mode).

    Presenter mode enlarges all text, thickens lines and markers and switches qualitative
    colours to the Okabe-Ito palette. The figure is modified in place and returned.
    """
    if not presenter:
        return figure
    figure.update_layout(
        font=dict(size=PRESENTER_FONT_SIZE),
        title_font=dict(size=PRESENTER_FONT_SIZE + 4),
        legend=dict(font=dict(size=PRESENTER_FONT_SIZE - 2)),
        colorway=list(OKABE_ITO),
        hoverlabel=dict(font_size=PRESENTER_FONT_SIZE - 2),
    )
    figure.update_xaxes(title_font=dict(size=PRESENTER_FONT_SIZE), tickfont=dict(size=PRESENTER_FONT_SIZE - 2))
    figure.update_yaxes(title_font=dict(size=PRESENTER_FONT_SIZE), tickfont=dict(size=PRESENTER_FONT_SIZE - 2))
    figure.update_annotations(font_size=PRESENTER_FONT_SIZE - 2)
    for trace in figure.data:
        if trace.type in ("scatter", "scattergl"):
            mode = trace.mode or "lines+markers"
            if "lines" in mode:
                trace.update(line=dict(width=PRESENTER_LINE_WIDTH))
            if "markers" in mode:
                trace.update(marker=dict(size=PRESENTER_MARKER_SIZE))
        elif trace.type == "heatmap" and trace.texttemplate:
            trace.update(textfont=dict(size=PRESENTER_FONT_SIZE - 2))
    return figure
