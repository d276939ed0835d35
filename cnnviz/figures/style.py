"""The one visual language of cnnviz's figures: palettes, the diverging scale and presenter mode.

- Qualitative colours: `OKABE_ITO` (also the presenter colorway) and, built on it, the ONE class
  palette `class_colour(label)`, so a class has the same colour on every page.
- Signed values (kernels, filters, differences): the ONE diverging scale `DIVERGING_COLORSCALE`,
  blue negative, white zero, red positive, on a range symmetric around zero (`diverging_scale`).
- Presenter mode: figure and page styling that stays legible on a lecture projector.

Pure functions on plotly figures; the Streamlit side (the sidebar toggle, the CSS injection)
lives in `widgets/ui.py`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

# Okabe & Ito's colour-blind-safe qualitative palette (black first is replaced by a dark blue
# so that the first series never looks like an axis).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY_BLUE, YELLOW, BLACK = OKABE_ITO
GREY = "#999999"  # Neutral: fallbacks, reference shading.

# The ONE class palette: the Okabe-Ito colours in the colorway's order, extended by two darker
# colours so that all ten classes of a dataset get their own (none of them grey: faint grey marks
# background classes, and presenter mode darkens pale greys).
CLASS_COLOURS = (*OKABE_ITO, "#882255", "#5F4B8B")

# The ONE diverging scale for signed values (kernels, filters, feature maps, differences):
# blue for negative, white at zero, red for positive, on every page.
DIVERGING_COLORSCALE = "RdBu_r"

PRESENTER_FONT_SIZE = 20
# Numbers written into heatmap cells (confusion matrices, differences): at least this size on screen.
CELL_FONT_SIZE = 14
PRESENTER_LINE_WIDTH = 4
PRESENTER_MARKER_SIZE = 11
# Plotly's default marker size: explicit sizes grow in proportion, so small "background" points
# stay smaller than the points in front of them, up to a cap (never shrunk).
PLOTLY_DEFAULT_MARKER_SIZE = 6
PRESENTER_MAX_MARKER_SIZE = 2 * PRESENTER_MARKER_SIZE
# Faint traces wash out on a projector: explicit opacities are raised to at least this floor.
PRESENTER_MIN_OPACITY = 0.6
# Bottom margin (px) under a plot whose horizontal legend sits below it: tick labels, axis title, legend.
LEGEND_BELOW_MARGIN = 90
PRESENTER_LEGEND_MARGIN = 120
# Pale greys (e.g. "#999999", contrast 2.8:1 on white) become this mid grey (5.1:1 on white,
# 3.7:1 on the dark theme's background). Near-white stays: it is used as a separator.
PRESENTER_GREY = "#6E6E6E"
_PALE_GREY_RANGE = (0x90, 0xEE)  # Channel values of the greys that are darkened.
_GREY_TOLERANCE = 0x14  # Largest spread between the channels of a colour that counts as grey.
_NAMED_GREYS = {"darkgray": "#A9A9A9", "darkgrey": "#A9A9A9", "silver": "#C0C0C0",
                "lightgray": "#D3D3D3", "lightgrey": "#D3D3D3", "gainsboro": "#DCDCDC"}
# Trace types whose opacities and explicit colours are raised (images, heatmaps and 3-D meshes
# keep theirs: their transparency is part of the picture).
_CONTRAST_TRACE_TYPES = ("scatter", "scattergl", "scatterpolar", "bar", "histogram", "box", "violin")

# Page CSS for presenter mode: larger text and widgets, no horizontal overflow at 1280x720.
PRESENTER_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 21px; }
[data-testid="stAppViewContainer"] .block-container { padding: 1.2rem 1.5rem 2rem; max-width: 100%; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.1rem; }
h1 { font-size: 2.8rem !important; }
h2 { font-size: 2.1rem !important; }
[data-testid="stMetricValue"] { font-size: 2.4rem; }
[data-testid="stMetricLabel"] p { font-size: 1.1rem; }
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p { font-size: 1rem; }
[class*="st-key-secondary_"] { display: none !important; }
</style>
"""


