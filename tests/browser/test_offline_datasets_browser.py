"""Offline, a dataset that cannot load is shown as unavailable with the reason, never offered (issue 15).

A server with no internet, an empty CNNVIZ_DATA_DIR and an empty Keras cache has only the bundled
Fashion-MNIST sample. In a real browser: the home table says MNIST and CIFAR-10 are unavailable
and why; the Train page's dataset menu offers only what can load (no red error after a choice),
and a caption under it names the others with the reason; a link that asks for CIFAR-10 gets a
warning and the sample.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

EXCEPTION = '[data-testid="stException"]'


def _menu_options(page, label: str) -> list[str]:
    page.get_by_label(label, exact=True).first.click()
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = [text.strip() for text in options.all_inner_texts()]
    page.keyboard.press("Escape")
    return texts


def test_offline_the_pages_offer_only_datasets_that_load_and_say_why(no_data_streamlit_server, browser,
                                                                     wait_idle, artifacts_dir):
    page = browser
    page.goto(no_data_streamlit_server.url)
    wait_idle(page)
    # The table is drawn on a canvas; its accessible copy (a table for screen readers) holds the text.
    page.wait_for_function("""() => document.querySelectorAll('[data-testid="stDataFrame"] tr').length >= 4""",
                           timeout=60_000)
    rows = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"] tr'))
        .map((row) => Array.from(row.children).map((cell) => cell.textContent.trim()))""")
    table = {row[0]: row[1:] for row in rows[1:]}
    assert table["Fashion-MNIST"][0] == "bundled sample"
    for title, folder in (("MNIST digits", "mnist/"), ("CIFAR-10", "cifar10/")):
        source, why = table[title]
        assert source == "unavailable"
        assert "not available" in why and folder in why and "CNNVIZ_OFFLINE" in why  # The reason, and a fix.

    page.goto(no_data_streamlit_server.url + "/train")
    wait_idle(page)
    page.get_by_label("Dataset", exact=True).first.wait_for(timeout=60_000)
    options = _menu_options(page, "Dataset")
    assert "Fashion-MNIST" in options[0]
    assert not any("MNIST digits" in option or "CIFAR-10" in option for option in options), options
    caption = page.locator('[data-testid="stCaptionContainer"]', has_text="Not offered on this server").first
    caption.wait_for()
    assert "MNIST digits" in caption.inner_text() and "CIFAR-10" in caption.inner_text()
    assert page.locator(EXCEPTION).count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0

    # A shared link that chose CIFAR-10: a warning that says so, and the page on the sample.
    page.goto(no_data_streamlit_server.url + "/train?train_dataset=cifar10")
    wait_idle(page)
    page.get_by_text("cannot be loaded on this server").first.wait_for(timeout=60_000)
    assert "Fashion-MNIST" in page.locator(".st-key-train_dataset input").input_value()
    assert page.locator(EXCEPTION).count() == 0
    page.screenshot(path=str(artifacts_dir / "offline-datasets-train.png"), full_page=True)
