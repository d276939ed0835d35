"""Augmentation core: spec validation, the spec -> Keras layer mapping, the preview grid, warnings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cnnviz.lessons import augmentation
from cnnviz.training import augmenter as aug


def _test_image() -> np.ndarray:
    """A 28x28 uint8 image with no symmetry: a bright off-centre block and a gradient."""
    image = np.tile(np.arange(28, dtype=np.uint8) * 4, (28, 1))
    image[4:12, 3:9] = 255
    return image


# ---- specs ------------------------------------------------------------------------------------

def test_normalize_spec_accepts_dicts_and_pairs():
    assert aug.normalize_spec({"rotation": 0.5, "zoom": 0}) == (("rotation", 0.5), ("zoom", 0.0))
    assert aug.normalize_spec([("contrast", 1)]) == (("contrast", 1.0),)
    assert aug.normalize_spec(None) == ()
    assert aug.active({"rotation": 0.5, "zoom": 0.0}) == (("rotation", 0.5),)


@pytest.mark.parametrize("spec, message", [
    ({"shear": 0.1}, "Unknown augmentation"),
    ({"rotation": 1.5}, "between 0 and 1"),
    ({"rotation": -0.1}, "between 0 and 1"),
    ({"rotation": float("nan")}, "between 0 and 1"),
    ({"rotation": "lots"}, "must be a number"),
    ([("zoom", 0.1), ("zoom", 0.2)], "listed twice"),
    ([("zoom",)], "pair"),
])
def test_normalize_spec_rejects_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        aug.normalize_spec(spec)


def test_spec_from_settings_converts_degrees_and_percentages():
    spec = dict(aug.spec_from_settings(flip_vertical=True, rotation_degrees=18, zoom_percent=10,
                                       translation_percent=25, contrast=0.4))
    assert spec == {"flip_vertical": 1.0, "rotation": 0.1, "zoom": 0.2, "translation": 0.5, "contrast": 0.4}
    assert aug.spec_from_settings() == ()
    assert aug.rotation_degrees(spec["rotation"]) == pytest.approx(18.0)
    with pytest.raises(ValueError, match="rotation"):
        aug.spec_from_settings(rotation_degrees=200)


def test_describe_names_the_keras_layer_and_the_range():
    assert "±18°" in aug.describe("rotation", 0.1) and "RandomRotation(factor=0.05)" in aug.describe("rotation", 0.1)
    assert "10 %" in aug.describe("translation", 0.2)
    assert "[0.6, 1.4]" in aug.describe("contrast", 0.4)


# ---- Keras layers -----------------------------------------------------------------------------

def test_augmentation_layers_follow_the_documented_table():
    spec = (("flip_horizontal", 1.0), ("zoom", 0.0), ("rotation", 0.2), ("translation", 0.4),
            ("contrast", 0.3), ("flip_vertical", 1.0))
    layers = aug.augmentation_layers(spec, seed=7)
    names = [type(layer).__name__ for layer in layers]
    # The switched-off zoom is left out; the order is the spec's.
    assert names == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomContrast", "RandomFlip"]
    configs = [layer.get_config() for layer in layers]
    assert configs[0]["mode"] == "horizontal" and configs[4]["mode"] == "vertical"
    assert configs[1]["factor"] in (0.1, (-0.1, 0.1), [-0.1, 0.1])
    assert configs[2]["height_factor"] == pytest.approx(0.2) and configs[2]["width_factor"] == pytest.approx(0.2)
    # Contrast in [1 - 0.3, 1 + 0.3]: Keras stores the (lower, upper) pair.
    assert tuple(configs[3]["factor"]) == pytest.approx((0.3, 0.3))
    # Seeds: seed * 101 + index in the spec (switched-off pairs count).
    assert [layer.seed for layer in layers] == [707, 709, 710, 711, 712]
    assert aug.augmentation_model((), seed=0) is None
    assert [type(layer).__name__ for layer in aug.augmentation_model({"zoom": 0.5}).layers] == ["RandomZoom"]


def _keras_by_hand(seed: int) -> list:
    """The documented pipeline for `_ENGINE_SPEC`, written out as Keras layers without cnnviz's help."""
    from keras import layers

    base = seed * 101  # + the pair's index in the spec.
    return [
        layers.RandomFlip("horizontal", seed=base + 0),
        layers.RandomRotation(factor=0.05, fill_mode="constant", seed=base + 1),
        layers.RandomZoom(height_factor=0.1, fill_mode="constant", seed=base + 2),
        layers.RandomTranslation(height_factor=0.15, width_factor=0.15, fill_mode="constant", seed=base + 3),
        layers.RandomContrast(factor=(0.5, 0.5), seed=base + 4),
        layers.RandomFlip("vertical", seed=base + 5),
    ]


_ENGINE_SPEC = (("flip_horizontal", 1.0), ("rotation", 0.1), ("zoom", 0.2), ("translation", 0.3),
                ("contrast", 0.5), ("flip_vertical", 1.0))


def test_engine_and_preview_apply_the_documented_keras_layers():
    """The training engine must train on what the preview shows, and both on the documented layers:
    Keras' own preprocessing layers, built here by hand with the same arguments and seeds."""
    from cnnviz import training
    from cnnviz.training import engine

    assert tuple(training.AUGMENTATIONS) == aug.AUGMENTATIONS
    image = (_test_image() / 255.0).astype(np.float32)[..., None]
    batch = np.repeat(image[None], 8, axis=0)
    expected = batch
    for layer in _keras_by_hand(seed=3):
        expected = layer(expected, training=True)
    expected = np.clip(np.asarray(expected), 0.0, 1.0)
    assert not np.allclose(expected, batch)  # The draw changes the images: the comparison means something.

    trained_on = engine._augmenter(_ENGINE_SPEC, 3)
    np.testing.assert_allclose(np.clip(np.asarray(trained_on(batch, training=True)), 0.0, 1.0), expected,
                               atol=1e-6)
    np.testing.assert_allclose(aug.augmented_grid(image, _ENGINE_SPEC, n=8, seed=3), expected, atol=1e-6)


