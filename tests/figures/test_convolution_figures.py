"""The convolution lab's figures: numbers large enough to read from the back of a room (issue 15)."""

from __future__ import annotations

import base64
import json

import numpy as np
import plotly.graph_objects as go
import plotly.io
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


def _every_lab_figure() -> dict[str, go.Figure]:
    rng = np.random.default_rng(1)
    big = rng.normal(size=(60, 50))  # > 1024 values: sent as float32.
    rgb = rng.random((12, 10, 3))
    kernel = conv.KERNEL_PRESETS["Sobel x"].kernel
    return {
        "image crop": figures.image_figure(rng.random((30, 30))[5:20, 3:17], window=(1, 1, 3, 3), row0=-1, col0=-1),
        "rgb": figures.image_figure(rgb),
        "kernel": figures.kernel_figure(kernel),
        "big signed map": figures.signed_map_figure(big, title="out", highlight=(2, 3)),
        "window": figures.window_figure(rgb[:3, :3, 0], kernel, rgb[:3, :3, 0] * kernel),
        "grid": figures.map_grid_figure([("a", big), ("b", rgb), ("", None)], columns=2, shared_scale=True),
        "sweep": figures.sweep_figure(rng.random((10, 10)), big[:8, :8], pad_top=1, pad_left=1, kernel_size=3,
                                      stride=1),
    }


@pytest.mark.parametrize("name", list(_every_lab_figure()))
def test_the_fast_figures_send_exactly_what_plotly_would_send(name):
    figure = _every_lab_figure()[name]
    sent = figure.to_plotly_json()  # What st.plotly_chart sends, before anything reads the figure.
    _validated(figure)
    assert len(figure.data) >= 1  # Reading it builds the real go.Figure ...
    # ... whose own serialisation (Plotly's deep copy and typed-array conversion) is the oracle.
    assert plotly_json(figure.to_plotly_json()) == plotly_json(sent)


def test_the_fast_figures_encode_their_values_losslessly():
    values = np.random.default_rng(2).normal(size=(5, 7))
    z = figures.signed_map_figure(values, title="out").to_dict()["data"][0]["z"]
    decoded = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(
        [int(part) for part in z["shape"].split(",")])
    np.testing.assert_array_equal(decoded, values)


def plotly_json(figure: dict) -> dict:
    """The figure as the browser receives it (key order aside)."""
    return json.loads(plotly.io.to_json(figure, validate=False))


@pytest.mark.parametrize("built", [False, True])
def test_the_fast_figures_survive_deepcopy_and_pickle(built):
    import copy
    import pickle

    figure = _every_lab_figure()["sweep"]
    if built:
        assert len(figure.data) >= 1  # Now an ordinary go.Figure inside.
    expected = plotly_json(figure.to_plotly_json())
    for clone in (copy.deepcopy(figure), pickle.loads(pickle.dumps(figure))):  # Our own object, not a user's.
        assert plotly_json(clone.to_plotly_json()) == expected
