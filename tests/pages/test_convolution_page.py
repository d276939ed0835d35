"""The convolution lab page, driven through its widgets with AppTest, plus the no-TensorFlow check."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from plotly_arrays import plotly_array
from streamlit.testing.v1 import AppTest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = str(PROJECT_ROOT / "app_pages" / "convolution.py")


def open_page(**state) -> AppTest:
    """The page after one run, with widget values (by key) preset in the session state."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def revealed_page(synthetic: str | None = None, size: int = 16, **state) -> AppTest:
    """The page with the shape quiz off and, if asked, a synthetic image chosen."""
    if synthetic is not None:
        state.update(conv_source="Synthetic", conv_synthetic=synthetic, conv_synthetic_size=size)
    return open_page(conv_quiz=False, **state)


def chart(at: AppTest, key: str) -> dict:
    """The figure (as JSON) of the chart with this key: a Plotly chart, or a map chart (the same
    figure, drawn on a canvas by widgets/map_chart.js; its component's key is `<key>_canvas`)."""
    for element in at.get("plotly_chart"):
        if element.proto.id and key in element.proto.id:
            return json.loads(element.proto.spec)
    for element in at.get("bidi_component"):
        if element.proto.id.endswith(f"-{key}_canvas"):
            return json.loads(element.proto.json)
    raise AssertionError(f"no chart with key {key}")


def chart_z(at: AppTest, key: str, trace: int = 0) -> np.ndarray:
    return plotly_array(chart(at, key)["data"][trace]["z"]).astype(float)


def texts(at: AppTest) -> str:
    parts = [element.value for kind in ("markdown", "caption", "code", "success", "warning", "error", "info")
             for element in getattr(at, kind)]
    return "\n".join(str(part) for part in parts)


def equation_text(at: AppTest) -> str:
    """The step-through's sum of products (the only code block with a × in it)."""
    equations = [code.value for code in at.code if "×" in code.value]
    assert len(equations) == 1, equations
    return equations[0]


def section_numbers(at: AppTest) -> list[str]:
    """The numbers of the main area's numbered sections ("1 · Kernel and settings" -> "1"), in order."""
    return [header.value.split(" · ")[0] for header in at.header if " · " in header.value]


def output_shape(at: AppTest) -> tuple[int, int]:
    match = re.search(r"Output shape: (\d+) × (\d+)", texts(at))
    assert match, "the output shape is not shown"
    return int(match.group(1)), int(match.group(2))


# ---- Default view ------------------------------------------------------------------------------

