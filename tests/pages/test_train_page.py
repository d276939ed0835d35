"""The training page driven through AppTest: a small configuration trains through to every results
section, exploring the result never retrains, and bad settings give messages instead of tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.lessons import train as train_lesson
from cnnviz.training.results import confusion_matrix

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/train.py"
RESULT_SECTIONS = ["Training", "Where the network goes wrong", "Test predictions", "What the first layer looks for",
                   "Activation maps", "2-D feature space", "Try your own image", "Downloads"]


def _page() -> AppTest:
    return AppTest.from_file(str(PROJECT_ROOT / PAGE), default_timeout=180).run()


def _small(at: AppTest, *, train: int = 300, test: int = 100, epochs: int = 1, batch: int = 64) -> AppTest:
    at.number_input(key="train_limit_train").set_value(train)
    at.number_input(key="train_limit_test").set_value(test)
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_batch_size").set_value(batch)
    return at.run()


def _subheaders(at: AppTest) -> list[str]:
    return [element.value for element in at.subheader]


def _messages(at: AppTest) -> str:
    return " ".join(str(element.value) for element in list(at.error) + list(at.warning))


def test_page_opens_with_settings_and_no_results_yet():
    at = _page()
    assert not at.exception
    assert at.title[0].value == "Train a small CNN"
    assert _subheaders(at) == ["1 · Data", "2 · Architecture", "3 · Hyper-parameters"]
    # The default network is the seeds' ReLU CNN with its published parameter count.
    assert any("38,254 parameters" in element.value for element in at.markdown)
    assert not at.button(key="train_start").disabled
    assert any("Press **Train**" in element.value for element in at.info)


def test_opening_the_page_does_not_import_tensorflow():
    script = textwrap.dedent(
        f"""
        import json, sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(PROJECT_ROOT / PAGE)!r}, default_timeout=60).run()
        print(json.dumps({{"exception": bool(at.exception), "tensorflow": "tensorflow" in sys.modules}}))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=180, check=True)
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"exception": False, "tensorflow": False}


def test_presets_are_retargeted_to_the_dataset_and_show_their_size():
    at = _page()
    at.selectbox(key="train_preset").set_value("bottleneck_cnn").run()
    assert not at.exception
    from cnnviz import architecture

    expected = architecture.totals(architecture.summarize(
        (28, 28, 1), architecture.stack_for("bottleneck_cnn", (28, 28, 1), 10))).params
    assert any(f"{expected:,} parameters" in element.value for element in at.markdown)
    # A custom stack starts as a copy of the preset chosen just before.
    at.selectbox(key="train_preset").set_value("custom").run()
    assert not at.exception
    assert any(f"{expected:,} parameters" in element.value for element in at.markdown)


@pytest.mark.slow
def test_small_training_run_reaches_every_results_section_and_exploring_does_not_retrain():
    at = _small(_page())
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert _subheaders(at)[3:] == RESULT_SECTIONS
    result = at.session_state["train_result"]
    assert result.stopped_reason == "finished"
    assert result.epochs_completed == 1
    assert len(result.test_data()[1]) == 100
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Test accuracy"] == f"{result.test_accuracy:.1%}"
    assert metrics["Epochs"] == "1 / 1"

    # Choosing a confusion-matrix cell lists exactly that cell's test images.
    images, labels = result.test_data()
    predicted = result.predict_test().argmax(axis=1)
    confusion = confusion_matrix(labels, predicted, 10)
    true_class, predicted_class = np.unravel_index(np.argmax(confusion), confusion.shape)
    at.selectbox(key="train_cell_true").set_value(int(true_class))
    at.selectbox(key="train_cell_predicted").set_value(int(predicted_class)).run()
    assert not at.exception
    count = int(confusion[true_class, predicted_class])
    names = result.class_names
    assert any(element.value.startswith(f"**{count} {names[true_class]} test image(s) predicted as "
                                        f"{names[predicted_class]}**") for element in at.markdown)

    # Another test image for the activation maps: still the same trained model, no new training.
    at.number_input(key="train_image_index").set_value(7).run()
    assert not at.exception
    assert at.session_state["train_result"] is result
    # One activation-map figure per convolution layer, titled with the layer's output shape.
    titles = [json.loads(chart.proto.spec)["layout"].get("title", {}).get("text", "")
              for chart in at.get("plotly_chart")]
    for layer in train_lesson.conv_layers(result.model):
        height, width, channels = layer.output.shape[1:]
        assert f"{layer.name}: {height}×{width}×{channels}" in titles
    # The ReLU CNN has no bottleneck: the page says so instead of drawing a feature space.
    assert any("2-unit Dense bottleneck" in element.value for element in at.info)


