"""Keras itself as the oracle of the architecture tests: names, shapes and counts per layer."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz import architecture as arch

keras = pytest.importorskip("keras")


def keras_rows(model):
    """(name, output shape without batch, params, trainable, non-trainable) per Keras layer."""
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue  # A Functional model lists its input; a Sequential model does not.
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
        objects.append(getattr(keras.layers, arch.LAYERS[layer["type"]].keras_class)(**arguments))
    return keras.Sequential(objects)


def stateless_keras_rows(input_shape, layers):
    """Per-layer Keras shapes and counts without allocating weights (for the 100M-parameter presets)."""
    rows = arch.summarize(input_shape, layers)
    shape = (None, *input_shape)
    result = []
    with keras.StatelessScope():
        for row in rows:
            layer = arch.LAYERS[row.type].keras_layer(row.config, row.name)
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
            trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
            non_trainable = sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)
            result.append((layer.name, shape[1:], trainable + non_trainable, trainable, non_trainable))
    return result


# A stack with every kind of argument at a non-default value (for the code export and JSON tests).
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
