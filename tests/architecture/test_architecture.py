"""The architecture core against Keras itself: shapes, parameter counts, refusals, presets,
receptive fields, the Keras-code export and the JSON round trip."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnnviz import architecture as arch
from cnnviz.architecture import ArchitectureError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

keras = pytest.importorskip("keras")


# ---------------------------------------------------------------------------------------------
# Oracles.


def keras_rows(model):
    """(name, output shape without batch, params, trainable, non-trainable) per Keras layer."""
    rows = []
    for layer in model.layers:
        trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        non_trainable = sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)
        rows.append((layer.name, tuple(layer.output.shape[1:]), layer.count_params(), trainable, non_trainable))
    return rows


def our_rows(rows):
    return [(r.name, r.output_shape, r.params, r.trainable_params, r.non_trainable_params) for r in rows]


def raw_keras_model(input_shape, layers):
    """A Keras model built straight from the raw dicts, bypassing the module's checks."""
    objects = [keras.Input(shape=tuple(input_shape))]
    for layer in layers:
        arguments = {key: value for key, value in layer.items() if key != "type"}
        if layer["type"] == "avgpool2d":
            # Keras 3's AveragePooling2D has no default pool size; cnnviz's default is 2.
            arguments.setdefault("pool_size", 2)
        objects.append(getattr(keras.layers, arch.KERAS_CLASSES[layer["type"]])(**arguments))
    return keras.Sequential(objects)


def stateless_keras_rows(input_shape, layers):
    """Per-layer Keras shapes and counts without allocating weights (for the 100M-parameter presets)."""
    rows = arch.summarize(input_shape, layers)
    shape = (None, *input_shape)
    result = []
    with keras.StatelessScope():
        for row in rows:
            layer = arch.keras_layer(row.config, row.name)
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
            trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
            non_trainable = sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)
            result.append((layer.name, shape[1:], trainable + non_trainable, trainable, non_trainable))
    return result


# ---------------------------------------------------------------------------------------------
# Random stacks.

pairs_or_ints = lambda low, high: st.one_of(  # noqa: E731
    st.integers(low, high), st.tuples(st.integers(low, high), st.integers(low, high)))


@st.composite
def conv_layers(draw):
    layer = {"type": "conv2d", "filters": draw(st.integers(1, 6)), "kernel_size": draw(pairs_or_ints(1, 5))}
    if draw(st.booleans()):
        layer["padding"] = draw(st.sampled_from(["valid", "same"]))
    choice = draw(st.sampled_from(["plain", "strided", "dilated"]))
    if choice == "strided":
        layer["strides"] = draw(pairs_or_ints(1, 3))
    elif choice == "dilated":
        layer["dilation_rate"] = draw(pairs_or_ints(1, 3))
    if draw(st.booleans()):
        layer["activation"] = draw(st.sampled_from(["relu", "tanh", "sigmoid"]))
    if draw(st.integers(0, 4)) == 0:
        layer["use_bias"] = False
    return layer


@st.composite
def pool_layers(draw):
    layer = {"type": draw(st.sampled_from(["maxpool2d", "avgpool2d"]))}
    if draw(st.booleans()):
        layer["pool_size"] = draw(pairs_or_ints(1, 3))
    if draw(st.booleans()):
        layer["strides"] = draw(pairs_or_ints(1, 3))
    if draw(st.booleans()):
        layer["padding"] = draw(st.sampled_from(["valid", "same"]))
    return layer


def dense_layers(max_units=12):
    return st.builds(lambda units, activation, bias: {"type": "dense", "units": units, "activation": activation,
                                                     "use_bias": bias},
                     st.integers(1, max_units), st.sampled_from([None, "relu", "softmax"]), st.booleans())


misc_layers = st.one_of(
    st.builds(lambda rate: {"type": "dropout", "rate": rate}, st.sampled_from([0.0, 0.25, 0.5])),
    st.just({"type": "batchnorm"}),
)
bridges = st.sampled_from([[{"type": "flatten"}], [{"type": "globalavgpool2d"}], [{"type": "globalmaxpool2d"}], []])


