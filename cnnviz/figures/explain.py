"""Plotly figures of the explain lesson: Grad-CAM overlays, saliency maps and occlusion maps.

Plain arrays in, a `plotly.graph_objects.Figure` out. Non-negative importance maps (Grad-CAM,
saliency) use Viridis as the train lesson's activation maps do; the occlusion map is signed (a
cover can also raise the probability) and uses the one diverging scale of `cnnviz.figures.style`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.figures.style import diverging_scale
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
