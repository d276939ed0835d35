"""Presenter mode styling of figures."""

import plotly.graph_objects as go

from cnnviz.presentation import OKABE_ITO, PRESENTER_FONT_SIZE, PRESENTER_LINE_WIDTH, style_figure


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
