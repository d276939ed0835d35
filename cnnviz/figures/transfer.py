"""Plotly figures of the transfer-learning lesson. Each builder takes data and returns a Figure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.figures.style import BLUE, GREEN, GREY, ORANGE, class_colour, legend_below
from cnnviz.lessons.transfer import SMALL_PER_CLASS, STRATEGY_LABELS, FeatureSpace, StrategyComparison

STRATEGY_COLOURS = {"frozen_features": BLUE, "early_features": GREEN, "fine_tune": ORANGE, "scratch": GREY}
STRATEGY_DASHES = {"frozen_features": "solid", "early_features": "dashdot", "fine_tune": "dash", "scratch": "dot"}
# Layer roles in the frozen/trainable diagram: frozen, copied but retrained, and newly initialised.
ROLE_COLOURS = {"frozen": BLUE, "fine-tuned": ORANGE, "new": GREEN}


def common_range(*arrays: np.ndarray, margin: float = 0.05) -> tuple[float, float]:
    """One [low, high] range covering every value of all arrays, with a relative margin."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays if np.size(a)])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (-1.0, 1.0)
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * margin or 1.0
    return (low - pad, high + pad)


def _scatter_traces(space: FeatureSpace, *, show_legend: bool) -> list[go.Scattergl]:
    traces = []
    for label in np.unique(space.labels):
        mask = space.labels == label
        traces.append(go.Scattergl(
            x=space.points[mask, 0], y=space.points[mask, 1], mode="markers",
            name=space.class_names[int(label)], legendgroup=str(int(label)), showlegend=show_legend,
            marker=dict(size=5, color=class_colour(label), opacity=0.7),
            hovertemplate=f"{space.class_names[int(label)]}<br>unit 1 = %{{x:.2f}}<br>"
                          f"unit 2 = %{{y:.2f}}<extra></extra>",
        ))
    return traces


SEEN_COLOUR = "#9A9A9A"


def _context_traces(space: FeatureSpace, *, show_legend: bool) -> list[go.Scattergl]:
    """The background classes (e.g. those seen in pre-training) as faint grey points, one trace."""
    if space.context_points is None or not len(space.context_points):
        return []
    names = np.asarray(space.class_names, dtype=object)[np.asarray(space.context_labels, dtype=int)]
    return [go.Scattergl(
        x=space.context_points[:, 0], y=space.context_points[:, 1], mode="markers",
        name="seen classes", legendgroup="seen", showlegend=show_legend, customdata=names,
        marker=dict(size=3, color=SEEN_COLOUR, opacity=0.3),
        hovertemplate="seen class %{customdata}<extra></extra>",
    )]


def context_label_positions(space: FeatureSpace) -> list[tuple[str, float, float]]:
    """(class name, x, y) at the median point of each background class: where to write its name."""
    if space.context_points is None or space.context_labels is None or not len(space.context_points):
        return []
    positions = []
    for label in np.unique(space.context_labels):
        mask = space.context_labels == label
        x, y = np.median(space.context_points[mask], axis=0)
        positions.append((space.class_names[int(label)], float(x), float(y)))
    return positions


def _all_points(space: FeatureSpace) -> np.ndarray:
    if space.context_points is None or not len(space.context_points):
        return space.points
    return np.concatenate([space.points, space.context_points], axis=0)


def feature_space_pair(before: FeatureSpace, after: FeatureSpace | None = None) -> go.Figure:
    """The bottleneck feature space before (and, if given, after) transfer, side by side.

    Both panels share one x range and one y range, so that spread and separation compare directly.
    Points are coloured by their true class; background classes (if any) are drawn faintly first.
    """
    spaces = [before] if after is None else [before, after]
    figure = make_subplots(rows=1, cols=len(spaces), subplot_titles=[s.title for s in spaces],
                           horizontal_spacing=0.08)
    for column, space in enumerate(spaces, start=1):
        for trace in _context_traces(space, show_legend=True) + _scatter_traces(space, show_legend=column == 1):
            figure.add_trace(trace, row=1, col=column)
        for name, x, y in context_label_positions(space):
            figure.add_annotation(x=x, y=y, text=name, showarrow=False, row=1, col=column,
                                  font=dict(size=12, color="#444444"), bgcolor="rgba(255,255,255,0.6)")
    x_range = common_range(*(_all_points(s)[:, 0] for s in spaces))
    y_range = common_range(*(_all_points(s)[:, 1] for s in spaces))
    for column in range(1, len(spaces) + 1):
        figure.update_xaxes(range=x_range, title_text="bottleneck unit 1", row=1, col=column)
        figure.update_yaxes(range=y_range, title_text="bottleneck unit 2" if column == 1 else None,
                            row=1, col=column)
    figure.update_layout(height=430, margin=dict(l=10, r=10, t=50, b=10),
                         legend=dict(title="True class", itemsizing="constant"))
    return figure


