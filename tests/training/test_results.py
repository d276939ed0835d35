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
