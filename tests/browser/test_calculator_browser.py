"""The calculator in a real browser: a preset, a shared link, and an impossible stack."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.browser

EXCEPTION = '[data-testid="stException"]'


def test_calculator_preset_and_shared_link(streamlit_app, browser, wait_idle, artifacts_dir):
    browser.goto(streamlit_app + "/calculator")
    wait_idle(browser)
    browser.wait_for_selector("h1:has-text('Layer & parameter calculator')")
    browser.get_by_text("38,254", exact=True).first.wait_for()
    assert browser.locator(EXCEPTION).count() == 0
    # The editor and the results table: both grids mount after the metric, so wait for the second.
    browser.locator('[data-testid="stDataFrame"]').nth(1).wait_for()
    assert browser.locator(EXCEPTION).count() == 0

    view = {"input_shape": [8, 8, 1], "layers": [{"type": "conv2d", "filters": 4, "kernel_size": 3},
                                                 {"type": "flatten"}, {"type": "dense", "units": 3}]}
    browser.goto(streamlit_app + "/calculator?calc_view=" + quote(json.dumps(view)))
    wait_idle(browser)
    # (3·3·1 + 1)·4 = 40 and (6·6·4 + 1)·3 = 435.
    browser.get_by_text("475", exact=True).first.wait_for()
    assert browser.locator(EXCEPTION).count() == 0
    browser.screenshot(path=str(artifacts_dir / "calculator-shared-link.png"), full_page=True)

    impossible = {"input_shape": [8, 8, 1], "layers": [{"type": "flatten"},
                                                       {"type": "conv2d", "filters": 4, "kernel_size": 3}]}
    browser.goto(streamlit_app + "/calculator?calc_view=" + quote(json.dumps(impossible)))
    wait_idle(browser)
    browser.get_by_text("Ignored link parameters", exact=False).first.wait_for()
    browser.get_by_text("38,254", exact=True).first.wait_for()
    assert browser.locator(EXCEPTION).count() == 0
