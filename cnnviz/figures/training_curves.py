"""The live training chart: loss and accuracy growing while a model trains.

`live_training_figure` takes the finished epochs' history and the running (within-epoch)
training points and returns a Plotly figure; it never touches Streamlit or Keras.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.figures.style import BLUE, VERMILION, legend_below

TRAIN_COLOUR = BLUE
VALIDATION_COLOUR = VERMILION  # Tells apart from blue for colour-blind readers.


def _finite(values: Sequence[float]) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in values]


def live_training_figure(history: Mapping[str, Sequence[float]],
                         live_points: Sequence[tuple[float, float, float]] = (), *,
                         epochs: int | None = None, height: int = 320) -> go.Figure:
    """Loss (left) and accuracy (right) against epochs.

    Running training values within epochs are a thin line at fractional epochs (`live_points`
    holds `(epoch_position, loss, accuracy)`, epoch_position in [0, epochs]); each finished epoch
    adds a training marker and a validation (test split) marker at its end, x = 1, 2, ...
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss (cross-entropy)", "Accuracy"),
                           horizontal_spacing=0.12)
    xs = [p[0] for p in live_points]
    done = list(range(1, len(history.get("loss", ())) + 1))
    for column, name in ((1, "loss"), (2, "accuracy")):
        index = 1 if name == "loss" else 2
        show = column == 1
        if live_points:
            figure.add_trace(go.Scatter(x=xs, y=_finite([p[index] for p in live_points]), mode="lines",
                                        line=dict(color=TRAIN_COLOUR, width=1), opacity=0.5,
                                        name="training (running)", legendgroup="live", showlegend=show,
                                        hovertemplate="epoch %{x:.2f}<br>%{y:.4f}<extra>training</extra>"),
                             row=1, col=column)
        figure.add_trace(go.Scatter(x=done, y=_finite(history.get(name, ())), mode="lines+markers",
                                    line=dict(color=TRAIN_COLOUR), name="training", legendgroup="train",
                                    showlegend=show,
                                    hovertemplate="epoch %{x}<br>%{y:.4f}<extra>training</extra>"),
                         row=1, col=column)
        figure.add_trace(go.Scatter(x=done, y=_finite(history.get(f"val_{name}", ())), mode="lines+markers",
                                    line=dict(color=VALIDATION_COLOUR, dash="dash"),
                                    marker=dict(symbol="diamond"), name="validation (test set)",
                                    legendgroup="val", showlegend=show,
                                    hovertemplate="epoch %{x}<br>%{y:.4f}<extra>validation</extra>"),
                         row=1, col=column)
        figure.update_xaxes(title_text="epoch", range=[0, max(1, epochs or len(done) or 1) + 0.1],
                            row=1, col=column)
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    figure.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), uirevision="live")
    return legend_below(figure)