def accuracy_curves(comparison: StrategyComparison, *, chance: float | None = None) -> go.Figure:
    """Test accuracy against transfer-set size (log axis): per strategy, every seed's result as a
    point, the mean as a line and the 95 % interval of the mean (seeds and test sampling) as a band.
    A dotted vertical line marks the small/large threshold."""
    figure = go.Figure()
    sizes = list(comparison.sizes)
    for strategy in comparison.strategies:
        colour, label = STRATEGY_COLOURS[strategy], STRATEGY_LABELS[strategy]
        spreads = [comparison.spread(strategy, index) for index in range(len(sizes))]
        figure.add_trace(go.Scatter(
            x=sizes + sizes[::-1], y=[100 * s.high for s in spreads] + [100 * s.low for s in spreads][::-1],
            fill="toself", fillcolor=colour, opacity=0.15, line=dict(width=0), hoverinfo="skip",
            legendgroup=strategy, showlegend=False, name=f"{label}: 95 % interval"))
        figure.add_trace(go.Scatter(
            x=sizes, y=[100 * s.mean for s in spreads], mode="lines", name=label, legendgroup=strategy,
            line=dict(color=colour, dash=STRATEGY_DASHES[strategy], width=3),
            customdata=[[100 * s.low, 100 * s.high] for s in spreads],
            hovertemplate="%{x:,} transfer images: mean %{y:.1f}% (95 % interval %{customdata[0]:.1f} to "
                          "%{customdata[1]:.1f})<extra>" + label + "</extra>"))
        xs, ys, seeds = [], [], []
        for index, size in enumerate(sizes):
            for seed, value in zip(comparison.seeds, comparison.accuracy[strategy][index]):
                xs.append(size)
                ys.append(100 * value)
                seeds.append(seed)
        figure.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name=f"{label}: one seed", legendgroup=strategy, showlegend=False,
            marker=dict(color=colour, size=7, opacity=0.8, line=dict(width=1, color="white")), customdata=seeds,
            hovertemplate="%{x:,} transfer images, seed %{customdata}: %{y:.1f}%<extra>" + label + "</extra>"))
    if chance is not None:
        figure.add_hline(y=100 * chance, line=dict(color="#777777", dash="dashdot", width=1),
                         annotation_text="chance", annotation_position="bottom right")
    threshold = (SMALL_PER_CLASS + 0.5) * comparison.num_classes
    if sizes and sizes[0] <= threshold <= sizes[-1]:
        figure.add_vline(x=threshold, line=dict(color="#777777", dash="dot", width=1),
                         annotation_text=f"small | large ({SMALL_PER_CLASS} per class)",
                         annotation_position="top")
    title = "Test accuracy on the same transfer-class test images"
    if comparison.test_images:
        title += f" ({comparison.test_images:,} images, {len(comparison.seeds)} seeds)"
    figure.update_layout(height=440, margin=dict(l=10, r=10, t=60, b=10), title=title,
                         xaxis=dict(type="log", title="transfer-set size (training images, log scale)",
                                    tickvals=sizes, ticktext=[f"{size:,}" for size in sizes]),
                         yaxis=dict(title="test accuracy (%)", range=[0, 101]))
    return legend_below(figure)


def layer_roles_figure(names: Sequence[str], kinds: Sequence[str], params: Sequence[int],
                       roles: Sequence[str]) -> go.Figure:
    """A strip of boxes, one per layer in order, coloured frozen / fine-tuned / new.

    `roles` holds "frozen", "fine-tuned" or "new" per layer (layers without weights keep the role
    of their position, so the strip shows where the freeze boundary falls).
    """
    figure = go.Figure()
    count = len(names)
    for index, (name, kind, count_params, role) in enumerate(zip(names, kinds, params, roles)):
        colour = ROLE_COLOURS[role]
        figure.add_shape(type="rect", x0=index + 0.05, x1=index + 0.95, y0=0, y1=1,
                         fillcolor=colour, opacity=0.85 if count_params else 0.35,
                         line=dict(color=colour, width=1))
        figure.add_annotation(x=index + 0.5, y=0.5, showarrow=False,
                              text=f"<b>{name}</b><br>{kind}<br>{count_params:,} params",
                              font=dict(size=11, color="white" if count_params else "#222222"))
    # Invisible markers give the legend one entry per role.
    for role, colour in ROLE_COLOURS.items():
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=role,
                                    marker=dict(size=12, color=colour, symbol="square")))
    figure.update_layout(height=170, margin=dict(l=10, r=10, t=10, b=10),
                         xaxis=dict(visible=False, range=[0, max(count, 1)]),
                         yaxis=dict(visible=False, range=[-0.05, 1.05]),
                         legend=dict(orientation="h", yanchor="bottom", y=-0.25),
                         plot_bgcolor="rgba(0,0,0,0)")
    return figure