def class_colour(label: int) -> str:
    """The colour of class `label` (its index in the dataset), the same in every figure."""
    return CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]


def series_colour(index: int) -> str:
    """The colour of the `index`-th series of a figure (a model, a variant, a feature): Okabe-Ito in turn."""
    return OKABE_ITO[int(index) % len(OKABE_ITO)]


def symmetric_limit(*arrays, at_least: float = 0.0) -> float:
    """Half-width of the diverging range centred at 0: the largest |value| in `arrays` (NaN ignored).

    At least `at_least`; 1.0 when every value is zero, NaN, or there are none (a blank map still
    gets a valid scale).
    """
    largest = 0.0
    for values in arrays:
        magnitudes = np.abs(np.asarray(values, dtype=float))
        magnitudes = magnitudes[np.isfinite(magnitudes)]
        if magnitudes.size:
            largest = max(largest, float(magnitudes.max()))
    return max(largest, float(at_least)) or 1.0


def diverging_scale(*arrays, at_least: float = 0.0) -> dict:
    """Heatmap settings for signed values: the one diverging scale, centred at 0, symmetric range.

    `colorscale`, `zmid`, `zmin` and `zmax`, ready to pass to a heatmap (`go.Heatmap(**...)`), so
    that positive is the same colour wherever signed values are drawn.
    """
    limit = symmetric_limit(*arrays, at_least=at_least)
    return {"colorscale": DIVERGING_COLORSCALE, "zmid": 0.0, "zmin": -limit, "zmax": limit}


def legend_below(figure: go.Figure) -> go.Figure:
    """Put the figure's legend in one horizontal row under the plot, pinned to the figure's bottom
    edge with room above it for the tick labels and the x-axis title, so that it never sits on the
    axis title (a legend placed at a negative y of the plot area does, once the plot is short).
    The one legend placement under a plot for every figure; modified in place and returned."""
    figure.update_layout(legend=dict(orientation="h", yref="container", y=0.0, yanchor="bottom",
                                     x=0.0, xanchor="left"))
    figure.update_layout(margin=dict(b=max(figure.layout.margin.b or 0, LEGEND_BELOW_MARGIN)))
    return figure


def style_figure(figure: go.Figure, *, presenter: bool) -> go.Figure:
    """Return the figure styled for the screen (unchanged) or for a projector (presenter mode).

    Presenter mode enlarges all text, thickens lines and markers, switches qualitative colours to
    the Okabe-Ito palette and raises the contrast of traces that set their own colours: faint
    opacities get a floor and pale greys are darkened. The figure is modified in place and returned.
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
    _legend_below_axis_titles(figure)
    for trace in figure.data:
        if trace.type in ("scatter", "scattergl"):
            mode = trace.mode or "lines+markers"
            if "lines" in mode:
                trace.update(line=dict(width=PRESENTER_LINE_WIDTH))
            if "markers" in mode:
                trace.update(marker=dict(size=_presenter_marker_size(trace.marker.size)))
        elif trace.type == "heatmap" and trace.texttemplate:
            # At least the presenter size; numbers already written larger (a kernel's weights) stay so.
            trace.update(textfont=dict(size=max(trace.textfont.size or 0, PRESENTER_FONT_SIZE - 2)))
        if trace.type in _CONTRAST_TRACE_TYPES:
            _raise_contrast(trace)
    return figure


def _presenter_marker_size(size):
    """Plotly's default size becomes `PRESENTER_MARKER_SIZE`; an explicit one grows in proportion."""
    if size is None:
        return PRESENTER_MARKER_SIZE
    if not isinstance(size, (int, float)):
        return size  # Per-point sizes (a bubble chart) encode data: left alone.
    grown = size * PRESENTER_MARKER_SIZE / PLOTLY_DEFAULT_MARKER_SIZE
    return min(grown, max(size, PRESENTER_MAX_MARKER_SIZE))


