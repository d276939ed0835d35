"""The one Keras model builder, the one input-scaling rule and the output (logits/softmax) rules.

* `build_keras_model` is the only place a Keras model is built from a stack; Keras (and so
  TensorFlow) is imported inside it, lazily.
* The network sees pixels in [0, 1]: uint8 images are divided by `PIXEL_MAX`
  (`scale_images` for NumPy arrays; `input_scale` is the factor the in-graph training loops
  multiply raw batches by). Float images are taken as already scaled.
* An output layer is either a softmax (probabilities) or has no activation (logits);
  `outputs_logits` tells which, and `softmax` turns logits into probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cnnviz.architecture import budget
from cnnviz.architecture.layers import LAYERS, shape_text
from cnnviz.architecture.stack import LayerRow, normalize_input_shape

# ---------------------------------------------------------------------------------------------
# Input scaling.

PIXEL_MAX = 255.0  # The largest uint8 pixel value: the network sees pixel / PIXEL_MAX, in [0, 1].


def input_scale(images: Any) -> float:
    """The factor the in-graph training loops multiply raw batches of ``images`` by to bring them
    to [0, 1]: 1 / PIXEL_MAX for uint8 pixels, 1 for float images (already scaled)."""
    return 1.0 / PIXEL_MAX if np.asarray(images).dtype == np.uint8 else 1.0


def scale_images(images: Any, dtype: Any = np.float32) -> np.ndarray:
    """uint8 images -> floats in [0, 1] (pixel / PIXEL_MAX), the network's input; float images are only cast
    (they are taken as already scaled). The shape is unchanged. float32 is what networks see; the
    convolution lab asks for float64 so that its hand-checkable sums stay exact."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        return x.astype(dtype) / dtype(PIXEL_MAX)
    return x.astype(dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# The output layer: logits or probabilities.

# The activations an output layer may have to classify: none (logits) or softmax (probabilities).
OUTPUT_ACTIVATIONS: tuple[str | None, ...] = (None, "linear", "softmax")


def outputs_logits(stack_or_model: Sequence[Mapping[str, Any]] | Any) -> bool:
    """True when the output layer is not a softmax, so its outputs are logits (`softmax` turns
    them into probabilities); False when they already are probabilities.

    Takes a stack (a list of layer dicts) or a built Keras model.
    """
    if hasattr(stack_or_model, "layers"):  # A Keras model: read its last layer's activation.
        activation = getattr(getattr(stack_or_model.layers[-1], "activation", None), "__name__", None)
    else:
        activation = stack_or_model[-1].get("activation") if stack_or_model else None
    return not (isinstance(activation, str) and activation.strip().lower() == "softmax")


def softmax(logits: Any) -> np.ndarray:
    """Row-wise softmax, stable for large logits: (N, K) -> (N, K) float64 rows summing to 1."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# The model.

# Layer types built as a sub-model for a known input shape: a stack with one is a Functional model.
FUNCTIONAL_TYPES: tuple[str, ...] = ("residual_block", "pretrained_backbone")


def build_keras_model(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]], *,
                      name: str | None = None) -> Any:
    """Build the (untrained, uncompiled) Keras model for a stack: a `keras.Sequential` model for
    a plain stack, a Functional `keras.Model` when the stack has a residual block or a pre-trained
    backbone (each block is itself a small Functional model, one layer of the outer model; a
    backbone turns the [0, 1] input into its own ImageNet convention inside, see
    `layers.PretrainedBackbone`).

    The stack is checked with `summarize` first, so an impossible stack raises
    `ArchitectureError` before Keras is touched, and against the server's budget
    (`budget.check_model`), so a stack too big to train raises `BudgetError` before Keras
    allocates anything. ``model.layers[i]`` (leaving out a Functional model's `InputLayer`) is
    ``layers[i]`` and is named
    ``summarize(...)[i].name``. Keras (and so TensorFlow) is imported here, lazily.
    """
    rows = budget.check_model(input_shape, layers)
    import keras

    shape = tuple(normalize_input_shape(input_shape))
    if not any(row.type in FUNCTIONAL_TYPES for row in rows):
        return keras.Sequential(
            [keras.Input(shape=shape, name="input")]
            + [LAYERS[row.type].keras_layer(row.config, row.name) for row in rows],
            name=name or "cnnviz_model",
        )
    # A residual block is a small Functional model of its own (one layer of the outer model).
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    for row in rows:
        x = LAYERS[row.type].keras_layer(row.config, row.name, row.input_shape)(x)
    return keras.Model(inputs, x, name=name or "cnnviz_model")


def classifier_head_problem(rows: Sequence[LayerRow], num_classes: int,
                            dataset_label: str = "the data") -> str | None:
    """Why a valid stack cannot classify `num_classes` classes, or None.

    The one rule for a classifier's head, used by the Train page (to explain and disable Train)
    and by the engine (to refuse): it must end in a flat Dense layer with one unit per class whose
    activation gives scores (softmax or none).
    """
    if not rows:
        return "The stack is empty: it needs at least a Dense output layer with one unit per class."
    last = rows[-1]
    if last.type != "dense" or last.output_shape[-1] != num_classes:
        return (f"The last layer must be a Dense layer with {num_classes} units, one per class: "
                f"{dataset_label} has {num_classes} classes.")
    if len(last.output_shape) != 1:
        return (f"The network ends in a {shape_text(last.output_shape)} volume, not a list of {num_classes} class "
                "scores: put a Flatten (or global pooling) layer before the Dense layers.")
    if last.config.get("activation") not in OUTPUT_ACTIVATIONS:
        return ("The output layer must use softmax (or no activation) so that its outputs can be read as "
                f"class probabilities, not {last.config.get('activation')}.")
    return None
