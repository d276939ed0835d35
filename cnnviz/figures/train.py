"""Plotly figures of the train lesson: errors, filters, activation maps and feature space.

The loss and accuracy curves (live and final) are `cnnviz.figures.training_curves`'s.

Every builder takes plain data (NumPy arrays, lists, dicts) and returns a
`plotly.graph_objects.Figure`; none of them touches Streamlit or Keras. Colour scales are
colour-blind safe: Viridis for counts and activations, and from `cnnviz.figures.style` the one
diverging scale for signed weights (red positive) and the one class palette.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from cnnviz.figures.style import BLUE, VERMILION, class_colour, diverging_scale
from cnnviz.images import to_rgb

ERROR_COLOUR = VERMILION  # Distinct from blue/green for colour-blind readers.
CORRECT_COLOUR = BLUE


def _grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    columns = max(1, min(columns, count)) if count else 1
    rows = max(1, math.ceil(count / columns))
    return rows, columns


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

def confusion_matrix_figure(confusion: np.ndarray, class_names: Sequence[str], *,
                            selected: tuple[int, int] | None = None) -> go.Figure:
    """Heatmap of the confusion matrix: rows are the true class, columns the predicted class.

    Colour is the share of the true class (each row sums to 100 %), so rare mistakes stay visible
    next to the large diagonal; the text in each cell is the count. An invisible square marker
    sits on every cell, so clicking a cell selects a point (heatmaps themselves cannot be
    selected); its `point_index` is `true * K + predicted`. `selected` outlines one cell.
    """
    confusion = np.asarray(confusion)
    classes = len(class_names)
    support = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, np.where(support > 0, support, 1))
    labels = list(class_names)
    figure = go.Figure(go.Heatmap(
        z=share, x=list(range(classes)), y=list(range(classes)), colorscale="Viridis", zmin=0, zmax=1,
        text=confusion, texttemplate="%{text}",
        colorbar={"title": {"text": "share of<br>true class", "side": "right"}, "tickformat": ".0%", "thickness": 12},
        customdata=[[[labels[t], labels[p]] for p in range(classes)] for t in range(classes)],
        hovertemplate="true %{customdata[0]} → predicted %{customdata[1]}: %{text}<extra></extra>",
        hoverongaps=False,
    ))
    true_index, predicted_index = np.divmod(np.arange(classes * classes), classes)
    figure.add_trace(go.Scatter(
        x=predicted_index, y=true_index, mode="markers",
        marker={"symbol": "square", "size": 28, "color": "rgba(0,0,0,0)"},
        customdata=np.stack([true_index, predicted_index], axis=1),
        text=[f"true {labels[t]} → predicted {labels[p]}: {confusion[t, p]}"
              for t, p in zip(true_index, predicted_index)],
        hovertemplate="%{text}<br>click to show these images<extra></extra>",
        showlegend=False, name="cells",
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
    ))
    if selected is not None:
        t, p = selected
        figure.add_shape(type="rect", x0=p - 0.5, x1=p + 0.5, y0=t - 0.5, y1=t + 0.5,
                         line={"color": ERROR_COLOUR, "width": 3})
    ticks = {"tickmode": "array", "tickvals": list(range(classes)), "ticktext": labels}
    figure.update_xaxes(title_text="predicted class", side="bottom", tickangle=-45, constrain="domain", **ticks)
    # Square cells: one unit of x is drawn as long as one unit of y.
    figure.update_yaxes(title_text="true class", autorange="reversed", scaleanchor="x", constrain="domain", **ticks)
    figure.update_layout(height=max(380, 40 * classes + 190), margin={"l": 10, "r": 10, "t": 20, "b": 10},
                         clickmode="event+select", dragmode=False)
    return figure


def per_class_accuracy_figure(accuracy: np.ndarray, class_names: Sequence[str], *,
                              overall: float | None = None) -> go.Figure:
    """Horizontal bars: the fraction of each true class the network gets right."""
    accuracy = np.asarray(accuracy, dtype=float)
    figure = go.Figure(go.Bar(
        x=accuracy, y=list(class_names), orientation="h",
        marker={"color": accuracy, "colorscale": "Viridis", "cmin": 0, "cmax": 1},
        text=[f"{value:.0%}" if np.isfinite(value) else "no images" for value in accuracy],
        textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    ))
    if overall is not None and np.isfinite(overall):
        figure.add_vline(x=overall, line={"dash": "dash", "color": "black"},
                         annotation_text=f"overall {overall:.1%}", annotation_position="top")
    figure.update_xaxes(range=[0, 1], tickformat=".0%", title_text="share of the class's test images right")
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(height=max(280, 28 * len(class_names) + 100), margin={"l": 10, "r": 45, "t": 30, "b": 40})
    return figure


# --------------------------------------------------------------------------------------------
# Image grids
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GridLayout:
    """Where each tile of an image grid sits in the one mosaic picture (data units = image pixels)."""

    rows: int
    columns: int
    tile_height: int
    tile_width: int
    caption_units: int  # Blank rows above every tile where its caption is written.
    gap: int  # Blank columns between tiles.
    pixels_per_unit: float  # Expected screen pixels per image pixel.

    def origin(self, index: int) -> tuple[int, int]:
        """(top, left) of tile `index` in the mosaic."""
        row, column = divmod(index, self.columns)
        return (row * (self.tile_height + self.caption_units) + self.caption_units,
                column * (self.tile_width + self.gap))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows * (self.tile_height + self.caption_units),
                self.columns * (self.tile_width + self.gap) - self.gap)


def grid_layout(count: int, tile_height: int, tile_width: int, *, columns: int | None = None,
                caption_lines: int = 1, caption_font_pixels: int = 11, tile_pixels: int = 96,
                plot_width_pixels: int = 720) -> GridLayout:
    """Arrange `count` tiles: the grid fills about `plot_width_pixels`, tiles at most `tile_pixels` tall,
    with enough blank rows above each tile for `caption_lines` lines of text of `caption_font_pixels`."""
    rows, cols = _grid_shape(count, columns)
    gap = max(1, tile_width // 10)
    scale = min(plot_width_pixels / (cols * (tile_width + gap)), tile_pixels / tile_height)
    caption_units = math.ceil((round(caption_font_pixels * 1.3) * caption_lines + 6) / scale)
    return GridLayout(rows, cols, tile_height, tile_width, caption_units, gap, scale)


def image_grid_figure(images: np.ndarray, titles: Sequence[str], *, errors: Sequence[bool] | None = None,
                      columns: int | None = None, tile_pixels: int = 96, plot_width_pixels: int = 720,
                      caption_font_pixels: int = 11) -> go.Figure:
    """A grid of small images with a caption above each, drawn as ONE mosaic picture (fast to build
    and to send, even for dozens of images). Tiles flagged in `errors` get a coloured frame and a
    bold coloured caption (the colour is never the only cue: the caption says what is wrong).
    """
    images = np.asarray(images)
    count = len(images)
    if count == 0:
        figure = go.Figure()
        figure.add_annotation(text="No images to show.", showarrow=False, x=0.5, y=0.5,
                              xref="paper", yref="paper")
        figure.update_xaxes(visible=False)
        figure.update_yaxes(visible=False)
        figure.update_layout(height=120, margin={"l": 0, "r": 0, "t": 0, "b": 0})
        return figure
    errors = list(errors) if errors is not None else [False] * count
    height, width = images.shape[1], images.shape[2]
    lines = max(title.count("<br>") + 1 for title in titles) if len(titles) else 1
    layout = grid_layout(count, height, width, columns=columns, caption_lines=lines, tile_pixels=tile_pixels,
                         plot_width_pixels=plot_width_pixels, caption_font_pixels=caption_font_pixels)
    mosaic = np.full((*layout.shape, 3), 255, dtype=np.uint8)  # white background
    annotations, shapes = [], []
    for index, image in enumerate(images):
        top, left = layout.origin(index)
        mosaic[top:top + height, left:left + width] = to_rgb(image)
        title = titles[index] if index < len(titles) else ""
        if errors[index]:
            title = f"<span style='color:{ERROR_COLOUR}'><b>{title}</b></span>"
            shapes.append({"type": "rect", "x0": left - 0.5, "x1": left + width - 0.5, "y0": top - 0.5,
                           "y1": top + height - 0.5, "line": {"color": ERROR_COLOUR, "width": 3}})
        annotations.append({"x": left + (width - 1) / 2, "y": top - 0.5, "text": title, "showarrow": False,
                            "xanchor": "center", "yanchor": "bottom", "font": {"size": caption_font_pixels}})
    # One trace and the captions and frames set in one go: far faster than a subplot per image.
    figure = go.Figure(go.Image(z=mosaic, hoverinfo="skip"), layout={"annotations": annotations, "shapes": shapes})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(height=int(layout.shape[0] * layout.pixels_per_unit) + 8,
                         margin={"l": 0, "r": 0, "t": 4, "b": 4}, dragmode=False)
    return figure


def prediction_titles(true_labels: Sequence[int], predicted_labels: Sequence[int], class_names: Sequence[str],
                      confidence: Sequence[float] | None = None) -> list[str]:
    """Two-line captions for a prediction grid.

    Right: the class, then its probability ('Coat<br>91%'). Wrong: the true class, then an arrow
    to the predicted class, its probability and a cross ('Shirt<br>→ Coat 55% ✗').
    """
    titles = []
    for index, (true, predicted) in enumerate(zip(true_labels, predicted_labels)):
        probability = f" {confidence[index]:.0%}" if confidence is not None else ""
        if true == predicted:
            titles.append(f"{class_names[predicted]}<br>{probability.strip()}" if probability else class_names[predicted])
        else:
            titles.append(f"{class_names[true]}<br>→ {class_names[predicted]}{probability} ✗")
    return titles


# --------------------------------------------------------------------------------------------
# Mosaics: filters and activation maps
# --------------------------------------------------------------------------------------------

def _mosaic(tiles: np.ndarray, columns: int, gap: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Tile (n, h, w[, c]) arrays into one (rows*(h+gap)-gap, cols*(w+gap)-gap[, c]) array.

    Gaps are NaN (float) so heatmaps leave them blank; also returns the tile index per pixel
    (-1 in the gaps) for hover text.
    """
    count, height, width = tiles.shape[:3]
    rows = math.ceil(count / columns)
    extra = tiles.shape[3:]
    mosaic = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, *extra), np.nan)
    owner = np.full(mosaic.shape[:2], -1, dtype=np.int64)
    for index in range(count):
        row, col = divmod(index, columns)
        top, left = row * (height + gap), col * (width + gap)
        mosaic[top:top + height, left:left + width] = tiles[index]
        owner[top:top + height, left:left + width] = index
    return mosaic, owner


