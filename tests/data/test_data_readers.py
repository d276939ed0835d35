"""The file readers (cnnviz.data.readers): IDX files and pickled CIFAR batches."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from dataset_files import cifar_batch_bytes, idx_bytes, write_cifar_batches, write_idx_folder

from cnnviz import data
from cnnviz.data import readers

pytestmark = pytest.mark.usefixtures("isolated")


# ---------------------------------------------------------------------------------------------
# IDX files (Fashion-MNIST, MNIST).
# ---------------------------------------------------------------------------------------------


def test_parse_idx_reads_images_and_labels_without_copying():
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    parsed = readers.parse_idx(idx_bytes(images), magic=readers.IDX_IMAGES_MAGIC)
    np.testing.assert_array_equal(parsed, images)
    assert parsed.dtype == np.uint8 and not parsed.flags.owndata
    labels = readers.parse_idx(idx_bytes(np.array([3, 1, 4], np.uint8)), magic=readers.IDX_LABELS_MAGIC)
    np.testing.assert_array_equal(labels, [3, 1, 4])


def _corrupt(folder: Path, case: str) -> str:
    """Damage one file of an uncompressed IDX folder; returns a phrase the error must contain."""
    train_images = folder / "train-images-idx3-ubyte"
    train_labels = folder / "train-labels-idx1-ubyte"
    if case == "wrong magic":
        # Swapped files: the labels file stands where the images file should be.
        images, labels = train_images.read_bytes(), train_labels.read_bytes()
        train_images.write_bytes(labels)
        train_labels.write_bytes(images)
        return "magic number 2049"
    if case == "truncated":
        train_images.write_bytes(train_images.read_bytes()[:-100])
        return "truncated"
    if case == "truncated header":
        train_images.write_bytes(train_images.read_bytes()[:10])
        return "truncated"
    if case == "trailing bytes":
        train_images.write_bytes(train_images.read_bytes() + b"\0" * 7)
        return "7 unexpected bytes"
    if case == "count mismatch":
        train_labels.write_bytes(idx_bytes(np.zeros(39, np.uint8)))
        return "39 labels"
    if case == "wrong image size":
        train_images.write_bytes(idx_bytes(np.zeros((40, 27, 28), np.uint8)))
        return "28x28"
    if case == "labels out of range":
        train_labels.write_bytes(idx_bytes(np.full(40, 12, np.uint8)))
        return "labels are 0 to 9"
    if case == "damaged gzip":
        raw = gzip.compress(train_images.read_bytes())
        train_images.unlink()
        (folder / "train-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
        return "gzip"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["wrong magic", "truncated", "truncated header", "trailing bytes",
                                  "count mismatch", "wrong image size", "labels out of range",
                                  "damaged gzip"])
def test_corrupt_idx_files_are_rejected_with_a_clear_error(tmp_path, monkeypatch, case):
    folder = tmp_path / "fashion-mnist"
    write_idx_folder(folder, gz=False)
    expected = _corrupt(folder, case)
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DatasetFormatError, match=expected) as caught:
        data.load("fashion_mnist")
    # A format error is both a ValueError and something pages show like a missing dataset.
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, data.DatasetUnavailable)


# ---------------------------------------------------------------------------------------------
# Pickled CIFAR-10 batches.
# ---------------------------------------------------------------------------------------------


def test_cifar_batches_are_read_into_nhwc(tmp_path, monkeypatch):
    x_train, y_train, x_test, y_test = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    dataset = data.load("cifar10")
    assert dataset.source == "local" and "pickled" in dataset.note
    assert dataset.x_train.shape == (50, 32, 32, 3) and dataset.image_shape == (32, 32, 3)
    np.testing.assert_array_equal(dataset.x_train, x_train)
    np.testing.assert_array_equal(dataset.y_train, y_train)
    np.testing.assert_array_equal(dataset.x_test, x_test)
    np.testing.assert_array_equal(dataset.y_test, y_test)
    assert dataset.class_names[0] == "airplane" and dataset.class_names[9] == "truck"


def test_cifar_row_layout_is_red_then_green_then_blue_planes():
    # One image whose red plane is 1, green plane 2, blue plane 3, written by hand as a row.
    row = np.concatenate([np.full(1024, 1), np.full(1024, 2), np.full(1024, 3)]).astype(np.uint8)
    raw = pickle.dumps({b"data": row[None, :], b"labels": [7]}, protocol=2)
    images, labels = readers.parse_cifar_batch(raw)
    assert images.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(images[0, 5, 9], [1, 2, 3])
    np.testing.assert_array_equal(labels, [7])


class _Gadget:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize("payload, expected", [
    (pickle.dumps({b"labels": [1]}), "lacks the keys data"),
    (pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [1, 2]}), "3,072"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "2 images but 1 labels"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]})[:-40], "not a readable"),
    (pickle.dumps([1, 2, 3]), "not a CIFAR batch"),
    (pickle.dumps({b"data": _Gadget(), b"labels": []}), "posix.getcwd|os.getcwd"),
])
def test_bad_cifar_batches_are_rejected(payload, expected):
    with pytest.raises(data.DatasetFormatError, match=expected):
        readers.parse_cifar_batch(payload)


def test_cifar_labels_out_of_range_are_rejected(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder)
    images = np.zeros((3, 32, 32, 3), np.uint8)
    (folder / "test_batch").write_bytes(cifar_batch_bytes(images, [0, 10, 1]))
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DatasetFormatError, match="labels are 0 to 9"):
        data.load("cifar10")