def test_default_page_runs_on_fashion_mnist_and_shows_every_section():
    at = open_page()
    assert "Fashion-MNIST" in texts(at)
    # The quiz asks beside the figures: nothing is hidden, no section is removed (numbering 1-5).
    assert section_numbers(at) == ["1", "2", "3", "4", "5"]
    assert "Predict: how big is the output?" in texts(at)
    assert "Output shape" not in texts(at)  # The answer is not written out before the prediction…
    assert chart(at, "conv_output_chart")["layout"]["title"]["text"] == "Output"  # …nor on the figure.
    assert not any("Predict the output shape above" in info.value for info in at.info)
    at.button(key="conv_reveal").click().run()
    assert section_numbers(at) == ["1", "2", "3", "4", "5"]
    assert output_shape(at) == (26, 26)
    kernel = chart_z(at, "conv_kernel_chart")
    np.testing.assert_array_equal(kernel, [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    figure = chart(at, "conv_kernel_chart")
    assert figure["data"][0]["zmid"] == 0  # Diverging scale centred at zero.


def test_settings_changes_never_hide_the_output_or_later_sections():
    at = open_page()
    for change in (lambda: at.select_slider(key="conv_stride").set_value(2),
                   lambda: at.button_group(key="conv_padding").set_value("same"),
                   lambda: at.radio(key="conv_kernel_size").set_value(5)):
        change().run()
        assert not at.exception
        assert section_numbers(at) == ["1", "2", "3", "4", "5"]
        for key in ("conv_output_chart", "conv_step_output_chart", "conv_pool_chart"):
            chart(at, key)
        assert "Predict: how big is the output?" in texts(at)  # Asked again for the new shape.


def test_the_quiz_is_off_by_default_in_presenter_mode():
    at = open_page(presenter_mode=True)
    assert at.toggle(key="conv_quiz").value is False
    assert "Predict: how big is the output?" not in texts(at)
    assert output_shape(at) == (26, 26)


def test_output_equals_scipy_on_the_shown_input_and_changes_with_the_kernel():
    at = revealed_page(conv_grid_open=True)  # The weights' editor open.
    image = chart_z(at, "conv_input_chart")
    output = chart_z(at, "conv_output_chart")
    np.testing.assert_allclose(output, scipy.signal.correlate2d(image, [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
                                                                mode="valid"), atol=1e-6)
    at.selectbox(key="conv_preset").set_value("Sobel x").run()
    changed = chart_z(at, "conv_output_chart")
    assert not np.allclose(changed, output)
    np.testing.assert_allclose(changed, scipy.signal.correlate2d(image, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                                                                 mode="valid"), atol=1e-6)
    # Editing one cell of the grid changes the output too.
    at.number_input(key="conv_k_1_1").set_value(5.0).run()
    assert not np.allclose(chart_z(at, "conv_output_chart"), changed)


def test_stride_padding_and_kernel_size_change_the_shape_and_formula():
    at = revealed_page()
    assert output_shape(at) == (26, 26)
    at.select_slider(key="conv_stride").set_value(2).run()
    assert output_shape(at) == (13, 13)
    assert "(28 − 3 + 2×0) / 2 + 1 = ⌊12.5⌋ + 1 = 12 + 1 = 13" in texts(at)
    at.button_group(key="conv_padding").set_value("same").run()
    assert output_shape(at) == (14, 14)
    at.radio(key="conv_kernel_size").set_value(7).run()
    assert not at.exception
    assert chart_z(at, "conv_kernel_chart").shape == (7, 7)
    at.button_group(key="conv_padding").set_value(1).run()
    assert output_shape(at) == (12, 12)  # (28 - 7 + 2) // 2 + 1


def test_flip_and_relu_and_normalise():
    at = revealed_page("letter", size=16, conv_preset="emboss")
    image = chart_z(at, "conv_input_chart")
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=float)
    at.toggle(key="conv_flip").set_value(True).run()
    np.testing.assert_allclose(chart_z(at, "conv_output_chart"),
                               scipy.signal.convolve2d(image, emboss, mode="valid"), atol=1e-6)
    at.toggle(key="conv_relu").set_value(True).run()
    assert chart_z(at, "conv_output_chart").min() >= 0
    at.toggle(key="conv_normalise").set_value(True).run()
    np.testing.assert_allclose(chart_z(at, "conv_kernel_chart"), emboss)  # Its weights already sum to 1.
    at.selectbox(key="conv_preset").set_value("Laplacian edge").run()
    laplacian = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=float)
    np.testing.assert_allclose(chart_z(at, "conv_kernel_chart"), laplacian / 16.0)  # Sums to 0: by |sum|.


# ---- Check yourself ----------------------------------------------------------------------------

def test_prediction_right_and_wrong():
    at = open_page()
    at.number_input(key="conv_guess_h").set_value(26)
    at.number_input(key="conv_guess_w").set_value(26)
    at.button(key="conv_check").click().run()
    assert [s.value for s in at.success] and "Right" in at.success[0].value
    assert output_shape(at) == (26, 26)
    # A new stride asks again.
    at.select_slider(key="conv_stride").set_value(3).run()
    assert "Predict: how big is the output?" in texts(at)
    at.number_input(key="conv_guess_h").set_value(10)
    at.number_input(key="conv_guess_w").set_value(10)
    at.button(key="conv_check").click().run()
    assert any("Not quite" in w.value and "10 × 10" in w.value and "is 9 × 9" in w.value for w in at.warning)
    assert output_shape(at) == (9, 9)  # (28 - 3) // 3 + 1


def test_just_show_me_reveals_without_a_verdict():
    at = open_page()
    at.button(key="conv_reveal").click().run()
    assert output_shape(at) == (26, 26)
    assert not at.success


# ---- Step through ------------------------------------------------------------------------------

def test_step_position_changes_the_equation_and_matches_the_output():
    at = revealed_page("checkerboard", size=16, conv_preset="Sobel x")
    output = chart_z(at, "conv_output_chart")
    first = equation_text(at)
    at.slider(key="conv_row").set_value(3).run()
    at.slider(key="conv_col").set_value(2).run()
    equation = equation_text(at)
    assert equation != first
    total = float(equation.rsplit("=", 1)[1])
    assert total == pytest.approx(output[3, 2], abs=1e-3)
    assert len(equation.split(" + ")) == 9
    window = chart(at, "conv_step_input_chart")
    outline = window["layout"]["shapes"][0]
    assert (outline["x0"], outline["y0"]) == (1.5, 2.5)  # Columns 2-4, rows 3-5 of the input.


def test_step_through_shows_the_padding_with_negative_coordinates():
    at = revealed_page("circle", size=16, conv_padding=2)
    figure = chart(at, "conv_step_input_chart")
    assert figure["data"][0]["x0"] == -2 and figure["data"][0]["y0"] == -2
    assert figure["layout"]["shapes"][0]["x0"] == -2.5


def test_play_advances_the_window_and_pause_stops():
    at = revealed_page("stripes", size=16)
    at.button(key="conv_play").click().run()
    assert at.session_state["conv_playing"] is True
    assert at.slider(key="conv_col").value > 0  # The first frame already moved the window.
    at.button(key="conv_play").click().run()
    assert at.session_state["conv_playing"] is False


def test_the_browser_sweep_outlines_every_window_of_the_output():
    at = revealed_page("stripes", size=16, conv_stride=2, conv_padding=1)
    assert not [element for element in at.get("plotly_chart") if "conv_sweep_chart" in element.proto.id]
    at.toggle(key="conv_sweep").set_value(True).run()
    figure = chart(at, "conv_sweep_chart")
    out = output_shape(at)
    assert out == (8, 8)  # (16 - 3 + 2) // 2 + 1
    assert len(figure["frames"]) == out[0] * out[1]
    # Frame 9 is output (1, 1): its window starts at input row/column 1 * 2 - 1 = 1 (padding 1).
    window, cell = figure["frames"][9]["layout"]["shapes"]
    assert (window["y0"], window["x0"], window["y1"], window["x1"]) == (0.5, 0.5, 3.5, 3.5)
    assert (cell["y0"], cell["x0"]) == (0.5, 0.5) and cell["xref"] == "x2"
    assert [button["label"] for button in figure["layout"]["updatemenus"][0]["buttons"]] == ["▶ Sweep", "❚❚ Pause"]


def test_play_stops_at_the_last_position():
    at = revealed_page("stripes", size=16, conv_row=13, conv_col=13, conv_playing=True)
    assert not at.exception
    assert at.session_state["conv_playing"] is False


def test_positions_are_clamped_when_the_output_shrinks():
    at = revealed_page()
    at.slider(key="conv_row").set_value(25).run()
    at.select_slider(key="conv_stride").set_value(4).run()
    assert not at.exception
    assert at.slider(key="conv_row").value == 6


# ---- Pooling and colour ------------------------------------------------------------------------

def test_pooling_controls_change_the_pooled_map():
    at = revealed_page()
    feature = chart_z(at, "conv_output_chart")
    pooled = chart_z(at, "conv_pool_chart")
    assert pooled.shape == (13, 13)
    np.testing.assert_allclose(pooled, feature.reshape(13, 2, 13, 2).max(axis=(1, 3)), atol=1e-6)
    at.radio(key="conv_pool_kind").set_value("avg").run()
    np.testing.assert_allclose(chart_z(at, "conv_pool_chart"), feature.reshape(13, 2, 13, 2).mean(axis=(1, 3)),
                               atol=1e-6)
    at.select_slider(key="conv_pool_size").set_value(3).run()
    at.select_slider(key="conv_pool_stride").set_value(3).run()
    assert chart_z(at, "conv_pool_chart").shape == (8, 8)


def test_rgb_per_channel_and_colour_filters():
    at = revealed_page("colour shapes", size=24, conv_color_mode="RGB, per channel")
    assert not at.exception
    assert output_shape(at) == (22, 22)
    figure = chart(at, "conv_output_chart")
    assert len(figure["data"]) == 3  # One result per channel.
    assert not np.allclose(plotly_array(figure["data"][0]["z"]), plotly_array(figure["data"][1]["z"]))
    at.selectbox(key="conv_step_channel").set_value(2).run()
    assert not at.exception
    random_before = chart(at, "conv_random_chart")
    assert len(random_before["data"]) == 8
    at.number_input(key="conv_random_seed").set_value(7).run()
    random_after = chart(at, "conv_random_chart")
    assert random_after["data"][0]["z"] != random_before["data"][0]["z"]
    at.selectbox(key="conv_color_filter").set_value("red minus green").run()
    colour = chart(at, "conv_color_chart")
    summed = plotly_array(colour["data"][-1]["z"]).astype(float)
    partials = [plotly_array(colour["data"][index]["z"]).astype(float) for index in (-4, -3, -2)]
    np.testing.assert_allclose(summed, sum(partials), atol=1e-6)


# ---- Kernel input errors -----------------------------------------------------------------------

def test_a_non_finite_typed_kernel_is_refused_and_the_old_kernel_kept():
    at = revealed_page(conv_grid_open=True)  # The weights' editor open.
    before = chart_z(at, "conv_kernel_chart")
    at.text_area(key="conv_kernel_text").input("1 2 3\n4 nan 6\n7 8 9").run()
    at.button(key="conv_kernel_apply").click().run()
    assert any("finite" in error.value and "row 2, column 2" in error.value for error in at.error)
    np.testing.assert_array_equal(chart_z(at, "conv_kernel_chart"), before)
    at.text_area(key="conv_kernel_text").input("1 inf 0\n0 0 0\n0 0 0").run()
    at.button(key="conv_kernel_apply").click().run()
    assert any("finite" in error.value for error in at.error)


def test_the_weights_editor_is_built_only_while_open_and_shows_the_kernel_in_use():
    at = revealed_page()
    assert not [n for n in at.number_input if n.key and n.key.startswith("conv_k_")]  # Closed: no grid.
    at.selectbox(key="conv_preset").set_value("Sobel x").run()
    at.radio(key="conv_kernel_size").set_value(5).run()
    kernel = chart_z(at, "conv_kernel_chart")
    assert kernel.shape == (5, 5) and not np.allclose(kernel, 0)
    image = chart_z(at, "conv_input_chart")
    np.testing.assert_allclose(chart_z(at, "conv_output_chart"), scipy.signal.correlate2d(image, kernel, mode="valid"),
                               atol=1e-6)
    at.session_state["conv_grid_open"] = True  # The student opens the editor: it shows that kernel.
    at.run()
    grid = [[at.number_input(key=f"conv_k_{row}_{col}").value for col in range(5)] for row in range(5)]
    np.testing.assert_allclose(grid, kernel)
    at.number_input(key="conv_k_0_0").set_value(3.0).run()  # An edit, then the editor is closed again:
    at.session_state["conv_grid_open"] = False
    at.run()
    assert chart_z(at, "conv_kernel_chart")[0, 0] == 3.0  # the edited kernel stays the one in use.
    at.select_slider(key="conv_stride").set_value(2).run()
    assert chart_z(at, "conv_kernel_chart")[0, 0] == 3.0


def test_a_typed_kernel_is_loaded_into_the_grid():
    at = revealed_page(conv_grid_open=True)  # The weights' editor open.
    at.text_area(key="conv_kernel_text").input("0 0 0 0 0\n0 0 0 0 0\n0 0 1 0 0\n0 0 0 0 0\n0 0 0 0 0").run()
    at.button(key="conv_kernel_apply").click().run()
    assert not at.error
    assert at.radio(key="conv_kernel_size").value == 5
    assert at.number_input(key="conv_k_2_2").value == 1.0
    at.text_area(key="conv_kernel_text").input("1 2\n3 4").run()
    at.button(key="conv_kernel_apply").click().run()
    assert any("3x3, 5x5 or 7x7" in error.value for error in at.error)


# ---- Uploads -----------------------------------------------------------------------------------

def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def upload(content: bytes, name: str = "upload.png", mime: str = "image/png") -> AppTest:
    at = revealed_page(conv_source="Upload")
    assert any("Upload an image" in info.value for info in at.info)
    at.file_uploader(key="conv_upload").set_value((name, content, mime)).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"hello, this is a text file\n" * 20, "not an image"),
    (encode(Image.new("RGB", (64, 64), (5, 6, 7)), "PNG")[:60], "damaged or truncated"),
], ids=["empty", "not-an-image", "truncated"])
def test_bad_uploads_show_a_clear_error(content, message):
    at = upload(content)
    assert any(message in error.value for error in at.error)


