"""The drawing pad on its two pages through AppTest: the Train page's "Draw one" (prediction,
probabilities and Grad-CAM of the predicted class) and the explain page's "a drawing" (every view
explains the drawing).

AppTest cannot drive a component, so a test puts a drawing where the pad keeps its value: the
component's state in `st.session_state[key]` (`widgets.ui.drawing_pad`), with the PNG the browser
would send. The expected numbers come from the core (`prepare_drawing`, tested against scipy in
tests/lessons/test_drawing.py) and the model itself, not from the page.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plotly_arrays import plotly_array
from streamlit.testing.v1 import AppTest

from cnnviz import explain, training
from cnnviz.lessons import explain as explain_lesson
from cnnviz.lessons import train as train_lesson
from cnnviz.training import TrainConfig, warmup

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRAIN_PAGE = str(PROJECT_ROOT / "app_pages" / "train.py")
EXPLAIN_PAGE = str(PROJECT_ROOT / "app_pages" / "explain.py")


def _drawing(*boxes, side: int = 280) -> np.ndarray:
    """The pad's RGBA picture: white rectangles (top, bottom, left, right) on black."""
    canvas = np.zeros((side, side, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    for top, bottom, left, right in boxes:
        canvas[top:bottom, left:right, :3] = 255
    return canvas


def pad_state(canvas: np.ndarray, *, objects: int = 1) -> dict:
    """What the pad's component holds after `objects` strokes that produced `canvas` (see `ui.drawing_pad`)."""
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"drawing": {"raw": {"objects": [{"type": "Path"}] * objects}, "data": url}, "backgroundFit": None}


TROUSERS = _drawing((40, 250, 90, 125), (40, 250, 155, 190), (40, 80, 90, 190))  # Two legs and a waist.


def _spec(at: AppTest, key_part: str) -> dict:
    charts = [chart for chart in at.get("plotly_chart") if key_part in chart.proto.id]
    assert charts, f"no chart with {key_part!r}"
    return json.loads(charts[0].proto.spec)


def _traces(spec: dict, kind: str) -> list[np.ndarray]:
    return [plotly_array(trace["z"]) for trace in spec["data"] if trace["type"] == kind]


def _bars(spec: dict) -> np.ndarray:
    (bar,) = [trace for trace in spec["data"] if trace["type"] == "bar"]
    return plotly_array(bar["x"])


@pytest.fixture(scope="module")
def tiny_default():
    """The Train page's default run at tiny size, trained once and stored in the (test) disk cache."""
    config = warmup.train_page_config(tiny=True)
    result = training.train(config)
    assert result.stopped_reason == "finished"
    return result


def _train_page_with(result) -> AppTest:
    at = AppTest.from_file(TRAIN_PAGE, default_timeout=120)
    at.session_state["train_result"] = result  # As after pressing Train: the page shows this model.
    return at.run()


# --------------------------------------------------------------------------------------------
# Train page: "Draw one"
# --------------------------------------------------------------------------------------------

def test_train_page_draw_predicts_the_drawing_and_shows_grad_cam_of_the_predicted_class(tiny_default):
    at = _train_page_with(tiny_default)
    assert not at.exception, at.exception
    assert [tab.label for tab in at.tabs] == ["Upload a picture", "Draw one"]
    assert any("Draw something on the pad" in info.value for info in at.info)

    at.session_state["train_drawing"] = pad_state(TROUSERS)
    at.run()
    assert not at.exception, at.exception
    assert not at.error
    seen = train_lesson.prepare_drawing(TROUSERS, "fashion_mnist").image
    expected = tiny_default.predict(seen)[0]
    np.testing.assert_allclose(_bars(_spec(at, "train_draw_probabilities")), expected, atol=1e-5)
    predicted = int(np.argmax(expected))
    name = tiny_default.class_names[predicted]
    assert any(m.value == f"Prediction: **{name}** ({expected[predicted]:.0%})" for m in at.markdown)
    assert any(c.value.startswith("Steps: strokes cropped") and "centre of mass" in c.value for c in at.caption)

    gradcam = _spec(at, "train_draw_gradcam")
    (picture,) = _traces(gradcam, "image")
    np.testing.assert_array_equal(picture[..., 0], seen[..., 0])  # The image the network saw.
    (overlay,) = _traces(gradcam, "heatmap")
    expected_map = explain.grad_cam(tiny_default.model, seen, predicted)
    np.testing.assert_allclose(overlay, explain_lesson.upsample(expected_map, seen.shape[:2]), atol=1e-5)
    assert gradcam["layout"]["annotations"][0]["text"] == f"why {name}?"
    # Drawing never retrains: the same model.
    assert at.session_state["train_result"] is tiny_default


def test_train_page_draw_of_strokes_too_faint_to_count_says_so(tiny_default):
    at = _train_page_with(tiny_default)
    faint = _drawing()
    faint[100:120, 100:120, :3] = 20  # Below the ink level: nothing drawn.
    at.session_state["train_drawing"] = pad_state(faint)
    at.run()
    assert not at.exception, at.exception
    assert any("Nothing is drawn yet" in info.value for info in at.info)
    assert not [chart for chart in at.get("plotly_chart") if "train_draw" in chart.proto.id]


def test_train_page_draw_without_convolutions_predicts_but_has_no_grad_cam():
    config = TrainConfig.from_stack([{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}],
                                    dataset="fashion_mnist", limit_train=200, limit_test=100, epochs=1,
                                    batch_size=64, seed=0)
    result = training.train(config)
    at = _train_page_with(result)
    at.session_state["train_drawing"] = pad_state(TROUSERS)
    at.run()
    assert not at.exception, at.exception
    seen = train_lesson.prepare_drawing(TROUSERS, "fashion_mnist").image
    np.testing.assert_allclose(_bars(_spec(at, "train_draw_probabilities")), result.predict(seen)[0], atol=1e-5)
    assert any("no Grad-CAM to show" in c.value for c in at.caption)
    assert not [chart for chart in at.get("plotly_chart") if "train_draw_gradcam" in chart.proto.id]


# --------------------------------------------------------------------------------------------
# Explain page: "a drawing"
# --------------------------------------------------------------------------------------------

@pytest.fixture
def explain_app(tiny_default, monkeypatch) -> AppTest:
    monkeypatch.setattr(explain_lesson, "default_config", lambda: tiny_default.config)
    at = AppTest.from_file(EXPLAIN_PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def test_explain_page_explains_a_drawing_in_every_view(explain_app, tiny_default):
    at = explain_app
    at.radio(key="explain_source").set_value("draw").run()
    assert not at.exception, at.exception
    assert any("Draw on the pad" in info.value for info in at.info)  # Meanwhile a test image.

    at.session_state["explain_drawing"] = pad_state(TROUSERS)
    at.run()
    assert not at.exception, at.exception
    assert not at.error
    seen = train_lesson.prepare_drawing(TROUSERS, "fashion_mnist").image
    model = tiny_default.model
    assert any(c.value.startswith("Steps: strokes cropped") for c in at.caption)
    np.testing.assert_allclose(_bars(_spec(at, "explain_probabilities")), tiny_default.predict(seen)[0], atol=1e-5)
    explained = int(at.selectbox(key="explain_class").value)
    chosen, _ = _traces(_spec(at, "explain_gradcam_chart"), "heatmap")
    np.testing.assert_allclose(chosen, explain_lesson.upsample(explain.grad_cam(model, seen, explained), (28, 28)),
                               atol=1e-5)
    plain, _ = _traces(_spec(at, "explain_saliency_chart"), "heatmap")
    np.testing.assert_allclose(plain, explain.saliency(model, seen, explained), atol=1e-5)
    (drops,) = _traces(_spec(at, "explain_occlusion_chart"), "heatmap")
    np.testing.assert_allclose(drops, explain.occlusion(model, seen, explained, patch=4, stride=2), atol=1e-5)
    # No true class for a drawing.
    assert not any("true class **" in m.value for m in at.markdown)


def test_explain_page_with_an_empty_pad_explains_a_test_image_meanwhile(explain_app, tiny_default):
    at = explain_app
    at.radio(key="explain_source").set_value("draw")
    at.session_state["explain_drawing"] = pad_state(_drawing())  # Strokes drawn, then all painted black.
    at.run()
    assert not at.exception, at.exception
    assert any("Nothing is drawn yet" in info.value for info in at.info)
    images, _ = tiny_default.test_data()
    np.testing.assert_allclose(_bars(_spec(at, "explain_probabilities")), tiny_default.predict(images[0])[0],
                               atol=1e-5)
