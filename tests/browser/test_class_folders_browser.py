"""A student's own images in a real browser: on the Train page choose "Your own images", upload the
bundled example zip (three classes of drawn shapes) through the real file input, read the report,
train a small network, see its curves, confusion matrix and first-layer filters, then draw a shape on
the pad with the mouse and get a prediction over the shape classes with its Grad-CAM. The upload and
the canvas are real browser components, which AppTest cannot drive."""

from __future__ import annotations

import collections
import re
import zipfile
from pathlib import Path

import pytest

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXAMPLE_ZIP = Path(__file__).resolve().parents[2] / "assets" / "example_shapes.zip"
EXCEPTION = '[data-testid="stException"]'
# Small settings through the page's link parameters (one epoch of ~360 images of 32 x 32 pixels).
SMALL = "train_dataset=class_folders&train_epochs=1&train_batch_size=32&train_seed=7"
TEST_PERCENT = 20  # The page's default "Test images (%)".


def _images_per_class(path: Path) -> dict[str, int]:
    """The oracle: picture files per class folder, read from the zip itself."""
    counts: collections.Counter[str] = collections.Counter()
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) >= 2 and parts[-1].lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".bmp")):
                counts[parts[-2]] += 1
    return dict(sorted(counts.items()))


def _draw(page, box, points) -> None:
    """One mouse stroke through `points` (pad pixels), in small steps as a hand would move."""
    left, top = box["x"], box["y"]
    page.mouse.move(left + points[0][0], top + points[0][1])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for step in range(1, 9):
            page.mouse.move(left + x0 + (x1 - x0) * step / 8, top + y0 + (y1 - y0) * step / 8)
    page.mouse.up()


def test_upload_class_folders_train_then_draw_a_shape(streamlit_app, browser, wait_idle, artifacts_dir):
    classes = _images_per_class(EXAMPLE_ZIP)
    assert len(classes) == 3  # The example the app ships: circle, square, triangle.
    page = browser
    page.goto(streamlit_app)  # A fresh server's first visit goes home (see test_train_browser.py).
    wait_idle(page)
    page.goto(f"{streamlit_app}/train?{SMALL}")
    page.wait_for_selector("h1:has-text('Train a small CNN')")
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value("Your own images (zip of class folders)")
    expect(page.get_by_text("Upload a zip of class folders, or press", exact=False)).to_have_count(1)
    assert page.locator(".st-key-train_start button").count() == 0  # No data yet, so nothing to train.

    # The real file input of the uploader.
    page.locator(".st-key-train_folders_upload input[type=file]").set_input_files(str(EXAMPLE_ZIP))
    report = page.get_by_text(f"{len(classes)} classes, {sum(classes.values()):,} images; test images", exact=False)
    report.wait_for(timeout=30_000)
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    # The report's table, one row per class: training and test images (the grid's accessible cells).
    table = page.locator('[data-testid="stDataFrame"]').filter(has=page.locator('th:text-is("training images")'))
    table.locator('tbody [role="gridcell"]').first.wait_for(state="attached")  # Drawn after the grid mounts.
    rows = [[cell.text_content().strip() for cell in row.locator('[role="gridcell"]').all()]
            for row in table.locator('tbody [role="row"]').all()]
    expected = [[name, str(count - count * TEST_PERCENT // 100), str(count * TEST_PERCENT // 100)]
                for name, count in classes.items()]
    assert rows == expected
    expect(page.locator(".st-key-train_epochs input")).to_have_value("1")  # The link's small settings.

    page.locator(".st-key-train_start button").click()
    page.wait_for_selector('[data-testid="stPlotlyChart"] text:has-text("Loss (cross-entropy)")', timeout=120_000)
    confusion = page.locator(".st-key-train_confusion_chart")
    confusion.locator('text:has-text("predicted class")').wait_for(timeout=60_000)
    page.locator(".st-key-train_filters_chart .main-svg").first.wait_for(timeout=60_000)
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    for name in classes:  # The confusion matrix is over the zip's classes.
        assert confusion.locator(f'text:text-is("{name}")').count() >= 1

    page.get_by_role("tab", name="Draw one").click()
    pad = page.locator(".st-key-train_drawing canvas").last  # Fabric's upper canvas takes the pointer.
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box is not None and box["width"] >= 200
    _draw(page, box, [(70, 70), (210, 70), (210, 210), (70, 210), (70, 70)])  # A square.

    probabilities = page.locator(".st-key-train_draw_probabilities")
    probabilities.locator(".main-svg").first.wait_for(timeout=30_000)
    page.locator(".st-key-train_draw_gradcam .main-svg").first.wait_for(timeout=30_000)
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    for name in classes:  # One probability per shape class.
        assert probabilities.locator(f'text:text-is("{name}")').count() >= 1
    # The bars are the network's probabilities: they add up to one, and the prediction is the tallest.
    percents = [float(text.text_content().rstrip("%")) for text in probabilities.locator("text.bartext").all()]
    assert len(percents) == len(classes) and abs(sum(percents) - 100) <= 0.2, percents
    prediction = page.get_by_text("Prediction: ", exact=False).last.inner_text()
    said = re.fullmatch(r"Prediction: (\w+) \((\d+)%\)", prediction)
    assert said and said[1] in classes and abs(int(said[2]) - max(percents)) <= 1, (prediction, percents)
    assert page.get_by_text("strokes cropped to their bounding box", exact=False).count() == 1
    page.get_by_text("what the network sees").last.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "class-folders-drawing.png"))