def test_decompression_bomb_upload_is_refused():
    from tests.test_images import png_with_declared_size

    at = upload(png_with_declared_size(100_000, 100_000))
    assert any("decompression bomb" in error.value for error in at.error)
    at = upload(png_with_declared_size(9_000, 9_000))
    assert any("megapixels" in error.value for error in at.error)


def test_a_large_upload_is_downscaled_and_the_page_says_so():
    photo = np.random.default_rng(0).integers(0, 256, (300, 600, 3), dtype=np.uint8)
    at = upload(encode(Image.fromarray(photo), "JPEG"), "photo.jpg", "image/jpeg")
    assert any("Downscaled from 600 × 300 to 256 × 128" in info.value for info in at.info)
    assert not at.error
    assert chart(at, "conv_input_chart")["data"][0]["z"] is not None
    assert "128 × 256" in texts(at)


@pytest.mark.parametrize("make, note", [
    (lambda: _gif(), "first one"),
    (lambda: encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG"), "CMYK"),
    (lambda: encode(Image.fromarray(np.arange(400, dtype=np.uint16).reshape(20, 20) * 150), "PNG"), "16-bit"),
    (lambda: encode(Image.new("RGB", (20, 20), (0, 0, 200)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
     "Palette"),
    (lambda: encode(Image.new("RGBA", (20, 20), (255, 0, 0, 0)), "PNG"), "Transparent"),
], ids=["animated-gif", "cmyk", "16-bit", "palette", "alpha"])
def test_unusual_uploads_are_converted_with_a_note(make, note):
    at = upload(make())
    assert not at.error
    assert any(note in info.value for info in at.info)
    assert output_shape(at)[0] == 18


def _gif() -> bytes:
    frames = [Image.new("L", (20, 20), value) for value in (0, 255)]
    frames[0].paste(255, (5, 5, 15, 15))
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return buffer.getvalue()


def shown_value(widget):
    """What the browser shows for a widget drawn afresh: the value sent with it, else its default.

    A widget that was not drawn in the last run is forgotten by the browser; drawn again, it shows
    the value the server sends with it (`set_value`) or, without one, its proto's default.
    """
    proto = widget.proto
    if widget.type == "selectbox":
        return proto.raw_value if proto.set_value else proto.options[proto.default]
    return proto.value if proto.set_value else proto.default


def test_after_an_upload_the_controls_show_the_kernel_in_use():
    # Issue 15: pick Sobel x, switch to Upload, upload an image: the preset and the grid must still
    # show Sobel x, as the caption, the kernel chart and the link do.
    at = revealed_page(conv_grid_open=True)  # The weights' editor open.
    at.selectbox(key="conv_preset").set_value("Sobel x").run()
    at.radio(key="conv_source").set_value("Upload").run()
    assert any("Upload an image" in info.value for info in at.info)
    photo = np.random.default_rng(1).integers(0, 256, (20, 20), dtype=np.uint8)
    at.file_uploader(key="conv_upload").set_value(("photo.png", encode(Image.fromarray(photo), "PNG"),
                                                   "image/png")).run()
    assert not at.exception, at.exception
    sobel_x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    np.testing.assert_array_equal(chart_z(at, "conv_kernel_chart"), sobel_x)
    assert json.loads(at.query_params["conv_kernel"][0] if isinstance(at.query_params["conv_kernel"], list)
                      else at.query_params["conv_kernel"]) == sobel_x
    assert "left-to-right brightness changes" in texts(at)  # The Sobel x caption.
    assert shown_value(at.selectbox(key="conv_preset")) == "Sobel x"
    grid = [[shown_value(at.number_input(key=f"conv_k_{row}_{col}")) for col in range(3)] for row in range(3)]
    assert grid == sobel_x


def test_the_page_recovers_after_a_bad_upload():
    at = upload(b"not an image")
    assert at.error
    at.radio(key="conv_source").set_value("Synthetic").run()
    assert not at.error and not at.exception
    assert output_shape(at) == (30, 30)  # The 32-pixel default synthetic image.


# ---- No TensorFlow ------------------------------------------------------------------------------

def test_opening_the_page_never_imports_tensorflow_or_keras():
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({PAGE!r}, default_timeout=90)
        at.run()
        assert not at.exception, at.exception
        at.toggle(key="conv_quiz").set_value(False).run()
        at.selectbox(key="conv_preset").set_value("Sobel y").run()
        assert not at.exception, at.exception
        heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras"))
        print("HEAVY", heavy)
        sys.exit(1 if heavy else 0)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=180, env={**__import__("os").environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "HEAVY []" in result.stdout



# ---- In a real browser: the play mode animates by itself ---------------------------------------

@pytest.mark.browser
def test_play_mode_slides_the_window_in_the_browser(streamlit_app, browser, wait_idle, artifacts_dir):
    page = browser
    page.goto(streamlit_app)
    wait_idle(page)
    page.locator('[data-testid="stSidebarNav"] a', has_text="Convolution lab").first.click()
    page.wait_for_url("**/convolution*")
    page.get_by_role("button", name="Just show me").wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Just show me").click()
    page.wait_for_selector("text=Output shape")
    wait_idle(page)
    column_input = page.locator('input[type="range"][aria-label="Output column"]')
    assert column_input.input_value() == "0"
    page.get_by_role("button", name="Play", exact=True).click()
    # The fragment reruns on its own timer: the window moves without any further input.
    page.wait_for_function(
        """() => {
            const column = document.querySelector('input[type="range"][aria-label="Output column"]');
            return column && Number(column.value) >= 4;
        }""",
        timeout=30_000,
    )
    # Pause is a full-app rerun asked for while the fragment's timer keeps asking for fragment runs.
    # CI once saw a Pause click that never paused (60 s): a click that lands while the browser is
    # replacing the fragment's elements can be lost in Streamlit's frontend. A student clicks again,
    # so the test does too (at most three clicks), and then checks that the window really stopped.
    for _ in range(3):
        page.get_by_role("button", name="Pause", exact=True).click()
        try:
            page.get_by_role("button", name="Play", exact=True).wait_for(timeout=15_000)
            break
        except PlaywrightTimeoutError:
            continue
    # Play is back only after the full rerun that declared the step-through without its timer.
    page.get_by_role("button", name="Play", exact=True).wait_for(timeout=1_000)
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(artifacts_dir / "convolution-play.png"), full_page=True)


def test_large_images_are_zoomed_around_the_window_in_the_step_through():
    at = revealed_page("circle", size=128, conv_row=100, conv_col=60)
    figure = chart(at, "conv_step_input_chart")
    assert plotly_array(figure["data"][0]["z"]).shape == (40, 40)
    assert figure["data"][0]["y0"] <= 100 <= figure["data"][0]["y0"] + 39
    outline = figure["layout"]["shapes"][0]
    assert (outline["y0"], outline["x0"]) == (99.5, 59.5)
    output = chart(at, "conv_step_output_chart")
    assert output["data"][0]["y0"] <= 100 < output["data"][0]["y0"] + 40


def test_cifar10_from_a_local_folder_is_offered_and_gives_colour_channels(tmp_path, monkeypatch):
    from cnnviz import data

    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (200, 30, 200),
               (30, 200, 200), (120, 60, 20), (20, 60, 120), (240, 240, 240), (90, 90, 90)]
    for split, count in (("train", 3), ("test", 1)):
        for name, colour in zip(data.spec("cifar10").class_names, colours):
            folder = tmp_path / "cifar10" / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                image = Image.new("RGB", (32, 32), colour)
                image.paste((255 - index * 60, 0, 0), (8, 8, 24, 24))
                image.save(folder / f"{index}.png")
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    data.clear_caches()
    try:
        check_fake_cifar_page()
    finally:
        # Later tests in this process must not see the fake dataset in any cache.
        from widgets import ui

        data.clear_caches()
        ui._cached_dataset.clear()


def check_fake_cifar_page() -> None:
    at = revealed_page(conv_dataset="cifar10", conv_color_mode="RGB, per channel")
    assert "CIFAR-10" in at.selectbox(key="conv_dataset").options
    assert "CIFAR-10" in texts(at) and "local" in texts(at)
    at.selectbox(key="conv_class").set_value(3).run()  # "cat", as in the seeds.
    assert not at.exception
    assert "cat" in texts(at)
    assert output_shape(at) == (30, 30)
    assert len(chart(at, "conv_output_chart")["data"]) == 3
    assert "built-in colour test card" not in texts(at)  # The colour section uses the CIFAR image itself.


# ---- Shareable links ----------------------------------------------------------------------------

def test_a_link_restores_the_view_including_an_edited_kernel():
    at = AppTest.from_file(PAGE, default_timeout=60)
    edited = [[0, 1, 0], [1, -4, 1], [0, 1, 0.5]]
    at.query_params.update({"conv_source": "Synthetic", "conv_synthetic": "circle", "conv_synthetic_size": "32",
                            "conv_kernel": json.dumps(edited), "conv_stride": "2", "conv_padding": "same",
                            "conv_quiz": "0", "conv_pool_kind": "avg"})
    at.run()
    assert not at.exception, at.exception
    np.testing.assert_array_equal(chart_z(at, "conv_kernel_chart"), edited)
    assert output_shape(at) == (16, 16)
    assert at.radio(key="conv_pool_kind").value == "avg"
    # The page writes its own state back into the URL.
    assert at.query_params["conv_stride"] in ("2", ["2"])
    assert json.loads(at.query_params["conv_kernel"] if isinstance(at.query_params["conv_kernel"], str)
                      else at.query_params["conv_kernel"][0]) == edited


def test_bad_link_parameters_are_ignored_with_a_notice(tmp_path, monkeypatch):
    # Offline with only the bundled Fashion-MNIST sample, so that a link asking for CIFAR-10 is
    # refused even on a machine (like CI) where CIFAR-10 is available locally.
    from cnnviz import data
    from widgets import ui

    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    data.clear_caches()
    ui._cached_dataset.clear()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"conv_stride": "9", "conv_kernel": '[[1, 2], [3, "x"]]', "conv_preset": "nope",
                            "conv_dataset": "cifar10", "conv_class": "7", "conv_index": "1000", "conv_quiz": "0"})
    at.run()
    assert not at.exception, at.exception
    assert any("Ignored link parameters" in caption.value for caption in at.caption)
    np.testing.assert_array_equal(chart_z(at, "conv_kernel_chart"), [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    assert output_shape(at) == (26, 26)
    assert at.number_input(key="conv_index").value == 99  # Clamped to the 100 images of the class.
    data.clear_caches()
    ui._cached_dataset.clear()


def test_presenter_mode_enlarges_the_figures_text():
    at = revealed_page(presenter_mode=True)
    figure = chart(at, "conv_kernel_chart")
    assert figure["layout"]["font"]["size"] >= 18
    assert not at.exception
