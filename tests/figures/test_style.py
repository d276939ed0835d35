"""Presenter mode styling of figures."""

import numpy as np
import plotly.graph_objects as go

from cnnviz.figures.style import (
    CLASS_COLOURS,
    DIVERGING_COLORSCALE,
    OKABE_ITO,
    PRESENTER_FONT_SIZE,
    PRESENTER_GREY,
    PRESENTER_LEGEND_MARGIN,
    PRESENTER_LINE_WIDTH,
    PRESENTER_MIN_OPACITY,
    class_colour,
    darken_pale_grey,
    diverging_scale,
    style_figure,
    symmetric_limit,
)


def _figure() -> go.Figure:
    figure = go.Figure([go.Scatter(x=[0, 1], y=[1, 0], mode="lines+markers", name="loss"),
                        go.Bar(x=["a", "b"], y=[1, 2])])
    figure.update_layout(title="curves")
    return figure


def test_screen_mode_leaves_the_figure_alone():
    figure = _figure()
    before = figure.to_json()
    assert style_figure(figure, presenter=False).to_json() == before


def test_presenter_mode_enlarges_text_thickens_lines_and_uses_a_safe_palette():
    figure = style_figure(_figure(), presenter=True)
    assert figure.layout.font.size == PRESENTER_FONT_SIZE
    assert figure.layout.title.font.size > PRESENTER_FONT_SIZE
    assert tuple(figure.layout.colorway) == OKABE_ITO
    assert figure.data[0].line.width == PRESENTER_LINE_WIDTH
    assert figure.data[0].marker.size > 6


def _contrast(hex_colour: str) -> float:
    """WCAG contrast ratio of a hex colour against white."""
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    return 1.05 / (luminance + 0.05)


def test_presenter_mode_raises_faint_opacities_and_darkens_pale_greys():
    figure = go.Figure([
        go.Scattergl(x=[0], y=[0], mode="markers", marker=dict(size=3, color="#9A9A9A", opacity=0.3)),
        go.Scatter(x=[0], y=[1], mode="markers", marker=dict(size=5, color="#E69F00", opacity=0.7)),
        go.Scatter(x=[0, 1], y=[1, 2], mode="lines", line=dict(color="lightgrey"), opacity=0.5),
        go.Bar(x=["a", "b"], y=[1, 2], marker_color=["#999999", "#0072B2"]),
        go.Scatter(x=[0], y=[0], mode="markers", marker=dict(size=28, color="rgba(0,0,0,0)")),
        go.Scatter(x=[0], y=[0], mode="markers", marker=dict(color="#FFFFFF")),
        # Colours from a colour scale (numbers) and per-point colours as numpy arrays.
        go.Bar(x=["a", "b"], y=[1, 2], marker=dict(color=np.array([0.2, 0.9]), colorscale="Viridis")),
        go.Scatter(x=[0, 1], y=[0, 1], mode="markers", marker=dict(color=np.array(["#A0A0A0", "#D55E00"]))),
    ])
    assert _contrast("#9A9A9A") < 3  # Below WCAG's 3:1 for graphics before.
    style_figure(figure, presenter=True)
    background, front, grey_line, bars, click_target, white, scaled, per_point = figure.data
    assert background.marker.opacity >= PRESENTER_MIN_OPACITY
    assert background.marker.color == PRESENTER_GREY and _contrast(PRESENTER_GREY) >= 4.5
    # The faint background points stay smaller than the points in front of them.
    assert background.marker.size < front.marker.size
    assert front.marker.opacity == 0.7 and front.marker.color == "#E69F00"
    assert grey_line.opacity >= PRESENTER_MIN_OPACITY and grey_line.line.color == PRESENTER_GREY
    assert tuple(bars.marker.color) == (PRESENTER_GREY, "#0072B2")
    # A transparent click target stays transparent and as large; white (a separator) stays white.
    assert click_target.marker.color == "rgba(0,0,0,0)" and click_target.marker.size == 28
    assert white.marker.color == "#FFFFFF"
    assert list(scaled.marker.color) == [0.2, 0.9]
    assert list(per_point.marker.color) == [PRESENTER_GREY, "#D55E00"]


def test_presenter_mode_makes_the_transfer_pages_seen_classes_legible():
    from cnnviz.figures.transfer import SEEN_COLOUR, feature_space_pair
    from cnnviz.lessons.transfer import FeatureSpace

    rng = np.random.default_rng(0)
    space = FeatureSpace(rng.normal(size=(6, 2)), np.array([0, 0, 1, 1, 2, 2]), tuple(f"c{i}" for i in range(5)),
                         "unseen among seen", context_points=rng.normal(size=(4, 2)),
                         context_labels=np.array([3, 3, 4, 4]))
    screen = feature_space_pair(space)
    seen = next(trace for trace in screen.data if trace.name == "seen classes")
    assert seen.marker.color == SEEN_COLOUR and seen.marker.opacity < PRESENTER_MIN_OPACITY
    seen = next(trace for trace in style_figure(screen, presenter=True).data if trace.name == "seen classes")
    assert seen.marker.opacity >= PRESENTER_MIN_OPACITY
    assert _contrast(seen.marker.color) >= 4.5


