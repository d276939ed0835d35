"""One visual language across pages: every figure module draws signed values (kernels, filters,
gradients, differences) on the one diverging scale with zero at its centre and red positive, colours
classes with `class_colour`, and writes the numbers in heatmap cells large enough for a room.

Two kinds of check: a scan of every figure module's source (no module picks a diverging scale of
its own or flips one), and the real figures of each page, whose colours are compared with plotly's
own colour scale (the oracle) at the largest positive and negative value."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import numpy as np
import plotly.colors
import pytest

from cnnviz import figures
from cnnviz.figures import convolution as convolution_figures
from cnnviz.figures import explain as explain_figures
from cnnviz.figures import lenet_vs_relu as lenet_vs_relu_figures
from cnnviz.figures import train as train_figures
from cnnviz.figures import transfer as transfer_figures
from cnnviz.figures.style import DIVERGING_COLORSCALE, PRESENTER_FONT_SIZE, class_colour, style_figure
from cnnviz.lessons.transfer import FeatureSpace

FIGURES_DIR = Path(figures.__file__).parent
FIGURE_MODULES = sorted(info.name for info in pkgutil.iter_modules([str(FIGURES_DIR)]) if info.name != "style")

# Plotly's diverging (and cyclic) scales: a figure module naming one picks its own sign convention.
DIVERGING_NAMES = {name.lower() for name in dir(plotly.colors.diverging) if not name.startswith("_")} | {
    name.lower() for name in dir(plotly.colors.cyclical) if not name.startswith("_")} | {"bwr", "seismic", "coolwarm"}
DIVERGING_NAMES = {name.removesuffix("_r") for name in DIVERGING_NAMES if name[0].isalpha()}

MIN_CELL_FONT = 14  # px: the smallest number written into a heatmap cell on screen.


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


@pytest.mark.parametrize("module", FIGURE_MODULES)
def test_no_figure_module_picks_or_flips_a_diverging_scale_of_its_own(module):
    tree = ast.parse((FIGURES_DIR / f"{module}.py").read_text())
    own = [(line, text) for line, text in _string_constants(tree)
           if text.lower().removesuffix("_r") in DIVERGING_NAMES]
    assert not own, f"cnnviz/figures/{module}.py names diverging scales {own}: use style.diverging_scale"
    flips = [node.lineno for node in ast.walk(tree)
             if isinstance(node, ast.keyword) and node.arg == "reversescale"
             or isinstance(node, ast.Constant) and node.value == "reversescale"]
    assert not flips, f"cnnviz/figures/{module}.py flips a colour scale (reversescale) on lines {flips}"


def test_the_scan_would_catch_a_module_with_its_own_scale():
    tree = ast.parse('go.Heatmap(z=z, colorscale="RdBu", reversescale=True)')
    assert any(text.lower().removesuffix("_r") in DIVERGING_NAMES for _, text in _string_constants(tree))


def _colour_at(trace, value: float) -> tuple[float, float, float]:
    """The colour plotly draws `value` in, from the trace's own scale and range (plotly as the oracle)."""
    low, high = (trace.zmin, trace.zmax) if trace.zmin is not None else (np.nanmin(trace.z), np.nanmax(trace.z))
    position = (value - low) / (high - low)
    scale = [[float(p), c] for p, c in trace.colorscale]
    sampled = plotly.colors.sample_colorscale(scale, [min(max(position, 0.0), 1.0)], colortype="tuple")[0]
    return tuple(255 * float(channel) for channel in sampled)  # (0-1 channels, as 0-255)


def _signed_heatmaps():
    """(name, heatmap trace, values) of every page's signed map, with the same signed values."""
    values = np.array([[-1.0, 0.0, 2.0], [0.5, 1.0, -0.5], [0.0, 0.25, 0.0]])
    yield "convolution kernel", convolution_figures.kernel_figure(values).data[0], values
    yield "convolution signed map", convolution_figures.signed_map_figure(values, title="out").data[0], values
    window = convolution_figures.window_figure(np.abs(values), values, values)  # products = window x kernel
    yield "convolution products", [t for t in window.data if t.type == "heatmap"][-1], values
    grid = convolution_figures.map_grid_figure([("a", values), ("b", -values)], shared_scale=True)
    yield "convolution map grid", grid.data[0], values
    yield "train first-layer filters", train_figures.filters_figure(values.reshape(1, 3, 3, 1)).data[0], values
    yield "LeNet/ReLU confusion difference", lenet_vs_relu_figures.confusion_difference_figure(
        values / 10, ["a", "b", "c"]).data[0], values * 10  # (drawn in percentage points)
    occlusion = explain_figures.occlusion_figure(np.zeros((28, 28), np.uint8), values, patch=8, stride=8)
    yield "explain occlusion drop", [t for t in occlusion.data if t.type == "heatmap"][0], values


