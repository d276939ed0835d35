"""The explain lesson in a real browser: train a small network on the Train page, open "What the
network looks at" in the same session, and see Grad-CAM drawn for it."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXCEPTION = '[data-testid="stException"]'
SMALL = "train_limit_train=400&train_limit_test=200&train_epochs=2&train_batch_size=64&train_seed=41"


def test_grad_cam_of_the_network_just_trained(streamlit_app, browser, wait_idle, artifacts_dir):
    page = browser
    page.goto(streamlit_app)
    wait_idle(page)
    page.goto(f"{streamlit_app}/train?{SMALL}")
    page.wait_for_selector("h1:has-text('Train a small CNN')")
    wait_idle(page)
    page.locator(".st-key-train_start button").click()
    page.locator('[data-testid="stMetricLabel"]:has-text("Test accuracy")').first.wait_for(timeout=180_000)
    wait_idle(page)

    # The same session (a click in the sidebar, not a new page load) keeps the trained model.
    page.locator('[data-testid="stSidebarNav"] a', has_text="What the network looks at").first.click()
    page.wait_for_selector("h1:has-text('What the network looks at')")
    wait_idle(page)
    page.get_by_text("the network you trained on the Train page").first.wait_for()
    chart = page.locator(".st-key-explain_gradcam_chart")
    chart.locator(".main-svg").first.wait_for(timeout=120_000)
    # Two panels (the chosen class and the predicted one), each an image with the map over it.
    assert chart.get_by_text("why ", exact=False).count() >= 2
    assert page.get_by_text("predicted", exact=False).count() >= 1
    assert page.locator(EXCEPTION).count() == 0
    page.screenshot(path=str(artifacts_dir / "page-explain.png"), full_page=True)
