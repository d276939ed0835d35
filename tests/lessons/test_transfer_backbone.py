"""The transfer lesson's ImageNet backbone: a frozen keras.applications base under a new head.

Everything trains with random weights (weights=None) on a few injected images; nothing downloads
(the test suite runs with CNNVIZ_OFFLINE=1).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from cnnviz import architecture
from cnnviz.architecture import backbones
from cnnviz.data import sources
from cnnviz.errors import WeightsUnavailable
from cnnviz.lessons import transfer


def _tiny_cifar(per_class=4, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    n = per_class * classes
    labels = np.repeat(np.arange(classes), per_class)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return SimpleNamespace(x_train=images, y_train=labels, x_test=images[:classes * 2], y_test=labels[:classes * 2],
                           class_names=tuple(f"c{i}" for i in range(classes)), source="test images")


def test_the_cache_key_names_the_backbone_and_its_weights():
    keys = {transfer.backbone_config(transfer.BackboneSettings(backbone=name, weights=weights)).key()
            for name in backbones.BACKBONE_NAMES for weights in transfer.BACKBONE_WEIGHT_CHOICES}
    assert len(keys) == len(backbones.BACKBONE_NAMES) * len(transfer.BACKBONE_WEIGHT_CHOICES)


@pytest.mark.parametrize("name, frozen", [("mobilenet_v2", 2_257_984), ("vgg16", 14_714_688)])
def test_frozen_and_trainable_counts(name, frozen):
    counts = transfer.backbone_counts(transfer.BackboneSettings(backbone=name))
    features = architecture.summarize((32, 32, 3), transfer.backbone_stack(name, None, 10))[0].output_shape[-1]
    # The new head by hand: Dense(features -> 128) and Dense(128 -> 10), with biases.
    assert counts.trainable == (features + 1) * 128 + (128 + 1) * 10
    assert counts.frozen == frozen and counts.total == frozen + counts.trainable
    names, _, params, roles = transfer.backbone_layer_roles(counts)
    assert roles[0] == "frozen" and set(roles[1:]) == {"new"} and sum(params) == counts.total
    assert [row["Layer"] for row in transfer.backbone_rows(counts)] == names


def test_the_head_trains_under_a_frozen_random_base():
    settings = transfer.BackboneSettings(backbone="vgg16", weights=None, epochs=1, batch_size=8)
    result = transfer.train_backbone(settings, data=_tiny_cifar(), use_cache=False)
    assert result.stopped_reason == "finished" and len(result.history["loss"]) == 1
    counts = transfer.backbone_counts(settings)
    model = result.model
    assert model.count_params() == counts.total
    trained = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trained == counts.trainable
    assert model.get_layer("pretrained_backbone").trainable_weights == []


def test_imagenet_weights_unavailable_offline_refuse_before_anything_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    monkeypatch.setattr(sources, "host_reachable", lambda host: pytest.fail("offline: no network check"))
    settings = transfer.BackboneSettings(backbone="mobilenet_v2")
    status = transfer.backbone_weights_status(settings)
    assert not status.available and "switched off" in status.message
    with pytest.raises(WeightsUnavailable, match="not available"):
        transfer.train_backbone(settings, data=_tiny_cifar())
