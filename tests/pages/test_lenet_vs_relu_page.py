"""The tanh LeNet vs ReLU CNN page, driven by AppTest on a tiny configuration (256/100 images, 8 updates, 2 seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import verdicts
from cnnviz.lessons import lenet_vs_relu

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "lenet_vs_relu.py")


def tiny_page() -> AppTest:
    """The page with the smallest settings its widgets offer, not yet run."""
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception
    at.select_slider(key="lvr_train_images").set_value(256)
    at.select_slider(key="lvr_test_images").set_value(100)
    at.select_slider(key="lvr_updates").set_value(8)
    at.slider(key="lvr_seeds").set_value(2)
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(element.value for element in at.markdown)


def test_page_waits_for_the_run_button():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("Run the comparison" in element.value for element in at.info)
    assert not at.header  # Nothing is trained before the button is pressed.
    assert at.select_slider(key="lvr_train_images").value == lenet_vs_relu.DEFAULT_TRAIN_IMAGES
    assert at.select_slider(key="lvr_updates").value == lenet_vs_relu.DEFAULT_UPDATES
    assert at.slider(key="lvr_seeds").value == 3
    assert any(f"{lenet_vs_relu.DEFAULT_UPDATES:,} per seed" in element.value for element in at.caption)


def test_the_seeds_settings_switch_disables_the_subset_and_budget_controls():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.toggle(key="lvr_seeds_settings").set_value(True).run()
    assert not at.exception
    assert at.select_slider(key="lvr_train_images").disabled
    assert at.select_slider(key="lvr_test_images").disabled
    assert at.select_slider(key="lvr_updates").disabled
    assert not at.slider(key="lvr_seeds").disabled  # The seed count stays the student's choice.
    assert any("10 epochs each with plain `model.fit`" in element.value for element in at.caption)


def test_a_missing_dataset_is_not_offered_and_the_picker_says_why(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    from cnnviz import data

    data.clear_caches()
    if data.source_status("cifar10").source:
        pytest.skip("CIFAR-10 is available on this machine")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    # Not offered (nothing fails after a choice); the caption under the picker says why.
    assert "CIFAR-10" not in at.selectbox(key="lvr_dataset").options
    assert any("CIFAR-10 is not available" in c.value for c in at.caption)
    assert not at.error


@pytest.mark.slow
def test_tiny_comparison_trains_every_seed_and_its_verdicts_are_computed():
    at = tiny_page()
    at.button(key="lvr_run").click().run()
    assert not at.exception
    assert not at.error
    assert [header.value for header in at.header] == ["Head to head", "Why", "Inside: the first layer's activations"]

    variants, activations = at.table[0].value, at.table[1].value
    assert list(variants.index) == ["tanh LeNet (seed)", "LeNet + ReLU", "LeNet + max pooling", "LeNet + Adam/32",
                                    "LeNet + all three", "ReLU CNN (seed)"]
    assert list(variants["Parameters"]) == [61_610] * 5 + [38_254]
    # The budget in updates: 256 images are 8 batches of 32, one epoch for every model.
    assert list(variants["Updates per seed"]) == [8] * 6
    assert list(variants["Epochs"]) == [1] * 6
    for per_seed, mean in zip(variants["Per seed (%)"], variants["Mean test accuracy (%)"]):
        values = [float(v) for v in per_seed.split(", ")]
        assert len(values) == 2 and mean == pytest.approx(sum(values) / 2, abs=0.051)

    # Every verdict on the page is the text of verdicts.compare on the per-seed numbers shown.
    text = _markdown(at)
    names = dict(zip(variants.index, variants["Per seed (%)"]))
    for factor, a, b in lenet_vs_relu.COMPARISONS:
        label_a, label_b = lenet_vs_relu.variant(a).label, lenet_vs_relu.variant(b).label
        expected = verdicts.compare(factor, label_a, [float(v) / 100 for v in names[label_a].split(", ")],
                                    label_b, [float(v) / 100 for v in names[label_b].split(", ")], test_images=100)
        assert expected.kind in text.split(lenet_vs_relu.COMPARISON_TITLES[factor])[1][:40]
    assert "Budget: every model made **8 weight updates** per seed" in "\n".join(c.value for c in at.caption)
    for removed in ("come from the architecture", "makes the LeNet worse", "Why can ReLU alone"):
        assert removed not in text
    assert list(activations["Activation"]) == ["tanh", "relu", "relu"]
    assert len(at.get("plotly_chart")) == 5  # Curves, confusion difference, variants, replay, activations.

    # Changing a setting keeps the last results and says that Run is needed.
    at.slider(key="lvr_seeds").set_value(3).run()
    assert not at.exception
    assert any("settings changed" in element.value for element in at.info)
    assert "Per seed (%)" in at.table[0].value.columns and len(at.table[0].value["Per seed (%)"].iloc[0].split(", ")) == 2


@pytest.mark.browser
@pytest.mark.slow
def test_tiny_comparison_in_a_real_browser(streamlit_app, browser, wait_idle, artifacts_dir):
    # The page's link parameters choose the tiny configuration; Run trains it with live progress.
    browser.goto(streamlit_app + "/lenet-vs-relu?lvr_train_images=256&lvr_test_images=100&lvr_updates=8&lvr_seeds=2")
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
    browser.get_by_text("weight updates").first.wait_for()
    browser.screenshot(path=str(artifacts_dir / "lenet-vs-relu-tiny.png"), full_page=True)


@pytest.mark.slow
def test_the_seeds_panel_shows_each_model_and_its_seeds_and_stop_keeps_the_page_usable(monkeypatch):
    """While the models train, the panel names the model and the seeds training together; a Stop
    click mid-run (a real rerun of the running script) stops the comparison, the message says
    which models finished (as the disk cache holds them), and Run trains the rest."""
    from cnnviz import training
    from tests.pages.live_app import LiveRun, markdown

    at = tiny_page()
    at.select_slider(key="lvr_updates").set_value(120)  # 15 epochs of 8 batches: long enough to click Stop.
    settings = lenet_vs_relu.ComparisonSettings(limit_train=256, limit_test=100, updates=120, seeds=(0, 1))
    configs = lenet_vs_relu.comparison_configs(settings)
    at.button(key="lvr_run").click()
    live = LiveRun(at, monkeypatch).start()
    first = live.wait_for(lambda t: "Model 1 of 6: tanh LeNet (seed)** · seeds 0 and 1 training together"
                          in markdown(t), what="the first model training")
    assert "Still to train: LeNet + ReLU, LeNet + max pooling" in markdown(first)
    live.wait_for(lambda t: "Model 3 of 6: LeNet + ReLU** · seeds 0 and 1 training together" in markdown(t)
                  and "Finished: tanh LeNet (seed), ReLU CNN (seed)" in markdown(t), what="the third model")
    live.click("lvr_variants_stop")
    at = live.join()
    assert not at.exception, at.exception

    # The message agrees with the disk cache: the models whose every seed is cached are "finished",
    # the first one that is not was stopped, and nothing after it trained.
    done = [key for key, config in configs.items()
            if all(training.is_cached(c) for c in training.seed_configs(config, settings.seeds))]
    order = [key for key in (lenet_vs_relu.LENET, lenet_vs_relu.RELU_CNN)] + [
        item.key for item in lenet_vs_relu.VARIANTS if item.key not in (lenet_vs_relu.LENET, lenet_vs_relu.RELU_CNN)]
    assert done == [key for key in configs if key in order[:len(done)]] and 2 <= len(done) < 6
    stopped = order[len(done)]
    message = [w.value for w in at.warning if "Stopped after" in w.value]
    assert len(message) == 1, [w.value for w in at.warning]
    labels = {item.key: item.label for item in lenet_vs_relu.VARIANTS}
    assert (f"**Finished** (every seed; cached, so they will not train again): "
            f"{', '.join(labels[key] for key in configs if key in done)}.") in message[0]
    assert f"**Not finished**: {labels[stopped]} (seeds 0 and 1 were training together, in epoch " in message[0]
    assert "Press **Run the comparison**" in message[0]
    # The head to head (both seed models finished) is there; the variants' sections are not.
    assert [header.value for header in at.header] == ["Head to head"]
    assert not [button for button in at.button if (button.key or "").endswith("_stop")]

    # A rerun keeps the message and trains nothing; Run trains the rest, the finished models from the cache.
    at.run()
    assert not at.exception and any("Stopped after" in w.value for w in at.warning)
    assert not all(training.is_cached(c) for c in training.seed_configs(configs[stopped], settings.seeds))
    before = {key: training.load_cached(configs[key]).history["seconds"] for key in done}
    at.button(key="lvr_run").click().run()
    assert not at.exception, at.exception
    assert not any("Stopped after" in w.value for w in at.warning)
    assert [header.value for header in at.header] == ["Head to head", "Why", "Inside: the first layer's activations"]
    assert {key: training.load_cached(configs[key]).history["seconds"] for key in done} == before
