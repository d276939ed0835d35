"""AppTest of app_pages/explain.py: the default model (trained tiny and cached in a fixture) is
explained at once, one test per view, the Train page's model is offered, and an untrained default
gets a Train-it button."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from plotly_arrays import plotly_array
from streamlit.testing.v1 import AppTest

from cnnviz import explain, training
from cnnviz.lessons import explain as explain_lesson
from cnnviz.lessons.train import prepare_upload
from cnnviz.training import warmup
from widgets import ui

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = str(PROJECT_ROOT / "app_pages" / "explain.py")
OTHER_LESSON_MODELS = explain_lesson.other_lesson_models  # The real one, before any monkeypatch.


@pytest.fixture(scope="module")
def tiny_default():
    """The Train page's default run at tiny size, trained once and stored in the (test) disk cache."""
    config = warmup.train_page_config(tiny=True)
    result = training.train(config)
    assert result.stopped_reason == "finished" and training.is_cached(config)
    return result


@pytest.fixture
def app(tiny_default, monkeypatch) -> AppTest:
    monkeypatch.setattr(explain_lesson, "default_config", lambda: tiny_default.config)
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert not at.exception, at.exception
    return at


def _spec(at: AppTest, key_part: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if key_part in c.proto.id]
    assert charts, f"no chart with {key_part!r}"
    return json.loads(charts[0].proto.spec)


def _heatmaps(spec: dict) -> list[np.ndarray]:
    return [plotly_array(trace["z"]) for trace in spec["data"] if trace["type"] == "heatmap"]


def test_page_opens_on_the_cached_default_model_with_every_view(app, tiny_default):
    assert app.title[0].value == "What the network looks at"
    subheaders = [s.value for s in app.subheader]
    assert subheaders[:2] == ["1 · The model", "2 · The image"]
    assert any(s.startswith("Grad-CAM") for s in subheaders)
    assert any(s.startswith("Saliency") for s in subheaders)
    assert any(s.startswith("Occlusion") for s in subheaders)
    assert any(s.startswith("Break the model") for s in subheaders)
    assert any(s.startswith("Feature visualisation") for s in subheaders)
    assert not app.error
    assert any(s.startswith("Explain training") for s in subheaders)
    assert any(s.startswith("Vanishing gradients") for s in subheaders)
    # Cached: no Train-it button.
    assert [b.key for b in app.button] == ["explain_features_button", "explain_vanishing_button"]


def test_grad_cam_view_shows_the_core_maps_for_the_chosen_class_and_the_predicted_one(app, tiny_default):
    images, labels = tiny_default.test_data()
    app.slider(key="explain_index").set_value(3).run()
    layers = explain.conv_layer_names(tiny_default.model)
    app.selectbox(key="explain_layer").set_value(layers[0])
    app.selectbox(key="explain_class").set_value(2).run()
    assert not app.exception
    chosen, predicted_map = _heatmaps(_spec(app, "explain_gradcam_chart"))
    expected = explain.grad_cam(tiny_default.model, images[3], 2, layers[0])
    np.testing.assert_allclose(chosen, explain_lesson.upsample(expected, images.shape[1:3]), atol=1e-5)
    predicted = int(np.argmax(tiny_default.predict(images[3])[0]))
    expected_predicted = explain.grad_cam(tiny_default.model, images[3], predicted, layers[0])
    np.testing.assert_allclose(predicted_map, explain_lesson.upsample(expected_predicted, images.shape[1:3]), atol=1e-5)
    names = tiny_default.class_names
    assert any(f"true class **{names[labels[3]]}**" in m.value and f"predicted **{names[predicted]}**" in m.value
               for m in app.markdown)


def test_saliency_view_shows_the_plain_and_smooth_maps(app, tiny_default):
    images, _ = tiny_default.test_data()
    app.selectbox(key="explain_class").set_value(1).run()
    plain, smooth = _heatmaps(_spec(app, "explain_saliency_chart"))
    np.testing.assert_allclose(plain, explain.saliency(tiny_default.model, images[0], 1), atol=1e-5)
    assert smooth.shape == plain.shape and smooth.max() == pytest.approx(1.0)
    assert any("SmoothGrad averages" in c.value for c in app.caption)


