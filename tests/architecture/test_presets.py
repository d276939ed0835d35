"""The presets: their totals, and that each one is exactly the Keras model it describes."""

from __future__ import annotations

import pytest
from keras_oracle import keras_rows, our_rows, stateless_keras_rows

from cnnviz import architecture as arch
from cnnviz.architecture import ArchitectureError

EXPECTED_TOTALS = {
    "fashion_relu_cnn": 38_254,
    "lenet5_tanh": 61_610,
    "cifar10_cnn": 94_890,
    "vgg16": 138_357_544,
    # Stem (9 + 1)·16, blocks 2·9·16·16 + 2·64, 9·16·32 + 9·32·32 + 16·32 + 3·128 and 2·9·32·32 + 2·128,
    # head (32 + 1)·10.
    "small_resnet": 160 + 4_736 + 14_720 + 18_688 + 330,
}
SMALL_PRESETS = ["fashion_relu_cnn", "lenet5_tanh", "cifar10_cnn", "bottleneck_cnn", "lenet5_classic", "small_resnet"]


def test_required_presets_exist():
    assert {"fashion_relu_cnn", "lenet5_tanh", "cifar10_cnn", "bottleneck_cnn", "lenet5_classic",
            "alexnet_style", "vgg16"} <= set(arch.PRESETS)
    for key, preset in arch.PRESETS.items():
        assert preset.key == key and preset.title and preset.description
        assert preset.layers[-1]["type"] == "dense"


@pytest.mark.parametrize("key", sorted(EXPECTED_TOTALS))
def test_seed_totals(key):
    assert arch.PRESETS[key].total_params == EXPECTED_TOTALS[key]


@pytest.mark.parametrize("key", SMALL_PRESETS)
def test_small_presets_match_a_built_keras_model(key):
    preset = arch.PRESETS[key]
    model = arch.build_keras_model(preset.input_shape, preset.layers)
    rows = arch.summarize(preset.input_shape, preset.layers)
    assert keras_rows(model) == our_rows(rows)
    assert model.count_params() == preset.total_params
    assert [layer.name for layer in model.layers if layer.name != "input"] == [row.name for row in rows]


@pytest.mark.parametrize("key", ["alexnet_style", "vgg16"])
def test_large_presets_match_keras_layer_by_layer(key):
    preset = arch.PRESETS[key]
    assert stateless_keras_rows(preset.input_shape, preset.layers) == our_rows(
        arch.summarize(preset.input_shape, preset.layers))


def test_vgg16_matches_keras_applications_layer_shapes():
    """Our VGG16 has the same output shapes and counts as keras.applications.VGG16, layer for layer."""
    ours = arch.summarize((224, 224, 3), arch.PRESETS["vgg16"].layers)
    expected_convs = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert [row.output_shape[-1] for row in ours if row.type == "conv2d"] == expected_convs
    assert ours[-4].output_shape == (25088,)
    assert max(ours, key=lambda row: row.params).params == 25088 * 4096 + 4096


def test_bottleneck_preset_has_a_two_unit_dense_before_the_head():
    layers = arch.PRESETS["bottleneck_cnn"].layers
    assert [layer["type"] for layer in layers].count("conv2d") == 3
    assert layers[-2] == {"type": "dense", "units": 2}
    assert layers[-1]["units"] == 10 and layers[-1]["activation"] == "softmax"


def test_stack_for_retargets_the_head_and_checks_the_input():
    layers = arch.stack_for("cifar10_cnn", (28, 28, 1), 3)
    rows = arch.summarize((28, 28, 1), layers)
    assert rows[-1].output_shape == (3,)
    assert rows[0].params == (3 * 3 * 1 + 1) * 32
    # The preset itself is untouched.
    assert arch.PRESETS["cifar10_cnn"].layers[-1]["units"] == 10
    assert arch.stack_for("fashion_relu_cnn", (28, 28, 1), 10) == arch.PRESETS["fashion_relu_cnn"].stack()
    with pytest.raises(ArchitectureError):
        arch.stack_for("lenet5_classic", (28, 28, 1), 10)  # 5x5 conv on a 4x4 map.
    with pytest.raises(KeyError):
        arch.stack_for("no_such_preset", (28, 28, 1), 10)
