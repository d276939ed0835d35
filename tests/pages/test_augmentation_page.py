"""AppTest of app_pages/augmentation.py: preview, warnings, re-roll, the exact demos, and real training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.lessons import augmentation

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "augmentation.py")


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert not at.exception, at.exception
    return at


def _plotly(at: AppTest, key_part: str) -> dict:
    """The JSON spec of the plotly chart whose widget id contains `key_part`."""
    charts = [c for c in at.get("plotly_chart") if key_part in c.proto.id]
    assert charts, f"no chart with {key_part!r}"
    return json.loads(charts[0].proto.spec)


def _frame(at: AppTest, column: str):
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert frames, f"no table with a {column!r} column"
    return frames[0]


def test_page_renders_every_section_without_errors(app):
    assert not app.error
    assert [t.label for t in app.tabs] == ["Augmentation preview", "Overfitting and its cures",
                                           "Dropout, exactly", "Batch norm, exactly"]
    grid = _plotly(app, "aug_grid")
    assert grid["data"][0]["type"] == "image"
    # Training waits for the button.
    assert any("Train the variants" in i.value for i in app.info)
    # The default preview (Fashion-MNIST, horizontal flip, small angles) raises no warning.
    assert not app.warning
    # The variants' parameter counts are Keras' own.
    from cnnviz.architecture import build_keras_model

    for key in ("baseline", "batchnorm"):
        stack = augmentation.small_cnn_stack(batchnorm=key == "batchnorm")
        count = build_keras_model((28, 28, 1), stack).count_params()
        assert any(f"({count:,} parameters)" in m.value for m in app.markdown)


def test_vertical_flip_on_clothing_is_warned_and_switching_all_off_is_explained(app):
    app.checkbox(key="aug_flip_v").check().run()
    assert not app.exception
    assert any("Vertical flip" in w.value and "upright" in w.value for w in app.warning)
    app.checkbox(key="aug_flip_h").uncheck()
    app.checkbox(key="aug_flip_v").uncheck()
    for key in ("aug_rotation", "aug_zoom", "aug_shift"):
        app.slider(key=key).set_value(0)
    app.slider(key="aug_contrast").set_value(0.0).run()
    assert not app.exception
    assert any("Every augmentation is off" in i.value for i in app.info)


def test_reroll_changes_the_grid_and_the_same_seed_repeats_it(app):
    first = _plotly(app, "aug_grid")["data"][0]["z"]
    app.button(key="aug_reroll").click().run()
    assert app.session_state["aug_seed"] == 1
    second = _plotly(app, "aug_grid")["data"][0]["z"]
    assert second != first
    fresh = AppTest.from_file(PAGE, default_timeout=180)
    fresh.session_state["aug_seed"] = 1
    fresh.run()
    assert _plotly(fresh, "aug_grid")["data"][0]["z"] == second


def test_dropout_tab_shows_the_keras_numbers(app):
    app.slider(key="aug_drop_rate").set_value(0.3)
    app.number_input(key="aug_drop_seed").set_value(4).run()
    assert not app.exception
    demo = augmentation.dropout_demo(augmentation.example_activations(10), 0.3, seed=4)
    table = _frame(app, "training output (Keras)")
    np.testing.assert_allclose(table["training output (Keras)"].to_numpy(), demo.training_output, rtol=1e-6)
    np.testing.assert_allclose(table["inference output (Keras)"].to_numpy(), demo.inference_output)
    assert table["kept"].tolist() == demo.kept.tolist()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Mean, training"] == f"{demo.mean_training:.3f}"
    assert metrics["Dropped units"] == f"{int(demo.dropped.sum())} of 10"


def test_batchnorm_tab_shows_the_keras_numbers(app):
    app.slider(key="aug_bn_steps").set_value(3)
    app.select_slider(key="aug_bn_momentum").set_value(0.99).run()
    assert not app.exception
    demo = augmentation.batchnorm_demo(augmentation.example_batches(3, 6, seed=0), momentum=0.99)
    stats = _frame(app, "statistic")
    np.testing.assert_allclose(stats["feature 0"].to_numpy(),
                               [demo.batch_mean[0], demo.batch_variance[0], demo.moving_mean[0],
                                demo.moving_variance[0]], rtol=1e-6)
    assert any("about **299 steps**" in m.value for m in app.markdown)
    app.select_slider(key="aug_bn_momentum").set_value(0.0).run()
    assert any("momentum 0" in m.value for m in app.markdown)


@pytest.mark.slow
def test_overfitting_variants_train_every_seed_and_fill_the_table(app):
    from cnnviz import training

    app.select_slider(key="aug_fit_images").set_value(200)
    app.slider(key="aug_fit_epochs").set_value(2)
    app.number_input(key="aug_fit_seeds").set_value(2)
    app.multiselect(key="aug_fit_variants").set_value(["baseline", "dropout"])
    app.button(key="aug_fit_train").click().run(timeout=300)
    assert not app.exception, app.exception
    assert not app.error
    table = _frame(app, "gap (points)")  # One row per variant and seed.
    assert table["variant"].tolist() == ["No regularisation"] * 2 + ["Dropout"] * 2
    assert table["seed"].tolist() == [0, 1, 0, 1]
    # The table's test accuracies are the engine's own results of each seed (stored in its disk cache).
    variants = augmentation.overfitting_variants("fashion_mnist", keys=("baseline", "dropout"),
                                                   limit_train=200, epochs=2)
    rows = list(table.itertuples(index=False))
    for row, (variant, seed) in zip(rows, [(v, s) for v in variants for s in (0, 1)]):
        cached = training.load_cached(variant.config.replace(seed=seed))
        assert cached is not None and cached.stopped_reason == "finished"
        assert row[3] == pytest.approx(cached.test_accuracy)
        assert row[4] == pytest.approx((row[2] - row[3]) * 100)
    summary = _frame(app, "gap in points: mean (95 % interval)")
    assert summary["seeds"].tolist() == [2, 2] and summary["weight updates per seed"].tolist() == [2 * 13] * 2
    spread = _plotly(app, "aug_fit_spread")["data"]
    assert sum(len(trace["y"]) for trace in spread if trace["marker"].get("symbol") != "diamond") == 8
    # The verdicts are `compare`'s texts, each cure against the baseline.
    measured = [augmentation.seed_measurement(v, (0, 1), [training.load_cached(v.config.replace(seed=s))
                                                          for s in (0, 1)]) for v in variants]
    texts = [verdict.text for verdict in augmentation.regularisation_verdicts(measured)]
    assert len(texts) == 2 and all(any(text in m.value for m in app.markdown) for text in texts)
    assert _plotly(app, "aug_fit_curves")["data"]
    # A revisit reuses the cached runs: no button press needed.
    again = AppTest.from_file(PAGE, default_timeout=120)
    again.session_state["aug_fit_images"] = 200
    again.session_state["aug_fit_epochs"] = 2
    again.session_state["aug_fit_seeds"] = 2
    again.session_state["aug_fit_variants"] = ["baseline", "dropout"]
    again.run()
    assert not again.exception
    assert _frame(again, "gap (points)")["variant"].tolist() == ["No regularisation"] * 2 + ["Dropout"] * 2


@pytest.mark.slow
def test_the_variants_train_on_the_students_class_folders(app):
    """The bundled example zip, read in the trainer's own picker, trains every variant with two seeds on
    its 3 classes and 28x28 grey images; the table, the verdicts and the data caption follow."""
    from cnnviz import training
    from cnnviz.data import example

    app.selectbox(key="aug_fit_dataset").set_value("class_folders").run()
    assert not app.exception, app.exception
    assert any("Upload a zip of class folders" in i.value for i in app.info)  # Nothing to train on yet.
    assert not [b for b in app.button if b.key == "aug_fit_train"]
    app.button(key="train_folders_use_example").click()
    app.slider(key="train_folders_size").set_value(28)
    app.radio(key="train_folders_colour").set_value("grayscale").run()
    assert not app.exception, app.exception
    dataset = app.session_state["train_folders_loaded"][1]
    assert dataset.image_shape == (28, 28, 1) and dataset.class_names == example.EXAMPLE_CLASSES
    available, tests = len(dataset.x_train), len(dataset.x_test)
    images = app.select_slider(key="aug_fit_folder_images")
    assert list(images.options) == ["200", f"all {available:,}"] and images.value == available  # Bounded.
    captions = [c.value.replace("\\", "") for c in app.caption]  # Markdown escapes off.
    assert any("example_shapes.zip" in c and f"{available:,} training and {tests:,} test images" in c
               for c in captions)  # Which data is in use.
    assert any(c.startswith("No left–right flips") for c in captions)
    images.set_value(200)
    app.slider(key="aug_fit_epochs").set_value(2)
    app.number_input(key="aug_fit_seeds").set_value(2)
    keys = ("baseline", "augmentation", "batchnorm")  # Three of the four defaults: under 15 s.
    app.multiselect(key="aug_fit_variants").set_value(list(keys))
    app.button(key="aug_fit_train").click().run(timeout=300)
    assert not app.exception, app.exception
    assert not app.error

    variants = augmentation.overfitting_variants(dataset.name, keys=keys,
                                                   limit_train=200, limit_test=tests, epochs=2)
    table = _frame(app, "gap (points)")  # One row per variant and seed.
    assert table["variant"].tolist() == [v.title for v in variants for _ in (0, 1)]
    assert table["seed"].tolist() == [0, 1] * len(variants)
    results = {v.key: [training.load_cached(v.config.replace(seed=s)) for s in (0, 1)] for v in variants}
    for row, result in zip(table.itertuples(index=False), [r for v in variants for r in results[v.key]]):
        assert result is not None and result.stopped_reason == "finished"
        assert result.class_names == example.EXAMPLE_CLASSES and result.config.dataset == dataset.name
        assert row[3] == pytest.approx(result.test_accuracy)
    first = results["baseline"][0]
    assert len(first.test_data()[1]) == tests  # Every test image of the zip's split.
    assert first.predict(dataset.x_test[:2]).shape == (2, 3)  # The head has one unit per class folder.
    summary = _frame(app, "gap in points: mean (95 % interval)")
    assert summary["weight updates per seed"].tolist() == [2 * 13] * len(variants)  # 200 images, batch 16.
    measured = [augmentation.seed_measurement(v, (0, 1), results[v.key]) for v in variants]
    texts = [verdict.text for verdict in augmentation.regularisation_verdicts(measured)]
    assert len(texts) == 2 * (len(variants) - 1)
    shown = "\n".join(m.value for m in app.markdown)
    assert all(text in shown for text in texts)


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 3] = (255, 128, 0)  # An asymmetric orange block.
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_uploaded_picture_is_augmented_and_a_corrupt_one_is_refused(app):
    app.radio(key="aug_source").set_value("upload").run()
    assert any("Upload a picture" in i.value for i in app.info)
    app.file_uploader(key="aug_upload").set_value(("shape.png", _png(300, 150), "image/png")).run()
    assert not app.exception and not app.error
    grid = _plotly(app, "aug_grid")
    # 300x150 is shrunk to at most 128 px on its longest side: 128x64 tiles, 4 per row with 2 px gaps.
    z = grid["data"][0]["z"]  # Plotly sends the mosaic as typed binary data with its shape.
    shape = tuple(int(v) for v in str(z["shape"]).split(",")) if isinstance(z, dict) else np.shape(z)
    assert shape[:2] == (4 * 64 + 3 * 2, 4 * 128 + 3 * 2)
    assert any("Downscaled" in c.value for c in app.caption)
    # Uploads get no dataset-specific warnings, even for a vertical flip.
    app.checkbox(key="aug_flip_v").check().run()
    assert not app.warning

    app.file_uploader(key="aug_upload").set_value(("broken.png", b"this is not an image", "image/png")).run()
    assert not app.exception
    assert any("not an image" in e.value for e in app.error)
    # The rest of the page keeps working.
    assert {m.label for m in app.metric} >= {"Mean, training", "Mean, inference"}


def test_a_16_bit_and_an_oversized_png_get_the_convolution_labs_note_and_message(app):
    import io

    from PIL import Image

    from cnnviz import images
    from tests.test_images import png_with_declared_size

    app.radio(key="aug_source").set_value("upload").run()
    buffer = io.BytesIO()
    Image.fromarray(np.arange(400, dtype=np.uint16).reshape(20, 20) * 150).save(buffer, format="PNG")
    sixteen_bit = buffer.getvalue()
    app.file_uploader(key="aug_upload").set_value(("deep.png", sixteen_bit, "image/png")).run()
    assert not app.exception and not app.error
    assert any(note in c.value for c in app.caption for note in images.decode_image(sixteen_bit).notes)

    oversized = png_with_declared_size(8_000, 6_000)
    with pytest.raises(images.ImageDecodeError) as lab_error:
        images.decode_image(oversized)  # What the convolution lab shows for the same file.
    app.file_uploader(key="aug_upload").set_value(("huge.png", oversized, "image/png")).run()
    assert not app.exception
    assert [e.value for e in app.error] == [str(lab_error.value)]


def test_a_dataset_that_is_not_available_is_explained_or_used(app):
    from cnnviz import data

    if data.source_status("mnist").source is None:
        # Not offered at all (nothing fails after a choice): the caption under the picker says why.
        assert "MNIST digits" not in app.selectbox(key="aug_dataset").options
        assert any("MNIST is not available" in c.value for c in app.caption)
        assert not app.error
    else:
        app.selectbox(key="aug_dataset").set_value("mnist").run()
        assert not app.exception
        # Digits with the default horizontal flip on: the page warns about mirrored digits.
        assert any("mirrored digit" in w.value for w in app.warning)
    assert {m.label for m in app.metric} >= {"Mean, training", "Mean, inference"}


def test_a_shared_link_restores_the_view_and_presenter_mode_renders():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.query_params["aug_rotation"] = "45"
    at.query_params["aug_flip_v"] = "1"
    at.query_params["aug_drop_rate"] = "0.25"
    at.query_params["aug_bn_momentum"] = "0.99"
    at.query_params["aug_zoom"] = "bogus"
    at.session_state["presenter_mode"] = True
    at.run()
    assert not at.exception
    assert at.slider(key="aug_rotation").value == 45
    assert at.checkbox(key="aug_flip_v").value is True
    assert at.slider(key="aug_drop_rate").value == 0.25
    assert at.select_slider(key="aug_bn_momentum").value == 0.99
    assert at.slider(key="aug_zoom").value == 10  # The invalid value is ignored with a notice.
    assert any("aug_zoom" in c.value for c in at.caption)
    assert any(w.value.startswith("**Vertical flip") for w in at.warning)
    assert any(i.value.startswith("**Rotation") for i in at.info)


def test_presenter_mode_puts_the_augmented_grid_in_the_key_figure_slot():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["presenter_mode"] = True
    at.run()
    assert not at.exception
    # Under the title and caption, before the tabs: the key-figure slot, holding the grid.
    slot = list(at.main.children.values())[2]
    assert slot.proto.id.endswith("key_figure")
    charts = [c for c in slot.get("plotly_chart") if "aug_grid" in c.proto.id]
    assert len(charts) == 1
    # Two rows of eight across the full width, so that it fits a 1280x720 projector.
    z = json.loads(charts[0].proto.spec)["data"][0]["z"]
    shape = tuple(int(v) for v in str(z["shape"]).split(",")) if isinstance(z, dict) else np.shape(z)
    assert shape[:2] == (2 * 28 + 2, 8 * 28 + 7 * 2)


@pytest.mark.slow
def test_the_seeds_panel_shows_variants_and_seeds_and_stop_leaves_a_usable_page(app, monkeypatch):
    """While the variants train, the panel names the variant and its seeds (together, or one at a
    time); a Stop click mid-run (a real rerun of the running script) stops the training, says what
    finished, and a new Train starts again with the finished seeds read from the cache."""
    from cnnviz import training
    from cnnviz.training import seed_stack
    from tests.pages.live_app import LiveRun, markdown

    epochs = 12  # Long enough to click Stop while the augmented variant's second seed trains.
    variants = augmentation.overfitting_variants("fashion_mnist", keys=("baseline", "augmentation"),
                                                   limit_train=200, epochs=epochs)
    baseline, augmented = variants
    # The oracle for "together": the vectorised model covers the plain CNN, not the augmented one.
    assert seed_stack.unsupported_reason(baseline.config, (28, 28, 1)) is None
    assert seed_stack.unsupported_reason(augmented.config, (28, 28, 1)) == "augmentation"

    app.select_slider(key="aug_fit_images").set_value(200)
    app.slider(key="aug_fit_epochs").set_value(epochs)
    app.number_input(key="aug_fit_seeds").set_value(2)
    app.multiselect(key="aug_fit_variants").set_value(["baseline", "augmentation"])
    app.button(key="aug_fit_train").click()
    live = LiveRun(app, monkeypatch).start()
    first = live.wait_for(lambda t: "Epoch" in markdown(t) and "Variant 1 of 2: No regularisation" in markdown(t),
                          what="the first variant training")
    assert "seeds 0 and 1 training together" in markdown(first)
    assert "Still to train: Augmentation" in markdown(first)
    assert [button.key for button in first.button if button.key == "aug_fit_training_stop"]
    second = live.wait_for(lambda t: "Variant 2 of 2: Augmentation** · seed 1 (2 of 2); seed 0 finished"
                           in markdown(t), what="the augmented variant's second seed")
    assert "Finished: No regularisation" in markdown(second)
    live.click("aug_fit_training_stop")
    at = live.join()
    assert not at.exception, at.exception

    # What the disk cache holds is what the message says finished.
    cached = {(v.key, s): training.is_cached(v.config.replace(seed=s)) for v in variants for s in (0, 1)}
    assert cached == {("baseline", 0): True, ("baseline", 1): True,
                      ("augmentation", 0): True, ("augmentation", 1): False}
    message = [w.value for w in at.warning if "Stopped after" in w.value]
    assert len(message) == 1
    assert "**Finished** (every seed; cached, so they will not train again): No regularisation." in message[0]
    assert "**Not finished**: Augmentation (seed 1 was training, in epoch " in message[0]
    assert "; seed 0 finished)." in message[0]
    assert "Press **Train the variants**" in message[0]
    assert not [d for d in at.dataframe if "gap (points)" in d.value.columns]  # No partial results table.
    assert not [button for button in at.button if button.key == "aug_fit_training_stop"]
    assert {m.label for m in at.metric} >= {"Mean, training", "Mean, inference"}  # The other tabs work.

    # A rerun (any widget) keeps the message and trains nothing.
    at.slider(key="aug_drop_rate").set_value(0.3).run()
    assert not at.exception
    assert any("Stopped after" in w.value for w in at.warning)
    assert not training.is_cached(augmented.config.replace(seed=1))

    # Train again: the finished seeds come from the cache (their recorded times are unchanged), the rest trains.
    before = {s: training.load_cached(baseline.config.replace(seed=s)).history["seconds"] for s in (0, 1)}
    at.button(key="aug_fit_train").click().run(timeout=300)
    assert not at.exception, at.exception
    assert not any("Stopped after" in w.value for w in at.warning)
    table = _frame(at, "gap (points)")
    assert table["variant"].tolist() == ["No regularisation"] * 2 + ["Augmentation"] * 2
    assert {s: training.load_cached(baseline.config.replace(seed=s)).history["seconds"] for s in (0, 1)} == before
    assert training.is_cached(augmented.config.replace(seed=1))
