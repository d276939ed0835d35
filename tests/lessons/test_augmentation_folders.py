"""The overfitting variants on a student's class-folder dataset: stacks re-targeted to its image shape
and classes (Keras is the oracle), training-set sizes bounded by what it has, and augmentation advice
that makes no claim about classes nothing is known about."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz import data
from cnnviz.data import example
from cnnviz.errors import ArchitectureError, SettingsError
from cnnviz.lessons import augmentation as reg
from cnnviz.training import augmenter


@pytest.fixture(scope="module")
def shapes() -> data.Dataset:
    return data.load_image_folder(example.EXAMPLE_ZIP.read_bytes(), image_size=32, color_mode="rgb")


def test_training_image_choices_stop_at_what_the_dataset_has():
    assert reg.training_image_choices() == reg.TRAINING_IMAGE_CHOICES == (200, 500, 1_000, 2_000)
    assert reg.training_image_choices(60_000) == reg.TRAINING_IMAGE_CHOICES
    assert reg.training_image_choices(2_000) == reg.TRAINING_IMAGE_CHOICES
    assert reg.training_image_choices(360) == (200, 360)
    assert reg.training_image_choices(500) == (200, 500)
    assert reg.training_image_choices(150) == (150,)
    with pytest.raises(SettingsError):
        reg.training_image_choices(0)
    assert reg.measured_test_images() == reg.OVERFIT_LIMIT_TEST == 2_000
    assert reg.measured_test_images(90) == 90 and reg.measured_test_images(10_000) == 2_000


def test_the_variants_are_retargeted_to_the_class_folder_dataset(shapes):
    from cnnviz.architecture import build_keras_model

    assert shapes.image_shape == (32, 32, 3) and shapes.num_classes == 3
    available = len(shapes.x_train)
    limit_train = reg.training_image_choices(available)[-1]
    limit_test = reg.measured_test_images(len(shapes.x_test))
    assert (limit_train, limit_test) == (available, len(shapes.x_test))
    variants = reg.overfitting_variants(shapes.name, keys=reg.VARIANT_KEYS, limit_train=limit_train,
                                        limit_test=limit_test)
    for variant in variants:
        assert variant.config.dataset == shapes.name
        assert (variant.config.limit_train, variant.config.limit_test) == (available, len(shapes.x_test))
        model = build_keras_model(shapes.image_shape, variant.config.stack())
        assert model.output_shape == (None, 3)  # One output per class folder.
        assert reg.variant_parameters(variant) == model.count_params()
    # The same stacks on Fashion-MNIST have ten outputs and other counts: the dataset decides.
    fashion = reg.overfitting_variants("fashion_mnist", keys=("baseline",))[0]
    assert build_keras_model((28, 28, 1), fashion.config.stack()).output_shape == (None, 10)
    assert reg.variant_parameters(fashion) != reg.variant_parameters(variants[0])


def test_images_too_small_for_the_small_cnn_are_refused_with_a_settings_error():
    tiny = data.load_image_folder(example.EXAMPLE_ZIP.read_bytes(), image_size=8, color_mode="grayscale")
    with pytest.raises(ArchitectureError):
        reg.overfitting_variants(tiny.name, keys=("baseline",))


def test_the_augmentation_variant_flips_only_where_mirroring_is_known_to_keep_the_class(shapes):
    on = {name: dict(augmenter.active(reg.variant_augmentation(name)))
          for name in ("fashion_mnist", "mnist", shapes.name)}
    assert "flip_horizontal" in on["fashion_mnist"]
    assert "flip_horizontal" not in on["mnist"] and "flip_horizontal" not in on[shapes.name]
    for settings in on.values():
        assert settings.keys() >= {"rotation", "translation"}
    changes = {name: reg.overfitting_variants(name, keys=("augmentation",))[0].change for name in on}
    assert "flips" in changes["fashion_mnist"]
    assert "flip" not in changes["mnist"] and "flip" not in changes[shapes.name]
    assert reg.unflipped_reason("fashion_mnist") is None
    assert reg.unflipped_reason(shapes.name) and reg.unflipped_reason("mnist")


def test_flip_and_rotation_advice_for_unknown_classes_names_no_class(shapes):
    spec = augmenter.spec_from_settings(flip_horizontal=True, flip_vertical=True, rotation_degrees=60)
    warnings = augmenter.warnings_for(shapes.name, spec)
    assert {w.augmentation for w in warnings} == {"flip_horizontal", "flip_vertical", "rotation"}
    for warning in warnings:
        assert "your" in warning.message  # About the student's classes / pictures, as a condition.
        assert not any(name in warning.message.lower() for name in shapes.class_names)
    assert augmenter.warnings_for(shapes.name, reg.variant_augmentation(shapes.name)) == []
    preview = reg.augmentation_preview(np.asarray(shapes.x_test[0]), shapes.name, spec, seed=0, n=2)
    assert [w.label for w in preview.warnings] == [augmenter.AUGMENTATION_LABELS[w.augmentation] for w in warnings]