def _raise_contrast(trace) -> None:
    """Raise low explicit opacities to `PRESENTER_MIN_OPACITY` and darken pale grey colours.

    The layout's colorway does not reach traces that set their own colour or opacity (e.g. the
    faint grey background classes of the transfer page), so they are changed here, in place.
    """
    if trace.opacity is not None and trace.opacity < PRESENTER_MIN_OPACITY:
        trace.opacity = PRESENTER_MIN_OPACITY
    marker = getattr(trace, "marker", None)
    if marker is not None:
        if isinstance(marker.opacity, (int, float)) and marker.opacity < PRESENTER_MIN_OPACITY:
            marker.opacity = PRESENTER_MIN_OPACITY
        colour = marker.color
        darker = darken_pale_grey(colour)
        if darker is not colour:
            marker.color = darker
    line = getattr(trace, "line", None)
    if line is not None:
        colour = line.color
        darker = darken_pale_grey(colour)
        if darker is not colour:
            line.color = darker


def darken_pale_grey(colour):
    """`PRESENTER_GREY` for a pale grey colour (hex, rgb()/rgba() or a CSS grey name), else unchanged.

    Sequences of colours are mapped element by element; an rgba colour keeps its alpha (a
    transparent click target stays transparent). Unchanged input is returned as the same object.
    """
    if isinstance(colour, (list, tuple, np.ndarray)):
        if isinstance(colour, np.ndarray) and colour.dtype.kind not in "OUS":
            return colour  # Numbers mapped through a colour scale.
        items = list(colour)
        mapped = [darken_pale_grey(c) for c in items]
        if all(new is old for new, old in zip(mapped, items)):
            return colour
        return np.array(mapped, dtype=object) if isinstance(colour, np.ndarray) else type(colour)(mapped)
    if not isinstance(colour, str):
        return colour  # None, or numbers mapped through a colour scale.
    channels = _rgba(colour)
    if channels is None:
        return colour
    *rgb, alpha = channels
    if max(rgb) - min(rgb) > _GREY_TOLERANCE or not _PALE_GREY_RANGE[0] <= min(rgb) <= max(rgb) <= _PALE_GREY_RANGE[1]:
        return colour
    if alpha is None:
        return PRESENTER_GREY
    grey = int(PRESENTER_GREY[1:3], 16)
    return f"rgba({grey},{grey},{grey},{alpha})"


def _rgba(colour: str):
    """(r, g, b, alpha or None) of a hex, rgb()/rgba() or known grey colour; None otherwise."""
    text = _NAMED_GREYS.get(colour.strip().lower(), colour.strip().lower())
    if text.startswith("#") and len(text) in (4, 7):
        digits = text[1:] if len(text) == 7 else "".join(c * 2 for c in text[1:])
        try:
            return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), None
        except ValueError:
            return None
    if text.startswith(("rgb(", "rgba(")) and text.endswith(")"):
        parts = [part.strip() for part in text[text.index("(") + 1:-1].split(",")]
        try:
            values = [float(part) for part in parts]
        except ValueError:
            return None  # Percentages and other forms are left alone.
        if len(values) == 3:
            return int(values[0]), int(values[1]), int(values[2]), None
        if len(values) == 4:
            return int(values[0]), int(values[1]), int(values[2]), parts[3]
    return None


def _legend_below_axis_titles(figure: go.Figure) -> None:
    """Pin a horizontal legend placed under the plot to the bottom edge of the figure.

    Such legends are positioned relative to the plot area (e.g. y = -0.25), so the larger axis
    titles of presenter mode run into them. Anchored to the figure's own bottom edge, with a
    bottom margin that leaves room for the tick labels, the axis title and the legend, they cannot.
    """
    legend = figure.layout.legend
    if legend.orientation != "h" or legend.y is None:
        return
    pinned = legend.yref == "container" and legend.y == 0  # Already placed by `legend_below`.
    if not pinned and legend.y >= 0:
        return
    figure.update_layout(legend=dict(yref="container", y=0.0, yanchor="bottom"))
    bottom = figure.layout.margin.b
    figure.update_layout(margin=dict(b=max(bottom or 0, PRESENTER_LEGEND_MARGIN)))

