"""The training page in a real browser: a small configuration from the URL, Train, live curves,
the confusion matrix, and a click on one of its cells listing that cell's images."""

from __future__ import annotations

import re

import pytest

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXCEPTION = '[data-testid="stException"]'
# A configuration that trains in a few seconds, set through the page's shareable-link parameters.
SMALL = "train_limit_train=400&train_limit_test=200&train_epochs=2&train_batch_size=64"


def _dark_shirt_on_white_png(path):
    from PIL import Image

    picture = Image.new("RGB", (90, 90), "white")
    picture.paste((30, 30, 30), (25, 15, 65, 80))
    picture.save(path)
    return path


def test_train_in_the_browser_then_click_a_confusion_cell(streamlit_app, browser, wait_idle, artifacts_dir,
                                                          tmp_path):
    page = browser
    # The first visit of a freshly started server goes to the home page: a deep link as the very
    # first request can meet Streamlit's "Page not found" dialog while the navigation registers.
    page.goto(streamlit_app)
    wait_idle(page)
    page.goto(f"{streamlit_app}/train?{SMALL}")
    wait_idle(page)
    page.wait_for_selector("h1:has-text('Train a small CNN')")
    assert page.locator(EXCEPTION).count() == 0
    # The URL's settings reached the widgets.
    expect(page.locator(".st-key-train_epochs input")).to_have_value("2")

    page.locator(".st-key-train_start button").click()
    # The loss/accuracy curves, then the confusion matrix (its axis title is drawn by plotly).
    page.wait_for_selector('[data-testid="stPlotlyChart"] text:has-text("Loss (cross-entropy)")', timeout=180_000)
    confusion = page.locator(".st-key-train_confusion_chart")
    confusion.locator('text:has-text("predicted class")').wait_for(timeout=180_000)
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    expect(page.get_by_text("Where the network goes wrong")).to_have_count(1)

    # Clicking the cell "true class 0, predicted class 1" (point index 0 * 10 + 1) selects it.
    confusion.locator(".scatterlayer path.point").nth(1).click(force=True)
    page.wait_for_selector("text=/T-shirt\\/top test image\\(s\\) predicted as Trouser/", timeout=60_000)
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    cell_text = page.get_by_text(re.compile(r"T-shirt/top test image\(s\) predicted as Trouser")).first.inner_text()
    assert re.match(r"\d+ T-shirt/top", cell_text)

    # "Try your own image": a real upload, preprocessed and classified.
    page.locator(".st-key-train_upload input[type=file]").set_input_files(str(_dark_shirt_on_white_png(
        tmp_path / "shirt.png")))
    page.wait_for_selector("text=/^Prediction: /", timeout=60_000)
    wait_idle(page)
    expect(page.get_by_text("inverted (light background made black")).to_have_count(1)
    assert page.locator(EXCEPTION).count() == 0

    # Both downloads deliver real files: a .keras archive (a zip) and the per-epoch history.
    with page.expect_download() as model_download:
        page.locator(".st-key-train_download_model button").click()
    model_path = model_download.value.path()
    assert open(model_path, "rb").read(2) == b"PK"
    with page.expect_download() as history_download:
        page.locator(".st-key-train_download_history button").click()
    lines = open(history_download.value.path()).read().splitlines()
    assert lines[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(lines) == 3

    # Streamlit scrolls inside its main container, so a tall viewport captures the whole page.
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1280, "height": min(int(height), 12_000)})
    page.screenshot(path=str(artifacts_dir / "train.png"))


def test_stop_ends_a_long_training_and_keeps_the_partial_model(streamlit_app, browser, wait_idle):
    page = browser
    page.goto(streamlit_app)
    wait_idle(page)
    # A hundred epochs on 10,000 images take well over half a minute: long enough to press Stop.
    page.goto(f"{streamlit_app}/train?train_limit_train=10000&train_limit_test=500&train_epochs=100&train_seed=3")
    wait_idle(page)
    expect(page.locator(".st-key-train_epochs input")).to_have_value("100")
    page.locator(".st-key-train_start button").click()
    # The page stays live while training runs: the progress text names the epoch and batch.
    page.wait_for_selector("text=/Epoch \\d+\\/100 · batch/", timeout=120_000)
    page.get_by_role("button", name="Stop training").first.click()
    page.wait_for_selector("text=/Training was stopped after/", timeout=60_000)
    page.locator(".st-key-train_confusion_chart").wait_for(timeout=60_000)
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    epochs_text = page.locator('[data-testid="stMetric"]', has_text="Epochs").inner_text()
    done = int(re.search(r"(\d+) / 100", epochs_text).group(1))
    assert done < 100
