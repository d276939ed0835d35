"""Presenter mode in a real browser at 1280x720: every page fits the width, and is screenshotted."""

from __future__ import annotations

import pytest

from cnnviz.lessons import available_lessons

pytestmark = pytest.mark.browser

# Pages whose key figure is drawn as soon as they open (the training pages draw theirs once a run
# exists; their placement uses the same slot).
PAGES_WITH_A_FIGURE_ON_OPENING = ("convolution", "calculator")

# The widest scrollable thing on the page, compared with the viewport: any element wider than its
# scroll container would let the page (or the main area) scroll sideways.
HORIZONTAL_OVERFLOW = """() => {
    const containers = [document.scrollingElement, document.querySelector('[data-testid="stMain"]'),
                        document.querySelector('[data-testid="stAppViewContainer"]')].filter(Boolean);
    return containers.map(el => el.scrollWidth - el.clientWidth).reduce((a, b) => Math.max(a, b), 0);
}"""


def test_presenter_mode_fits_1280x720_on_every_page(streamlit_app, browser, wait_idle, artifacts_dir):
    page = browser
    page.goto(streamlit_app)
    wait_idle(page)
    normal_size = page.evaluate("() => getComputedStyle(document.querySelector('h1')).fontSize")
    page.get_by_text("Presenter mode").click()
    page.wait_for_function(
        "size => getComputedStyle(document.querySelector('h1')).fontSize !== size", arg=normal_size)
    assert float(page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")) > \
        float(normal_size.removesuffix("px"))
    # Presenter mode collapses the sidebar; the lessons are reached by their links from here on.
    page.wait_for_function("""() => {
        const sidebar = document.querySelector('[data-testid="stSidebar"]');
        return !sidebar || sidebar.getAttribute('aria-expanded') === 'false'
            || sidebar.getBoundingClientRect().right <= 1;
    }""")
    for lesson in available_lessons():
        page.goto(f"{streamlit_app}/{lesson.url_path}?presenter=1")
        page.wait_for_url(f"**/{lesson.url_path}*")
        page.wait_for_selector("h1")
        wait_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        # The presenter style is still on after the page switch.
        assert "presenter=1" in page.url
        if lesson.url_path in PAGES_WITH_A_FIGURE_ON_OPENING:
            # The key figure sits under the title and, once plotly has drawn it, ends inside the first screen.
            chart = page.locator('.st-key-key_figure .js-plotly-plot').first
            chart.wait_for()
            box = chart.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 720, f"{lesson.title}: key figure at {box}"
        overflow = page.evaluate(HORIZONTAL_OVERFLOW)
        page.screenshot(path=str(artifacts_dir / f"presenter-{lesson.url_path}.png"))
        assert overflow <= 1, f"{lesson.title} scrolls sideways by {overflow}px at 1280x720"
