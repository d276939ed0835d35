"""The look-inside analysis of a trained classifier, checked against independent oracles:
hand-counted confusion matrices, scipy convolutions for the activation maps, the Dense head's
own weights for the bottleneck feature space, and PIL for the upload preprocessing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy.signal import correlate2d

from cnnviz import architecture, images
from cnnviz.errors import ImageDecodeError
from cnnviz.figures import train as train_figures
from cnnviz.lessons import train as train_lesson
from cnnviz.training.results import confusion_matrix

CLASS_NAMES = tuple(f"class {i}" for i in range(4))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    y_pred = np.array([0, 1, 1, 1, 0, 2, 2, 3, 2, 3])
    matrix = confusion_matrix(y_true, y_pred, 4)
    expected = np.array([
        [1, 2, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 3, 1],
        [0, 0, 0, 1],
    ])
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == len(y_true)
    np.testing.assert_allclose(train_lesson.per_class_accuracy(matrix), [1 / 3, 1 / 2, 3 / 4, 1])
    assert train_lesson.overall_accuracy(matrix) == pytest.approx(np.mean(y_true == y_pred))


def test_per_class_accuracy_is_nan_for_a_class_without_images():
    matrix = confusion_matrix([0, 0, 1], [0, 1, 1], 3)
    accuracy = train_lesson.per_class_accuracy(matrix)
    assert accuracy[0] == 0.5 and accuracy[1] == 1.0 and np.isnan(accuracy[2])


def test_most_confused_pairs_are_the_largest_off_diagonal_cells():
    matrix = np.array([
        [50, 7, 0],
        [2, 40, 9],
        [7, 0, 30],
    ])
    pairs = train_lesson.most_confused_pairs(matrix, top=3)
    assert [(p.true_class, p.predicted_class, p.count) for p in pairs] == [(1, 2, 9), (0, 1, 7), (2, 0, 7)]
    assert pairs[0].share_of_true_class == pytest.approx(9 / 51)
    # A perfect classifier has nothing to list, and zero cells are never listed.
    assert train_lesson.most_confused_pairs(np.diag([5, 5, 5])) == []
    assert len(train_lesson.most_confused_pairs(matrix, top=10)) == 4


def test_cell_indices_are_exactly_the_images_of_that_cell():
    y_true = np.array([3, 1, 3, 3, 0, 1])
    y_pred = np.array([1, 1, 1, 3, 0, 3])
    np.testing.assert_array_equal(train_lesson.cell_indices(y_true, y_pred, 3, 1), [0, 2])
    np.testing.assert_array_equal(train_lesson.cell_indices(y_true, y_pred, 3, 3), [3])
    assert len(train_lesson.cell_indices(y_true, y_pred, 0, 2)) == 0


def test_prediction_grid_modes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    y_true = rng.integers(0, 4, 40)
    probabilities = rng.dirichlet(np.ones(4), 40)
    y_pred = probabilities.argmax(1)

    first = train_lesson.prediction_grid(images, y_true, probabilities, count=9, mode="first")
    np.testing.assert_array_equal(first.indices, np.arange(9))
    np.testing.assert_array_equal(first.images, images[:9])
    np.testing.assert_array_equal(first.correct, y_true[:9] == y_pred[:9])

    sample = train_lesson.prediction_grid(images, y_true, probabilities, count=12, mode="random", seed=5)
    assert len(set(sample.indices.tolist())) == 12
    again = train_lesson.prediction_grid(images, y_true, probabilities, count=12, mode="random", seed=5)
    np.testing.assert_array_equal(sample.indices, again.indices)

    errors = train_lesson.prediction_grid(images, y_true, probabilities, count=100, mode="errors")
    assert set(errors.indices.tolist()) == set(np.flatnonzero(y_true != y_pred).tolist())
    assert not errors.correct.any()
    assert np.all(np.diff(errors.confidence) <= 0)  # most confident mistakes first

    with pytest.raises(ValueError, match="mode"):
        train_lesson.prediction_grid(images, y_true, probabilities, mode="best")


# --------------------------------------------------------------------------------------------
# Keras models: filters, activation maps, feature space, probabilities
# --------------------------------------------------------------------------------------------

def _build(input_shape, stack):
    """A model from a layer stack through the project's one model builder."""
    from cnnviz.architecture import build_keras_model

    return build_keras_model(input_shape, stack)