def test_presenter_mode_pins_a_legend_under_the_plot_to_the_figure_bottom():
    from cnnviz.figures import training_curves

    history = {"loss": [2.0, 1.0], "accuracy": [0.3, 0.6], "val_loss": [2.1, 1.2], "val_accuracy": [0.3, 0.5]}
    # A legend placed at a negative y of the plot area (where it runs into the axis titles).
    screen = go.Figure(go.Scatter(y=[1, 2]), layout=dict(legend=dict(orientation="h", y=-0.25)))
    projector = style_figure(screen, presenter=True)
    # Anchored to the figure's bottom edge, below the (larger) "epoch" axis titles, with room for both.
    assert projector.layout.legend.yref == "container"
    assert projector.layout.legend.y == 0 and projector.layout.legend.yanchor == "bottom"
    assert projector.layout.margin.b >= PRESENTER_LEGEND_MARGIN
    # One already under the plot (the shared `legend_below`, e.g. the live training curves) gets the room too.
    live = style_figure(training_curves.live_training_figure(history, epochs=2), presenter=True)
    assert live.layout.legend.yref == "container" and live.layout.legend.y == 0
    assert live.layout.margin.b >= PRESENTER_LEGEND_MARGIN
    # A legend that is not under the plot is left where it is.
    side = go.Figure(go.Scatter(y=[1, 2]), layout=dict(legend=dict(orientation="v", y=0.5)))
    assert style_figure(side, presenter=True).layout.legend.y == 0.5


# ---- The one class palette -------------------------------------------------------------------------

def test_a_class_has_the_same_colour_on_the_train_and_the_transfer_pages():
    from cnnviz.figures import train as train_figures
    from cnnviz.figures import transfer as transfer_figures
    from cnnviz.lessons.transfer import FeatureSpace

    names = tuple(f"class {i}" for i in range(10))
    labels = np.arange(10).repeat(3)
    points = np.random.default_rng(1).normal(size=(len(labels), 2))
    train = train_figures.feature_space_figure(points, labels, names)
    transfer = transfer_figures.feature_space_pair(FeatureSpace(points, labels, names, "transfer"))
    train_colours = {trace.name: trace.marker.color for trace in train.data}
    transfer_colours = {trace.name: trace.marker.color for trace in transfer.data}
    assert train_colours == transfer_colours == {name: class_colour(i) for i, name in enumerate(names)}


def test_the_class_palette_extends_the_presenter_colorway_with_distinct_non_grey_colours():
    assert CLASS_COLOURS[:len(OKABE_ITO)] == OKABE_ITO  # Class k is the colorway's k-th colour.
    assert len(set(CLASS_COLOURS)) == len(CLASS_COLOURS) >= 10
    assert all(darken_pale_grey(colour) == colour for colour in CLASS_COLOURS)  # Same in presenter mode.
    assert class_colour(3) == class_colour(3 + len(CLASS_COLOURS)) == class_colour(np.int64(3))


# ---- The one diverging scale -------------------------------------------------------------------------

def test_kernels_filters_and_differences_share_one_diverging_scale_with_positive_red():
    import plotly.colors

    from cnnviz.figures import convolution as convolution_figures
    from cnnviz.figures import lenet_vs_relu as lenet_vs_relu_figures
    from cnnviz.figures import train as train_figures

    kernel = np.array([[-1.0, 0.0, 2.0], [0.5, 1.0, -0.5], [0.0, 0.0, 0.0]])
    traces = {
        "convolution kernel": convolution_figures.kernel_figure(kernel).data[0],
        "train filters": train_figures.filters_figure(kernel.reshape(1, 3, 3, 1)).data[0],
        "confusion difference": lenet_vs_relu_figures.confusion_difference_figure(kernel / 10, ["a", "b", "c"]).data[0],
    }
    expected = [[float(position), colour] for position, colour in plotly.colors.get_colorscale(DIVERGING_COLORSCALE)]
    for name, trace in traces.items():
        scale = [[round(float(position), 6), colour] for position, colour in trace.colorscale]
        assert scale == [[round(position, 6), colour] for position, colour in expected], name
        assert trace.zmid == 0 and trace.zmin == -trace.zmax > -np.inf, name
    positive, negative = expected[-1][1], expected[0][1]
    assert positive == "rgb(103,0,31)" and negative == "rgb(5,48,97)"  # Red positive, blue negative.
    assert traces["convolution kernel"].zmax == traces["train filters"].zmax == 2.0


def test_the_symmetric_range_covers_every_value_and_never_collapses():
    assert symmetric_limit(np.array([-3.0, 1.0]), np.array([2.5])) == 3.0
    assert symmetric_limit(np.zeros(4)) == symmetric_limit(np.array([])) == symmetric_limit() == 1.0
    assert symmetric_limit(np.array([np.nan, -0.5])) == 0.5
    assert symmetric_limit(np.array([0.2]), at_least=1.0) == 1.0
    assert diverging_scale(np.array([-4.0, 1.0])) == {"colorscale": DIVERGING_COLORSCALE, "zmid": 0.0,
                                                       "zmin": -4.0, "zmax": 4.0}
