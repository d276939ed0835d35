"""`cnnviz.data.load`: names, the shared read-only arrays and the memory cache."""

from __future__ import annotations

import threading

import pytest
from dataset_files import write_idx_folder

from cnnviz import data
from cnnviz.data import readers

pytestmark = pytest.mark.usefixtures("isolated")


def test_unknown_dataset_names_are_a_value_error():
    with pytest.raises(ValueError, match="choose one of fashion_mnist, mnist, cifar10"):
        data.load("imagenet")
    with pytest.raises(ValueError):
        data.source_status("Fashion-MNIST")


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


def test_concurrent_loads_read_the_files_once(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "fashion-mnist")
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path))
    reads = []
    original = readers.read_idx_folder
    monkeypatch.setattr(readers, "read_idx_folder", lambda *a, **k: reads.append(1) or original(*a, **k))
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
