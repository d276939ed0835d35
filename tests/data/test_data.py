"""The dataset layer on small files that the tests write themselves.

IDX files are written with `struct`, CIFAR batches with `pickle` in the original layout
(rows of 1,024 red, 1,024 green, 1,024 blue values), image folders with Pillow. Every test runs
with an empty Keras home, no CNNVIZ_DATA_DIR, downloads off and its own cache folder, and the
module's caches are reset around it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnviz import data

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No data folder, an empty Keras home, no downloads, a private cache; module caches reset."""
    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    data.clear_caches()
    yield
    data.clear_caches()


# ---------------------------------------------------------------------------------------------
# Writers for the standard file formats.
# ---------------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of unsigned bytes: magic (0, 0, 0x08, ndim), big-endian sizes, then the data."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 + array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx_folder(folder: Path, *, n_train=40, n_test=20, gz=True, dotted=False, seed=0,
                     size=(28, 28)) -> tuple[np.ndarray, ...]:
    """Write the four IDX files of a Fashion-MNIST/MNIST folder; returns the arrays written."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, *size), dtype=np.uint8)
    y_train = (np.arange(n_train) % 10).astype(np.uint8)
    x_test = rng.integers(0, 256, (n_test, *size), dtype=np.uint8)
    y_test = (np.arange(n_test) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in (("train-images-idx3-ubyte", x_train), ("train-labels-idx1-ubyte", y_train),
                        ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test)):
        name = stem.replace("-idx", ".idx") if dotted else stem
        raw = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return x_train, y_train, x_test, y_test


def cifar_batch_bytes(images: np.ndarray, labels) -> bytes:
    """A CIFAR-10 python batch as the original files hold it (byte-string keys, channel planes)."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"testing batch", b"labels": [int(label) for label in labels],
             b"data": rows, b"filenames": [b"img_%d.png" % i for i in range(len(images))]}
    return pickle.dumps(batch, protocol=2)


def write_cifar_batches(folder: Path, *, per_batch=10, seed=0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for name in data.CIFAR_TRAIN_BATCHES:
        images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch)
        (folder / name).write_bytes(cifar_batch_bytes(images, labels))
        train_x.append(images)
        train_y.append(labels)
    x_test = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
    y_test = np.arange(per_batch) % 10
    (folder / data.CIFAR_TEST_BATCH).write_bytes(cifar_batch_bytes(x_test, y_test))
    return np.concatenate(train_x), np.concatenate(train_y), x_test, y_test


def solid_image(color, size=(32, 32), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def save_image(image: Image.Image, path: Path, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)


def write_cifar_folders(root: Path, *, train_per_class=2, test_per_class=1) -> None:
    """cifar10/{train,test}/<class>/NNNN.png, class k filled with the grey value 20 * k + i."""
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(data.CLASS_NAMES["cifar10"]):
            for i in range(per_class):
                value = 20 * label + i
                save_image(solid_image((value, value, value)), root / split / name / f"{i:04d}.png")


# ---------------------------------------------------------------------------------------------
# IDX parsing and local Fashion-MNIST / MNIST.
# ---------------------------------------------------------------------------------------------

def test_parse_idx_reads_images_and_labels_without_copying():
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    parsed = data.parse_idx(idx_bytes(images), magic=data.IDX_IMAGES_MAGIC)
    np.testing.assert_array_equal(parsed, images)
    assert parsed.dtype == np.uint8 and not parsed.flags.owndata
    labels = data.parse_idx(idx_bytes(np.array([3, 1, 4], np.uint8)), magic=data.IDX_LABELS_MAGIC)
    np.testing.assert_array_equal(labels, [3, 1, 4])


@pytest.mark.parametrize("gz, dotted", [(True, False), (False, False), (False, True), (True, True)])
def test_local_idx_folder_is_the_first_source(tmp_path, monkeypatch, gz, dotted):
    written = write_idx_folder(tmp_path / "data" / "fashion-mnist", gz=gz, dotted=dotted)
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "data"))
    dataset = data.load("fashion_mnist")
    assert dataset.source == "local"
    assert "CNNVIZ_DATA_DIR" in dataset.note and str(tmp_path / "data") in dataset.note
    assert dataset.x_train.shape == (40, 28, 28, 1) and dataset.x_test.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(dataset.x_train[..., 0], written[0])
    np.testing.assert_array_equal(dataset.y_train, written[1])
    np.testing.assert_array_equal(dataset.x_test[..., 0], written[2])
    np.testing.assert_array_equal(dataset.y_test, written[3])
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert dataset.image_shape == (28, 28, 1) and dataset.num_classes == 10
    assert dataset.class_names == data.CLASS_NAMES["fashion_mnist"]
    assert data.source_status("fashion_mnist") == data.SourceStatus("local", dataset.note)


