"""widgets/map_chart.js in real Chromium: the canvas shows the numbers its figure holds.

The figures are the lab's own (`cnnviz.figures`), prepared as `ui.map_chart` sends them
(`ui.map_chart_data`). Colours are checked against Plotly's own colour-scale interpolation
(`plotly.colors`), the outline against the figure's outline colour, the hover label against the
array; the renderer's layout (where each cell is) is read from the chart itself.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import plotly.colors
import pytest

from cnnviz.figures import convolution as figures
from cnnviz.figures.style import style_figure
from widgets import ui

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><body style="margin:0; font-family: sans-serif">
<div id="host" style="width: 600px"></div></body></html>"""


def draw(page, figure) -> dict:
    """Draw `figure` with map_chart.js in a blank page; the chart's cell layout per trace."""
    page.set_content(PAGE)
    page.add_style_tag(content=ui.MAP_CHART_CSS)  # As the component is registered (ui.map_chart).
    module = base64.b64encode(ui.MAP_CHART_JS.read_bytes()).decode("ascii")
    page.add_script_tag(type="module", content=f"import draw from 'data:text/javascript;base64,{module}';"
                                               "window.drawMap = draw;")
    page.wait_for_function("() => typeof window.drawMap === 'function'")
    data = json.loads(json.dumps(ui.map_chart_data(figure)))
    return page.evaluate("""(data) => {
        const host = document.getElementById('host');
        window.drawMap({parentElement: host, data});
        const root = host.querySelector('.cnnviz-map');
        return {draws: root.dataset.draws, title: root.dataset.title,
                panels: root.__panels.map(p => ({left: p.left, top: p.top, cell: p.cell, rows: p.rows, cols: p.cols})),
                width: root.querySelector('canvas').width, ratio: window.devicePixelRatio};
    }""", data)


def pixel(page, x: float, y: float) -> list[int]:
    return page.evaluate("""([x, y]) => {
        const canvas = document.querySelector('#host canvas');
        const ratio = window.devicePixelRatio || 1;
        return Array.from(canvas.getContext('2d').getImageData(Math.round(x * ratio), Math.round(y * ratio), 1, 1).data);
    }""", [x, y])


def expected_colour(colorscale, t: float) -> np.ndarray:
    colour = plotly.colors.sample_colorscale([list(step) for step in colorscale], [float(t)], colortype="rgb")[0]
    return np.array(plotly.colors.unlabel_rgb(colour), dtype=float)


def test_a_kernel_is_drawn_in_the_colours_plotly_gives_its_weights_with_its_numbers(browser):
    kernel = np.array([[-1.0, 0.0, 1.0], [2.0, -2.0, 0.5], [1.0, 1.0, -1.5]])
    figure = figures.kernel_figure(kernel, title="Kernel")
    trace = figure.to_dict()["data"][0]
    drawn = draw(browser, figure)
    assert drawn["draws"] == "1" and drawn["title"] == "Kernel"
    panel = drawn["panels"][0]
    assert (panel["rows"], panel["cols"]) == (3, 3)
    for (row, col), value in np.ndenumerate(kernel):
        # Near the cell's corner: the middle holds the weight's digits.
        x = panel["left"] + (col + 0.12) * panel["cell"]
        y = panel["top"] + (row + 0.12) * panel["cell"]
        t = (value - trace["zmin"]) / (trace["zmax"] - trace["zmin"])
        got = np.array(pixel(browser, x, y)[:3], dtype=float)
        assert np.abs(got - expected_colour(trace["colorscale"], t)).max() <= 3, (row, col, value, got)
    # The weight is written in the cell: its middle has pixels of the text colour (black or white).
    middle = [pixel(browser, panel["left"] + (1 + dx) * panel["cell"], panel["top"] + (1.5) * panel["cell"])[:3]
              for dx in np.linspace(0.3, 0.7, 25)]
    assert any(max(abs(c - 255) for c in colour) < 60 or max(colour) < 60 for colour in middle)


