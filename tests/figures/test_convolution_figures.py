"""The convolution lab's figures: numbers large enough to read from the back of a room (issue 15)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from cnnviz import convolution as conv
from cnnviz.figures import convolution as figures
from cnnviz.figures.style import DIVERGING_COLORSCALE, style_figure


def _validated(figure: go.Figure) -> go.Figure:
    return go.Figure(figure.to_plotly_json())  # Raises ValueError on any invalid property.


@pytest.mark.parametrize("side, smallest", [(3, 20), (5, 16), (7, 13)])
def test_kernel_weights_are_written_large_in_their_cells(side, smallest):
    kernel = conv.make_kernel("Gaussian blur", side, seed=0) if side > 3 else conv.KERNEL_PRESETS["Sobel x"].kernel
    trace = _validated(figures.kernel_figure(kernel)).data[0]
    assert trace.textfont.size >= smallest
    assert trace.textfont.color is None  # plotly.js picks black or white against each cell.
    # The written numbers are the weights themselves (read back, not just present).
    written = np.array([[float(text) for text in row] for row in trace.text])
    np.testing.assert_allclose(written, kernel, atol=0.006)
    assert trace.zmid == 0 and trace.zmin == -trace.zmax  # The shared diverging scale, centred at zero…
    assert trace.to_plotly_json()["colorscale"][-1][1] == "rgb(103,0,31)"  # …with red for positive.
    assert DIVERGING_COLORSCALE == "RdBu_r"


def test_window_values_are_large_and_contrast_with_their_cells():
    rng = np.random.default_rng(0)
    window = rng.random((3, 3))
    kernel = conv.KERNEL_PRESETS["Laplacian edge"].kernel
    figure = _validated(figures.window_figure(window, kernel, window * kernel))
    assert len(figure.data) == 3
    for trace in figure.data:
        assert trace.texttemplate and trace.textfont.size >= 18
        # No fixed colour (the amber on grey of before): each number in black or white against its cell.
        assert trace.textfont.color is None
    np.testing.assert_allclose(np.array([[float(t) for t in row] for row in figure.data[0].text]), window,
                               atol=0.006)


def test_presenter_mode_never_shrinks_the_kernel_numbers():
    plain = figures.kernel_figure(conv.KERNEL_PRESETS["Sobel x"].kernel).data[0].textfont.size
    figure = style_figure(figures.kernel_figure(conv.KERNEL_PRESETS["Sobel x"].kernel), presenter=True)
    assert figure.data[0].textfont.size >= max(plain, 18)
    small = style_figure(figures.window_figure(np.ones((7, 7)), np.ones((7, 7)), np.ones((7, 7))), presenter=True)
    assert all(trace.textfont.size >= 18 for trace in small.data)
