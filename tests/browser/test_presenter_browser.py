"""Presenter mode in a real browser at 1280x720: the home page and every lesson fit the width, show
their key figure without scrolling, and are screenshotted (test-artifacts/presenter-*.png)."""

from __future__ import annotations

import pytest

from cnnviz.catalogue import LESSONS
from cnnviz.training import warmup

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 720

# The pages whose key figure needs a trained model open with tiny settings (through their shareable
# link parameters) whose models the `tiny_models` fixture puts in the disk cache first, so that the
# key figure is shown at once, without training in the browser.
TINY_SETTINGS = {
    "train": f"train_limit_train={warmup.TINY_TRAIN_IMAGES}&train_limit_test={warmup.TINY_TEST_IMAGES}"
             f"&train_epochs={warmup.TINY_EPOCHS}",
    "lenet-vs-relu": f"lvr_train_images={warmup.TINY_LENET_TRAIN_IMAGES}&lvr_test_images={warmup.TINY_TEST_IMAGES}"
                     f"&lvr_updates={warmup.TINY_LENET_UPDATES}&lvr_seeds={len(warmup.TINY_LENET_SEEDS)}",
    "transfer": "&".join(f"{key}={warmup.TINY_TRANSFER[name]}" for key, name in (
        ("transfer_pretrain_per_class", "pretrain_per_class"), ("transfer_test_per_class", "test_per_class"),
        ("transfer_pretrain_epochs", "pretrain_epochs"), ("transfer_epochs", "transfer_epochs"),
        ("transfer_transfer_per_class", "transfer_per_class"))),
}

# Pages whose key figure needs a model this server may not have trained (no tiny settings): without
# it, the first screen must say why there is no figure and offer to train it.
WHY_NO_KEY_FIGURE = {"explain": ("is not trained on this server yet", "Train it"),
                     "classroom": ("No class in this browser yet", "Start a class")}

# Plotly charts and map charts (widgets/map_chart.js: a canvas) in the key figure slot.
KEY_FIGURE_CHARTS = '.st-key-key_figure :is([data-testid="stPlotlyChart"] .js-plotly-plot, .cnnviz-map)'

# Sideways overflow, two ways: (1) how far the document or Streamlit's scrolling areas can scroll
# sideways; (2) visible elements of the main block whose right edge is past the viewport's. An
# element inside a container of the main block that clips or scrolls on its own (a dataframe's
# grid, a code block, the tab bar) is not counted: that container scrolls by design, and is itself
# checked like any other element.
HORIZONTAL_OVERFLOW = """() => {
    const scrollers = [document.scrollingElement, document.querySelector('[data-testid="stMain"]'),
                       document.querySelector('[data-testid="stAppViewContainer"]')].filter(Boolean);
    const scroll = scrollers.map(el => el.scrollWidth - el.clientWidth).reduce((a, b) => Math.max(a, b), 0);
    const block = document.querySelector('[data-testid="stMainBlockContainer"]')
        || document.querySelector('[data-testid="stMain"] .block-container');
    if (!block) return {scroll, offenders: ['no main block container found']};
    const limit = window.innerWidth + 1;
    const clippedInside = el => {
        for (let up = el.parentElement; up && up !== block; up = up.parentElement) {
            if (getComputedStyle(up).overflowX !== 'visible') return true;
        }
        return false;
    };
    const offenders = [];
    for (const el of [block, ...block.querySelectorAll('*')]) {
        const box = el.getBoundingClientRect();
        if (box.right <= limit || box.width <= 0 || box.height <= 0) continue;
        const style = getComputedStyle(el);
        if (style.visibility === 'hidden' || style.display === 'none' || clippedInside(el)) continue;
        offenders.push(`<${el.tagName.toLowerCase()}${el.id ? ' id=' + el.id : ''}`
            + `${el.dataset && el.dataset.testid ? ' data-testid=' + el.dataset.testid : ''}`
            + ` class="${(el.getAttribute('class') || '').slice(0, 60)}"> right=${Math.round(box.right)}`);
    }
    return {scroll, offenders: offenders.slice(0, 5)};
}"""

# For the check of the check: a deliberately wide element, and a wide one inside a scrolling box.
ADD_WIDE_PROBES = """() => {
    const block = document.querySelector('[data-testid="stMainBlockContainer"]')
        || document.querySelector('[data-testid="stMain"] .block-container');
    const wide = document.createElement('div');
    wide.id = 'wide-probe';
    wide.style.cssText = 'width: 1600px; height: 4px; background: red';
    const scroller = document.createElement('div');
    scroller.id = 'scroller-probe';
    scroller.style.cssText = 'width: 300px; overflow-x: auto';
    scroller.innerHTML = '<div id="inside-scroller-probe" style="width: 3000px; height: 4px"></div>';
    block.append(wide, scroller);
}"""
REMOVE_WIDE_PROBES = "() => ['wide-probe', 'scroller-probe'].forEach(id => document.getElementById(id)?.remove())"


def _assert_fits_the_width(page, name: str) -> None:
    overflow = page.evaluate(HORIZONTAL_OVERFLOW)
    assert overflow["scroll"] <= 1 and not overflow["offenders"], \
        f"{name} at {WIDTH}x{HEIGHT}: scrolls sideways by {overflow['scroll']}px; " \
        f"elements past the right edge: {overflow['offenders']}"