def test_hover_names_the_cell_and_its_value_from_a_float32_map(browser):
    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 40))  # Over 1,024 values: sent as float32.
    figure = figures.signed_map_figure(values, title="Output", row0=5, col0=7)
    assert figure.to_dict()["data"][0]["z"]["dtype"] == "f4"
    drawn = draw(browser, figure)
    panel = drawn["panels"][0]
    row, col = 12, 31
    browser.mouse.move(panel["left"] + (col + 0.5) * panel["cell"], panel["top"] + (row + 0.5) * panel["cell"])
    tip = browser.locator(".cnnviz-map-tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert f"row {row + 5}, column {col + 7}" in text
    assert f"{np.float32(values[row, col]):.4g}" in text.replace("\n", " ")


def test_the_window_outline_is_drawn_where_the_figure_puts_it(browser):
    image = np.zeros((10, 10))
    figure = figures.image_figure(image, title="Input", window=(2, 3, 4, 5))
    drawn = draw(browser, figure)
    panel = drawn["panels"][0]
    outline = np.array(plotly.colors.hex_to_rgb(figures.OUTLINE_COLOR), dtype=float)
    # The outline's left edge runs along column 3's left border (x = 2.5), between rows 2 and 4.
    edge_x = panel["left"] + 3 * panel["cell"]
    on_edge = np.array(pixel(browser, edge_x, panel["top"] + 3.5 * panel["cell"])[:3], dtype=float)
    assert np.abs(on_edge - outline).max() <= 10, on_edge
    inside = np.array(pixel(browser, edge_x + panel["cell"], panel["top"] + 3.5 * panel["cell"])[:3], dtype=float)
    assert np.abs(inside - outline).max() > 100  # A black pixel of the image, not the outline.


def test_a_grid_of_maps_puts_each_trace_in_its_own_square_panel(browser):
    maps = [("a", np.arange(16.0).reshape(4, 4)), ("b", -np.ones((6, 6))), ("c", np.ones((4, 4, 3)) * 0.5)]
    drawn = draw(browser, figures.map_grid_figure(maps, columns=3, height_per_row=200))
    panels = drawn["panels"]
    assert [(p["rows"], p["cols"]) for p in panels] == [(4, 4), (6, 6), (4, 4)]
    lefts = [p["left"] for p in panels]
    assert lefts == sorted(lefts) and lefts[1] - lefts[0] > 100  # Side by side, not on top of each other.
    rgb = pixel(browser, panels[2]["left"] + 1.5 * panels[2]["cell"], panels[2]["top"] + 1.5 * panels[2]["cell"])
    assert all(abs(c - 128) <= 1 for c in rgb[:3]), rgb  # The RGB image at 0.5 grey.


def test_a_presenter_styled_figure_without_a_title_gets_none(browser):
    # Presenter mode gives every figure a title font; a figure without a title must not show the
    # font's dictionary as its title.
    window = np.arange(9.0).reshape(3, 3) / 8
    figure = style_figure(figures.window_figure(window, window - 0.5, window * (window - 0.5)), presenter=True)
    drawn = draw(browser, figure)
    assert drawn["title"] == ""
    assert browser.locator("#host canvas").get_attribute("aria-label") == "map"


def test_a_map_of_one_value_gets_the_middle_colour_as_in_plotly(browser):
    figure = figures.signed_map_figure(np.full((6, 6), 0.25), title="Flat")
    trace = figure.to_dict()["data"][0]
    assert "zmin" not in trace  # The range comes from the data.
    panel = draw(browser, figure)["panels"][0]
    got = np.array(pixel(browser, panel["left"] + 2.12 * panel["cell"], panel["top"] + 2.12 * panel["cell"])[:3],
                   dtype=float)  # Near a cell's corner: its middle holds the value's digits.
    assert np.abs(got - expected_colour(trace["colorscale"], 0.5)).max() <= 3, got


def test_the_hover_label_stays_inside_the_chart(browser):
    drawn = draw(browser, figures.signed_map_figure(np.arange(64.0).reshape(8, 8) - 30, title="Output"))
    panel = drawn["panels"][0]
    browser.mouse.move(panel["left"] + 7.9 * panel["cell"], panel["top"] + 7.9 * panel["cell"])
    tip = browser.locator(".cnnviz-map-tip")
    tip.wait_for(state="visible")
    box, chart = tip.bounding_box(), browser.locator("#host canvas").bounding_box()
    assert box["x"] + box["width"] <= chart["x"] + chart["width"] + 1
    assert box["y"] + box["height"] <= chart["y"] + chart["height"] + 1