def filters_figure(weights: np.ndarray, *, columns: int | None = None, title: str | None = None) -> go.Figure:
    """First-layer filters (filters, kh, kw, in_channels) as one mosaic.

    Grey-scale inputs: the one diverging scale centred at zero (blue negative, red positive), one
    shared range so strong and weak filters compare. RGB inputs: each filter min-max scaled to an
    RGB picture (what colour and orientation the filter responds to).
    """
    weights = np.asarray(weights, dtype=float)
    count = len(weights)
    rows, cols = _grid_shape(count, columns or min(count, 16))
    if weights.shape[-1] == 3:
        low = weights.min(axis=(1, 2, 3), keepdims=True)
        high = weights.max(axis=(1, 2, 3), keepdims=True)
        scaled = (weights - low) / np.where(high > low, high - low, 1.0)
        mosaic, owner = _mosaic(scaled, cols)
        rgb = np.where(np.isnan(mosaic), 1.0, mosaic)
        figure = go.Figure(go.Image(z=(rgb * 255).astype(np.uint8), customdata=owner,
                                    hovertemplate="filter %{customdata}<extra></extra>"))
    else:
        mean_over_inputs = weights.mean(axis=-1)  # (filters, kh, kw)
        mosaic, owner = _mosaic(mean_over_inputs, cols)
        figure = go.Figure(go.Heatmap(
            z=mosaic, customdata=owner, **diverging_scale(mosaic),
            hovertemplate="filter %{customdata}: weight %{z:.3f}<extra></extra>", hoverongaps=False,
            colorbar={"title": "weight"},
        ))
        figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(visible=False, scaleanchor="y", constrain="domain")
    figure.update_yaxes(visible=False)
    figure.update_layout(height=max(140, 70 * rows + 40), margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0},
                         title=title)
    return figure


