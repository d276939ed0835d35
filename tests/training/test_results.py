"""cnnviz.training.results: the one confusion matrix, and what a TrainResult offers for download."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz import training
from cnnviz.training.results import confusion_matrix


def test_confusion_matrix_matches_a_loop_on_random_labels():
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    matrix = confusion_matrix(y_true, y_pred, 10)
    loop = np.zeros((10, 10), dtype=int)
    for t, p in zip(y_true, y_pred):
        loop[t, p] += 1
    np.testing.assert_array_equal(matrix, loop)


def test_confusion_matrix_rejects_labels_out_of_range_and_length_mismatch():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 4], [0, 1], 4)
    with pytest.raises(ValueError, match="predictions"):
        confusion_matrix([0, 1, 2], [0, 1], 4)


def test_results_download_formats(tiny_data, tiny_config):
    result = training.train(tiny_config(epochs=2), data=tiny_data)
    csv = result.history_csv().splitlines()
    assert csv[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds" and len(csv) == 3
    blob = result.model_bytes()
    assert blob[:2] == b"PK"  # a .keras file is a zip archive


def test_predictions_run_in_batches_of_at_most_the_eval_batch_and_equal_keras_on_the_whole_set(
        tiny_data, tiny_config, monkeypatch):
    # TensorFlow's convolutions keep buffers sized by the largest batch they ever saw (issue 15):
    # every forward pass over many images goes through EVAL_BATCH-sized pieces.
    from cnnviz.architecture import EVAL_BATCH, scale_images
    from cnnviz.lessons import lenet_vs_relu
    from cnnviz.lessons import train as train_lesson

    result = training.train(tiny_config(epochs=1), data=tiny_data)
    images = np.concatenate([tiny_data.x_test] * 4)[: 2 * EVAL_BATCH + 7]
    images = images[..., None] if images.ndim == 3 else images
    model, sizes = result.model, []
    real_call = type(model).__call__

    def recording_call(self, x, *args, **kwargs):
        sizes.append(len(x))
        return real_call(self, x, *args, **kwargs)
    expected = np.asarray(model(scale_images(images), training=False))
    monkeypatch.setattr(type(model), "__call__", recording_call)
    probabilities = result.predict(images)
    labels = lenet_vs_relu.predicted_labels(model, images)
    also = train_lesson.predict_probabilities(model, images)
    assert sizes and max(sizes) == EVAL_BATCH and sum(sizes) == 3 * len(images)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(also, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, np.argmax(expected, axis=1))
