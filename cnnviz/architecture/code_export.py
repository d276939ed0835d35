"""A stack as runnable Keras 3 source (text only: nothing here imports Keras)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnnviz.architecture.keras_model import FUNCTIONAL_TYPES
from cnnviz.architecture.layers import LAYERS, python_value
from cnnviz.architecture.stack import normalize_input_shape, summarize


def keras_code(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]], *,
               model_name: str = "cnnviz_model") -> str:
    """Runnable Keras 3 source that builds the same model (same layer names) and prints its summary.

    A plain stack is written as a `keras.Sequential` list; a stack with a residual block as a
    Functional model, after the block's function (`LayerType.helper_code`)."""
    rows = summarize(input_shape, layers)
    shape = python_value(tuple(normalize_input_shape(input_shape)))
    lines = ["import keras", "from keras import layers", ""]
    if not any(row.type in FUNCTIONAL_TYPES for row in rows):
        lines += ["model = keras.Sequential(", "    [", f"        keras.Input(shape={shape}),"]
        lines += [f"        {LAYERS[row.type].keras_code(row.config, row.name)}," for row in rows]
        lines += ["    ],", f"    name={python_value(model_name)},", ")", "model.summary()", ""]
        return "\n".join(lines)
    for layer_type in dict.fromkeys(row.type for row in rows):
        if LAYERS[layer_type].helper_code:
            lines += [LAYERS[layer_type].helper_code, ""]
    lines.append(f"inputs = keras.Input(shape={shape})")
    previous = "inputs"
    for row in rows:
        lines.append(f"x = {LAYERS[row.type].keras_code(row.config, row.name)}({previous})")
        previous = "x"
    lines += [f"model = keras.Model(inputs, x, name={python_value(model_name)})", "model.summary()", ""]
    return "\n".join(lines)
