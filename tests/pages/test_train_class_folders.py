"""The training page on a student's own images (a zip of class folders), driven through AppTest:
the bundled example trains, every results section works on it, an upload is reported (classes,
images per class, skipped files, the imbalance warning), a bad archive gets its message, and a
re-upload of the same zip (another session, another file name) finds its trained model instead of
training again."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz import architecture, data, training
from cnnviz.data import example
from cnnviz.lessons import explain as explain_lesson
from cnnviz.lessons import train as train_lesson
from cnnviz.training import TrainConfig
from widgets import ui

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/train.py"
RESULT_SECTIONS = ["Training", "Where the network goes wrong", "Test predictions", "What the first layer looks for",
                   "Activation maps", "2-D feature space", "Try your own image", "Downloads"]


def _folders_page() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / PAGE), default_timeout=180).run()
    at.selectbox(key="train_dataset").set_value("class_folders").run()
    assert not at.exception, at.exception
    return at


def _text(at: AppTest) -> str:
    parts = [element.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
             for element in getattr(at, kind)]
    return " ".join(str(part) for part in parts).replace("\\", "")  # Markdown escapes off.


def _zip(classes: dict[str, int], extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label, (name, count) in enumerate(classes.items()):
            for index in range(count):
                png = io.BytesIO()
                Image.fromarray(np.full((10, 10), 30 + 90 * label + index % 20, np.uint8)).save(png, format="PNG")
                archive.writestr(f"pets/{name}/{index}.png", png.getvalue())
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_the_example_trains_and_every_results_section_works_on_it():
    at = _folders_page()
    assert "Upload a zip of class folders" in _text(at)  # Nothing chosen yet: the page says what to do.
    assert at.get("download_button")  # The example can be downloaded.
    at.button(key="train_folders_use_example").click().run()
    assert not at.exception, at.exception
    dataset = at.session_state["train_folders_loaded"][1]
    assert dataset.class_names == example.EXAMPLE_CLASSES and dataset.source == "class folders"
    text = _text(at)
    assert "example_shapes.zip" in text and "class folders" in text  # The source in use is named.
    # The small dataset moved the batch size and epochs from the page defaults, and said so.
    assert at.number_input(key="train_batch_size").value == 32 and "small dataset" in text.lower()
    at.slider(key="train_folders_size").set_value(28)
    at.radio(key="train_folders_colour").set_value("grayscale")
    at.number_input(key="train_epochs").set_value(1).run()
    assert at.session_state["train_folders_loaded"][1].image_shape == (28, 28, 1)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    result = at.session_state["train_result"]
    assert result.stopped_reason == "finished" and result.class_names == example.EXAMPLE_CLASSES
    headers = [element.value for element in at.subheader]
    assert headers[-len(RESULT_SECTIONS):] == RESULT_SECTIONS
    assert len(result.test_data()[1]) == sum(dataset.report.test_counts)
    # Exploring the result (another test image) works on the uploaded data without retraining.
    at.number_input(key="train_image_index").set_value(5).run()
    assert not at.exception and at.session_state["train_result"] is result

    # Another session uploads the same zip under another name: its trained model is shown at once.
    data.clear_caches()
    ui.job_registry.clear()  # The finished job is gone too (as after the server's grace period).
    again = _folders_page()
    again.file_uploader(key="train_folders_upload").set_value(
        ("my shapes.zip", example.EXAMPLE_ZIP.read_bytes(), "application/zip")).run()
    again.slider(key="train_folders_size").set_value(28)
    again.radio(key="train_folders_colour").set_value("grayscale")
    again.number_input(key="train_epochs").set_value(1).run()
    assert not again.exception, again.exception
    assert again.session_state["train_folders_loaded"][1].name == result.config.dataset
    assert "my shapes.zip" in _text(again)
    cached = again.session_state["train_result"]
    assert cached.from_cache and cached.config.key() == result.config.key()


def test_the_explain_page_explains_a_model_trained_on_the_example(monkeypatch):
    dataset = data.load_image_folder(example.EXAMPLE_ZIP.read_bytes(), image_size=28, color_mode="grayscale")
    hyper = {**train_lesson.DEFAULT_HYPERPARAMETERS, "batch_size": 32, "epochs": 1, "record_gradients": False}
    config = TrainConfig.from_stack(architecture.stack_for("fashion_relu_cnn", dataset.image_shape, 3),
                                    dataset=dataset.name, limit_train=None, limit_test=None, **hyper)
    trained = training.train(config, data=dataset, use_cache=True)  # The first test's model, from the cache.
    # The explain page's own default model would be Fashion-MNIST's; here it is the same example model.
    monkeypatch.setattr(explain_lesson, "default_config", lambda: config)
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages/explain.py"), default_timeout=180)
    at.session_state["train_result"] = trained
    at.run()
    at.radio(key="explain_model").set_value("trained").run()
    assert not at.exception, at.exception
    headers = [element.value for element in at.subheader]
    assert any(header.startswith("Grad-CAM") for header in headers), headers
    assert any(header.startswith("Saliency") for header in headers)


def test_an_upload_is_reported_and_a_bad_archive_explained():
    at = _folders_page()
    raw = _zip({"cats": 300, "dogs": 12, "hamsters": 6}, {"pets/cats/notes.txt": b"hi"})
    at.file_uploader(key="train_folders_upload").set_value(("pets.zip", raw, "application/zip")).run()
    assert not at.exception, at.exception
    errors = " ".join(element.value for element in at.error)
    assert "'hamsters'" in errors and "only 6 readable images" in errors
    assert "train_start" not in [button.key for button in at.button]  # The page stopped at the message.

    raw = _zip({"cats": 500, "dogs": 10, "hamsters": 12}, {"pets/cats/notes.txt": b"hi"})
    at.file_uploader(key="train_folders_upload").set_value(("pets.zip", raw, "application/zip")).run()
    assert not at.exception, at.exception
    warnings = " ".join(element.value for element in at.warning)
    assert "'cats' has 500 images, 50 times as many as 'dogs'" in warnings
    table = at.dataframe[0].value
    assert list(table["class"]) == ["cats", "dogs", "hamsters"]
    assert list(table["training images"] + table["test images"]) == [500, 10, 12]
    assert "pets.zip" in _text(at)
    skipped = at.dataframe[1].value
    assert list(skipped["file"]) == ["pets/cats/notes.txt"] and list(skipped["why"]) == ["not an image file (.txt)"]


def test_the_calculator_offers_the_shape_of_the_uploaded_images():
    dataset = data.load_image_folder(_zip({"cats": 12, "dogs": 12}), image_size=(40, 36), color_mode="grayscale")
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages/calculator.py"), default_timeout=60).run()
    assert "calc_own_shape" not in [button.key for button in at.button]  # Nothing uploaded: nothing offered.
    at.session_state["train_folders_loaded"] = (("upload", "x"), dataset)  # As the train page keeps it.
    at.run()
    at.button(key="calc_own_shape").click().run()
    assert not at.exception, at.exception
    shape = [at.number_input(key=key).value for key in ("calc_height", "calc_width", "calc_channels")]
    assert shape == [40, 36, 1]


def test_the_augmentation_preview_uses_the_zip_read_on_the_train_page():
    dataset = data.load_image_folder(_zip({"cats": 12, "dogs": 12}), image_size=28, color_mode="grayscale")
    at = AppTest.from_file(str(PROJECT_ROOT / "app_pages/augmentation.py"), default_timeout=60)
    at.session_state["train_folders_loaded"] = (("upload", "x", 28, "grayscale", 20, 0), dataset)
    at.run()
    at.selectbox(key="aug_dataset").set_value("class_folders").run()
    assert not at.exception, at.exception
    # Back on another page, the options of the zip read earlier are restored and the zip is used again.
    assert at.slider(key="train_folders_size").value == 28 and at.radio(key="train_folders_colour").value == "grayscale"
    text = _text(at)
    label = dataset.class_names[int(dataset.y_test[0])]
    assert f"Your images (2 classes, 28×28 grey) sample 0: {label}" in text and "Upload a zip" not in text
    # Other settings would need the zip again: the page says so instead of failing.
    at.slider(key="train_folders_size").set_value(40).run()
    assert not at.exception and "Upload the zip again" in _text(at)


def test_a_class_folder_in_the_servers_data_folder_is_offered(monkeypatch, tmp_path):
    root = tmp_path / "data"
    for label, name in enumerate(("roses", "tulips")):
        for index in range(12):
            folder = root / "flowers" / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((9, 9, 3), 40 + 100 * label, np.uint8)).save(folder / f"{index}.png")
    (root / "notes").mkdir()  # A folder without class folders is not offered.
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(root))
    at = _folders_page()
    picker = at.selectbox(key="train_folders_server_folder")
    assert picker.options == ["none", "flowers"]
    picker.set_value("flowers").run()
    assert not at.exception, at.exception
    dataset = at.session_state["train_folders_loaded"][1]
    assert dataset.class_names == ("roses", "tulips") and dataset.report.what == str(root / "flowers")
