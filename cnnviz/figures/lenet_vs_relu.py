"""Plotly figures for the tanh LeNet vs ReLU CNN page.

Every builder takes plain data (histories, a `ComparisonTable`, NumPy arrays) and returns a
`plotly.graph_objects.Figure`; none touches Streamlit or Keras. Colours come from the Okabe-Ito
colour-blind-safe palette; the confusion difference uses the one diverging scale (red positive),
centred on 0. Both are `cnnviz.figures.style`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.figures.style import (
    BLUE,
    CELL_FONT_SIZE,
    GREEN,
    GREY,
    ORANGE,
    PURPLE,
    SKY_BLUE,
    VERMILION,
    diverging_scale,
    legend_below,
)
from cnnviz.lessons.lenet_vs_relu import ALL_THREE, LENET, RELU_CNN, SATURATION_THRESHOLD
from cnnviz.verdicts import ExperimentReport

# One colour per model (Okabe-Ito): the two seeds get the strongest contrast (blue vs orange).
MODEL_COLOURS: dict[str, str] = {
    LENET: BLUE,
    RELU_CNN: ORANGE,
    "lenet_activation": SKY_BLUE,
    "lenet_pooling": GREEN,  # bluish green
    "lenet_optimizer": PURPLE,  # reddish purple
    ALL_THREE: VERMILION,
}
FALLBACK_COLOUR = GREY


def model_colour(key: str) -> str:
    return MODEL_COLOURS.get(key, FALLBACK_COLOUR)


def overlaid_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], labels: Mapping[str, str], *,
                    epochs: int | None = None, colours: Mapping[str, str] | None = None,
                    steps_per_epoch: Mapping[str, int] | None = None) -> go.Figure:
    """Loss (left) and accuracy (right) per epoch for several models on shared axes.

    `histories` maps a model key to its per-epoch lists (`loss`, `accuracy`, `val_loss`,
    `val_accuracy`). Each model has one colour (`colours[key]`, default the lesson's own
    `model_colour`); training is solid, validation dashed. With `steps_per_epoch` ({key: weight
    updates per epoch}) the x-axis counts weight updates instead of epochs, so models trained
    with different batch sizes line up by the budget they have used.
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.1)
    for key, history in histories.items():
        colour = (colours or {}).get(key) or model_colour(key)
        label = labels.get(key, key)
        for column, metric in ((1, "loss"), (2, "accuracy")):
            for prefix, split, dash in (("", "training", "solid"), ("val_", "validation", "dash")):
                values = [float(value) for value in history.get(prefix + metric, []) or []]
                if not values:
                    continue
                step = (steps_per_epoch or {}).get(key, 1)
                figure.add_trace(go.Scatter(
                    x=[step * epoch for epoch in range(1, len(values) + 1)], y=values, mode="lines+markers",
                    name=f"{label}, {split}", legendgroup=f"{key}-{split}", showlegend=column == 1,
                    line={"color": colour, "dash": dash},
                    marker={"symbol": "circle" if split == "training" else "diamond-open"},
                    hovertemplate=(f"{label}<br>{'updates' if steps_per_epoch else 'epoch'} %{{x}}<br>{split} "
                                   f"{metric} %{{y:.4f}}<extra></extra>"),
                ), row=1, col=column)
            if steps_per_epoch:
                figure.update_xaxes(title_text="weight updates", rangemode="tozero", row=1, col=column)
                continue
            figure.update_xaxes(title_text="epoch", dtick=1 if (epochs or 0) <= 20 else None, row=1, col=column)
            if epochs:
                figure.update_xaxes(range=[0.5, epochs + 0.5], row=1, col=column)
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    figure.update_layout(height=380, margin={"l": 40, "r": 20, "t": 40, "b": 40})
    return legend_below(figure)


def variant_spread_figure(report: ExperimentReport) -> go.Figure:
    """One row per variant: every seed's test accuracy as a point, the mean as a bar and its 95 %
    interval (seed spread and test sampling, `cnnviz.verdicts.spread`) as a horizontal error bar.

    Rows run top to bottom in the report's order (LeNet first, ReLU CNN last).
    """
    figure = go.Figure()
    labels = [item.name for item in report.variants]
    for item in report.variants:
        key = str(item.extra.get("key", item.name))
        colour = model_colour(key)
        spread = item.spread
        figure.add_trace(go.Scatter(
            x=[100 * spread.mean], y=[item.name], mode="markers", showlegend=False,
            marker={"symbol": "line-ns", "size": 26, "line": {"width": 4, "color": colour}},
            error_x={"type": "data", "symmetric": False, "array": [100 * (spread.high - spread.mean)],
                     "arrayminus": [100 * (spread.mean - spread.low)], "color": colour, "thickness": 2, "width": 10},
            hovertemplate=(f"{item.name}<br>mean %{{x:.1f}}%<br>95% interval {100 * spread.low:.1f} to "
                           f"{100 * spread.high:.1f}%<extra></extra>"),
        ))
        figure.add_trace(go.Scatter(
            x=[100 * value for value in item.test_accuracy], y=[item.name] * len(item.test_accuracy),
            mode="markers", showlegend=False, text=[f"seed {seed}" for seed in item.seeds],
            marker={"color": colour, "size": 10, "opacity": 0.8, "line": {"width": 1, "color": "white"}},
            hovertemplate=f"{item.name}<br>%{{text}}: %{{x:.1f}}%<extra></extra>",
        ))
    lows = [100 * min(min(item.test_accuracy), item.spread.low) for item in report.variants] or [0.0]
    highs = [100 * max(max(item.test_accuracy), item.spread.high) for item in report.variants] or [100.0]
    low, high = max(0.0, min(lows) - 3), min(100.0, max(highs) + 3)
    figure.update_yaxes(categoryorder="array", categoryarray=labels, autorange="reversed")
    figure.update_xaxes(title_text="test accuracy (%): dots are seeds, the bar is the mean with its 95% interval",
                        range=[low, high])
    figure.update_layout(height=90 + 48 * len(labels), margin={"l": 10, "r": 30, "t": 30, "b": 50},
                         showlegend=False)
    return figure