def activation_maps_figure(maps: np.ndarray, *, layer_name: str = "", max_channels: int = 32,
                           columns: int = 8, plot_width_pixels: int = 420) -> go.Figure:
    """The channels of one conv layer's output (H', W', channels) as a Viridis mosaic.

    All channels share one colour scale, so a channel that stays dark is one that did not fire
    for this image (with ReLU, a "dead" or irrelevant feature). At most `max_channels` are drawn.
    """
    maps = np.asarray(maps, dtype=float)
    shown = min(maps.shape[-1], max_channels)
    tiles = np.moveaxis(maps[..., :shown], -1, 0)  # (channels, H', W')
    cols = min(columns, shown) if shown else 1
    mosaic, owner = _mosaic(tiles, cols)
    figure = go.Figure(go.Heatmap(
        z=mosaic, customdata=owner, colorscale="Viridis", hoverongaps=False,
        hovertemplate="channel %{customdata}: %{z:.3f}<extra></extra>", colorbar={"title": "activation"},
    ))
    height, width = maps.shape[:2]
    # Height that fits the mosaic's aspect ratio at a typical plot width, so tiles stay square.
    plot_width = max(200, plot_width_pixels)
    tile = plot_width / max(1, mosaic.shape[1])
    figure_height = int(min(900, max(80, mosaic.shape[0] * tile))) + 50
    title = f"{layer_name}: {height}×{width}×{maps.shape[-1]}"
    if shown < maps.shape[-1]:
        title += f" (first {shown} of {maps.shape[-1]} channels)"
    figure.update_xaxes(visible=False, scaleanchor="y", constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed")
    figure.update_layout(title={"text": title, "font": {"size": 14}}, height=figure_height,
                         margin={"l": 0, "r": 0, "t": 40, "b": 0})
    return figure


# --------------------------------------------------------------------------------------------
# Feature space and probabilities
# --------------------------------------------------------------------------------------------

def feature_space_figure(points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *,
                         max_points: int = 5000, seed: int = 0) -> go.Figure:
    """Scatter of the 2-D bottleneck coordinates of test images, one colour (and legend entry) per class.

    Above `max_points` a seeded random subset is drawn so the browser stays fast.
    """
    points = np.asarray(points, dtype=float)
    labels = np.asarray(labels).ravel()
    if len(points) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(points), size=max_points, replace=False))
        points, labels = points[keep], labels[keep]
    figure = go.Figure()
    for class_index, name in enumerate(class_names):
        mask = labels == class_index
        if not mask.any():
            continue
        figure.add_trace(go.Scattergl(
            x=points[mask, 0], y=points[mask, 1], mode="markers", name=name,
            marker={"size": 5, "opacity": 0.7, "color": class_colour(class_index)},
            hovertemplate=f"{name}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
        ))
    figure.update_xaxes(title_text="bottleneck unit 1")
    figure.update_yaxes(title_text="bottleneck unit 2")
    figure.update_layout(height=520, margin={"l": 40, "r": 10, "t": 30, "b": 40},
                         legend={"itemsizing": "constant"})
    return figure


def probabilities_figure(probabilities: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Horizontal bars of class probabilities; the most likely class is highlighted."""
    probabilities = np.asarray(probabilities, dtype=float)
    best = int(np.argmax(probabilities)) if len(probabilities) else -1
    colours = [ERROR_COLOUR if index == best else CORRECT_COLOUR for index in range(len(probabilities))]
    figure = go.Figure(go.Bar(
        x=probabilities, y=list(class_names), orientation="h", marker={"color": colours},
        text=[f"{value:.1%}" for value in probabilities], textposition="auto",
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    figure.update_xaxes(range=[0, 1], tickformat=".0%", title_text="probability")
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(height=max(240, 26 * len(class_names) + 80), margin={"l": 10, "r": 10, "t": 20, "b": 40})
    return figure