def test_mnist_reads_its_own_folder_with_digit_class_names(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "mnist", seed=3)
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    dataset = data.load("mnist")
    assert dataset.source == "local" and dataset.class_names == tuple("0123456789")
    assert "MNIST" in dataset.note


def test_shared_arrays_are_read_only_and_the_dataset_frozen(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "fashion-mnist")
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    dataset = data.load("fashion_mnist")
    with pytest.raises(ValueError):
        dataset.x_train[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        dataset.y_test[0] = 1
    with pytest.raises(AttributeError):
        dataset.source = "keras"  # type: ignore[misc]


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


def test_an_incomplete_data_folder_is_passed_over_and_the_note_says_why(tmp_path, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    write_idx_folder(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    dataset = data.load("fashion_mnist")
    assert dataset.source == "bundled sample"
    assert "lacks t10k-labels-idx1-ubyte.gz" in dataset.note


# ---------------------------------------------------------------------------------------------
# CIFAR-10: pickled batches and class folders.
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
    images, labels = data.parse_cifar_batch(raw)
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
        data.parse_cifar_batch(payload)


def test_cifar_labels_out_of_range_are_rejected(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder)
    images = np.zeros((3, 32, 32, 3), np.uint8)
    (folder / "test_batch").write_bytes(cifar_batch_bytes(images, [0, 10, 1]))
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DatasetFormatError, match="labels are 0 to 9"):
        data.load("cifar10")


def test_cifar_class_folders_are_decoded_once_then_read_from_the_disk_cache(tmp_path, monkeypatch):
    root = tmp_path / "data" / "cifar10"
    write_cifar_folders(root)
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "data"))
    decodes = []
    original = data._decode_all
    monkeypatch.setattr(data, "_decode_all", lambda *args: decodes.append(1) or original(*args))

    first = data.load("cifar10")
    assert first.source == "local" and "class folders" in first.note
    assert first.x_train.shape == (20, 32, 32, 3) and first.x_test.shape == (10, 32, 32, 3)
    # Class folders map to the canonical labels; PNG is lossless, so the grey values are exact.
    np.testing.assert_array_equal(first.y_train, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(first.x_train[:, 0, 0, 0], 20 * np.repeat(np.arange(10), 2)
                                  + np.tile([0, 1], 10))
    assert len(decodes) == 2  # One call per split.

    data.clear_caches()  # Forget the arrays in memory: the second load must come from disk.
    second = data.load("cifar10")
    assert len(decodes) == 2
    np.testing.assert_array_equal(second.x_train, first.x_train)
    np.testing.assert_array_equal(second.y_test, first.y_test)

    # A new image changes the fingerprint, so the folders are decoded again.
    save_image(solid_image((5, 5, 5)), root / "train" / "cat" / "9999.png")
    data.clear_caches()
    third = data.load("cifar10")
    assert len(decodes) == 4 and len(third.x_train) == 21


def test_incomplete_pickled_batches_give_way_to_class_folders(tmp_path, monkeypatch):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    status = data.source_status("cifar10")
    assert status.source is None and "lacks data_batch_3" in status.note
    write_cifar_folders(tmp_path / "cifar10", train_per_class=1)
    assert data.load("cifar10").x_train.shape == (10, 32, 32, 3)


def test_cifar_class_folders_need_every_class(tmp_path, monkeypatch):
    root = tmp_path / "cifar10"
    write_cifar_folders(root)
    for file in (root / "test" / "frog").iterdir():
        file.unlink()
    (root / "test" / "frog").rmdir()
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DatasetFormatError, match="missing: frog"):
        data.load("cifar10")


# ---------------------------------------------------------------------------------------------
# Keras' cache, the download, the bundled sample and the order between sources.
# ---------------------------------------------------------------------------------------------