def confusion_difference_figure(difference: np.ndarray, class_names: Sequence[str], *,
                                better: str = "ReLU CNN", worse: str = "tanh LeNet") -> go.Figure:
    """Heatmap of a row-normalised confusion difference (model A minus model B), on the one
    diverging scale centred on 0 (at least ±1 point).

    Rows are the true class, columns the predicted class; values are shares of the true class in
    percentage points. On the diagonal red (positive) means A is right more often; off the
    diagonal red means A makes that mistake more often (so off-diagonal blue is good for A).
    """
    difference = np.asarray(difference, dtype=np.float64)
    points = 100 * difference
    names = list(class_names)
    text = [[f"{value:+.0f}" if abs(value) >= 0.5 else "" for value in row] for row in points]
    figure = go.Figure(go.Heatmap(
        z=points, x=names, y=names, **diverging_scale(points, at_least=1.0),
        text=text, texttemplate="%{text}", textfont={"size": CELL_FONT_SIZE},
        colorbar={"title": {"text": "points"}},
        hovertemplate=(f"true %{{y}}, predicted %{{x}}<br>{better} − {worse}: "
                       "%{z:+.1f} points of the class<extra></extra>"),
    ))
    figure.update_yaxes(autorange="reversed", title_text="true class")
    figure.update_xaxes(title_text="predicted class", tickangle=-35)
    figure.update_layout(height=480, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         title={"text": f"{better} minus {worse} (share of each true class, points)",
                                "font": {"size": 14}})
    return figure


def activation_histograms(activations: Mapping[str, np.ndarray], activation_names: Mapping[str, str],
                          labels: Mapping[str, str], *, bins: int = 60) -> go.Figure:
    """Side-by-side histograms of first-layer activations, one panel per model.

    The y-axis is the share of all values in each bin. tanh panels shade the saturated zones
    (|a| > 0.95, where the slope of tanh is below 0.1); ReLU panels mark the spike of exact zeros.
    Values are binned here with NumPy, so the figure stays small however many values there are.
    """
    keys = list(activations)
    figure = make_subplots(rows=1, cols=max(1, len(keys)), subplot_titles=[labels.get(key, key) for key in keys],
                           horizontal_spacing=0.08)
    for column, key in enumerate(keys, start=1):
        values = np.asarray(activations[key], dtype=np.float64).ravel()
        name = activation_names.get(key, "")
        if values.size == 0:
            continue
        low, high = float(values.min()), float(values.max())
        if name == "tanh":
            low, high = -1.0, 1.0
        if high <= low:
            high = low + 1.0
        counts, edges = np.histogram(values, bins=bins, range=(low, high))
        shares = counts / values.size
        centres = (edges[:-1] + edges[1:]) / 2
        figure.add_trace(go.Bar(
            x=centres, y=shares, width=np.diff(edges), marker={"color": model_colour(key)},
            name=labels.get(key, key), showlegend=False,
            hovertemplate="activation %{x:.2f}<br>%{y:.1%} of values<extra></extra>",
        ), row=1, col=column)
        axis = "" if column == 1 else str(column)
        if name == "tanh":
            for start, end in ((-1.0, -SATURATION_THRESHOLD), (SATURATION_THRESHOLD, 1.0)):
                figure.add_vrect(x0=start, x1=end, fillcolor=GREY, opacity=0.25, line_width=0,
                                 row=1, col=column)
            share = float(np.mean(np.abs(values) > SATURATION_THRESHOLD))
            note = f"{share:.1%} saturated (|a| > {SATURATION_THRESHOLD})"
        else:
            share = float(np.mean(values == 0.0))
            note = f"{share:.1%} exactly zero"
        figure.add_annotation(text=note, xref=f"x{axis} domain", yref=f"y{axis} domain", x=0.98, y=0.98,
                              showarrow=False, xanchor="right", yanchor="top",
                              bgcolor="rgba(255,255,255,0.8)")
        figure.update_xaxes(title_text=f"{name} output" if name else "activation", row=1, col=column)
        figure.update_yaxes(tickformat=".0%", row=1, col=column)
    figure.update_layout(height=340, margin={"l": 40, "r": 20, "t": 40, "b": 40}, bargap=0)
    return figure