def test_grid_is_deterministic_for_a_seed():
    spec = aug.spec_from_settings(flip_horizontal=True, rotation_degrees=30, zoom_percent=20,
                                  translation_percent=20, contrast=0.5)
    first = aug.augmented_grid(_test_image(), spec, n=16, seed=5)
    again = aug.augmented_grid(_test_image(), spec, n=16, seed=5)
    other = aug.augmented_grid(_test_image(), spec, n=16, seed=6)
    assert first.shape == (16, 28, 28, 1) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.min() >= 0.0 and first.max() <= 1.0
    # Every copy got its own draw: no two of the 16 are identical.
    flat = first.reshape(16, -1)
    assert len({row.tobytes() for row in flat}) == 16


def test_grid_without_augmentation_repeats_the_image():
    image = _test_image()
    grid = aug.augmented_grid(image, {"rotation": 0.0}, n=4, seed=0)
    np.testing.assert_array_equal(grid, np.repeat((image / 255.0).astype(np.float32)[None, ..., None], 4, axis=0))


@pytest.mark.parametrize("name, axis", [("flip_horizontal", 2), ("flip_vertical", 1)])
def test_flips_give_the_image_or_its_mirror(name, axis):
    image = (_test_image() / 255.0).astype(np.float32)[..., None]
    grid = aug.augmented_grid(image, {name: 1.0}, n=16, seed=1)
    mirrored = np.flip(image, axis=axis - 1)
    is_original = [np.allclose(g, image) for g in grid]
    is_mirror = [np.allclose(g, mirrored) for g in grid]
    assert all(a or b for a, b in zip(is_original, is_mirror))
    assert any(is_original) and any(is_mirror)


def test_contrast_scales_around_each_images_mean():
    image = (_test_image() / 255.0 * 0.5 + 0.25).astype(np.float32)[..., None]  # Room to stretch.
    strength = 0.4
    grid = aug.augmented_grid(image, {"contrast": strength}, n=8, seed=2)
    mean = image.mean()
    factors = []
    for out in grid:
        # out = (image - mean) * factor + mean for one factor per image (clipped to [0, 1]).
        factor = np.sum((out - mean) * (image - mean)) / np.sum((image - mean) ** 2)
        assert 1 - strength - 1e-4 <= factor <= 1 + strength + 1e-4
        factors.append(factor)
        np.testing.assert_allclose(out, np.clip((image - mean) * factor + mean, 0, 1), atol=1e-4)
    # The contrast is lowered for some images and raised for others (Keras' float factor only raises it).
    assert min(factors) < 1.0 < max(factors)


def test_grid_accepts_rgb_and_rejects_bad_images():
    rgb = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    assert aug.augmented_grid(rgb, {"rotation": 0.1}, n=3, seed=0).shape == (3, 32, 32, 3)
    with pytest.raises(ValueError, match="shape"):
        aug.augmented_grid(np.zeros((4, 28, 28, 1), np.uint8), {}, n=2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        aug.augmented_grid(np.full((28, 28), 3.0, np.float32), {}, n=2)
    with pytest.raises(ValueError, match="between 1 and 256"):
        aug.augmented_grid(rgb, {}, n=0)


# ---- warnings ---------------------------------------------------------------------------------

def _warned(dataset, **settings):
    return {w.augmentation for w in aug.warnings_for(dataset, aug.spec_from_settings(**settings))}


def test_vertical_flip_is_flagged_for_clothing_digits_and_photos():
    assert _warned("fashion_mnist", flip_vertical=True) == {"flip_vertical"}
    assert _warned("mnist", flip_vertical=True) == {"flip_vertical"}
    assert _warned("cifar10", flip_vertical=True) == {"flip_vertical"}
    assert "6" in aug.warnings_for("mnist", {"flip_vertical": 1.0})[0].message


def test_horizontal_flip_is_flagged_only_for_digits():
    assert _warned("mnist", flip_horizontal=True) == {"flip_horizontal"}
    assert _warned("fashion_mnist", flip_horizontal=True) == set()
    assert _warned("cifar10", flip_horizontal=True) == set()


def test_rotation_limit_for_digits():
    assert _warned("mnist", rotation_degrees=10) == set()
    assert _warned("mnist", rotation_degrees=15) == set()
    assert _warned("mnist", rotation_degrees=20) == {"rotation"}
    assert _warned("fashion_mnist", rotation_degrees=20) == set()
    assert _warned("fashion_mnist", rotation_degrees=45) == {"rotation"}


def test_large_shifts_and_zooms_get_notes_and_uploads_only_generic_checks():
    assert _warned("fashion_mnist", translation_percent=30, zoom_percent=40) == {"translation", "zoom"}
    assert _warned(None, flip_vertical=True, flip_horizontal=True, rotation_degrees=90) == set()


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist", "cifar10"])
def test_the_training_variant_uses_an_augmentation_that_suits_the_dataset(dataset):
    assert aug.warnings_for(dataset, augmentation.variant_augmentation(dataset)) == []


def test_importing_the_module_does_not_import_tensorflow():
    code = ("import sys, cnnviz.training.augmenter, cnnviz.lessons.augmentation, cnnviz.figures.augmentation; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