def test_keras_cache_is_read_directly_for_each_dataset(tmp_path):
    datasets = tmp_path / "keras-home" / "datasets"
    fashion = write_idx_folder(datasets / "fashion-mnist", seed=1)
    rng = np.random.default_rng(2)
    mnist = {"x_train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
             "y_train": np.arange(30, dtype=np.uint8) % 10,
             "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
             "y_test": np.arange(10, dtype=np.uint8)}
    np.savez(datasets / "mnist.npz", **mnist)
    cifar = write_cifar_batches(datasets / "cifar-10-batches-py-target" / "cifar-10-batches-py")

    for name, expected in (("fashion_mnist", fashion[0]), ("mnist", mnist["x_train"]), ("cifar10", cifar[0])):
        dataset = data.load(name)
        assert dataset.source == "keras"
        assert "Keras cache" in dataset.note and "without downloading" in dataset.note
        np.testing.assert_array_equal(dataset.x_train.reshape(expected.shape), expected)
        status = data.source_status(name)
        assert status.source == "keras" and not status.needs_download


def test_the_data_folder_wins_over_the_keras_cache(tmp_path, monkeypatch):
    local = write_idx_folder(tmp_path / "data" / "fashion-mnist", seed=5)
    write_idx_folder(tmp_path / "keras-home" / "datasets" / "fashion-mnist", seed=6)
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "data"))
    dataset = data.load("fashion_mnist")
    assert dataset.source == "local"
    np.testing.assert_array_equal(dataset.x_train[..., 0], local[0])


def test_bundled_sample_is_the_offline_default_for_fashion_mnist():
    status = data.source_status("fashion_mnist")
    dataset = data.load("fashion_mnist")
    assert dataset.source == status.source == "bundled sample"
    assert dataset.note == status.note
    assert "CNNVIZ_DATA_DIR is not set" in dataset.note and "CNNVIZ_OFFLINE=1" in dataset.note
    assert "10,000 training and 2,000 test images" in dataset.note
    assert dataset.x_train.shape == (10_000, 28, 28, 1) and dataset.x_test.shape == (2_000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(dataset.y_train), [1000] * 10)
    np.testing.assert_array_equal(np.bincount(dataset.y_test), [200] * 10)


@pytest.mark.parametrize("name, folder", [("mnist", "mnist/"), ("cifar10", "cifar-10-batches-py/")])
def test_a_dataset_with_no_source_says_what_to_do(name, folder):
    status = data.source_status(name)
    assert status.source is None
    with pytest.raises(data.DatasetUnavailable) as caught:
        data.load(name)
    message = str(caught.value)
    assert message == status.note
    assert "not available" in message and "set CNNVIZ_DATA_DIR" in message and folder in message
    assert "unset CNNVIZ_OFFLINE" in message


def _arrays_like_keras(name: str):
    rng = np.random.default_rng(0)
    if name == "cifar10":  # Keras gives CIFAR labels as (N, 1).
        return ((rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), (np.arange(20) % 10)[:, None]),
                (rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), (np.arange(10) % 10)[:, None]))
    return ((rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 10),
            (rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), np.arange(10, dtype=np.uint8)))


def test_a_successful_download_comes_from_keras_with_a_short_timeout(monkeypatch):
    monkeypatch.delenv("CNNVIZ_OFFLINE")
    monkeypatch.setattr(data, "_keras_installed", lambda: True)
    timeouts = []

    def fake_load_data(name):
        timeouts.append(socket.getdefaulttimeout())
        return _arrays_like_keras(name)

    monkeypatch.setattr(data, "_keras_load_data", fake_load_data)
    status = data.source_status("cifar10")
    assert status.source == "keras" and status.needs_download
    assert "will download CIFAR-10 on first use" in status.note
    dataset = data.load("cifar10")
    assert dataset.source == "keras" and "downloads CIFAR-10 once" in dataset.note
    assert dataset.x_train.shape == (20, 32, 32, 3) and dataset.y_train.shape == (20,)
    assert timeouts == [data.DOWNLOAD_TIMEOUT_SECONDS]
    assert socket.getdefaulttimeout() is None  # Restored afterwards.
    data.load("cifar10", limit_train=10)
    assert len(timeouts) == 1  # The arrays are kept; no second download.


def test_a_failed_download_is_tried_once_and_remembered(monkeypatch):
    monkeypatch.delenv("CNNVIZ_OFFLINE")
    monkeypatch.setattr(data, "_keras_installed", lambda: True)
    calls = []

    def failing_load_data(name):
        calls.append(name)
        raise Exception("URL fetch failure on https://example.invalid: None -- timed out")

    monkeypatch.setattr(data, "_keras_load_data", failing_load_data)
    first = data.load("fashion_mnist")
    assert first.source == "bundled sample" and "no internet" in first.note
    second = data.load("fashion_mnist", limit_train=100)
    assert second.source == "bundled sample"
    # Once the network failed, other datasets do not wait for it again either.
    with pytest.raises(data.DatasetUnavailable, match="no internet .a download failed earlier"):
        data.load("mnist")
    assert data.source_status("cifar10").source is None
    assert calls == ["fashion_mnist"]
    assert socket.getdefaulttimeout() is None


