"""Plotly figures for the convolution lab. They take arrays and return figures; no Streamlit here.

Colour scales are colour-blind safe: a sequential scale (gray, Viridis or Cividis) for images and
non-negative maps, and for kernels and signed outputs the one diverging scale of
`cnnviz.figures.style` (blue negative, white zero, red positive), centred at zero.

Speed: the lab redraws these figures on every slider move, so they are assembled as plain
dictionaries and returned as a `PlainFigure`: a `go.Figure` that keeps the dictionary and becomes
a full Plotly object only when something reads or changes it (`figure.data`, `update_layout`,
presenter-mode styling). `st.plotly_chart` only calls `to_dict()`, which returns the dictionary
itself (NumPy arrays as Plotly's base64 typed arrays, as `go.Figure.to_dict` sends them), so a
chart costs ~1-3 ms instead of ~15-30 ms of building, validating and deep-copying Plotly objects
(measured in one run, issue 15). The tests rebuild every figure with validation on, so a
misspelt property still fails there. Large maps are sent as float32.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import plotly.io as pio
from _plotly_utils.utils import to_typed_array_spec

from cnnviz.figures.style import diverging_scale

IMAGE_SCALES = {"gray": "gray", "Viridis": "Viridis", "Cividis": "Cividis"}
SEQUENTIAL = "Viridis"
OUTLINE_COLOR = "#FFB000"  # Amber: visible on gray, Viridis and the diverging scale alike.
ANNOTATE_MAX_SIDE = 9  # Write values into the cells only of arrays this small (kernels, windows).
VALUE_FONT_SIZE = 14  # Values written into the cells of a small map.
# Values written into a kernel's cells, by kernel side: the numbers that matter, read from the back
# of a room. Their colour is left to plotly.js ("auto"): black on light cells, white on dark ones.
KERNEL_FONT_SIZES = {3: 24, 5: 18, 7: 14}
WINDOW_FONT_SIZE = 20  # Values in the step-through's window, kernel and products grids (up to 7 x 7).
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


@lru_cache(maxsize=16)
def _colorscale(name: str) -> tuple[tuple[float, str], ...]:
    """A named scale as explicit [position, colour] pairs.

    Without validation Plotly would send the name as is, and plotly.js knows neither "gray" nor
    the reversed "_r" names, so the browser would silently use its default scale.
    """
    return tuple((float(position), color) for position, color in plotly.colors.get_colorscale(name))


def _is_signed(values: np.ndarray) -> bool:
    return bool(np.nanmin(values) < 0)


def _value_text(values: np.ndarray) -> list[list[str]]:
    def fmt(value: float) -> str:
        if abs(value - round(value)) < 1e-9:
            return str(int(round(value)))
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return [[fmt(float(value)) for value in row] for row in values]


def _compact(values: np.ndarray) -> np.ndarray:
    """float32 for big arrays (half the bytes to the browser), float64 for small ones."""
    return values.astype(np.float32) if values.size > 1024 else values


def heatmap_trace(values, *, colorscale: str, zmid: float | None = None, zmin: float | None = None,
                  zmax: float | None = None, row0: int = 0, col0: int = 0, annotate: bool | None = None,
                  name: str = "value", showscale: bool = True, axis: int = 1) -> dict:
    """A heatmap trace (as a dict) of a 2-D array with (row, column) hover.

    `row0`/`col0` shift the coordinates (a padded image keeps the original pixel numbers);
    `axis` is the subplot number (1 for the first).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"A heatmap needs a 2-D array, not shape {values.shape}.")
    if annotate is None:
        annotate = max(values.shape) <= ANNOTATE_MAX_SIDE
    trace = {
        "type": "heatmap", "z": _compact(values), "x0": col0, "dx": 1, "y0": row0, "dy": 1,
        "colorscale": [list(step) for step in _colorscale(colorscale)], "showscale": showscale,
        "hovertemplate": f"row %{{y}}, column %{{x}}<br>{name} %{{z:.4g}}<extra></extra>",
    }
    if showscale:
        trace["colorbar"] = {"thickness": 12, "len": 0.85}
    for key, value in (("zmid", zmid), ("zmin", zmin), ("zmax", zmax)):
        if value is not None:
            trace[key] = float(value)
    if annotate:
        trace.update(text=_value_text(values), texttemplate="%{text}", textfont={"size": VALUE_FONT_SIZE})
    if axis != 1:
        trace.update(xaxis=f"x{axis}", yaxis=f"y{axis}")
    return trace


