"""The convolution lab's controls show what it computes after an upload, in a real browser (issue 15).

The bug this guards: pick Sobel x, switch the source to Upload, upload a picture; the preset box
then said "identity" and the weights' grid held zeros while the caption, the kernel chart, the
output and the link still used Sobel x. Here the preset box, the weights' grid, the kernel
chart's drawn data, the caption and the address bar must all say Sobel x.
"""

from __future__ import annotations

import io
import json
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image
from plotly_arrays import plotly_array

pytestmark = pytest.mark.browser

SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
EXCEPTION = '[data-testid="stException"]'


def _png(size: int = 24) -> bytes:
    pixels = np.random.default_rng(3).integers(0, 256, (size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_after_an_upload_the_preset_grid_chart_caption_and_link_agree(streamlit_app, browser, wait_idle,
                                                                       artifacts_dir):
    page = browser
    page.goto(streamlit_app + "/convolution?conv_quiz=0")
    wait_idle(page)
    page.wait_for_selector(".st-key-conv_kernel_chart .cnnviz-map", timeout=60_000)

    page.get_by_label("Preset", exact=True).first.click()
    page.get_by_role("option", name="Sobel x", exact=True).first.click()
    wait_idle(page)
    page.locator(".st-key-conv_source label", has_text="Upload").first.click()
    wait_idle(page)
    page.locator(".st-key-conv_upload input[type=file]").set_input_files(
        {"name": "photo.png", "mimeType": "image/png", "buffer": _png()})
    page.get_by_text("photo.png").first.wait_for()
    wait_idle(page)
    # The output is the uploaded picture's: a 24-pixel image and a 3x3 kernel give 22 x 22.
    page.get_by_text("Output shape: 22 × 22").first.wait_for(timeout=30_000)
    wait_idle(page)  # The run that shows it ends by writing the link.
    # The kernel chart's component mounts after the run: wait until it holds a figure.
    page.wait_for_function("""() => {
        const map = document.querySelector('.st-key-conv_kernel_chart .cnnviz-map');
        return map && map.__figure;
    }""", timeout=30_000)

    assert page.locator(".st-key-conv_preset input").input_value() == "Sobel x"  # The preset box.
    drawn = page.evaluate("""() => document.querySelector('.st-key-conv_kernel_chart .cnnviz-map').__figure.data[0].z""")
    assert plotly_array(drawn).tolist() == SOBEL_X
    page.get_by_text("left-to-right brightness changes").first.wait_for()  # Sobel x's caption.
    page.wait_for_function("() => new URLSearchParams(location.search).has('conv_kernel')", timeout=30_000)
    query = parse_qs(urlsplit(page.url).query)
    assert json.loads(query["conv_kernel"][0]) == SOBEL_X

    # The weights' editor, opened now, holds the same numbers.
    page.locator(".st-key-conv_grid_open summary").first.click()
    page.locator(".st-key-conv_k_2_2 input").wait_for(timeout=30_000)
    wait_idle(page)
    grid = [[float(page.locator(f".st-key-conv_k_{row}_{col} input").input_value()) for col in range(3)]
            for row in range(3)]
    assert grid == SOBEL_X
    assert page.locator(EXCEPTION).count() == 0
    page.screenshot(path=str(artifacts_dir / "convolution-upload-sobel.png"), full_page=True)
