"""`inputs.image_tensor`: the training tensors share the images' memory instead of copying them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cnnviz import data
from cnnviz.data import cache, subsets
from cnnviz.data.dataset import make_dataset
from cnnviz.training import inputs

tf = pytest.importorskip("tensorflow")


def _address(tensor) -> int:
    return np.asarray(tensor).__array_interface__["data"][0]


def test_a_memory_mapped_cache_and_a_subset_are_shared_not_copied(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(300) % 10
    cache.write_array_cache(tmp_path / "set", x_train=images, y_train=labels, x_test=images[:30], y_test=labels[:30])
    x_train, y_train, _, _ = cache.read_array_cache(tmp_path / "set")
    spec = dataclasses.replace(data.spec("cifar10"), image_shape=(8, 8, 3))
    dataset = make_dataset(spec, (x_train, y_train, x_train[:30], y_train[:30]), where="test", source="local",
                           note="")
    assert not dataset.x_train.flags.writeable  # Shared between callers: nobody writes through it.
    tensor = inputs.image_tensor(dataset.x_train)
    assert _address(tensor) == dataset.x_train.ctypes.data  # The mapped pages themselves.
    np.testing.assert_array_equal(tf.gather(tensor, [0, 299]).numpy(), images[[0, 299]])

    part = subsets.subset(dataset, limit_train=100, limit_test=None, seed=0)
    assert not part.x_train.flags.writeable
    assert _address(inputs.image_tensor(part.x_train)) == part.x_train.ctypes.data


def test_memory_that_cannot_be_shared_is_copied_once_into_an_aligned_buffer():
    raw = bytes(np.arange(1 + 64 * 27, dtype=np.uint8) % 251)
    unaligned = np.frombuffer(raw, dtype=np.uint8, offset=1).reshape(64, 3, 3, 3)  # read-only bytes, odd address
    tensor = inputs.image_tensor(unaligned)
    assert _address(tensor) != unaligned.ctypes.data
    assert _address(tensor) % data.ALIGNMENT == 0
    np.testing.assert_array_equal(tensor.numpy(), unaligned)