BOTTLENECK_STACK = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 6, "kernel_size": 3, "activation": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 2},
    {"type": "dense", "units": 4, "activation": "softmax"},
]


@pytest.fixture(scope="module")
def bottleneck_model():
    import keras

    keras.utils.set_random_seed(1)
    return _build((12, 12, 1), BOTTLENECK_STACK)


@pytest.fixture(scope="module")
def rgb_model():
    import keras

    keras.utils.set_random_seed(2)
    return _build((10, 10, 3), [
        {"type": "conv2d", "filters": 5, "kernel_size": 3, "activation": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 3},  # logits: no softmax
    ])


def _images(shape, count=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def test_first_layer_filters_are_the_kernel_with_the_filter_axis_first(bottleneck_model, rgb_model):
    filters = train_lesson.first_layer_filters(bottleneck_model)
    kernel, bias = train_lesson.conv_layers(bottleneck_model)[0].get_weights()
    assert filters.weights.shape == (4, 3, 3, 1)
    for index in range(4):
        np.testing.assert_array_equal(filters.weights[index], kernel[..., index])
        image = filters.images[index]
        assert image.min() == pytest.approx(0) and image.max() == pytest.approx(1)
    np.testing.assert_array_equal(filters.bias, bias)
    assert not filters.is_rgb
    assert train_lesson.first_layer_filters(rgb_model).is_rgb


def test_feature_maps_of_the_first_layer_equal_a_scipy_correlation(bottleneck_model):
    image = _images((12, 12, 1), count=1, seed=4)[0]
    maps = train_lesson.feature_maps(bottleneck_model, image)
    assert [m.layer_name for m in maps] == [layer.name for layer in train_lesson.conv_layers(bottleneck_model)]
    assert maps[0].maps.shape == (10, 10, 4)  # 12 - 3 + 1 = 10, valid padding
    assert maps[1].maps.shape == (3, 3, 6)  # pooled to 5, then 5 - 3 + 1 = 3
    kernel, bias = train_lesson.conv_layers(bottleneck_model)[0].get_weights()
    x = image[..., 0].astype(np.float64) / 255.0
    for channel in range(4):
        # A Keras convolution is a cross-correlation; "valid" keeps only full windows.
        expected = np.maximum(correlate2d(x, kernel[:, :, 0, channel], mode="valid") + bias[channel], 0)
        np.testing.assert_allclose(maps[0].maps[..., channel], expected, rtol=1e-5, atol=1e-5)


def test_feature_maps_reject_a_batch_instead_of_one_image(bottleneck_model):
    with pytest.raises(ValueError, match="one image"):
        train_lesson.feature_maps(bottleneck_model, _images((12, 12, 1), count=2))


def test_feature_space_points_reproduce_the_predictions_through_the_head(bottleneck_model):
    images = _images((12, 12, 1), count=7, seed=1)
    points = train_lesson.feature_space(bottleneck_model, images)
    assert points.shape == (7, 2)
    head_kernel, head_bias = bottleneck_model.layers[-1].get_weights()
    through_head = architecture.softmax(points @ head_kernel + head_bias)
    probabilities = train_lesson.predict_probabilities(bottleneck_model, images)
    np.testing.assert_allclose(through_head, probabilities, rtol=1e-4, atol=1e-5)
    assert train_lesson.bottleneck_layer(bottleneck_model).units == 2


def test_a_net_without_bottleneck_has_no_feature_space(rgb_model):
    assert train_lesson.bottleneck_layer(rgb_model) is None
    with pytest.raises(ValueError, match="bottleneck"):
        train_lesson.feature_space(rgb_model, _images((10, 10, 3)))


def test_probabilities_apply_softmax_to_logit_outputs(rgb_model):
    images = _images((10, 10, 3), count=5, seed=2)
    probabilities = train_lesson.predict_probabilities(rgb_model, images, batch_size=2)
    logits = np.asarray(rgb_model(images.astype(np.float32) / 255.0))
    np.testing.assert_allclose(probabilities, architecture.softmax(logits), rtol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------

def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_dark_shirt_on_white_is_inverted_to_fashion_mnist_format():
    picture = Image.new("RGB", (120, 80), "white")
    picture.paste((20, 20, 20), (40, 10, 80, 70))  # a dark object in the centre
    prepared = train_lesson.prepare_upload(_png_bytes(picture), "fashion_mnist")
    assert prepared.image.shape == (28, 28, 1) and prepared.image.dtype == np.uint8
    assert prepared.inverted
    # After inversion the background (border) is black and the object is bright, as in the data.
    assert prepared.image[0].mean() < 10 and prepared.image[14, 14, 0] > 200
    assert any("inverted" in step for step in prepared.steps)
    assert any("grey" in step for step in prepared.steps)


def test_inversion_follows_the_background_and_can_be_forced():
    dark = np.zeros((28, 28), dtype=np.uint8)
    dark[8:20, 8:20] = 255
    automatic = train_lesson.preprocess_upload(dark, "mnist")
    assert not automatic.inverted
    np.testing.assert_array_equal(automatic.image[..., 0], dark)
    forced = train_lesson.preprocess_upload(dark, "mnist", invert=True)
    np.testing.assert_array_equal(forced.image[..., 0], 255 - dark)


def test_cifar_uploads_become_32_by_32_rgb_and_are_never_inverted():
    grey = Image.new("L", (64, 64), 230)
    prepared = train_lesson.prepare_upload(_png_bytes(grey), "cifar10")
    assert prepared.image.shape == (32, 32, 3)
    assert not prepared.inverted
    np.testing.assert_array_equal(prepared.image, np.full((32, 32, 3), 230, dtype=np.uint8))


def test_transparent_png_is_flattened_onto_white():
    picture = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    prepared = train_lesson.prepare_upload(_png_bytes(picture), "fashion_mnist", invert=False)
    assert prepared.image.min() == 255


@pytest.mark.parametrize("payload", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n broken"])
def test_unreadable_uploads_raise_a_readable_error(payload):
    with pytest.raises(ImageDecodeError, match="empty|not an image|damaged or truncated"):
        train_lesson.prepare_upload(payload, "fashion_mnist")


def test_huge_uploads_are_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(ImageDecodeError, match="megapixels"):
        train_lesson.prepare_upload(_png_bytes(Image.new("L", (20, 20))), "fashion_mnist")


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="Unknown dataset"):
        train_lesson.preprocess_upload(np.zeros((5, 5), np.uint8), "imagenet")


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def test_confusion_figure_counts_and_clickable_cells():
    matrix = np.array([[3, 1], [0, 4]])
    figure = train_figures.confusion_matrix_figure(matrix, ("a", "b"), selected=(0, 1))
    heatmap, cells = figure.data
    np.testing.assert_array_equal(heatmap.text, matrix)
    np.testing.assert_allclose(heatmap.z, [[0.75, 0.25], [0, 1]])
    # point_index = true * K + predicted: the page maps a clicked point back to its cell.
    assert [tuple(c) for c in cells.customdata] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(figure.layout.shapes) == 1


def test_image_grid_is_one_mosaic_with_every_image_in_place_and_errors_framed():
    images = _images((8, 8, 1), count=5)
    titles = train_figures.prediction_titles([0, 1, 2, 3, 0], [0, 2, 2, 3, 1], CLASS_NAMES)
    assert titles[0] == "class 0"
    assert titles[1] == "class 1<br>→ class 2 ✗"
    assert train_figures.prediction_titles([1], [1], CLASS_NAMES, [0.914]) == ["class 1<br>91%"]
    errors = [False, True, False, False, True]
    figure = train_figures.image_grid_figure(images, titles, errors=errors, columns=3)
    assert len(figure.data) == 1 and figure.data[0].type == "image"
    mosaic = np.asarray(figure.data[0].z)
    layout = train_figures.grid_layout(5, 8, 8, columns=3, caption_lines=2)
    assert mosaic.shape == (*layout.shape, 3)
    for index, image in enumerate(images):
        top, left = layout.origin(index)
        np.testing.assert_array_equal(mosaic[top:top + 8, left:left + 8], np.repeat(image, 3, axis=-1))
    # Captions sit just above their tiles; the two mistakes are framed and their captions coloured.
    assert [a.x for a in figure.layout.annotations] == [layout.origin(i)[1] + 3.5 for i in range(5)]
    assert len(figure.layout.shapes) == 2
    coloured = [train_figures.ERROR_COLOUR in a.text for a in figure.layout.annotations]
    assert coloured == errors
    assert train_figures.image_grid_figure(np.zeros((0, 8, 8, 1)), []).layout.annotations


def test_mosaics_keep_every_value_in_place():
    maps = np.arange(3 * 4 * 5, dtype=float).reshape(3, 4, 5)  # (H, W, channels)
    figure = train_figures.activation_maps_figure(maps, layer_name="conv2d", columns=3)
    mosaic = np.asarray(figure.data[0].z, dtype=float)
    # Channel 4 sits in row 1, column 1 of a 3-column mosaic with 1-pixel gaps.
    np.testing.assert_array_equal(mosaic[4:7, 5:9], maps[..., 4])
    assert np.isnan(mosaic[3]).all()
    filters = train_figures.filters_figure(np.random.default_rng(0).normal(size=(6, 3, 3, 1)))
    assert filters.data[0].zmid == 0
    rgb = train_figures.filters_figure(np.random.default_rng(0).normal(size=(6, 3, 3, 3)))
    assert rgb.data[0].type == "image"


def test_feature_space_and_probability_figures():
    points = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.arange(30) % 3
    figure = train_figures.feature_space_figure(points, labels, ("x", "y", "z", "unused"))
    assert [trace.name for trace in figure.data] == ["x", "y", "z"]
    assert sum(len(trace.x) for trace in figure.data) == 30
    bars = train_figures.probabilities_figure(np.array([0.1, 0.7, 0.2]), ("x", "y", "z"))
    assert list(bars.data[0].x) == [0.1, 0.7, 0.2]


def test_a_model_reloaded_from_a_keras_file_gives_the_same_maps_and_feature_space(bottleneck_model, tmp_path):
    # The engine's disk cache stores models as .keras files; the analysis must work on those too.
    import keras

    path = tmp_path / "model.keras"
    bottleneck_model.save(path)
    reloaded = keras.models.load_model(path, compile=False)
    images = _images((12, 12, 1), count=3, seed=9)
    for before, after in zip(train_lesson.feature_maps(bottleneck_model, images[0]),
                             train_lesson.feature_maps(reloaded, images[0])):
        assert before.layer_name == after.layer_name
        np.testing.assert_allclose(before.maps, after.maps, rtol=1e-6)
    np.testing.assert_allclose(train_lesson.feature_space(reloaded, images),
                               train_lesson.feature_space(bottleneck_model, images), rtol=1e-6)
    np.testing.assert_array_equal(train_lesson.first_layer_filters(reloaded).weights,
                                  train_lesson.first_layer_filters(bottleneck_model).weights)


def test_analyse_summarises_a_result_once():
    class FakeResult:
        def test_data(self):
            return np.zeros((4, 2, 2, 1), dtype=np.uint8), [0, 1, 1, 0]

        def predict_test(self):
            return np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])

        def confusion_matrix(self):
            return confusion_matrix(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), 2)

    analysis = train_lesson.analyse(FakeResult())
    np.testing.assert_array_equal(analysis.predicted, [0, 1, 0, 0])
    assert analysis.first_cell == (1, 0) and analysis.accuracy == pytest.approx(0.75)
    np.testing.assert_array_equal(analysis.cell(1, 0), [2])
    np.testing.assert_allclose(analysis.per_class_accuracy, [1.0, 0.5])