@pytest.mark.parametrize("name, trace, values", list(_signed_heatmaps()), ids=lambda item: item if isinstance(item, str) else "")
def test_every_pages_signed_heatmap_uses_the_one_scale_with_zero_at_the_centre_and_red_positive(name, trace, values):
    expected = [[round(float(p), 6), c] for p, c in plotly.colors.get_colorscale(DIVERGING_COLORSCALE)]
    assert [[round(float(p), 6), c] for p, c in trace.colorscale] == expected, name
    assert trace.zmid == 0 or (trace.zmin is not None and trace.zmin == -trace.zmax), name
    assert trace.zmin == -trace.zmax, f"{name}: range {trace.zmin}..{trace.zmax} is not symmetric around 0"
    red, _, blue = _colour_at(trace, float(np.max(values)))
    assert red > blue + 50, f"{name}: the largest positive value is not drawn red"
    red, _, blue = _colour_at(trace, float(np.min(values)))
    assert blue > red + 50, f"{name}: the most negative value is not drawn blue"
    white = _colour_at(trace, 0.0)
    assert min(white) > 230, f"{name}: zero is drawn {white}, not (near) white"


def test_the_red_positive_check_fails_on_a_flipped_scale():
    trace = train_figures.filters_figure(np.array([[-1.0, 2.0]]).reshape(1, 1, 2, 1)).data[0]
    trace.colorscale = [[p, c] for p, c in plotly.colors.get_colorscale("RdBu")]
    red, _, blue = _colour_at(trace, 2.0)
    assert blue > red  # The old Train page convention: blue = positive. The test above would catch it.


def _class_traces(figure):
    return {trace.name: trace.marker.color for trace in figure.data
            if trace.type in ("scatter", "scattergl") and trace.name in NAMES}


NAMES = tuple(f"class {i}" for i in range(10))


def test_a_class_index_has_the_same_colour_on_train_and_transfer_even_when_only_some_classes_show():
    rng = np.random.default_rng(3)
    unseen = np.array([5, 7, 9]).repeat(4)  # The transfer page shows a subset, by original label.
    points = rng.normal(size=(len(unseen), 2))
    train = _class_traces(train_figures.feature_space_figure(points, unseen, NAMES))
    before = FeatureSpace(points, unseen, NAMES, "before")
    after = FeatureSpace(points + 1, unseen, NAMES, "after")
    transfer = _class_traces(transfer_figures.feature_space_pair(before, after))
    expected = {NAMES[label]: class_colour(label) for label in (5, 7, 9)}
    assert train == transfer == expected
    assert len(set(expected.values())) == 3


def test_class_colours_survive_presenter_mode():
    labels = np.arange(10).repeat(2)
    points = np.random.default_rng(4).normal(size=(len(labels), 2))
    figure = style_figure(train_figures.feature_space_figure(points, labels, NAMES), presenter=True)
    assert _class_traces(figure) == {name: class_colour(i) for i, name in enumerate(NAMES)}


def _cell_fonts():
    values = np.arange(9, dtype=float).reshape(3, 3) - 4
    yield "kernel 3x3", convolution_figures.kernel_figure(values)
    yield "kernel 7x7", convolution_figures.kernel_figure(np.ones((7, 7)))
    yield "step-through window", convolution_figures.window_figure(values, values, values * values)
    yield "signed map", convolution_figures.signed_map_figure(values, title="out", annotate=True)
    yield "confusion difference", lenet_vs_relu_figures.confusion_difference_figure(values / 100, ["a", "b", "c"])


@pytest.mark.parametrize("name, figure", list(_cell_fonts()), ids=lambda item: item if isinstance(item, str) else "")
def test_numbers_in_heatmap_cells_are_readable_and_grow_for_the_projector(name, figure):
    written = [trace for trace in figure.data if trace.type == "heatmap" and trace.texttemplate]
    assert written, f"{name}: no numbers written in the cells"
    for trace in written:
        assert (trace.textfont.size or 12) >= MIN_CELL_FONT, f"{name}: {trace.textfont.size}px digits"
    style_figure(figure, presenter=True)
    for trace in written:
        assert trace.textfont.size >= PRESENTER_FONT_SIZE - 2, f"{name} in presenter mode: {trace.textfont.size}px"


def _legend_figures():
    from cnnviz.figures import training_curves

    history = {"loss": [2.0, 1.0], "accuracy": [0.3, 0.6], "val_loss": [2.1, 1.2], "val_accuracy": [0.3, 0.5]}
    yield "train live curves", training_curves.live_training_figure(history, epochs=2)
    yield "LeNet/ReLU curves", lenet_vs_relu_figures.overlaid_curves({"a": history}, {"a": "A"}, epochs=2)


@pytest.mark.parametrize("name, figure", list(_legend_figures()), ids=lambda item: item if isinstance(item, str) else "")
def test_curve_legends_sit_below_the_axis_titles_not_on_them(name, figure):
    legend = figure.layout.legend
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0, name
    assert figure.layout.margin.b >= 80, f"{name}: no room between the x-axis title and the legend"