def test_occlusion_view_follows_its_sliders(app, tiny_default):
    images, labels = tiny_default.test_data()
    app.slider(key="explain_patch").set_value(6)
    app.slider(key="explain_stride").set_value(4).run()
    assert not app.exception
    (drops,) = _heatmaps(_spec(app, "explain_occlusion_chart"))
    assert drops.shape == ((28 - 6) // 4 + 1,) * 2
    expected = explain.occlusion(tiny_default.model, images[0], int(labels[0]), patch=6, stride=4)
    np.testing.assert_allclose(drops, expected, atol=1e-5)


class _Upload:
    def __init__(self, payload: bytes):
        self.payload = payload

    def getvalue(self) -> bytes:
        return self.payload


def test_an_upload_is_explained_and_a_broken_one_is_a_message(app, tiny_default, monkeypatch):
    app.radio(key="explain_source").set_value("upload").run()
    assert any("Upload a picture" in i.value for i in app.info)  # Meanwhile a test image.
    # AppTest cannot fill a file_uploader: the page's st.file_uploader hands it the file instead.
    picture = np.zeros((40, 40), np.uint8)
    picture[8:32, 12:28] = 220  # A light block on black, as the training images.
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    monkeypatch.setattr(st, "file_uploader", lambda *args, **kwargs: _Upload(buffer.getvalue()))
    app.run()
    assert not app.exception and not app.error
    assert any(c.value.startswith("Steps:") and "resized to 28 x 28" in c.value for c in app.caption)
    seen = prepare_upload(buffer.getvalue(), "fashion_mnist").image
    plain, _ = _heatmaps(_spec(app, "explain_saliency_chart"))
    explained = int(app.selectbox(key="explain_class").value)
    np.testing.assert_allclose(plain, explain.saliency(tiny_default.model, seen, explained), atol=1e-5)
    monkeypatch.setattr(st, "file_uploader", lambda *args, **kwargs: _Upload(b"not an image"))
    app.run()
    assert not app.exception
    assert app.error and "image" in app.error[0].value.lower()
    assert not any(s.value.startswith("Grad-CAM") for s in app.subheader)


def test_break_the_model_paints_the_square_and_predicts_again(app, tiny_default):
    images, _ = tiny_default.test_data()
    app.slider(key="explain_paint_size").set_value(14)
    app.slider(key="explain_paint_top").set_value(7)
    app.slider(key="explain_paint_left").set_value(7).run()
    assert not app.exception
    painted = images[0].copy()
    painted[7:21, 7:21] = 0
    before = tiny_default.predict(images[0])[0]
    after = tiny_default.predict(painted)[0]
    names = tiny_default.class_names
    b, a = int(np.argmax(before)), int(np.argmax(after))
    text = " ".join(m.value for m in app.markdown)
    if a != b:
        assert f"It now says **{names[a]}** ({after[a]:.0%}) instead of **{names[b]}**" in text
    else:
        assert f"Still **{names[b]}**: {before[b]:.0%} before, {after[b]:.0%} with the square." in text


def test_feature_visualisation_draws_each_filter_beside_its_most_exciting_test_images(app, tiny_default):
    assert not [c for c in app.get("plotly_chart") if "explain_features_chart" in c.proto.id]  # Waits for the button.
    app.button(key="explain_features_button").click().run()
    assert not app.exception, app.exception
    spec = _spec(app, "explain_features_chart")
    titles = [annotation["text"] for annotation in spec["layout"]["annotations"]]
    filters = min(explain_lesson.FEATURE_FILTERS, 8)
    assert len(titles) == filters * (1 + explain_lesson.TOP_IMAGES)
    assert [t.split("<br>")[0] for t in titles[::1 + explain_lesson.TOP_IMAGES]] == [f"filter {f}" for f in range(filters)]
    layer = explain.conv_layer_names(tiny_default.model)[0]
    images, _ = tiny_default.test_data()
    on_test = explain.mean_activations(tiny_default.model, layer, images)
    # The test images shown are the most exciting ones, in order.
    for f in range(filters):
        shown = [float(t.split("<br>")[1]) for t in titles[f * 4 + 1:f * 4 + 4]]
        np.testing.assert_allclose(shown, np.sort(on_test[:, f])[::-1][:3], atol=0.006)
    app.run()  # A rerun keeps the pictures without growing them again.
    assert _spec(app, "explain_features_chart")["layout"]["annotations"][0]["text"] == titles[0]


def test_the_train_page_model_is_offered_and_used(app, tiny_default, monkeypatch):
    trained = training.train(tiny_default.config.replace(seed=5))
    app.session_state["train_result"] = trained
    app.run()
    assert app.radio(key="explain_model").options == ["the network you trained on the Train page",
                                                      "the default network (ReLU CNN on Fashion-MNIST)"]
    app.radio(key="explain_model").set_value("trained").run()
    assert not app.exception
    images, _ = trained.test_data()
    (plain, _) = _heatmaps(_spec(app, "explain_saliency_chart"))[:2]
    np.testing.assert_allclose(plain, explain.saliency(trained.model, images[0], int(app.selectbox(key="explain_class").value)),
                               atol=1e-5)


def test_another_lessons_cached_model_is_offered_and_explained(tiny_default, monkeypatch, tmp_path):
    # A disk cache of this test's own: earlier tests (the presenter browser test's tiny warm-up)
    # may have cached the other lessons' tiny models in the session's cache.
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    item = warmup.page_items("augmentation", tiny=True)[0]
    monkeypatch.setattr(explain_lesson, "default_config", lambda: tiny_default.config)
    monkeypatch.setattr(explain_lesson, "other_lesson_models", lambda: OTHER_LESSON_MODELS(tiny=True))
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert "a network from another lesson" not in at.radio(key="explain_model").options  # Nothing cached yet.
    other = training.train(item.config)
    at.run()
    at.radio(key="explain_model").set_value("other").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="explain_other_model").options == ["Augmentation & regularisation: No regularisation"]
    images, _ = other.test_data()
    plain, _ = _heatmaps(_spec(at, "explain_saliency_chart"))
    explained = int(at.selectbox(key="explain_class").value)
    np.testing.assert_allclose(plain, explain.saliency(other.model, images[0], explained), atol=1e-5)


