"""The stack walk: formulas, totals, receptive fields, the JSON round trip, and no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from keras_oracle import EXPORT_STACK, our_rows

from cnnviz import architecture as arch
from cnnviz.architecture import ArchitectureError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

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