def _settled_box(page, locator) -> dict:
    """The element's box once plotly has stopped resizing it (two equal reads 300 ms apart)."""
    box = locator.bounding_box()
    for _ in range(20):
        page.wait_for_timeout(300)
        again = locator.bounding_box()
        if again == box:
            break
        box = again
    return box


def _assert_key_figure_on_the_first_screen(page, name: str) -> None:
    """The key figure sits in the slot under the title and, once drawn, is inside the first screen."""
    charts = page.locator(KEY_FIGURE_CHARTS)
    charts.first.wait_for(timeout=180_000)
    page.wait_for_function("""() => {
        const charts = document.querySelectorAll('.st-key-key_figure :is(.js-plotly-plot, .cnnviz-map)');
        return charts.length && [...charts].every(chart => chart.querySelector('.main-svg') || chart.dataset.draws);
    }""")
    scrolled = page.evaluate("""() => Math.max(window.scrollY,
        document.querySelector('[data-testid="stMain"]')?.scrollTop || 0)""")
    assert scrolled == 0, f"{name}: the page opened scrolled down by {scrolled}px"
    visible = 0
    for index in range(charts.count()):
        chart = charts.nth(index)
        if not chart.is_visible():
            continue  # e.g. the chart of a tab that is not selected.
        box = _settled_box(page, chart)
        visible += 1
        assert box["y"] >= 0 and box["y"] + box["height"] <= HEIGHT and box["x"] + box["width"] <= WIDTH + 1, \
            f"{name}: key figure at {box}, not inside the first {WIDTH}x{HEIGHT} screen"
    assert visible, f"{name}: no visible chart in the key figure slot"


def _assert_secondary_text_hidden(page, name: str) -> None:
    """Text marked secondary (`ui.secondary`) is in the page but not shown on the projector."""
    shown = page.evaluate("""() => [...document.querySelectorAll('[class*="st-key-secondary_"]')]
        .filter(el => el.getBoundingClientRect().height > 0).map(el => el.innerText.slice(0, 60))""")
    assert not shown, f"{name}: secondary text shown in presenter mode: {shown}"


def test_presenter_mode_fits_1280x720_on_every_page(streamlit_app, browser, wait_idle, artifacts_dir,
                                                    tiny_models):
    page = browser
    assert page.viewport_size == {"width": WIDTH, "height": HEIGHT}
    page.goto(streamlit_app)
    wait_idle(page)
    normal_size = page.evaluate("() => getComputedStyle(document.querySelector('h1')).fontSize")
    page.get_by_text("Presenter mode").click()
    # (The title is briefly gone while the page reruns.)
    page.wait_for_function("""size => {
        const title = document.querySelector('h1');
        return title && getComputedStyle(title).fontSize !== size;
    }""", arg=normal_size)
    assert float(page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")) > \
        float(normal_size.removesuffix("px"))
    # Presenter mode collapses the sidebar; the lessons are reached by their links from here on.
    page.wait_for_function("""() => {
        const sidebar = document.querySelector('[data-testid="stSidebar"]');
        return !sidebar || sidebar.getAttribute('aria-expanded') === 'false'
            || sidebar.getBoundingClientRect().right <= 1;
    }""")
    wait_idle(page)
    page.screenshot(path=str(artifacts_dir / "presenter-home.png"))
    _assert_fits_the_width(page, "The home page")

    for lesson in LESSONS:
        settings = TINY_SETTINGS.get(lesson.url_path)
        page.goto(f"{streamlit_app}/{lesson.url_path}?presenter=1" + (f"&{settings}" if settings else ""))
        page.wait_for_url(f"**/{lesson.url_path}*")
        page.wait_for_selector("h1")
        wait_idle(page)
        exceptions = page.locator('[data-testid="stException"]')
        assert exceptions.count() == 0, f"{lesson.title}: {exceptions.first.inner_text()[:2000]}"
        # The presenter style is still on after the page switch.
        assert "presenter=1" in page.url
        why_not = WHY_NO_KEY_FIGURE.get(lesson.url_path)
        if why_not and page.get_by_text(why_not[0]).count():
            # No figure to show: the reason and the button that fixes it are on the first screen.
            for text in why_not:
                box = page.get_by_text(text).first.bounding_box()
                assert box and box["y"] + box["height"] <= HEIGHT, f"{lesson.title}: {text!r} not on the first screen"
        else:
            _assert_key_figure_on_the_first_screen(page, lesson.title)
        _assert_secondary_text_hidden(page, lesson.title)
        wait_idle(page)
        page.screenshot(path=str(artifacts_dir / f"presenter-{lesson.url_path}.png"))
        _assert_fits_the_width(page, lesson.title)

    # The check of the check: a deliberately wide element is caught, one inside a box that scrolls
    # by design is not.
    page.evaluate(ADD_WIDE_PROBES)
    try:
        overflow = page.evaluate(HORIZONTAL_OVERFLOW)
    finally:
        page.evaluate(REMOVE_WIDE_PROBES)
    assert any("id=wide-probe" in offender for offender in overflow["offenders"]), overflow
    assert not any("scroller-probe" in offender for offender in overflow["offenders"]), overflow