def test_an_untrained_default_gets_a_train_button_that_trains_it(tiny_default, monkeypatch):
    config = tiny_default.config.replace(seed=7)
    assert not training.is_cached(config)
    monkeypatch.setattr(explain_lesson, "default_config", lambda: config)
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert not at.exception
    assert any("not trained on this server yet" in i.value for i in at.info)
    assert not at.subheader[1:]  # Nothing to explain yet.
    at.button(key="explain_train_default").click().run()
    assert not at.exception, at.exception
    assert training.is_cached(config)
    assert any(s.value.startswith("Grad-CAM") for s in at.subheader)


def test_opening_the_page_without_a_model_does_not_import_tensorflow(tmp_path):
    script = textwrap.dedent(
        f"""
        import json, sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({PAGE!r}, default_timeout=60).run()
        print(json.dumps({{"exception": bool(at.exception), "tensorflow": "tensorflow" in sys.modules}}))
        """
    )
    import os

    env = {**os.environ, "CNNVIZ_CACHE_DIR": str(tmp_path)}  # An empty cache: the default is not trained.
    completed = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=180, check=True, env=env)
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"exception": False, "tensorflow": False}


def test_the_training_view_plots_the_recorded_gradient_norms_and_weight_histograms(app, tiny_default):
    assert app.get("plotly_chart") and not [c for c in app.get("plotly_chart") if "gradient_norms" in c.proto.id]
    trained = training.train(tiny_default.config.replace(seed=6, epochs=2, record_gradients=True))
    record = trained.training_record
    app.session_state["train_result"] = trained
    app.run()
    assert not app.exception, app.exception
    norms = _spec(app, "explain_gradient_norms")["data"]
    assert [trace["name"] for trace in norms] == record.layers
    for index, trace in enumerate(norms):
        np.testing.assert_allclose(plotly_array(trace["y"]), [row[index] for row in record.gradient_norms], rtol=1e-6)
    assert _spec(app, "explain_gradient_norms")["layout"]["yaxis"]["type"] == "log"
    app.slider(key="explain_histogram_epoch").set_value(0).run()
    bars = _spec(app, "explain_weight_histograms")["data"]
    assert [list(plotly_array(bar["y"])) for bar in bars] == [list(counts) for _, counts in record.histograms[0]]
    kernels = [layer for layer in trained.model.layers if hasattr(layer, "kernel")]
    assert [sum(plotly_array(bar["y"])) for bar in bars] == [layer.kernel.numpy().size for layer in kernels]