def test_allow_download_false_never_asks_keras(monkeypatch):
    monkeypatch.delenv("CNNVIZ_OFFLINE")
    monkeypatch.setattr(data, "_keras_installed", lambda: True)
    monkeypatch.setattr(data, "_keras_load_data", lambda name: pytest.fail("downloaded"))
    dataset = data.load("fashion_mnist", allow_download=False)
    assert dataset.source == "bundled sample" and "does not download" in dataset.note
    with pytest.raises(data.DatasetUnavailable):
        data.load("mnist", allow_download=False)


def test_no_tensorflow_is_imported_without_downloads(tmp_path):
    """`load(..., allow_download=False)` and `source_status` never import TensorFlow or Keras."""
    code = (
        "import json, sys\n"
        "from cnnviz import data\n"
        "statuses = [data.source_status(name).source for name in data.DATASETS]\n"
        "dataset = data.load('fashion_mnist', limit_train=100, allow_download=False)\n"
        "try:\n"
        "    data.load('mnist', allow_download=False)\n"
        "except data.DatasetUnavailable:\n"
        "    pass\n"
        "print(json.dumps({'statuses': statuses, 'source': dataset.source,\n"
        "                  'heavy': sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)}))\n"
    )
    env = {key: value for key, value in os.environ.items()
           if key not in ("CNNVIZ_DATA_DIR", "CNNVIZ_OFFLINE")}
    env.update(KERAS_HOME=str(tmp_path / "keras-home"), PYTHONPATH=str(PROJECT_ROOT))
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["source"] == "bundled sample"
    assert report["statuses"][0] in ("keras", "bundled sample")  # Online: a download would be tried.


def test_concurrent_loads_read_the_files_once(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "fashion-mnist")
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    reads = []
    original = data.read_idx_folder
    monkeypatch.setattr(data, "read_idx_folder", lambda *a, **k: reads.append(1) or original(*a, **k))
    results = []
    barrier = threading.Barrier(4)

    def worker(limit):
        barrier.wait()
        results.append(data.load("fashion_mnist", limit_train=limit))

    threads = [threading.Thread(target=worker, args=(limit,)) for limit in (None, 10, 20, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(reads) == 1
    assert sorted(len(result.x_train) for result in results) == [10, 20, 30, 40]


# ---------------------------------------------------------------------------------------------
# Subsets.
# ---------------------------------------------------------------------------------------------

def test_stratified_indices_balance_classes_and_fill_from_the_big_ones():
    labels = np.array([0] * 50 + [1] * 50 + [2] * 3)
    indices = data.stratified_indices(labels, 30, seed=0)
    # Class 2 gives all 3 it has; the other 27 places are split 14/13 between classes 0 and 1.
    counts = np.bincount(labels[indices], minlength=3)
    assert counts[2] == 3 and sorted(counts[:2]) == [13, 14] and counts.sum() == 30
    assert len(set(indices.tolist())) == 30


def test_stratified_indices_are_deterministic_and_shuffled():
    labels = np.repeat(np.arange(10), 100)
    first = data.stratified_indices(labels, 200, seed=4)
    np.testing.assert_array_equal(first, data.stratified_indices(labels, 200, seed=4))
    assert not np.array_equal(first, data.stratified_indices(labels, 200, seed=5))
    np.testing.assert_array_equal(np.bincount(labels[first]), [20] * 10)
    assert not np.all(np.diff(labels[first]) >= 0)  # Not sorted by class.
    everything = data.stratified_indices(labels, 5000, seed=0)
    np.testing.assert_array_equal(np.sort(everything), np.arange(1000))


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 30), min_size=1, max_size=8), n=st.integers(1, 250),
       seed=st.integers(0, 2**16))
