"""Plotly figures for the augmentation & regularisation page.

Every builder takes plain data (NumPy arrays, demo dataclasses, history dicts) and returns a
`plotly.graph_objects.Figure`; none touches Streamlit or Keras. Colours come from the Okabe-Ito
colour-blind-safe palette of `cnnviz.figures.style`; images are shown in their own grey levels / colours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.figures.style import BLUE, ORANGE, VERMILION, legend_below, series_colour

# --------------------------------------------------------------------------------------------
# Augmentation preview
# --------------------------------------------------------------------------------------------

def image_mosaic(images: np.ndarray, *, columns: int = 4, gap: int = 2, background: int = 255) -> np.ndarray:
    """Tile images (n, H, W, C) in [0, 1] (or uint8) into one uint8 RGB mosaic with `gap` pixels between."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"Expected a batch of images (n, H, W, C); got shape {x.shape}.")
    if x.dtype != np.uint8:
        x = np.clip(np.round(x.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    n, h, w, _ = x.shape
    columns = max(1, min(int(columns), n))
    rows = math.ceil(n / columns)
    mosaic = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), background, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        mosaic[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = x[i]
    return mosaic


def augmented_grid_figure(images: np.ndarray, *, columns: int = 4, title: str | None = None) -> go.Figure:
    """The augmented versions as one tiled picture (a single Image trace: fast to send and draw)."""
    mosaic = image_mosaic(images, columns=columns)
    figure = go.Figure(go.Image(z=mosaic, hoverinfo="skip"))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, scaleanchor="x")
    figure.update_layout(margin=dict(l=0, r=0, t=40 if title else 0, b=0), title=title,
                         height=min(620, 90 + 130 * math.ceil(len(images) / max(1, columns))))
    return figure


# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------

def dropout_figure(demo) -> go.Figure:
    """Per unit: the inference output (= the input) next to the training output of inverted dropout.

    Dropped units show an ✕ over a zero bar; kept ones are taller by 1/(1-p). Dotted lines mark the
    mean of each mode.
    """
    units = [f"unit {i}" for i in range(len(demo.inputs))]
    figure = go.Figure()
    figure.add_bar(x=units, y=demo.inference_output, name="inference (training=False) = input",
                   marker_color=BLUE,
                   hovertemplate="%{x}: %{y:.3f} at inference<extra></extra>")
    figure.add_bar(x=units, y=demo.training_output, name=f"training (training=True), kept × {demo.scale:.3g}",
                   marker_color=ORANGE,
                   customdata=np.where(demo.kept, "kept", "dropped"),
                   hovertemplate="%{x}: %{y:.3f} in training (%{customdata})<extra></extra>")
    dropped = [u for u, k in zip(units, demo.kept) if not k]
    if dropped:
        figure.add_scatter(x=dropped, y=[0.0] * len(dropped), mode="markers", name="dropped unit",
                           marker=dict(symbol="x-thin", size=14, line=dict(width=3, color=VERMILION)),
                           hovertemplate="%{x} dropped<extra></extra>")
    figure.add_hline(y=demo.mean_inference, line=dict(color=BLUE, dash="dot"),
                     annotation_text=f"mean at inference {demo.mean_inference:.3f}",
                     annotation_position="top left")
    figure.add_hline(y=demo.mean_training, line=dict(color=ORANGE, dash="dot"),
                     annotation_text=f"mean in training {demo.mean_training:.3f}",
                     annotation_position="bottom right")
    figure.update_layout(barmode="group", yaxis_title="activation", height=380, margin=dict(t=30))
    return legend_below(figure)


# --------------------------------------------------------------------------------------------
# Batch normalisation
# --------------------------------------------------------------------------------------------

def batchnorm_moving_figure(demo, feature_names: Sequence[str] | None = None) -> go.Figure:
    """The moving mean and variance after each step (lines) next to each batch's own statistics (dots)."""
    features = demo.batches.shape[2]
    names = list(feature_names) if feature_names else [f"feature {j}" for j in range(features)]
    steps = np.arange(demo.steps + 1)
    batch_means = demo.batches.astype(np.float64).mean(axis=1)  # (steps, features)
    batch_vars = demo.batches.astype(np.float64).var(axis=1)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("moving mean", "moving variance"),
                           horizontal_spacing=0.1)
    for j in range(features):
        colour = series_colour(j)
        for col, moving, per_batch in ((1, demo.moving_mean_history, batch_means),
                                       (2, demo.moving_variance_history, batch_vars)):
            figure.add_scatter(x=steps, y=moving[:, j], mode="lines+markers", name=names[j],
                               legendgroup=names[j], showlegend=col == 1, line=dict(color=colour),
                               hovertemplate=f"{names[j]}, after step %{{x}}: %{{y:.3f}}<extra>moving</extra>",
                               row=1, col=col)
            figure.add_scatter(x=steps[1:], y=per_batch[:, j], mode="markers", name=f"{names[j]} batch",
                               legendgroup=names[j], showlegend=False,
                               marker=dict(color=colour, symbol="circle-open", size=9),
                               hovertemplate=f"{names[j]}, batch %{{x}}: %{{y:.3f}}<extra>batch statistic</extra>",
                               row=1, col=col)
    figure.update_xaxes(title_text="training step", dtick=max(1, demo.steps // 10))
    figure.update_layout(height=360, margin=dict(t=40))
    legend_below(figure)
    return figure


# --------------------------------------------------------------------------------------------
# Overfitting variants
# --------------------------------------------------------------------------------------------

def overfitting_curves_figure(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> go.Figure:
    """Left: training (dashed) and test (solid) accuracy per epoch for each variant.
    Right: the train − test accuracy gap per epoch (training accuracy as measured during the epoch).
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("accuracy: training (dashed) and test (solid)",
                                                           "gap: training − test accuracy"),
                           horizontal_spacing=0.1)
    for i, (title, history) in enumerate(histories.items()):
        colour = series_colour(i)
        train = np.asarray(history.get("accuracy", []), dtype=float)
        test = np.asarray(history.get("val_accuracy", []), dtype=float)
        epochs = np.arange(1, len(train) + 1)
        figure.add_scatter(x=epochs, y=train, mode="lines", name=f"{title}", legendgroup=title,
                           line=dict(color=colour, dash="dash"), showlegend=False,
                           hovertemplate=f"{title}, epoch %{{x}}: training %{{y:.1%}}<extra></extra>", row=1, col=1)
        figure.add_scatter(x=epochs[:len(test)], y=test, mode="lines+markers", name=title, legendgroup=title,
                           line=dict(color=colour), marker=dict(size=5),
                           hovertemplate=f"{title}, epoch %{{x}}: test %{{y:.1%}}<extra></extra>", row=1, col=1)
        n = min(len(train), len(test))
        figure.add_scatter(x=epochs[:n], y=train[:n] - test[:n], mode="lines+markers", name=title,
                           legendgroup=title, showlegend=False, line=dict(color=colour), marker=dict(size=5),
                           hovertemplate=f"{title}, epoch %{{x}}: gap %{{y:.1%}}<extra></extra>", row=1, col=2)
    figure.add_hline(y=0, line=dict(color="grey", width=1), row=1, col=2)
    figure.update_yaxes(tickformat=".0%", row=1, col=1, title_text="accuracy")
    figure.update_yaxes(tickformat=".0%", row=1, col=2)
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(height=420, margin=dict(t=40))
    legend_below(figure)
    return figure


def seed_spread_figure(measured: Sequence) -> go.Figure:
    """Per variant (`cnnviz.lessons.augmentation.SeedMeasurement`s), left the test accuracy, right the
    train–test gap: every seed as a point, the mean as a diamond with its 95 % interval (seeds and
    test sampling, `cnnviz.verdicts.spread`) as an error bar."""
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                           subplot_titles=("test accuracy", "gap: training (clean) − test accuracy"))
    for column, (values_of, spread_of, what) in enumerate((
            (lambda m: m.test_accuracies, lambda m: m.accuracy_spread, "test accuracy"),
            (lambda m: m.gaps, lambda m: m.gap_spread, "gap")), start=1):
        for i, m in enumerate(measured):
            colour = series_colour(i)
            title = m.variant.title
            values = list(values_of(m))
            figure.add_scatter(x=[title] * len(values), y=values, mode="markers", name=title, legendgroup=title,
                               showlegend=False, marker=dict(color=colour, size=8, opacity=0.6),
                               customdata=list(m.seeds),
                               hovertemplate=f"{title}, seed %{{customdata}}: {what} %{{y:.1%}}<extra></extra>",
                               row=1, col=column)
            spread = spread_of(m)
            figure.add_scatter(x=[title], y=[spread.mean], mode="markers", name=title, legendgroup=title,
                               showlegend=False, marker=dict(color=colour, size=13, symbol="diamond",
                                                             line=dict(color="black", width=1)),
                               error_y=dict(type="data", symmetric=False, array=[spread.high - spread.mean],
                                            arrayminus=[spread.mean - spread.low], color=colour, width=8),
                               hovertemplate=(f"{title}: mean {what} %{{y:.1%}} (95 % interval "
                                              f"{spread.low:.1%} to {spread.high:.1%}, {len(values)} seeds)"
                                              "<extra></extra>"), row=1, col=column)
    figure.add_hline(y=0, line=dict(color="grey", width=1), row=1, col=2)
    figure.update_yaxes(tickformat=".0%", row=1, col=1, title_text="accuracy")
    figure.update_yaxes(tickformat=".0%", row=1, col=2)
    figure.update_layout(height=380, margin=dict(t=40))
    return figure