def _image_trace(rgb_unit: np.ndarray, *, row0: int = 0, col0: int = 0, axis: int = 1) -> dict:
    rgb = np.clip(np.round(np.asarray(rgb_unit, dtype=float) * 255), 0, 255).astype(np.uint8)
    trace = {"type": "image", "z": rgb, "x0": col0, "y0": row0,
             "hovertemplate": "row %{y}, column %{x}<br>RGB %{z}<extra></extra>"}
    if axis != 1:
        trace.update(xaxis=f"x{axis}", yaxis=f"y{axis}")
    return trace


_TYPED_ARRAY_DTYPES = {"uint8": "u1", "float32": "f4", "float64": "f8", "int32": "i4", "int16": "i2", "int8": "i1"}


def _typed_array(values: np.ndarray):
    """An array as Plotly's base64 typed-array dictionary, exactly as `go.Figure.to_dict` sends it."""
    code = _TYPED_ARRAY_DTYPES.get(str(values.dtype))
    if code is None or values.size == 0:
        return to_typed_array_spec(values)  # Plotly's own rules for other dtypes (e.g. int64 narrowed).
    typed = {"dtype": code, "bdata": base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")}
    if values.ndim > 1:
        typed["shape"] = str(values.shape)[1:-1]
    return typed


def _default_template() -> dict | None:
    """The layout template go.Figure gives every figure (`plotly.io.templates.default`; under
    Streamlit, its theme's), as a dictionary built once per template name, not once per figure."""
    default = pio.templates.default
    if default is None:
        return None
    if isinstance(default, str):
        return _template_dict(default)
    return default.to_plotly_json()


@lru_cache(maxsize=4)
def _template_dict(name: str) -> dict:
    return pio.templates[name].to_plotly_json()


class PlainFigure(go.Figure):
    """A figure kept as its plain dictionary until it is read or changed as a Plotly object.

    `to_dict()` (all that `st.plotly_chart` and `plotly.io.to_json` call) returns the dictionary,
    fresh at its top levels, with arrays converted as `go.Figure.to_dict` converts them. Any other
    attribute (`data`, `layout`, `update_layout`, ...) first builds the real figure from the
    dictionary, without validation, and from then on this is an ordinary `go.Figure`. Animation
    frames stay plain dictionaries either way (Plotly would validate each one, ~1 ms a frame).
    """

    def __init__(self, traces: list[dict], layout: dict, frames: list[dict] | None = None) -> None:
        # No go.Figure.__init__ yet: that is the cost this class avoids (see `__getattr__`).
        self._plain: dict | None = {"data": traces, "layout": layout}
        self._raw_frames = frames or []

    def __getattr__(self, name: str):
        # Called only for attributes not found: go.Figure's own state before it is built.
        plain = self.__dict__.get("_plain")
        if plain is None or name.startswith("__"):
            raise AttributeError(name)
        self._plain = None
        go.Figure.__init__(self, data=plain["data"], layout=plain["layout"], _validate=False)
        return getattr(self, name)

    def to_dict(self) -> dict:
        plain = self.__dict__.get("_plain")
        if plain is None:
            figure = super().to_dict()
        else:
            # Arrays are only ever trace values here (z): converted directly, as `convert_to_base64`
            # would, without its walk over every nested list (the cells' text) and dictionary.
            figure = {"data": [{key: _typed_array(value) if isinstance(value, np.ndarray) else value
                                for key, value in trace.items()} for trace in plain["data"]],
                      "layout": dict(plain["layout"])}
            template = _default_template()
            if template is not None and "template" not in figure["layout"]:
                figure["layout"]["template"] = template  # As go.Figure adds it (Streamlit's theme).
        if self._raw_frames:
            figure["frames"] = [dict(frame) for frame in self._raw_frames]
        return figure

    def to_plotly_json(self) -> dict:
        return self.to_dict()

    def __reduce__(self):  # copy.deepcopy and pickle (Plotly's own would call PlainFigure(props)).
        plain = self.__dict__.get("_plain")
        if plain is not None:
            return (PlainFigure, (plain["data"], plain["layout"], self._raw_frames))
        return (go.Figure, (self.to_dict(),))


def _figure(traces: list[dict], layout: dict) -> go.Figure:
    return PlainFigure(traces, layout)


def _single_layout(title: str, height: int) -> dict:
    return {
        "title": {"text": title, "x": 0, "font": {"size": 16}},
        "height": height,
        "margin": dict(MARGIN),
        "xaxis": {"constrain": "domain"},
        "yaxis": {"autorange": "reversed", "scaleanchor": "x", "scaleratio": 1, "constrain": "domain"},
    }


def _outline(top: int, left: int, bottom: int, right: int, axis: int = 1) -> dict:
    shape = {"type": "rect", "x0": left - 0.5, "x1": right + 0.5, "y0": top - 0.5, "y1": bottom + 0.5,
             "line": {"color": OUTLINE_COLOR, "width": 3}}
    if axis != 1:
        shape.update(xref=f"x{axis}", yref=f"y{axis}")
    return shape


def image_figure(image, *, title: str = "Input", scale: str = "gray", height: int = 340,
                 window: tuple[int, int, int, int] | None = None, row0: int = 0, col0: int = 0) -> go.Figure:
    """An input image in [0, 1]: (H, W) as a heatmap on a sequential scale, (H, W, 3) as RGB.

    `window` = (top, left, bottom, right) outlines the kernel's current position; `row0`/`col0`
    shift the axes, so a padded image keeps the original pixel numbers (padding is negative).
    """
    values = np.asarray(image, dtype=float)
    if values.ndim == 3:
        trace = _image_trace(values, row0=row0, col0=col0)
    else:
        trace = heatmap_trace(values, colorscale=IMAGE_SCALES.get(scale, scale), zmin=0.0, zmax=1.0,
                              row0=row0, col0=col0, name="pixel")
    layout = _single_layout(title, height)
    if window is not None:
        layout["shapes"] = [_outline(*window)]
    return _figure([trace], layout)


def _signed_trace(values: np.ndarray, *, scale: str, annotate: bool | None, name: str, showscale: bool = True,
                  axis: int = 1, limit: float | None = None) -> dict:
    """The diverging scale centred at zero if any value is negative (or a shared `limit` is given),
    otherwise the sequential `scale`."""
    if limit is not None or _is_signed(values):
        signed = diverging_scale(values) if limit is None else diverging_scale(at_least=limit)
        return heatmap_trace(values, **signed, annotate=annotate, name=name, showscale=showscale, axis=axis)
    return heatmap_trace(values, colorscale=IMAGE_SCALES.get(scale, scale), annotate=annotate, name=name,
                         showscale=showscale, axis=axis)


def signed_map_figure(values, *, title: str, height: int = 340, highlight: tuple[int, int] | None = None,
                      scale: str = SEQUENTIAL, annotate: bool | None = None, name: str = "value",
                      row0: int = 0, col0: int = 0, signed_limit: float | None = None) -> go.Figure:
    """A feature map: the diverging scale centred at zero if any value is negative (or `signed_limit`
    is given, e.g. the range of the whole map when showing a crop), otherwise the sequential
    `scale`. `highlight` = (row, col) outlines one cell; `row0`/`col0` shift the axes."""
    values = np.asarray(values, dtype=float)
    layout = _single_layout(title, height)
    if highlight is not None:
        layout["shapes"] = [_outline(highlight[0], highlight[1], highlight[0], highlight[1])]
    trace = _signed_trace(values, scale=scale, annotate=annotate, name=name, limit=signed_limit)
    trace.update(x0=col0, y0=row0)
    return _figure([trace], layout)


def zoom_bounds(length: int, centre: int, size: int) -> tuple[int, int]:
    """[start, stop) of a `size`-long view of an axis of `length`, centred on `centre` where possible."""
    if length <= size:
        return 0, length
    start = min(max(centre - size // 2, 0), length - size)
    return start, start + size


def kernel_font_size(side: int) -> int:
    """The size of the weights written into a kernel of `side` x `side` cells."""
    return next((size for largest, size in sorted(KERNEL_FONT_SIZES.items()) if side <= largest),
                min(KERNEL_FONT_SIZES.values()))


def kernel_figure(kernel, *, title: str = "Kernel", height: int = 320) -> go.Figure:
    """A kernel on the diverging scale centred at zero (red positive), its weights written large in the cells."""
    kernel = np.asarray(kernel, dtype=float)
    trace = heatmap_trace(kernel, **diverging_scale(kernel), annotate=True, name="weight", showscale=False)
    trace["textfont"] = {"size": kernel_font_size(max(kernel.shape))}
    layout = _single_layout(title, height)
    # Room for the numbers: no tick labels on a kernel's few cells (the hover still names them).
    layout["xaxis"].update(showticklabels=False, ticks="")
    layout["yaxis"].update(showticklabels=False, ticks="")
    return _figure([trace], layout)


def _grid_layout(titles: list[str], rows: int, columns: int, *, height: int, gap_x: float = 0.03,
                 gap_y: float = 0.1) -> dict:
    """Axes for a rows x columns grid of square maps (like make_subplots, without its cost)."""
    layout: dict = {"height": height, "margin": dict(MARGIN), "annotations": []}
    cell_w = (1 - gap_x * (columns - 1)) / columns
    cell_h = (1 - gap_y * (rows - 1)) / rows
    for index in range(rows * columns):
        row, col = divmod(index, columns)
        number = index + 1
        suffix = "" if number == 1 else str(number)
        x0 = col * (cell_w + gap_x)
        y1 = 1 - row * (cell_h + gap_y)
        x_domain = [max(0.0, round(x0, 6)), min(1.0, round(x0 + cell_w, 6))]
        y_domain = [max(0.0, round(y1 - cell_h, 6)), min(1.0, round(y1, 6))]
        layout[f"xaxis{suffix}"] = {"domain": x_domain, "anchor": f"y{suffix}", "showticklabels": False,
                                    "constrain": "domain"}
        layout[f"yaxis{suffix}"] = {"domain": y_domain, "anchor": f"x{suffix}", "showticklabels": False,
                                    "autorange": "reversed", "scaleanchor": f"x{suffix}", "scaleratio": 1,
                                    "constrain": "domain"}
        if index < len(titles) and titles[index]:
            layout["annotations"].append({
                "text": titles[index], "x": x0 + cell_w / 2, "y": y1, "xref": "paper", "yref": "paper",
                "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 14},
            })
    return layout


def window_figure(window, kernel, products, *, height: int = 300) -> go.Figure:
    """Three small grids side by side: input window, kernel (as applied) and their products."""
    window = np.asarray(window, dtype=float)
    kernel = np.asarray(kernel, dtype=float)
    products = np.asarray(products, dtype=float)
    window_limit = max(1.0, float(np.abs(window).max()))
    traces = [
        heatmap_trace(window, colorscale="gray", zmin=min(0.0, float(window.min())), zmax=window_limit,
                      annotate=True, name="pixel", showscale=False, axis=1),
        heatmap_trace(kernel, **diverging_scale(kernel), annotate=True, name="weight", showscale=False, axis=2),
        heatmap_trace(products, **diverging_scale(products), annotate=True, name="product", showscale=False,
                      axis=3),
    ]
    # Large values, each in black or white against its own cell (plotly.js's "auto" text colour), so
    # that they stay readable on dark and light cells alike.
    font = {"size": min(WINDOW_FONT_SIZE, kernel_font_size(max(window.shape)))}
    for trace in traces:
        trace["textfont"] = dict(font)
    layout = _grid_layout(["Input window", "Kernel (as applied)", "Products"], 1, 3, height=height, gap_x=0.06)
    return _figure(traces, layout)


def map_grid_figure(maps: Sequence[tuple[str, np.ndarray | None]], *, columns: int = 4, height_per_row: int = 230,
                    scale: str = SEQUENTIAL, shared_scale: bool = False) -> go.Figure:
    """Small maps in a grid, each on its own diverging (signed) or sequential scale.

    A (H, W, 3) map is shown as an RGB image; None leaves its cell empty. With `shared_scale`,
    all maps use one symmetric diverging range so their strengths compare directly.
    """
    if not maps:
        raise ValueError("There are no maps to show.")
    rows = -(-len(maps) // columns)
    shared_limit = None
    if shared_scale:
        shared_limit = diverging_scale(*(values for _, values in maps if values is not None))["zmax"]
    traces = []
    for index, (_, values) in enumerate(maps):
        if values is None:  # An empty cell of the grid.
            continue
        values = np.asarray(values, dtype=float)
        if values.ndim == 3:
            traces.append(_image_trace(values, axis=index + 1))
        else:
            traces.append(_signed_trace(values, scale=scale, annotate=None, name="value", showscale=False,
                                        axis=index + 1, limit=shared_limit))
    layout = _grid_layout([title for title, _ in maps], rows, columns, height=rows * height_per_row + 30,
                          gap_y=0.12 if rows > 1 else 0.05)
    return _figure(traces, layout)


SWEEP_MAX_FRAMES = 400  # Frames of the in-browser sweep; larger outputs skip positions to stay under it.


def sweep_positions(out_height: int, out_width: int, max_frames: int = SWEEP_MAX_FRAMES) -> list[tuple[int, int]]:
    """Output positions in reading order, every `jump`-th one so that there are at most `max_frames`."""
    total = out_height * out_width
    jump = max(1, -(-total // max_frames))
    return [divmod(index, out_width) for index in range(0, total, jump)]


def sweep_figure(padded, values, *, pad_top: int, pad_left: int, kernel_size: int, stride: int,
                 scale: str = "gray", frame_ms: int = 150, signed_limit: float | None = None,
                 height: int = 380) -> go.Figure:
    """The window sliding over the (padded) input and the output cell it fills, animated in the browser.

    Plotly frames that move only the two outlines (no data is resent), played by the figure's own
    Play button at one position every `frame_ms` ms: smooth however busy the server is. The frames
    stay plain dictionaries until the figure is read (`PlainFigure`): Plotly validates every frame
    it builds (about 1 ms each, hundreds of ms for a sweep).
    """
    padded = np.asarray(padded, dtype=float)
    values = np.asarray(values, dtype=float)
    image = heatmap_trace(padded, colorscale=IMAGE_SCALES.get(scale, scale), zmin=0.0,
                          zmax=max(1.0, float(padded.max())), row0=-pad_top, col0=-pad_left, name="pixel",
                          annotate=False, showscale=False, axis=1)
    output = _signed_trace(values, scale=SEQUENTIAL, annotate=False, name="value", showscale=False, axis=2,
                           limit=signed_limit)
    layout = _grid_layout(["Input with padding: the window", "Output: the cell it fills"], 1, 2, height=height,
                          gap_x=0.08)
    positions = sweep_positions(*values.shape[:2])

    def outlines(row: int, col: int) -> list[dict]:
        top, left = row * stride - pad_top, col * stride - pad_left
        return [_outline(top, left, top + kernel_size - 1, left + kernel_size - 1, axis=1),
                _outline(row, col, row, col, axis=2)]

    layout["shapes"] = outlines(*positions[0])
    layout["title"] = {"text": f"Position {positions[0]}", "x": 0, "font": {"size": 16}}
    layout["margin"] = {**MARGIN, "t": 70}
    frames = [{"name": str(index), "layout": {"shapes": outlines(row, col),
                                              "title": {"text": f"Position ({row}, {col})"}}}
              for index, (row, col) in enumerate(positions)]
    layout["updatemenus"] = [{
        "type": "buttons", "direction": "left", "x": 1, "xanchor": "right", "y": 1.18, "yanchor": "top",
        "showactive": False, "font": {"size": 14},
        "buttons": [
            {"label": "▶ Sweep", "method": "animate",
             "args": [None, {"frame": {"duration": frame_ms, "redraw": True}, "fromcurrent": True,
                             "transition": {"duration": 0}, "mode": "immediate"}]},
            {"label": "❚❚ Pause", "method": "animate",
             "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate",
                               "transition": {"duration": 0}}]},
        ],
    }]
    return PlainFigure([image, output], layout, frames)
