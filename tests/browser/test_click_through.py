"""The real app in a real browser: start `streamlit run app.py`, open it, click through every page."""

from __future__ import annotations

import pytest

from cnnviz.catalogue import LESSONS

pytestmark = pytest.mark.browser

EXCEPTION = '[data-testid="stException"]'


def test_home_page_opens_with_title_and_no_exception(streamlit_app, browser, wait_idle, artifacts_dir):
    browser.goto(streamlit_app)
    wait_idle(browser)
    browser.wait_for_selector("h1:has-text('cnnviz')")
    assert browser.title() == "cnnviz: see inside a CNN"  # set_page_config's title, on every page.
    assert browser.locator(EXCEPTION).count() == 0
    # The dataset status table is part of the home page.
    browser.get_by_text("Datasets", exact=True).first.wait_for()
    browser.screenshot(path=str(artifacts_dir / "home.png"), full_page=True)


def test_click_through_every_page(streamlit_app, browser, wait_idle, artifacts_dir):
    browser.goto(streamlit_app)
    wait_idle(browser)
    for lesson in LESSONS:
        link = browser.locator('[data-testid="stSidebarNav"] a', has_text=lesson.title)
        link.first.click()
        # Pages that share their controls add them to the URL as query parameters.
        browser.wait_for_url(f"**/{lesson.url_path}*")
        browser.wait_for_selector("h1")
        wait_idle(browser)
        assert browser.locator(EXCEPTION).count() == 0, f"{lesson.title} shows an exception"
        browser.screenshot(path=str(artifacts_dir / f"page-{lesson.url_path}.png"))


def test_a_shared_deep_link_opens_its_page_on_a_fresh_server(fresh_streamlit_app, browser, wait_idle):
    # streamlit#9992: with st.navigation, a new server's first request to a deep link could show
    # "Page not found". Here the server has served nothing yet, as when a student opens a link.
    calculator = next(lesson for lesson in LESSONS if lesson.url_path == "calculator")
    browser.goto(f"{fresh_streamlit_app}/calculator")
    browser.wait_for_selector("h1")
    wait_idle(browser)
    assert browser.get_by_text("Page not found").count() == 0
    assert browser.locator('[role="dialog"]').count() == 0
    assert browser.locator("h1").first.inner_text().strip() == calculator.title
    assert browser.url.split("?")[0].endswith("/calculator")
    assert browser.locator(EXCEPTION).count() == 0


def test_a_view_survives_a_switch_to_another_page_and_back(streamlit_app, browser, wait_idle):
    # Streamlit clears the query parameters on a page switch and drops the state of widgets that
    # were not drawn; coming back must still show (and link to) the view the lecturer left.
    browser.goto(f"{streamlit_app}/lenet-vs-relu?lvr_updates=240&lvr_seeds=2")
    browser.wait_for_selector("h1:has-text('LeNet')")
    wait_idle(browser)
    browser.locator('[data-testid="stSidebarNav"] a', has_text="Home").first.click()
    browser.wait_for_selector("h1:has-text('cnnviz')")
    wait_idle(browser)
    assert "lvr_updates" not in browser.url
    browser.locator('[data-testid="stSidebarNav"] a', has_text="tanh LeNet vs ReLU CNN").first.click()
    browser.wait_for_url("**/lenet-vs-relu?*lvr_updates=240*")
    wait_idle(browser)
    assert "lvr_seeds=2" in browser.url
    assert browser.locator(EXCEPTION).count() == 0
