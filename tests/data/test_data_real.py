"""The dataset layer on the real files beside the project (skipped when they are absent).

Fashion-MNIST comes from the `shared_data` fixture (``../shared/data``). CIFAR-10 as class
folders is checked when ``CNNVIZ_DATA_DIR`` (as CI prepares it) holds ``cifar10/train`` and
``cifar10/test``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnviz import data
from cnnviz.data import folders

# CI points CNNVIZ_DATA_DIR at a prepared copy of ../shared/data with CIFAR-10 unpacked.
PREPARED_DATA_DIR = os.environ.get("CNNVIZ_DATA_DIR", "")


@pytest.fixture(autouse=True)
def fresh_module_state(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    data.clear_caches()
    yield
    data.clear_caches()


def test_full_fashion_mnist_from_the_data_folder(shared_data, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(shared_data))
    dataset = data.load("fashion_mnist")
    assert dataset.source == "local"
    assert dataset.x_train.shape == (60_000, 28, 28, 1) and dataset.x_test.shape == (10_000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(dataset.y_train), [6_000] * 10)
    np.testing.assert_array_equal(np.bincount(dataset.y_test), [1_000] * 10)
    # The published training-set statistics of Fashion-MNIST, from a histogram of the 47 million
    # pixel values (no float copy of the images).
    counts = np.bincount(dataset.x_train.ravel(), minlength=256)
    values = np.arange(256) / 255.0
    mean = (values * counts).sum() / counts.sum()
    std = np.sqrt(((values - mean) ** 2 * counts).sum() / counts.sum())
    assert mean == pytest.approx(0.2860, abs=0.0005)
    assert std == pytest.approx(0.3530, abs=0.0005)

    subset = data.load("fashion_mnist", limit_train=1_000, limit_test=100)
    np.testing.assert_array_equal(np.bincount(subset.y_train), [100] * 10)
    np.testing.assert_array_equal(np.bincount(subset.y_test), [10] * 10)


def test_bundled_sample_is_drawn_from_the_real_training_set(shared_data, monkeypatch):
    monkeypatch.delenv("CNNVIZ_DATA_DIR", raising=False)
    sample = data.load("fashion_mnist")
    assert sample.source == "bundled sample"
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(shared_data))
    full = data.load("fashion_mnist")
    # The sample's mean is close to the full set's (it is a stratified sample of it).
    assert sample.x_train.mean() / 255 == pytest.approx(full.x_train.mean() / 255, abs=0.005)


def _has_cifar_folders(folder: str) -> bool:
    return bool(folder) and (Path(folder) / "cifar10" / "train").is_dir() \
        and (Path(folder) / "cifar10" / "test").is_dir()


@pytest.mark.slow
@pytest.mark.skipif(not _has_cifar_folders(PREPARED_DATA_DIR),
                    reason="CNNVIZ_DATA_DIR does not hold CIFAR-10 class folders (cifar10/train, cifar10/test)")
def test_cifar10_class_folders_decode_once_and_match_the_published_statistics(monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_DIR", PREPARED_DATA_DIR)
    first = data.load("cifar10")
    assert first.source == "local"
    assert first.x_train.shape == (50_000, 32, 32, 3) and first.x_test.shape == (10_000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(first.y_train), [5_000] * 10)
    np.testing.assert_array_equal(np.bincount(first.y_test), [1_000] * 10)
    # Published per-channel training means of CIFAR-10; JPEG re-encoding shifts them slightly.
    means = first.x_train.reshape(-1, 3).mean(axis=0) / 255
    np.testing.assert_allclose(means, [0.4914, 0.4822, 0.4465], atol=0.01)

    data.clear_caches()
    monkeypatch.setattr(folders, "_decode_all", lambda *args: pytest.fail("decoded again"))
    second = data.load("cifar10")  # From the disk cache: no decoding.
    np.testing.assert_array_equal(second.x_test, first.x_test)
    np.testing.assert_array_equal(second.y_train, first.y_train)


@pytest.mark.slow
def test_the_keras_download_path_runs_real_keras_on_its_cached_files(shared_data, tmp_path):
    """Force the keras.datasets call (not cnnviz's own cache reader) with the files already cached.

    Keras finds the four files in $KERAS_HOME/datasets/fashion-mnist and does not touch the
    network; this checks the lazy import, the call and the conversion to the Dataset form.
    """
    cached = tmp_path / "keras-home" / "datasets" / "fashion-mnist"
    cached.mkdir(parents=True)
    for file in (shared_data / "fashion-mnist").glob("*.gz"):
        (cached / file.name).symlink_to(file)
    code = (
        "import json, socket, sys\n"
        "from cnnviz import data\n"
        "from cnnviz.data import sources\n"
        "sources._find_keras_cache = lambda spec: None\n"
        "sources._reach = lambda host, timeout: True  # Keras finds its files; no network is used.\n"
        "dataset = data.load('fashion_mnist')\n"
        "print(json.dumps({'source': dataset.source, 'note': dataset.note,\n"
        "                  'train': list(dataset.x_train.shape), 'test': list(dataset.x_test.shape),\n"
        "                  'labels': dataset.y_train.dtype.name, 'timeout': socket.getdefaulttimeout(),\n"
        "                  'tensorflow': 'tensorflow' in sys.modules}))\n"
    )
    env = {key: value for key, value in os.environ.items()
           if key not in ("CNNVIZ_DATA_DIR", "CNNVIZ_OFFLINE")}
    env.update(KERAS_HOME=str(tmp_path / "keras-home"), PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["source"] == "keras" and "keras.datasets downloads Fashion-MNIST" in report["note"]
    assert report["train"] == [60_000, 28, 28, 1] and report["test"] == [10_000, 28, 28, 1]
    assert report["labels"] == "int64" and report["timeout"] is None and report["tensorflow"]
