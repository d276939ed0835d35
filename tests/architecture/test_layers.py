"""Each layer type against Keras: random stacks, refusals, readable errors, per-layer counts, and
the registry that the stack editor reads."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from keras_oracle import keras, keras_rows, our_rows, raw_keras_model

from cnnviz import architecture as arch
from cnnviz.architecture import FUNCTIONAL_TYPES, ArchitectureError

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
# Per-layer counts.


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

# ---------------------------------------------------------------------------------------------
# The registry.


REQUIRED_VALUES = {"filters": 2, "kernel_size": 3, "units": 2, "rate": 0.5}


@pytest.mark.parametrize("layer_type", arch.LAYER_TYPES)
def test_every_registered_type_builds_the_keras_layer_it_names(layer_type):
    kind = arch.LAYERS[layer_type]
    assert kind.type == layer_type and kind.label
    if layer_type == "pretrained_backbone":
        pytest.skip("needs a 32×32 input: built and checked against Keras in test_backbones.py")
    layer = {"type": layer_type, **{key: REQUIRED_VALUES[key] for key in kind.arguments if key in REQUIRED_VALUES}}
    layers = [layer, {"type": "flatten"}, {"type": "dense", "units": 3}]
    model = arch.build_keras_model((8, 8, 2), layers)
    first = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)][0]
    assert keras_rows(model) == our_rows(arch.summarize((8, 8, 2), layers))
    if layer_type in FUNCTIONAL_TYPES:
        # A block is a small Functional model of its own, one layer of the outer model.
        assert isinstance(first, keras.Model) and first.name == layer_type
        return
    assert type(first).__name__ == kind.keras_class
    assert isinstance(first, getattr(keras.layers, kind.keras_class))


def test_the_stack_editor_has_a_column_for_every_argument():
    columns = {argument.name for argument in arch.EDITOR_ARGUMENTS}
    for kind in arch.LAYERS.values():
        assert set(kind.arguments) <= columns, kind.type
    assert all(argument.options for argument in arch.EDITOR_ARGUMENTS if argument.kind in ("padding", "activation"))