@st.composite
def stacks(draw):
    input_shape = (draw(st.integers(3, 36)), draw(st.integers(3, 36)), draw(st.integers(1, 3)))
    layers = draw(st.lists(st.one_of(conv_layers(), conv_layers(), pool_layers(), misc_layers),
                           min_size=0, max_size=4))
    layers += draw(bridges)
    layers += draw(st.lists(st.one_of(dense_layers(), misc_layers), max_size=2))
    layers.append(draw(dense_layers()))
    if draw(st.integers(0, 9)) == 0:
        # Now and then a spatial layer lands somewhere it may not belong (e.g. after Flatten).
        position = draw(st.integers(0, len(layers)))
        layers.insert(position, draw(st.one_of(conv_layers(), pool_layers())))
    return input_shape, layers


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks())
def test_random_stacks_agree_with_keras(case):
    """Valid stacks: identical names, shapes and counts. Refused stacks: Keras refuses them too."""
    input_shape, layers = case
    try:
        rows = arch.summarize(input_shape, layers)
    except ArchitectureError:
        event("refused by both")
        with pytest.raises(ValueError):
            raw_keras_model(input_shape, layers)
        return
    event("valid")
    model = arch.build_keras_model(input_shape, layers)
    assert keras_rows(model) == our_rows(rows)
    assert model.count_params() == arch.totals(rows).params


# ---------------------------------------------------------------------------------------------
# Presets.

EXPECTED_TOTALS = {
    "fashion_relu_cnn": 38_254,
    "lenet5_tanh": 61_610,
    "cifar10_cnn": 94_890,
    "vgg16": 138_357_544,
}
SMALL_PRESETS = ["fashion_relu_cnn", "lenet5_tanh", "cifar10_cnn", "bottleneck_cnn", "lenet5_classic"]


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
    assert [layer.name for layer in model.layers] == [row.name for row in rows]


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


# ---------------------------------------------------------------------------------------------
# Refusals.

INVALID = {
    "kernel larger than input": ((5, 5, 1), [{"type": "conv2d", "filters": 2, "kernel_size": 7}]),
    "dilated kernel larger than input": ((6, 6, 1), [{"type": "conv2d", "filters": 2, "kernel_size": 3,
                                                      "dilation_rate": 3}]),
    "pool leaves zero size": ((28, 28, 1), [{"type": "conv2d", "filters": 2, "kernel_size": 3},
                                            {"type": "maxpool2d", "pool_size": 2},
                                            {"type": "maxpool2d", "pool_size": 14}]),
    "conv after flatten": ((28, 28, 1), [{"type": "flatten"}, {"type": "conv2d", "filters": 2, "kernel_size": 3}]),
    "pool after global pool": ((28, 28, 1), [{"type": "globalavgpool2d"}, {"type": "maxpool2d"}]),
    "zero filters": ((28, 28, 1), [{"type": "conv2d", "filters": 0, "kernel_size": 3}]),
    "zero units": ((28, 28, 1), [{"type": "flatten"}, {"type": "dense", "units": 0}]),
    "negative units": ((28, 28, 1), [{"type": "flatten"}, {"type": "dense", "units": -4}]),
    "same padding, dilation and stride": ((28, 28, 1), [{"type": "conv2d", "filters": 2, "kernel_size": 3,
                                                         "padding": "same", "strides": 2, "dilation_rate": 2}]),
    "valid padding, dilation and stride": ((28, 28, 1), [{"type": "conv2d", "filters": 2, "kernel_size": 3,
                                                          "strides": (1, 2), "dilation_rate": (2, 1)}]),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_stacks_are_refused_like_keras(case):
    input_shape, layers = INVALID[case]
    with pytest.raises(ArchitectureError) as caught:
        arch.summarize(input_shape, layers)
    assert caught.value.index is not None
    assert f"Layer {caught.value.index + 1}" in str(caught.value)
    with pytest.raises(ValueError):
        raw_keras_model(input_shape, layers)
    with pytest.raises(ArchitectureError):
        arch.build_keras_model(input_shape, layers)


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1, "lots"])
def test_dropout_rate_must_be_in_zero_one(rate):
    with pytest.raises(ArchitectureError, match="Dropout"):
        arch.summarize((8, 8, 1), [{"type": "dropout", "rate": rate}, {"type": "flatten"}])


