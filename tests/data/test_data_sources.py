"""Choosing a source (cnnviz.data.sources): the data folder, Keras' cache, the download, the
bundled sample, the order between them and the notes that explain the choice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_files import write_cifar_batches, write_cifar_folders, write_idx_folder

from cnnviz import data
from cnnviz.data import sources

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REAL_REACH = sources._reach  # The `isolated` fixture replaces it; one test checks the real one.

pytestmark = pytest.mark.usefixtures("isolated")


# ---------------------------------------------------------------------------------------------
# The data folder (CNNVIZ_DATA_DIR).
# ---------------------------------------------------------------------------------------------


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
    assert dataset.class_names == data.spec("fashion_mnist").class_names
    assert data.source_status("fashion_mnist") == data.SourceStatus("local", dataset.note)


def test_mnist_reads_its_own_folder_with_digit_class_names(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "mnist", seed=3)
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    dataset = data.load("mnist")
    assert dataset.source == "local" and dataset.class_names == tuple("0123456789")
    assert "MNIST" in dataset.note


def test_an_incomplete_data_folder_is_passed_over_and_the_note_says_why(tmp_path, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    write_idx_folder(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    dataset = data.load("fashion_mnist")
    assert dataset.source == "bundled sample"
    assert "lacks t10k-labels-idx1-ubyte.gz" in dataset.note


def test_incomplete_pickled_batches_give_way_to_class_folders(tmp_path, monkeypatch):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    status = data.source_status("cifar10")
    assert status.source is None and "lacks data_batch_3" in status.note
    write_cifar_folders(tmp_path / "cifar10", train_per_class=1)
    assert data.load("cifar10").x_train.shape == (10, 32, 32, 3)


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
    monkeypatch.setattr(sources, "_keras_installed", lambda: True)
    timeouts = []

    def fake_load_data(name):
        timeouts.append(socket.getdefaulttimeout())
        return _arrays_like_keras(name)

    monkeypatch.setattr(sources, "_keras_load_data", fake_load_data)
    status = data.source_status("cifar10")
    assert status.source == "keras" and status.needs_download
    assert "will download CIFAR-10 on first use" in status.note
    dataset = data.load("cifar10")
    assert dataset.source == "keras" and "downloads CIFAR-10 once" in dataset.note
    assert dataset.x_train.shape == (20, 32, 32, 3) and dataset.y_train.shape == (20,)
    assert timeouts == [sources.DOWNLOAD_TIMEOUT_SECONDS]
    assert socket.getdefaulttimeout() is None  # Restored afterwards.
    data.load("cifar10", limit_train=10)
    assert len(timeouts) == 1  # The arrays are kept; no second download.


def test_a_failed_download_is_tried_once_and_remembered(monkeypatch):
    monkeypatch.delenv("CNNVIZ_OFFLINE")
    monkeypatch.setattr(sources, "_keras_installed", lambda: True)
    calls = []

    def failing_load_data(name):
        calls.append(name)
        raise Exception("URL fetch failure on https://example.invalid: None -- timed out")

    monkeypatch.setattr(sources, "_keras_load_data", failing_load_data)
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


def test_without_internet_the_status_says_unavailable_instead_of_promising_a_download(monkeypatch):
    # Downloads switched on (no CNNVIZ_OFFLINE) but the download host does not answer: the status
    # must not say "will download", and the check is made once, then remembered.
    monkeypatch.delenv("CNNVIZ_OFFLINE")
    monkeypatch.setattr(sources, "_keras_installed", lambda: True)
    monkeypatch.setattr(sources, "_keras_load_data", lambda name: pytest.fail("downloaded"))
    checked = []

    def unreachable(host, timeout):
        checked.append(host)
        return False

    monkeypatch.setattr(sources, "_reach", unreachable)
    for _ in range(3):
        status = data.source_status("cifar10")
        assert status.source is None and not status.needs_download
        assert "will download" not in status.note
        assert "www.cs.toronto.edu" in status.note and "cannot be reached" in status.note
    assert checked == ["www.cs.toronto.edu"]  # Remembered: one check, not one per status.
    with pytest.raises(data.DatasetUnavailable, match="cannot be reached"):
        data.load("mnist")  # Its own host (storage.googleapis.com) is checked too, not downloaded from.
    assert checked == ["www.cs.toronto.edu", "storage.googleapis.com"]
    fashion = data.load("fashion_mnist")  # Same host as MNIST: remembered, falls back to the sample.
    assert fashion.source == "bundled sample" and "cannot be reached" in fashion.note
    assert len(checked) == 2


def test_the_reachability_check_is_bounded_in_time(monkeypatch):
    # A host whose name lookup hangs (a stuck resolver) costs the page at most the timeout.
    import time

    def hanging(*args, **kwargs):
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(sources.socket, "create_connection", hanging)
    start = time.monotonic()
    assert REAL_REACH("example.invalid", 0.2) is False
    assert time.monotonic() - start < 1.0


def test_allow_download_false_never_asks_keras(monkeypatch):
    monkeypatch.delenv("CNNVIZ_OFFLINE")
    monkeypatch.setattr(sources, "_keras_installed", lambda: True)
    monkeypatch.setattr(sources, "_keras_load_data", lambda name: pytest.fail("downloaded"))
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
