"""Plotly figures of the explain lesson: Grad-CAM overlays, saliency maps and occlusion maps, and
(explain training) gradient norms per layer, weight histograms and the vanishing-gradients demonstration.

Plain arrays in, a `plotly.graph_objects.Figure` out. Non-negative importance maps (Grad-CAM,
saliency) use Viridis as the train lesson's activation maps do; the occlusion map is signed (a
cover can also raise the probability) and uses the one diverging scale of `cnnviz.figures.style`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.figures.style import OKABE_ITO, diverging_scale
from cnnviz.images import to_rgb

IMPORTANCE_SCALE = "Viridis"
OVERLAY_OPACITY = 0.5
PANEL_PIXELS = 260


def _panels(titles: Sequence[str]) -> go.Figure:
    figure = make_subplots(rows=1, cols=len(titles), subplot_titles=list(titles), horizontal_spacing=0.06)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, autorange="reversed")
    for column in range(1, len(titles) + 1):
        figure.update_xaxes(scaleanchor=f"y{column if column > 1 else ''}", constrain="domain", row=1, col=column)
    figure.update_layout(height=PANEL_PIXELS + 60, margin={"l": 0, "r": 0, "t": 40, "b": 0}, dragmode=False)
    return figure


def _image_trace(image: np.ndarray) -> go.Image:
    return go.Image(z=to_rgb(np.asarray(image, dtype=np.uint8)), hoverinfo="skip")


def _map_trace(values: np.ndarray, *, opacity: float = 1.0, name: str = "importance", colorbar_x: float | None = None,
               show_scale: bool = True, **scale) -> go.Heatmap:
    settings = scale or {"colorscale": IMPORTANCE_SCALE, "zmin": 0.0, "zmax": 1.0}
    return go.Heatmap(z=np.asarray(values, dtype=float), opacity=opacity, showscale=show_scale,
                      hovertemplate=f"row %{{y}}, column %{{x}}: {name} %{{z:.2f}}<extra></extra>",
                      colorbar={"title": name, **({"x": colorbar_x} if colorbar_x is not None else {})},
                      **settings)


def grad_cam_figure(image: np.ndarray, overlays: Sequence[np.ndarray], titles: Sequence[str]) -> go.Figure:
    """The image with each Grad-CAM map (stretched to the image) laid over it, side by side."""
    figure = _panels(titles)
    for column, overlay in enumerate(overlays, start=1):
        figure.add_trace(_image_trace(image), row=1, col=column)
        figure.add_trace(_map_trace(overlay, opacity=OVERLAY_OPACITY, show_scale=column == len(overlays)),
                         row=1, col=column)
    return figure


def saliency_figure(image: np.ndarray, plain: np.ndarray, smooth: np.ndarray) -> go.Figure:
    """The image, its saliency map and the SmoothGrad map."""
    figure = _panels(["the image", "saliency |∂ score / ∂ pixel|", "SmoothGrad (averaged over noise)"])
    figure.add_trace(_image_trace(image), row=1, col=1)
    figure.add_trace(_map_trace(plain, show_scale=False), row=1, col=2)
    figure.add_trace(_map_trace(smooth), row=1, col=3)
    return figure


def occlusion_figure(image: np.ndarray, drops: np.ndarray, patch: int, stride: int) -> go.Figure:
    """The image, and how much covering each patch drops the class probability (drawn at the patch centres)."""
    figure = _panels(["the image", f"probability drop, {patch}×{patch} patch every {stride} px"])
    figure.add_trace(_image_trace(image), row=1, col=1)
    drops = np.asarray(drops, dtype=float)
    centres_y = np.arange(drops.shape[0]) * stride + (patch - 1) / 2
    centres_x = np.arange(drops.shape[1]) * stride + (patch - 1) / 2
    trace = _map_trace(drops, name="drop", **diverging_scale(drops))
    trace.update(x=centres_x, y=centres_y)
    figure.add_trace(trace, row=1, col=2)
    height, width = np.asarray(image).shape[:2]
    figure.update_xaxes(range=[-0.5, width - 0.5], row=1, col=2)
    figure.update_yaxes(range=[height - 0.5, -0.5], autorange=False, row=1, col=2)
    return figure


def gradient_norms_figure(layers: Sequence[str], norms: Sequence[Sequence[float]]) -> go.Figure:
    """Each layer's gradient norm per record (0 = initialisation, then after each epoch), log scale."""
    values = np.asarray(norms, dtype=float)
    figure = go.Figure()
    for index, name in enumerate(layers):
        figure.add_trace(go.Scatter(x=list(range(len(values))), y=np.maximum(values[:, index], 1e-12), mode="lines+markers",
                                    name=name, line={"color": OKABE_ITO[index % len(OKABE_ITO)]},
                                    hovertemplate=f"{name}, epoch %{{x}}: %{{y:.3g}}<extra></extra>"))
    figure.update_layout(xaxis_title="epoch (0 = at initialisation)", yaxis_title="gradient norm ‖∂loss/∂kernel‖",
                         yaxis_type="log", height=360, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return figure


def weight_histograms_figure(layers: Sequence[str], histograms: Sequence[tuple[Sequence[float], Sequence[int]]],
                             *, columns: int = 3) -> go.Figure:
    """Small multiples: each layer's weight histogram (bars over its bins) at one record."""
    rows = max(1, -(-len(layers) // columns))
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=list(layers), horizontal_spacing=0.06,
                           vertical_spacing=0.12)
    for index, (edges, counts) in enumerate(histograms):
        edges_array = np.asarray(edges, dtype=float)
        figure.add_trace(go.Bar(x=(edges_array[:-1] + edges_array[1:]) / 2, y=list(counts),
                                width=float(np.diff(edges_array).mean()), showlegend=False,
                                marker={"color": OKABE_ITO[index % len(OKABE_ITO)]},
                                hovertemplate="weight %{x:.3g}: %{y} weights<extra></extra>"),
                         row=index // columns + 1, col=index % columns + 1)
    figure.update_layout(height=220 * rows + 40, margin={"l": 0, "r": 0, "t": 30, "b": 0}, bargap=0.05)
    return figure


# How the two measurements of the vanishing-gradients demonstration are drawn: (marker, line dash).
NORM_PHASES = {"initial": ("at initialisation", "circle-open", "dot"), "trained": ("after training", "diamond", "solid")}


def vanishing_norms_figure(variants: Mapping[str, tuple[str, Sequence[str], Sequence[int], np.ndarray,
                                                         np.ndarray | None]]) -> go.Figure:
    """Per variant (label, layer names, seeds, norms at initialisation [seed, layer], norms after
    training [seed, layer] or None): each seed's gradient norm per kernel layer as a point (open
    circles at initialisation, diamonds after training) and the seeds' mean as a line (dotted,
    solid), log scale; x is the layer's position (1 = nearest the input), one colour per variant.
    Traces per variant: the initial seeds, their mean, then the trained seeds, their mean."""
    figure = go.Figure()
    for index, (label, layers, seeds, initial, trained) in enumerate(variants.values()):
        colour = OKABE_ITO[index % len(OKABE_ITO)]
        names = list(layers)
        for phase, norms in (("initial", initial), ("trained", trained)):
            if norms is None:
                continue
            when, symbol, dash = NORM_PHASES[phase]
            values = np.maximum(np.asarray(norms, dtype=float), 1e-12)
            depth = np.arange(1, values.shape[1] + 1)
            for seed, seed_row in zip(seeds, values):
                figure.add_trace(go.Scatter(
                    x=depth, y=seed_row, mode="markers", customdata=names, showlegend=False,
                    marker={"color": colour, "symbol": symbol, "size": 8, "opacity": 0.7},
                    name=f"{label}, {when}", legendgroup=f"{label}, {when}",
                    hovertemplate=f"{label}, %{{customdata}}, {when}: %{{y:.3g}}<extra>seed {seed}</extra>"))
            figure.add_trace(go.Scatter(
                x=depth, y=values.mean(axis=0), mode="lines", customdata=names, line={"color": colour, "dash": dash},
                name=f"{label}, {when}", legendgroup=f"{label}, {when}",
                hovertemplate=f"{label}, %{{customdata}}, {when}: mean %{{y:.3g}}<extra></extra>"))
    figure.update_layout(xaxis_title="layer with weights (1 = nearest the input)",
                         yaxis_title="gradient norm ‖∂loss/∂kernel‖", yaxis_type="log", height=420,
                         margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return figure


def accuracy_points_figure(variants: Mapping[str, tuple[str, Sequence[float]]]) -> go.Figure:
    """Per variant (label, accuracies per seed): each seed as a point and the mean as a bar outline."""
    figure = go.Figure()
    for index, (label, values) in enumerate(variants.values()):
        colour = OKABE_ITO[index % len(OKABE_ITO)]
        accuracy = 100 * np.asarray(values, dtype=float)
        figure.add_trace(go.Scatter(x=[label] * len(accuracy), y=accuracy, mode="markers", showlegend=False,
                                    marker={"color": colour, "size": 10, "opacity": 0.7},
                                    hovertemplate="%{x}: %{y:.1f} %<extra>a seed</extra>"))
        figure.add_trace(go.Scatter(x=[label], y=[accuracy.mean()], mode="markers", showlegend=False,
                                    marker={"color": colour, "symbol": "line-ew-open", "size": 30,
                                            "line": {"width": 3, "color": colour}},
                                    hovertemplate="%{x}: mean %{y:.1f} %<extra></extra>"))
    figure.update_layout(yaxis_title="test accuracy (%)", height=340, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return figure
