"""The real app in a real browser: start `streamlit run app.py`, open it, click through every page."""

from __future__ import annotations

import pytest

from cnnviz.lessons import available_lessons

pytestmark = pytest.mark.browser

EXCEPTION = '[data-testid="stException"]'


def test_home_page_opens_with_title_and_no_exception(streamlit_app, browser, wait_idle, artifacts_dir):
    browser.goto(streamlit_app)
    wait_idle(browser)
    browser.wait_for_selector("h1:has-text('cnnviz')")
    assert "cnnviz" in browser.title() or "Home" in browser.title()
    assert browser.locator(EXCEPTION).count() == 0
    # The dataset status table is part of the home page.
    browser.get_by_text("Datasets", exact=True).first.wait_for()
    browser.screenshot(path=str(artifacts_dir / "home.png"), full_page=True)


def test_click_through_every_page(streamlit_app, browser, wait_idle, artifacts_dir):
    browser.goto(streamlit_app)
    wait_idle(browser)
    for lesson in available_lessons():
        link = browser.locator('[data-testid="stSidebarNav"] a', has_text=lesson.title)
        link.first.click()
        # Pages that share their controls add them to the URL as query parameters.
        browser.wait_for_url(f"**/{lesson.url_path}*")
        browser.wait_for_selector("h1")
        wait_idle(browser)
        assert browser.locator(EXCEPTION).count() == 0, f"{lesson.title} shows an exception"
        browser.screenshot(path=str(artifacts_dir / f"page-{lesson.url_path}.png"))


def test_a_shared_deep_link_opens_its_page_without_a_page_not_found_dialog(streamlit_app, browser, wait_idle):
    # A brand-new session whose very first request is a lesson URL, as when a student opens a link.
    browser.goto(f"{streamlit_app}/calculator")
    browser.wait_for_selector("h1:has-text('calculator')")
    wait_idle(browser)
    assert browser.get_by_text("Page not found").count() == 0
    assert browser.locator('[role="dialog"]').count() == 0
