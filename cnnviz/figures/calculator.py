"""Figures of a layer stack: parameters per layer, and the volumes shrinking through the network.

Both take the rows of `cnnviz.architecture.summarize` and return a plotly Figure; nothing here
calls Streamlit or imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from cnnviz.architecture import LayerRow
from cnnviz.architecture.layers import shape_text
from cnnviz.figures.style import BLUE, GREEN, GREY, ORANGE, PURPLE, SKY_BLUE, VERMILION

# Okabe-Ito colours (colour-blind safe), one per kind of layer.
KIND_COLOURS = {
    "conv2d": BLUE,
    "dense": VERMILION,
    "batchnorm": GREEN,
    "residual_block": PURPLE,
    "pool": ORANGE,
    "other": GREY,
}
INPUT_COLOUR = SKY_BLUE


def _kind(layer_type: str) -> str:
    if layer_type in ("conv2d", "dense", "batchnorm", "residual_block"):
        return layer_type
    if "pool" in layer_type:
        return "pool"
    return "other"


def parameters_bar_figure(rows: Sequence[LayerRow], *, log_scale: bool = False,
                          hidden_index: int | None = None) -> go.Figure:
    """Horizontal bars of parameters per layer, coloured by kind, with each layer's share of the total.

    ``hidden_index`` hides one layer's count (for the "predict first" exercise).
    """
    total = sum(row.params for row in rows) or 1
    names = [f"{row.index + 1}. {row.name}" for row in rows]
    figure = go.Figure()
    for kind, label in (("conv2d", "Convolution"), ("residual_block", "Residual block"), ("dense", "Dense"),
                        ("batchnorm", "Batch norm"), ("pool", "Pooling"), ("other", "Other (no weights)")):
        chosen = [row for row in rows if _kind(row.type) == kind]
        if not chosen:
            continue
        values, texts, hovers = [], [], []
        for row in chosen:
            hidden = row.index == hidden_index
            values.append(0 if hidden else row.params)
            texts.append("?" if hidden else (f"{row.params:,} ({row.params / total:.1%})" if row.params else ""))
            hovers.append(f"{row.name}: {row.description}<br>"
                          + ("parameters hidden: predict first" if hidden else f"{row.formula}"))
        figure.add_trace(go.Bar(
            y=[f"{row.index + 1}. {row.name}" for row in chosen], x=values, orientation="h", name=label,
            marker_color=KIND_COLOURS[kind], text=texts, textposition="outside", cliponaxis=False,
            hovertext=hovers, hoverinfo="text",
        ))
    figure.update_layout(
        barmode="overlay",
        xaxis_title="parameters" + (" (log scale)" if log_scale else ""),
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(names)), "title": None},
        height=max(260, 28 * len(rows) + 90),
        margin={"l": 10, "r": 90, "t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
    )
    if log_scale:
        figure.update_xaxes(type="log")
    return figure


def _scale(value: int, low: float, high: float, largest: int) -> float:
    """Map a size to a drawing length on a log scale, so 1 and 4096 both stay visible."""
    if largest <= 1:
        return low
    return low + (high - low) * math.log(max(value, 1)) / math.log(largest)


def volumes_figure(input_shape: Sequence[int], rows: Sequence[LayerRow], *,
                   hidden_index: int | None = None) -> go.Figure:
    """Each layer's output drawn as a box: height and width for the image size, depth for channels.

    Sides are on a log scale so a 224×224×3 input and a 7×7×512 volume fit in one picture;
    flat vectors are drawn as thin bars whose length grows with their size. A residual block's
    skip connection is drawn as a dashed arc from its input volume to its output, marked "+".
    ``hidden_index`` hides one layer's output shape (for the "predict first" exercise).
    """
    shapes = [tuple(input_shape)] + [row.output_shape for row in rows]
    labels = ["input"] + [row.name for row in rows]
    types = ["input"] + [row.type for row in rows]
    largest_side = max(max(shape[:2]) if len(shape) == 3 else 1 for shape in shapes)
    largest_depth = max(shape[-1] for shape in shapes)
    largest_flat = max((shape[0] for shape in shapes if len(shape) == 1), default=1)
    # Faces are grouped into one trace per (colour, face) with None between polygons: a handful of
    # traces instead of three per layer keeps the figure fast to build for deep networks.
    groups: dict[tuple[str, int], dict[str, list]] = {}
    x = 0.0
    gap = 0.6
    annotations = []
    centres: list[float] = []  # The middle of each volume's front face, for the skip arcs.
    for position, (shape, label, layer_type) in enumerate(zip(shapes, labels, types)):
        hidden = position - 1 == hidden_index
        if len(shape) == 3:
            height = _scale(shape[0], 0.4, 4.0, max(largest_side, 2))
            depth = _scale(shape[1], 0.2, 1.6, max(largest_side, 2))
            width = _scale(shape[2], 0.15, 2.2, max(largest_depth, 2))
        else:
            height = _scale(shape[0], 0.4, 5.0, max(largest_flat, 2))
            depth = 0.15
            width = 0.15
        colour = KIND_COLOURS[_kind(layer_type)] if layer_type != "input" else INPUT_COLOUR
        dx, dy = depth * 0.7, depth * 0.5
        faces = [
            [(x, 0), (x + width, 0), (x + width, height), (x, height)],  # Front.
            [(x, height), (x + width, height), (x + width + dx, height + dy), (x + dx, height + dy)],  # Top.
            [(x + width, 0), (x + width + dx, dy), (x + width + dx, height + dy), (x + width, height)],  # Side.
        ]
        text = "?" if hidden else shape_text(shape)
        for face_index, face in enumerate(faces):
            group = groups.setdefault((colour, face_index), {"x": [], "y": [], "text": []})
            group["x"] += [point[0] for point in face] + [face[0][0], None]
            group["y"] += [point[1] for point in face] + [face[0][1], None]
            group["text"] += [f"{label}: {text}"] * 5 + [None]
        if len(shapes) <= 10:
            annotations.append({"x": x + width / 2, "y": -0.25, "text": f"{label}<br>{text}", "showarrow": False,
                                "yanchor": "top", "font": {"size": 12}})
        elif position == 0 or shape != shapes[position - 1] or hidden:
            # Many layers: label only where the shape changes, alternating two rows (names on hover).
            annotations.append({"x": x + width / 2, "y": -0.25 - 0.8 * (len(annotations) % 2), "text": text,
                                "showarrow": False, "yanchor": "top", "font": {"size": 11}})
        centres.append(x + width / 2)
        x += width + dx + gap
    skips = _skip_arcs(centres, types, annotations)
    figure = go.Figure([
        go.Scatter(x=group["x"], y=group["y"], fill="toself", mode="lines", line={"color": "#333333", "width": 1},
                   fillcolor=colour, opacity=(0.85, 0.55, 0.7)[face_index], showlegend=False,
                   hoverinfo="text", hovertext=group["text"])
        for (colour, face_index), group in groups.items()
    ] + skips)
    figure.update_layout(
        annotations=annotations,
        xaxis={"visible": False, "range": [-1.0, x]},
        yaxis={"visible": False, "range": [-2.2, 6.2]},
        height=340,
        margin={"l": 10, "r": 10, "t": 20, "b": 10},
        showlegend=False,
    )
    return figure


SKIP_TOP = 5.5  # Height of a skip arc: above nearly every volume (flat vectors reach 5).


def _skip_arcs(centres: Sequence[float], types: Sequence[str], annotations: list[dict]) -> list[go.Scatter]:
    """One dashed arc per residual block, from the centre of its input volume to its output's,
    with a "+" where the shortcut is added (appended to ``annotations``)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for position, layer_type in enumerate(types):
        if layer_type != "residual_block":
            continue
        start, end = centres[position - 1], centres[position]
        xs += [start, start, end, end, None]
        ys += [4.2, SKIP_TOP, SKIP_TOP, 4.2, None]
        annotations.append({"x": (start + end) / 2, "y": SKIP_TOP, "text": "+ skip", "showarrow": False,
                            "yanchor": "bottom", "font": {"size": 11, "color": KIND_COLOURS["residual_block"]}})
    if not xs:
        return []
    return [go.Scatter(x=xs, y=ys, mode="lines", line={"color": KIND_COLOURS["residual_block"], "dash": "dash",
                                                        "width": 2},
                       showlegend=False, hoverinfo="text", hovertext="skip connection: the block's input is added "
                                                                     "to its output", name="skip connection")]
