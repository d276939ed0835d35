"""A stack as runnable Keras 3 source (text only: nothing here imports Keras)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnnviz.architecture.layers import LAYERS, python_value
from cnnviz.architecture.stack import normalize_input_shape, summarize


def keras_code(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]], *,
               model_name: str = "cnnviz_model") -> str:
    """Runnable Keras 3 source that builds the same model (same layer names) and prints its summary."""
    rows = summarize(input_shape, layers)
    lines = [
        "import keras",
        "from keras import layers",
        "",
        "model = keras.Sequential(",
        "    [",
        f"        keras.Input(shape={python_value(tuple(normalize_input_shape(input_shape)))}),",
    ]
    lines += [f"        {LAYERS[row.type].keras_code(row.config, row.name)}," for row in rows]
    lines += [
        "    ],",
        f"    name={python_value(model_name)},",
        ")",
        "model.summary()",
        "",
    ]
    return "\n".join(lines)