@pytest.mark.parametrize("layers, words", [
    ([{"type": "convolution", "filters": 2}], "unknown layer type"),
    ([{"type": "conv2d", "filters": 2}], "kernel_size"),
    ([{"type": "conv2d", "filters": 2, "kernel_size": 3, "filtres": 4}], "unknown setting"),
    ([{"type": "conv2d", "filters": 2.5, "kernel_size": 3}], "whole number"),
    ([{"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "full"}], "padding"),
    ([{"type": "dense", "units": 4, "activation": "relu9"}], "activation"),
    ([{"type": "conv2d", "filters": 2, "kernel_size": (3, 3, 3)}], "pair"),
    ([], "empty"),
])
def test_malformed_layers_get_readable_errors(layers, words):
    with pytest.raises(ArchitectureError, match=words):
        arch.summarize((8, 8, 1), layers)


@pytest.mark.parametrize("shape", [(0, 28, 1), (28, 28), (28, 28, -1), "28x28", (28.5, 28, 1)])
def test_bad_input_shapes(shape):
    with pytest.raises(ArchitectureError, match="input"):
        arch.summarize(shape, [{"type": "flatten"}])


def test_integral_floats_from_tables_are_accepted():
    rows = arch.summarize((28.0, 28, 1), [{"type": "conv2d", "filters": 8.0, "kernel_size": 3.0},
                                          {"type": "flatten"}, {"type": "dense", "units": "10"}])
    assert rows[0].params == 80 and rows[-1].output_shape == (10,)


# ---------------------------------------------------------------------------------------------
# Formulas, multiply-adds, receptive fields, totals.


def test_formula_and_counts_of_the_relu_cnn():
    rows = arch.summarize((28, 28, 1), arch.PRESETS["fashion_relu_cnn"].layers)
    conv, pool, flatten, dense, head = rows
    assert conv.formula == "(3·3·1 + 1)·8 = 80"
    assert conv.mult_adds == 26 * 26 * 8 * 3 * 3 * 1
    assert dense.formula == "(1,352 + 1)·28 = 37,884"
    assert dense.mult_adds == 1352 * 28
    assert pool.params == 0 and pool.mult_adds == 0
    assert flatten.output_shape == (1352,) and flatten.activation_size == 1352
    assert head.output_shape == (10,)
    total = arch.totals(rows)
    assert total.params == total.trainable_params == 38_254 and total.non_trainable_params == 0
    assert total.parameter_bytes == 4 * 38_254
    assert total.activation_values == 28 * 28 + 26 * 26 * 8 + 13 * 13 * 8 + 1352 + 28 + 10


def test_batchnorm_moving_statistics_are_non_trainable():
    rows = arch.summarize((8, 8, 3), [{"type": "conv2d", "filters": 5, "kernel_size": 3, "use_bias": False},
                                      {"type": "batchnorm"}, {"type": "globalavgpool2d"},
                                      {"type": "dense", "units": 2}])
    assert rows[0].params == 3 * 3 * 3 * 5 and "no bias" in rows[0].formula
    assert (rows[1].params, rows[1].trainable_params, rows[1].non_trainable_params) == (20, 10, 10)
    assert arch.totals(rows).non_trainable_params == 10
    assert rows[2].sees_whole_input and rows[2].receptive_field == (8, 8)


def test_dense_on_an_unflattened_volume_acts_on_the_last_axis():
    rows = arch.summarize((4, 4, 3), [{"type": "dense", "units": 5}])
    assert rows[0].output_shape == (4, 4, 5) and rows[0].params == 20
    assert rows[0].mult_adds == 16 * 3 * 5
    assert "last axis" in rows[0].note


def test_dense_instead_of_convolutions():
    params, formula = arch.dense_instead((64, 64, 3), 10)
    assert params == 64 * 64 * 3 * 10 + 10
    assert formula == "(12,288 + 1)·10 = 122,890"


def test_receptive_field_recurrence_by_hand():
    rows = arch.summarize((64, 64, 1), [
        {"type": "conv2d", "filters": 1, "kernel_size": 3},  # r 3, jump 1
        {"type": "maxpool2d", "pool_size": 2},  # r 4, jump 2
        {"type": "conv2d", "filters": 1, "kernel_size": 3, "dilation_rate": 2},  # r 4 + 4*2 = 12, jump 2
        {"type": "conv2d", "filters": 1, "kernel_size": (5, 3), "strides": 2},  # r (12+8, 12+4), jump 4
        {"type": "flatten"}, {"type": "dense", "units": 1},
    ])
    assert [row.receptive_field for row in rows[:4]] == [(3, 3), (4, 4), (12, 12), (20, 16)]
    assert rows[3].jump == (4, 4)
    assert rows[4].receptive_field == (20, 16) and not rows[4].sees_whole_input
    assert rows[5].sees_whole_input and rows[5].receptive_field == (64, 64)


RECEPTIVE_FIELD_STACKS = [
    [{"type": "conv2d", "filters": 1, "kernel_size": 3}, {"type": "avgpool2d", "pool_size": 2},
     {"type": "conv2d", "filters": 1, "kernel_size": 3}],
    [{"type": "conv2d", "filters": 1, "kernel_size": (5, 3), "strides": (2, 1)},
     {"type": "conv2d", "filters": 1, "kernel_size": 3, "dilation_rate": (1, 3)},
     {"type": "avgpool2d", "pool_size": 3, "strides": 2}],
]


@pytest.mark.parametrize("layers", RECEPTIVE_FIELD_STACKS)
def test_receptive_field_equals_the_span_of_the_input_gradient(layers):
    """With positive weights and no activations, the input pixels that move output (0, 0) span
    exactly the receptive field."""
    import tensorflow as tf

    input_shape = (40, 40, 1)
    model = arch.build_keras_model(input_shape, layers)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([np.ones(w.shape, dtype="float32") for w in layer.weights])
    image = tf.ones((1, *input_shape))
    with tf.GradientTape() as tape:
        tape.watch(image)
        output = model(image)[0, 0, 0, 0]
    gradient = tape.gradient(output, image).numpy()[0, :, :, 0]
    rows_hit = np.flatnonzero(gradient.any(axis=1))
    cols_hit = np.flatnonzero(gradient.any(axis=0))
    span = (rows_hit.max() - rows_hit.min() + 1, cols_hit.max() - cols_hit.min() + 1)
    assert arch.summarize(input_shape, layers)[-1].receptive_field == span


# ---------------------------------------------------------------------------------------------
# Export and import.

EXPORT_STACK = [
    {"type": "conv2d", "filters": 4, "kernel_size": (3, 5), "strides": (1, 2), "padding": "same",
     "activation": "relu", "use_bias": False},
    {"type": "batchnorm"},
    {"type": "maxpool2d", "pool_size": 3, "strides": 2},
    {"type": "conv2d", "filters": 6, "kernel_size": 3, "dilation_rate": 2},
    {"type": "dropout", "rate": 0.25},
    {"type": "avgpool2d", "padding": "same"},
    {"type": "globalmaxpool2d"},
    {"type": "dense", "units": 7, "activation": "softmax"},
]


def test_keras_code_runs_and_builds_the_same_model():
    code = arch.keras_code((32, 30, 3), EXPORT_STACK)
    assert "tensorflow" not in code
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<exported>", "exec"), namespace)  # noqa: S102 - our own generated code.
    model = namespace["model"]
    assert keras_rows(model) == our_rows(arch.summarize((32, 30, 3), EXPORT_STACK))


def test_json_round_trip_keeps_the_stack():
    text = arch.stack_to_json((32, 30, 3), EXPORT_STACK)
    shape, layers = arch.stack_from_json(text)
    assert shape == (32, 30, 3)
    assert our_rows(arch.summarize(shape, layers)) == our_rows(arch.summarize((32, 30, 3), EXPORT_STACK))
    assert json.loads(arch.stack_to_json(shape, layers, compact=True)) == json.loads(text)
    # Defaults are left out of the export.
    assert json.loads(text)["layers"][1] == {"type": "batchnorm"}


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ('{"input_shape": [28, 28, 1]}', "layers"),
    ('{"input_shape": [28, 28], "layers": []}', "input shape"),
    ('{"input_shape": [28, 28, 1], "layers": [{"type": "flatten"}, {"type": "conv2d", "filters": 1, '
     '"kernel_size": 3}]}', "Layer 2"),
    (b"\xff\xfe", "UTF-8"),
])
def test_json_import_errors_are_readable(text, words):
    with pytest.raises(ArchitectureError, match=words):
        arch.stack_from_json(text)


def test_core_summary_never_imports_tensorflow():
    code = ("import sys; from cnnviz import architecture as a; "
            "[a.summarize(p.input_shape, p.layers) for p in a.PRESETS.values()]; "
            "a.keras_code((224, 224, 3), a.PRESETS['vgg16'].layers); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