def test_the_vanishing_gradients_demo_runs_as_a_job_and_shows_every_seed(app, tiny_default, monkeypatch):
    settings = explain_lesson.VanishingSettings.tiny()
    app.session_state["explain_vanishing_settings"] = settings
    app.run()
    assert not [c for c in app.get("plotly_chart") if "vanishing" in c.proto.id]  # Behind the button.
    captions = " ".join(c.value for c in app.caption)
    assert f"{settings.updates:,} weight updates of {settings.batch_size} images" in captions
    assert f"about {explain_lesson.estimated_seconds(settings):.0f} s on two idle cores" in captions
    app.button(key="explain_vanishing_button").click().run()
    assert not app.exception, app.exception
    spec = _spec(app, "explain_vanishing_norms")
    norms = spec["data"]
    # Per variant: the seeds' points and their mean line at initialisation, then the same after training.
    per_variant = 2 * (len(settings.seeds) + 1)
    assert len(norms) == len(explain_lesson.DEPTH_VARIANTS) * per_variant
    assert spec["layout"]["yaxis"]["type"] == "log"
    initial = explain_lesson.initial_gradient_norms("tanh", settings).norms
    runs = training.train_seeds(explain_lesson.depth_config("tanh", settings), settings.seeds)  # from the cache
    trained = explain_lesson.trained_gradient_norms("tanh", settings, runs).norms
    np.testing.assert_allclose([plotly_array(norms[i]["y"]) for i in range(2)], initial, rtol=1e-5)
    np.testing.assert_allclose(plotly_array(norms[2]["y"]), initial.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose([plotly_array(norms[i]["y"]) for i in (3, 4)], trained, rtol=1e-5)
    np.testing.assert_allclose(plotly_array(norms[5]["y"]), trained.mean(axis=0), rtol=1e-5)
    # Initialisation and after training are told apart by the marker and the line.
    assert norms[0]["marker"]["symbol"] != norms[3]["marker"]["symbol"]
    assert norms[2]["line"]["dash"] != norms[5]["line"]["dash"]
    assert any(f"same {settings.init_images} training images" in c.value for c in app.caption)
    accuracy = _spec(app, "explain_vanishing_accuracy")["data"]
    assert len(plotly_array(accuracy[0]["y"])) == 2
    texts = [m.value for m in app.markdown if "plain, tanh" in m.value]
    assert len(texts) == 3 and all("Undecided" in text for text in texts)  # 2 seeds: compare asks for more

    # Another visitor: every network is in the disk cache now, so the results show without a click.
    ui.job_registry.clear()
    monkeypatch.setattr(explain_lesson, "default_config", lambda: tiny_default.config)
    again = AppTest.from_file(PAGE, default_timeout=180)
    again.session_state["explain_vanishing_settings"] = settings
    again.run()
    assert not again.exception, again.exception
    assert any("already trained on this server" in c.value for c in again.caption)
    assert len(_spec(again, "explain_vanishing_norms")["data"]) == len(norms)
