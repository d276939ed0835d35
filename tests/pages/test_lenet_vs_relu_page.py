"""The tanh LeNet vs ReLU CNN page, driven by AppTest on a tiny configuration (300/100 images, 1 epoch)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.lessons import lenet_vs_relu

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "lenet_vs_relu.py")


def tiny_page() -> AppTest:
    """The page with the smallest settings its widgets offer, not yet run."""
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception
    at.select_slider(key="lvr_train_images").set_value(300)
    at.select_slider(key="lvr_test_images").set_value(100)
    at.slider(key="lvr_epochs").set_value(1)
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(element.value for element in at.markdown)


def test_page_waits_for_the_run_button():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("Run the comparison" in element.value for element in at.info)
    assert not at.header  # Nothing is trained before the button is pressed.
    assert at.select_slider(key="lvr_train_images").value == lenet_vs_relu.DEFAULT_TRAIN_IMAGES == 3000


def test_full_data_switch_disables_the_subset_controls():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.toggle(key="lvr_full").set_value(True).run()
    assert not at.exception
    assert at.select_slider(key="lvr_train_images").disabled
    assert at.select_slider(key="lvr_test_images").disabled
    assert at.slider(key="lvr_epochs").disabled


def test_missing_dataset_is_an_error_message_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    from cnnviz import data

    data.clear_caches()
    if data.source_status("cifar10").source:
        pytest.skip("CIFAR-10 is available on this machine")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="lvr_dataset").set_value("cifar10").run()
    assert not at.exception
    assert at.error and "CIFAR" in at.error[0].value


@pytest.mark.slow
def test_tiny_comparison_trains_every_model_and_its_words_match_its_table():
    at = tiny_page()
    at.button(key="lvr_run").click().run()
    assert not at.exception
    assert not at.error
    assert [header.value for header in at.header] == ["Head to head", "Why", "Inside: the first layer's activations"]

    head, variants, activations = (at.table[i].value for i in range(3))
    assert list(head.index) == ["tanh LeNet (seed)", "ReLU CNN (seed)"]
    assert list(head["Parameters"]) == [61_610, 38_254]
    assert list(variants.index) == ["tanh LeNet (seed)", "LeNet + ReLU", "LeNet + max pooling", "LeNet + Adam/32",
                                       "LeNet + all three", "ReLU CNN (seed)"]
    assert list(variants["Parameters"]) == [61_610] * 5 + [38_254]
    assert all(0 <= value <= 100 for value in variants["Test accuracy (%)"])
    assert all(value > 0 for value in variants["Seconds per epoch"])

    # The conclusion quotes the seeds' accuracies from the table and names the winner the table implies.
    text = _markdown(at)
    lenet, relu = variants["Test accuracy (%)"].iloc[0], variants["Test accuracy (%)"].iloc[-1]
    assert f"the ReLU CNN scored **{relu:.1f}%** and the tanh LeNet **{lenet:.1f}%**" in text
    assert "On the same 100 test images after 1 epoch" in text
    if "ReLU CNN is better" in text:
        assert relu > lenet
    if "tanh LeNet is better" in text:
        assert lenet > relu
    # First-layer activations: tanh outputs stay in [-1, 1] and ReLU's zero share is a percentage.
    assert list(activations["Activation"]) == ["tanh", "relu", "relu"]
    assert all(0 <= value <= 100 for value in activations["Exactly zero (%)"])
    zero_share = activations["Exactly zero (%)"].iloc[-1]
    assert f"{zero_share:.1f}% of the ReLU CNN's are exactly zero" in text
    assert len(at.get("plotly_chart")) == 5  # Curves, confusion difference, variants, replay, activations.

    # The target accuracy only re-reads the histories: the column and the sentence follow it.
    at.slider(key="lvr_target").set_value(10).run()
    assert not at.exception
    assert "Epochs to 10%" in at.table[1].value.columns
    assert "To reach 10% validation accuracy" in _markdown(at)
    assert list(at.table[1].value["Test accuracy (%)"]) == list(variants["Test accuracy (%)"])

    # Changing a setting keeps the last results and says that Run is needed.
    at.slider(key="lvr_epochs").set_value(2).run()
    assert not at.exception
    assert any("settings changed" in element.value for element in at.info)
    assert re.search(r"after 1 epoch\b", _markdown(at))


@pytest.mark.browser
@pytest.mark.slow
def test_tiny_comparison_in_a_real_browser(streamlit_app, browser, wait_idle, artifacts_dir):
    # The page's link parameters choose the tiny configuration; Run trains it with live progress.
    browser.goto(streamlit_app + "/lenet-vs-relu?lvr_train_images=300&lvr_test_images=100&lvr_epochs=1")
    wait_idle(browser)
    assert browser.locator('[data-testid="stException"]').count() == 0
    # A deep link may raise Streamlit's "Page not found" notice although the page itself runs
    # (an app-wide navigation quirk); close it so that it does not block the page.
    notice = browser.get_by_role("dialog")
    if notice.count():
        notice.get_by_role("button", name="Close").click()
    browser.get_by_role("button", name="Run the comparison").click()
    browser.wait_for_selector("text=What the numbers say", timeout=300_000)
    wait_idle(browser, timeout_ms=300_000)
    assert browser.locator('[data-testid="stException"]').count() == 0
    browser.get_by_text("On the same 100 test images after 1 epoch").first.wait_for()
    browser.screenshot(path=str(artifacts_dir / "lenet-vs-relu-tiny.png"), full_page=True)
