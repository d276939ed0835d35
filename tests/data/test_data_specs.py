"""The dataset specs (cnnviz.data.dataset_spec, cnnviz.data.registry): one per dataset, each consistent."""

from __future__ import annotations

import pytest

from cnnviz import architecture, data
from cnnviz.data import registry
from cnnviz.data.dataset_spec import LAYOUT_FORMATS, Layout


def test_the_registry_lists_the_datasets_in_interface_order():
    assert data.DATASETS == ("fashion_mnist", "mnist", "cifar10")
    assert tuple(registry.SPECS) == data.DATASETS
    assert all(data.spec(name).name == name for name in data.DATASETS)


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10"])
def test_every_spec_is_complete_and_consistent(name):
    spec = data.spec(name)
    height, width, channels = spec.image_shape
    assert spec.image_size == (height, width) and spec.channels == channels in (1, 3)
    assert spec.num_classes == len(spec.class_names) == len(set(spec.class_names)) >= 2
    assert spec.label and spec.title
    assert spec.local and all(layout.format in LAYOUT_FORMATS for layout in (*spec.local, *spec.keras_cache))
    assert spec.default_preset in architecture.PRESETS
    assert all(0 <= label < spec.num_classes for label in spec.class_families)
    assert 0 < spec.augmentation.rotation_limit_degrees < 180
    assert spec.augmentation.rotation_severity in ("warning", "note")


def test_the_facts_the_pages_show():
    assert [data.spec(name).image_shape for name in data.DATASETS] == [(28, 28, 1), (28, 28, 1), (32, 32, 3)]
    assert [data.spec(name).title for name in data.DATASETS] == ["Fashion-MNIST", "MNIST digits", "CIFAR-10"]
    assert [data.spec(name).label for name in data.DATASETS] == ["Fashion-MNIST", "MNIST", "CIFAR-10"]
    assert data.spec("mnist").class_names == tuple("0123456789")
    assert [data.spec(name).dark_background for name in data.DATASETS] == [True, True, False]
    assert data.spec("fashion_mnist").bundled_sample is not None
    assert data.spec("fashion_mnist").bundled_sample.is_file()
    # Only digits change class when mirrored.
    assert [data.spec(name).augmentation.horizontal_flip is None for name in data.DATASETS] == [True, False, True]


def test_unknown_names_and_layouts_are_value_errors():
    with pytest.raises(ValueError, match="choose one of fashion_mnist, mnist, cifar10"):
        data.spec("imagenet")
    with pytest.raises(ValueError, match="Unknown layout format"):
        Layout("somewhere", "tfrecord")