@pytest.mark.slow
def test_the_first_click_says_tensorflow_is_loading_and_the_result_reports_the_wait(tmp_path):
    # A fresh process (TensorFlow not loaded yet) and an empty disk cache, so the click really trains.
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(PROJECT_ROOT / PAGE)!r}, default_timeout=300).run()
        for key, value in (("train_limit_train", 300), ("train_limit_test", 100), ("train_epochs", 1)):
            at.number_input(key=key).set_value(value)
        at.run()
        before = "tensorflow" in sys.modules
        start = time.monotonic()
        at.button(key="train_start").click().run()
        outside = time.monotonic() - start
        print(json.dumps({{
            "before": before, "outside": outside,
            "toasts": [str(element.value) for element in at.toast],
            "training": [m.value for m in at.metric if m.label == "Training time"],
            "captions": [element.value for element in at.caption],
            "exception": [str(element.value) for element in at.exception],
        }}))
        """
    )
    env = dict(os.environ, CNNVIZ_CACHE_DIR=str(tmp_path / "cache"))
    completed = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["exception"] == [] and result["before"] is False
    assert any(toast.startswith("Loading TensorFlow…") for toast in result["toasts"])
    (training_time,) = result["training"]
    (waited,) = [caption for caption in result["captions"] if caption.startswith("You waited ")]
    waited_seconds = float(waited.split()[2])
    # The wait counts from the click: at least the training itself, at most what this test measured
    # around the click (plus the rounding of both to 0.1 s).
    assert float(training_time.split()[0]) - 0.05 <= waited_seconds <= result["outside"] + 0.05


def test_no_tensorflow_notice_once_it_is_loaded(monkeypatch):
    # Once TensorFlow is in the process, a click does not claim to load it; nothing is trained here
    # (the result is mocked), so only the notice is checked.
    import types

    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    from widgets import ui

    monkeypatch.setattr(ui, "train_with_progress", lambda *args, **kwargs: None)
    at = _page()
    at.button(key="train_start").click().run()
    assert not at.exception
    assert not [toast for toast in at.toast if "TensorFlow" in str(toast.value)]


@pytest.mark.slow
def test_bottleneck_net_shows_its_feature_space():
    at = _page()
    at.selectbox(key="train_preset").set_value("bottleneck_cnn")
    at = _small(at)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert not any("2-unit Dense bottleneck" in element.value for element in at.info)
    assert any("squeezed to two numbers" in element.value for element in at.caption)


@pytest.mark.slow
def test_a_learning_rate_of_ten_ends_with_a_message_not_a_traceback():
    at = _page()
    at.number_input(key="train_learning_rate").set_value(10.0)
    at = _small(at)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    # The engine stops the run as diverged (not "finished" at chance accuracy)...
    assert at.session_state["train_result"].stopped_reason == "diverged"
    # ...and the student is told so, with the advice to lower the learning rate.
    errors = " ".join(str(element.value) for element in at.error)
    assert "Training diverged" in errors and "ten times smaller" in errors
    assert "hardly better than guessing" not in _messages(at)
    # A diverged model is not analysed: no results sections below the summary.
    assert not set(RESULT_SECTIONS[1:]) & set(_subheaders(at))
    # The next rerun (any widget) still says why, naming the rate that was too large.
    at.run()
    assert not at.exception, at.exception
    errors = " ".join(str(element.value) for element in at.error)
    assert "Training diverged" in errors and "ten times smaller" in errors


def test_a_batch_larger_than_the_training_set_is_refused_before_training():
    at = _small(_page(), train=100, batch=256)
    assert not at.exception
    assert "larger than the training set" in _messages(at)
    assert at.button(key="train_start").disabled


def test_zero_epochs_is_refused():
    at = _page()
    at.number_input(key="train_epochs").set_value(0).run()
    assert not at.exception
    assert "at least one epoch" in _messages(at)
    assert at.button(key="train_start").disabled


def test_an_impossible_custom_stack_is_explained():
    at = _page()
    at.selectbox(key="train_preset").set_value("custom").run()
    assert not at.exception
    # The custom stack starts as the dataset's default network, so it can train straight away.
    assert any("38,254 parameters" in element.value for element in at.markdown)
    assert not at.button(key="train_start").disabled
    too_big = [{"type": "conv2d", "filters": 4, "kernel_size": 40}, {"type": "flatten"},
               {"type": "dense", "units": 10, "activation": "softmax"}]
    at.text_area(key="train_stack_json").set_value(json.dumps(too_big)).run()
    assert not at.exception
    assert "cannot work" in _messages(at)
    assert at.button(key="train_start").disabled
    wrong_head = {"input_shape": [28, 28, 1],
                  "layers": [{"type": "flatten"}, {"type": "dense", "units": 3, "activation": "softmax"}]}
    at.text_area(key="train_stack_json").set_value(json.dumps(wrong_head)).run()
    assert not at.exception
    assert "10 units" in _messages(at)
    unflattened = [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "dense", "units": 10}]
    at.text_area(key="train_stack_json").set_value(json.dumps(unflattened)).run()
    assert "put a Flatten" in _messages(at)
    relu_head = [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "relu"}]
    at.text_area(key="train_stack_json").set_value(json.dumps(relu_head)).run()
    assert "softmax" in _messages(at)
    at.text_area(key="train_stack_json").set_value("[{").run()
    assert not at.exception
    assert "not valid JSON" in _messages(at)
    small = [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]
    at.text_area(key="train_stack_json").set_value(json.dumps(small)).run()
    assert not _messages(at)
    assert any("7,850 parameters" in element.value for element in at.markdown)  # (784 + 1) * 10
    assert not at.button(key="train_start").disabled


@pytest.mark.slow
def test_a_custom_stack_without_convolutions_trains_and_says_what_it_cannot_show():
    at = _page()
    at.selectbox(key="train_preset").set_value("custom").run()
    small = [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]
    at.text_area(key="train_stack_json").set_value(json.dumps(small))
    at = _small(at)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert at.session_state["train_result"].stopped_reason == "finished"
    infos = " ".join(element.value for element in at.info)
    assert "no convolution layer" in infos and "2-unit Dense bottleneck" in infos


def test_full_data_uses_every_image_of_the_source():
    at = _page()
    at.checkbox(key="train_full_data").check().run()
    assert not at.exception
    assert at.number_input(key="train_limit_train").disabled
    from cnnviz import data

    full = data.load("fashion_mnist")
    assert any(f"({len(full.x_train):,} training / {len(full.x_test):,} test images)" in element.value
               for element in at.caption)


def _without_mnist_and_cifar(monkeypatch, tmp_path) -> None:
    """A machine offline with an empty data folder and an empty Keras cache: only the bundled
    Fashion-MNIST sample can load (the independent check is `data.source_status`)."""
    from cnnviz import data

    for folder in ("data", "keras"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    assert [name for name in data.DATASETS if data.source_status(name).source is None] == ["mnist", "cifar10"]


def test_datasets_that_cannot_load_are_not_offered_and_the_picker_says_why(monkeypatch, tmp_path):
    _without_mnist_and_cifar(monkeypatch, tmp_path)
    at = _page()
    assert not at.exception
    picker = at.selectbox(key="train_dataset")
    # The student's own images are always offered (tests/pages/test_train_class_folders.py).
    assert picker.options == ["Fashion-MNIST", "Your own images (zip of class folders)"]
    assert picker.value == "fashion_mnist"
    (note,) = [element.value for element in at.caption if "Not offered on this server" in element.value]
    assert "MNIST digits and CIFAR-10" in note
    assert "MNIST is not available" in note and "CIFAR-10 is not available" in note
    assert "CNNVIZ\\_OFFLINE=1" in note or "CNNVIZ_OFFLINE=1" in note  # The reason, escaped for markdown.
    assert not at.error and not at.warning  # Nothing fails, before or after a choice.
    assert _subheaders(at) == ["1 · Data", "2 · Architecture", "3 · Hyper-parameters"]


def test_a_link_to_a_dataset_that_cannot_load_falls_back_with_a_warning(monkeypatch, tmp_path):
    _without_mnist_and_cifar(monkeypatch, tmp_path)
    at = AppTest.from_file(str(PROJECT_ROOT / PAGE), default_timeout=180)
    at.query_params["train_dataset"] = "cifar10"
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="train_dataset").value == "fashion_mnist"
    (warning,) = [str(element.value) for element in at.warning]
    assert "The link chose **CIFAR-10**" in warning and "CIFAR-10 is not available" in warning
    assert "2 · Architecture" in _subheaders(at)


@pytest.mark.slow
def test_a_new_model_with_fewer_test_images_keeps_the_chosen_image_in_range():
    at = _small(_page(), test=120)
    at.button(key="train_start").click().run()
    at.number_input(key="train_image_index").set_value(110).run()
    assert not at.exception
    at = _small(at, test=60)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="train_image_index").value == 59


@pytest.mark.slow
def test_the_cell_viewer_opens_on_the_most_confused_pair_of_each_new_model():
    at = _small(_page())
    at.button(key="train_start").click().run()
    result = at.session_state["train_result"]
    images, labels = result.test_data()
    confusion = confusion_matrix(labels, result.predict_test().argmax(axis=1), 10)
    top = train_lesson.most_confused_pairs(confusion, top=1)[0]
    assert (at.selectbox(key="train_cell_true").value, at.selectbox(key="train_cell_predicted").value) == (
        top.true_class, top.predicted_class)
    at.selectbox(key="train_cell_true").set_value((top.true_class + 1) % 10).run()
    at.number_input(key="train_seed").set_value(1)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    result = at.session_state["train_result"]
    assert result.config.seed == 1
    images, labels = result.test_data()
    confusion = confusion_matrix(labels, result.predict_test().argmax(axis=1), 10)
    top = train_lesson.most_confused_pairs(confusion, top=1)[0]
    assert at.selectbox(key="train_cell_true").value == top.true_class


@pytest.mark.slow
def test_presenter_mode_enlarges_grid_captions_and_leaves_room_for_them():
    from cnnviz.figures.style import PRESENTER_FONT_SIZE

    at = _page()
    at.session_state["presenter_mode"] = True
    at = _small(at)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    grids = [spec for spec in specs if spec["data"] and spec["data"][0]["type"] == "image"
             and len(spec["layout"].get("annotations", [])) == 24]
    assert len(grids) == 1
    layout = grids[0]["layout"]
    first_caption = layout["annotations"][0]
    assert first_caption["font"]["size"] == PRESENTER_FONT_SIZE - 2
    # Blank rows above the first tile (its top is just below the caption) times screen pixels per row
    # must hold the two caption lines at the presenter font size.
    z = grids[0]["data"][0]["z"]  # plotly sends arrays as {"dtype", "bdata", "shape": "H, W, 3"}
    mosaic_rows = int(str(z["shape"]).split(",")[0]) if isinstance(z, dict) else len(z)
    pixels_per_row = (layout["height"] - 8) / mosaic_rows
    caption_rows = first_caption["y"] + 0.5
    assert caption_rows * pixels_per_row >= 2 * first_caption["font"]["size"]
