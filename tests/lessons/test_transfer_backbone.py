"""The transfer lesson's ImageNet backbone: a frozen keras.applications base under a new head.

Everything trains with random weights (weights=None) on a few injected images; nothing downloads
(the test suite runs with CNNVIZ_OFFLINE=1).
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cnnviz import architecture, data
from cnnviz.architecture import backbones
from cnnviz.data import sources
from cnnviz.errors import SettingsError, WeightsUnavailable
from cnnviz.lessons import transfer

EXAMPLE_ZIP = Path(__file__).resolve().parents[2] / "assets" / "example_shapes.zip"


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


# --------------------------------------------------------------------------------------------
# A class-folder dataset (the bundled example zip) instead of CIFAR-10
# --------------------------------------------------------------------------------------------

def _zip_classes_and_counts(path: Path) -> dict[str, int]:
    """The oracle: the zip's class folders and their images, read from the archive's names."""
    counts: dict[str, int] = {}
    for name in zipfile.ZipFile(path).namelist():
        if not name.endswith("/"):
            folder = name.split("/")[-2]
            counts[folder] = counts.get(folder, 0) + 1
    return dict(sorted(counts.items()))


def test_a_class_folder_run_is_bounded_by_its_dataset_and_keyed_by_its_name():
    folders = data.load_image_folder(EXAMPLE_ZIP, image_size=32, validation_fraction=0.2)
    per_class = _zip_classes_and_counts(EXAMPLE_ZIP)  # 150 images per class, 30 of them held out
    test_per_class = [round(0.2 * n) for n in per_class.values()]
    # More than any class holds: every image of both splits, the batch as requested.
    every = transfer.fit_backbone_settings(transfer.BackboneSettings(per_class=1000, test_per_class=100), folders)
    assert every.dataset == folders.name and every.per_class is None and every.test_per_class is None
    assert transfer.backbone_images(every, folders) == (sum(per_class.values()) - sum(test_per_class),
                                                        sum(test_per_class))
    config = transfer.backbone_config(every)
    assert config.dataset == folders.name and config.limit_train is None and config.limit_test is None
    assert config.stack()[-1]["units"] == len(per_class)
    cifar = transfer.backbone_config(dataclasses.replace(every, dataset="cifar10"))
    assert config.key() != cifar.key() and cifar.stack()[-1]["units"] == 10
    # Fewer than a class holds: a stratified limit, and the batch no larger than the training set.
    few = transfer.fit_backbone_settings(transfer.BackboneSettings(per_class=10, test_per_class=10), folders)
    assert (few.per_class, few.test_per_class, few.batch_size) == (10, 10, 10 * len(per_class))
    assert transfer.backbone_config(few).limit_train == 10 * len(per_class)


def test_images_smaller_than_the_backbones_accept_are_refused_with_the_size_to_choose():
    small = data.load_image_folder(EXAMPLE_ZIP, image_size=28)
    assert transfer.backbone_min_side() == 32 == min(b.min_side for b in backbones.BACKBONES.values())
    with pytest.raises(SettingsError, match="at least 32×32 pixels, and these are 28×28"):
        transfer.fit_backbone_settings(transfer.BackboneSettings(weights=None), small)


def test_the_head_trains_on_the_example_zip_with_its_classes():
    # Grey-scale at 32 px: the backbone layer repeats the one channel into three.
    folders = data.load_image_folder(EXAMPLE_ZIP, image_size=32, color_mode="grayscale")
    settings = transfer.fit_backbone_settings(
        transfer.BackboneSettings(backbone="mobilenet_v2", weights=None, per_class=50, test_per_class=10, epochs=1),
        folders)
    result = transfer.train_backbone(settings, use_cache=False)  # Loads the dataset by its name.
    classes = tuple(_zip_classes_and_counts(EXAMPLE_ZIP))
    assert result.stopped_reason == "finished" and len(result.history["loss"]) == 1
    assert result.model.output_shape[-1] == len(classes) == 3
    assert result.class_names == classes
    assert result.config.dataset == folders.name and tuple(result.input_shape[-3:]) == (32, 32, 1)
    assert 0.0 <= result.test_accuracy <= 1.0
