"""Shared by the engine tests: a tiny synthetic dataset and a tiny network that learns it in seconds.

Three classes told apart by where a bright block sits, injected with `train(..., data=...)`, so the
tests need no files and are fast.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest

from cnnviz.training import TrainConfig

SIDE = 12
TINY_STACK = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 8, "activation": "relu"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy (n, 12, 12, 1) uint8 images; class 0 has a bright top band, 1 a left band, 2 a centre block."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 80, (n, SIDE, SIDE, 1)).astype(np.uint8)
    for image, label in zip(images, labels):
        if label == 0:
            image[:4] += 150
        elif label == 1:
            image[:, :4] += 150
        else:
            image[4:8, 4:8] += 150
    return images, labels


@pytest.fixture(scope="session")
def tiny_data() -> SimpleNamespace:
    x_train, y_train = synthetic_images(480, seed=1)
    x_test, y_test = synthetic_images(150, seed=2)
    return SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                           class_names=("top", "left", "centre"))


@pytest.fixture(scope="session")
def tiny_stack() -> list[dict]:
    """The tiny network (a copy: tests may change it)."""
    return [dict(layer) for layer in TINY_STACK]


def _tiny_config(**changes) -> TrainConfig:
    fields = dict(epochs=3, batch_size=32, learning_rate=0.01, seed=0)
    fields.update(changes)
    return TrainConfig.from_stack(TINY_STACK, **fields)


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., TrainConfig]:
    """`tiny_config(**changes)`: the tiny network's config (3 epochs, batches of 32) with `changes`."""
    return _tiny_config
