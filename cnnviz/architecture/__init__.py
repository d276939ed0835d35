"""Layer stacks as plain data: shapes, parameter counts and receptive fields without TensorFlow.

A layer is a plain dict whose keys are Keras argument names, plus a ``"type"``::

    {"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu"}

A residual block is one such dict too, ``{"type": "residual_block", "filters": 16, "kernel_size": 3,
"strides": 2}`` (the ResNet basic block; see `layers.ResidualBlock`): it is one row of the
calculator and one layer of the Keras model (a small Functional model of its own, so a stack with
one builds as a Functional model; plain stacks stay `keras.Sequential`).

A stack is a list (or tuple) of such dicts and includes the output layer. `summarize` walks a
stack with the same arithmetic Keras uses and returns one `LayerRow` per layer; it never imports
TensorFlow, so the calculator page stays light. `build_keras_model` is the one place where a Keras
model is built from a stack (Keras is imported inside the function), and its layer names equal
the names `summarize` gives (``conv2d``, ``conv2d_1``, ``max_pooling2d``, ``dense``, ...), so a
row of the table and a layer of the model can always be matched by name.

What is counted:

* parameters exactly as Keras counts them (BatchNormalization's moving mean and variance are
  non-trainable);
* multiply-adds per image: a convolution does ``out_h * out_w * K * kh * kw * D`` of them and a
  Dense layer ``inputs * units`` (bias additions, activations and pooling are not counted);
* the activation size: how many numbers a layer outputs for one image;
* the receptive field: how many input pixels (height x width) one output position can see,
  from the usual recurrence ``r_out = r_in + (k_eff - 1) * jump_in`` and ``jump_out = jump_in * s``
  with the dilated kernel size ``k_eff = d * (k - 1) + 1``.

The modules: `layers` (one class per layer type and the registry `LAYERS`), `stack` (the walk,
totals, the compact form and JSON), `keras_model` (the Keras builder, the input-scaling rule and
the logits/softmax rules), `code_export` (Keras source), `presets` and `budget` (the server's
memory and run-length budget, checked before a model is built or a run starts). This file only
re-exports.
"""

from cnnviz.architecture.budget import EVAL_BATCH
from cnnviz.architecture.code_export import keras_code
from cnnviz.architecture.keras_model import (
    FUNCTIONAL_TYPES,
    OUTPUT_ACTIVATIONS,
    PIXEL_MAX,
    build_keras_model,
    classifier_head_problem,
    input_scale,
    outputs_logits,
    scale_images,
    softmax,
)
from cnnviz.architecture.layers import (
    EDITOR_ARGUMENTS,
    LAYER_TYPES,
    LAYERS,
    MAX_CHANNELS,
    MAX_INPUT_SIDE,
    Argument,
    LayerType,
)
from cnnviz.architecture.presets import PRESETS, Preset, stack_for
from cnnviz.architecture.stack import (
    LayerRow,
    Totals,
    compact_layer,
    dense_instead,
    describe_layer,
    layer_names,
    normalize_input_shape,
    normalize_layer,
    stack_from_json,
    stack_to_json,
    summarize,
    totals,
)
from cnnviz.errors import ArchitectureError

__all__ = [
    "EDITOR_ARGUMENTS", "EVAL_BATCH", "FUNCTIONAL_TYPES", "LAYERS", "LAYER_TYPES", "MAX_CHANNELS", "MAX_INPUT_SIDE", "OUTPUT_ACTIVATIONS", "PIXEL_MAX", "PRESETS", "Argument", "ArchitectureError", "LayerRow",
    "LayerType", "Preset", "Totals", "build_keras_model", "classifier_head_problem", "compact_layer", "dense_instead", "describe_layer",
    "input_scale", "keras_code", "layer_names", "normalize_input_shape", "normalize_layer", "outputs_logits",
    "scale_images", "softmax", "stack_for", "stack_from_json", "stack_to_json", "summarize", "totals",
]