def test_stratified_indices_are_as_equal_as_the_data_allows(counts, n, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    if len(labels) == 0:
        return
    indices = data.stratified_indices(labels, n, seed)
    assert len(indices) == min(n, len(labels)) == len(np.unique(indices))
    taken = np.bincount(labels[indices], minlength=len(counts))
    available = np.array(counts)
    # A class that could give more has at least as many as any other class, minus one.
    unfilled = taken < available
    if unfilled.any():
        assert taken[unfilled].min() >= taken.max() - 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_limits_must_be_positive_whole_numbers(bad):
    with pytest.raises(ValueError, match="limit_train"):
        data.load("fashion_mnist", limit_train=bad)


def test_load_limits_give_balanced_subsets_of_the_full_data():
    full = data.load("fashion_mnist")
    subset = data.load("fashion_mnist", limit_train=500, limit_test=50, seed=3)
    assert subset.source == full.source and subset.note == full.note
    np.testing.assert_array_equal(np.bincount(subset.y_train), [50] * 10)
    np.testing.assert_array_equal(np.bincount(subset.y_test), [5] * 10)
    again = data.load("fashion_mnist", limit_train=500, limit_test=50, seed=3)
    np.testing.assert_array_equal(again.x_train, subset.x_train)
    other = data.load("fashion_mnist", limit_train=500, limit_test=50, seed=4)
    assert not np.array_equal(other.y_train, subset.y_train)
    # Every subset image is an image of the full set with the same label.
    indices = data.stratified_indices(full.y_train, 500, 3)
    np.testing.assert_array_equal(subset.x_train, full.x_train[indices])
    only_test = data.load("fashion_mnist", limit_test=20)
    assert only_test.x_train is full.x_train and len(only_test.x_test) == 20


def test_unknown_dataset_names_are_a_value_error():
    with pytest.raises(ValueError, match="choose one of fashion_mnist, mnist, cifar10"):
        data.load("imagenet")
    with pytest.raises(ValueError):
        data.source_status("Fashion-MNIST")


# ---------------------------------------------------------------------------------------------
# load_image_folder: folders and zips of class subfolders.
# ---------------------------------------------------------------------------------------------

def write_class_tree(root: Path) -> None:
    """horses/ (3 readable + 1 broken) and humans/ (2 readable), in mixed formats and modes."""
    save_image(solid_image((200, 10, 10), size=(40, 30)), root / "horses" / "a.png")
    save_image(solid_image((10, 200, 10), size=(64, 64)), root / "horses" / "b.jpg")
    save_image(solid_image(128, size=(20, 20), mode="L"), root / "horses" / "c.png")
    (root / "horses" / "broken.jpg").write_bytes(b"this is not a jpeg")
    save_image(solid_image((10, 10, 200, 128), size=(50, 20), mode="RGBA"), root / "humans" / "d.png")
    save_image(solid_image(90, size=(33, 33), mode="L"), root / "humans" / "e.jpeg", fmt="JPEG")
    (root / "humans" / "notes.txt").write_text("ignored: not an image")
    (root / "humans" / ".DS_Store").write_bytes(b"\0\1")


def check_class_tree(folder: data.ImageFolder, size=(24, 24)) -> None:
    assert folder.class_names == ("horses", "humans")
    assert folder.x.shape == (5, *size, 3) and folder.x.dtype == np.uint8
    np.testing.assert_array_equal(folder.y, [0, 0, 0, 1, 1])
    assert folder.skipped == 1 and folder.skipped_files[0].endswith("broken.jpg")
    np.testing.assert_array_equal(folder.x[0, 3, 3], [200, 10, 10])  # PNG, resized: colour kept.
    np.testing.assert_array_equal(folder.x[2, 5, 5], [128, 128, 128])  # Grayscale became RGB.
    np.testing.assert_array_equal(folder.x[3, 1, 1], [10, 10, 200])  # RGBA lost its alpha.
    assert np.abs(folder.x[1].astype(int) - [10, 200, 10]).max() <= 3  # JPEG is nearly exact.


def test_image_folder_reads_classes_resizes_to_rgb_and_skips_unreadable(tmp_path):
    write_class_tree(tmp_path / "tree")
    check_class_tree(data.load_image_folder(tmp_path / "tree", image_size=24))
    rectangular = data.load_image_folder(str(tmp_path / "tree"), image_size=(16, 30))
    assert rectangular.x.shape == (5, 16, 30, 3)


def _zip_tree(root: Path, *, top: str | None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                name = path.relative_to(root).as_posix()
                archive.write(path, f"{top}/{name}" if top else name)
        archive.writestr("__MACOSX/horse-or-human/horses/._a.png", b"resource fork junk")
    return buffer.getvalue()


@pytest.mark.parametrize("top", [None, "horse-or-human"])
def test_image_folder_reads_zips_as_path_bytes_or_file(tmp_path, top):
    write_class_tree(tmp_path / "tree")
    raw = _zip_tree(tmp_path / "tree", top=top)
    (tmp_path / "upload.zip").write_bytes(raw)
    check_class_tree(data.load_image_folder(tmp_path / "upload.zip", image_size=24))
    check_class_tree(data.load_image_folder(raw, image_size=24))
    check_class_tree(data.load_image_folder(io.BytesIO(raw), image_size=24))


def test_a_single_top_folder_in_a_directory_is_looked_through(tmp_path):
    write_class_tree(tmp_path / "outer" / "horse-or-human")
    check_class_tree(data.load_image_folder(tmp_path / "outer", image_size=24))


def test_image_folder_errors_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetFormatError, match="no class subfolders"):
        data.load_image_folder(tmp_path / "empty", image_size=32)
    save_image(solid_image((1, 2, 3)), tmp_path / "one" / "cats" / "a.png")
    save_image(solid_image((1, 2, 3)), tmp_path / "one" / "cats" / "b.png")
    with pytest.raises(data.DatasetFormatError, match="only one class folder"):
        data.load_image_folder(tmp_path / "one", image_size=32)
    save_image(solid_image((1, 2, 3)), tmp_path / "flat" / "a.png")
    with pytest.raises(data.DatasetFormatError, match="no class subfolders"):
        data.load_image_folder(tmp_path / "flat", image_size=32)
    with pytest.raises(data.DatasetFormatError, match="not a readable .zip"):
        data.load_image_folder(b"PK\x03\x04 truncated nonsense", image_size=32)
    with pytest.raises(data.DatasetFormatError, match="does not exist"):
        data.load_image_folder(tmp_path / "missing", image_size=32)
    for bad_size in (0, (32,), "32", 5000, (32, True)):
        with pytest.raises(ValueError, match="image_size"):
            data.load_image_folder(tmp_path / "one", image_size=bad_size)


def test_a_class_whose_images_are_all_unreadable_is_dropped(tmp_path):
    tree = tmp_path / "tree"
    for name in ("ants", "bees", "wasps"):
        save_image(solid_image((1, 2, 3)), tree / name / "ok.png")
    (tree / "bees" / "ok.png").write_bytes(b"garbage")
    folder = data.load_image_folder(tree, image_size=8)
    assert folder.class_names == ("ants", "wasps") and folder.skipped == 1
    np.testing.assert_array_equal(folder.y, [0, 1])
    (tree / "wasps" / "ok.png").write_bytes(b"garbage")
    with pytest.raises(data.DatasetFormatError, match="at least two"):
        data.load_image_folder(tree, image_size=8)


def test_decompression_bombs_are_skipped_not_decoded(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    save_image(solid_image((9, 9, 9), size=(8, 8)), tree / "small" / "a.png")
    save_image(solid_image((9, 9, 9), size=(8, 8)), tree / "small2" / "a.png")
    save_image(solid_image((9, 9, 9), size=(300, 300)), tree / "small2" / "big.png")
    # cnnviz's own limit refuses the big image after reading only its header.
    monkeypatch.setattr(data, "MAX_SOURCE_PIXELS", 10_000)
    folder = data.load_image_folder(tree, image_size=8)
    assert folder.skipped == 1 and folder.skipped_files == ("small2/big.png",)
    # Pillow's own guard (DecompressionBombError above twice MAX_IMAGE_PIXELS) is caught too.
    monkeypatch.setattr(data, "MAX_SOURCE_PIXELS", 10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    folder = data.load_image_folder(tree, image_size=8)
    assert folder.skipped == 1 and folder.x.shape == (2, 8, 8, 3)


def test_archives_that_would_need_too_much_memory_are_refused(tmp_path, monkeypatch):
    write_class_tree(tmp_path / "tree")
    monkeypatch.setattr(data, "MAX_FOLDER_ARRAY_BYTES", 1000)
    with pytest.raises(data.DatasetFormatError, match="smaller image size"):
        data.load_image_folder(tmp_path / "tree", image_size=64)
    monkeypatch.setattr(data, "MAX_ARCHIVE_MEMBERS", 3)
    with pytest.raises(data.DatasetFormatError, match="at most 3"):
        data.load_image_folder(_zip_tree(tmp_path / "tree", top=None), image_size=8)
