"""A layer stack walked as Keras would walk it: shapes, counts and receptive fields, and JSON.

`summarize` checks every layer through its type in `cnnviz.architecture.layers.LAYERS` and
returns one `LayerRow` per layer; `totals` sums them. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnviz.architecture.layers import (
    LAYER_TYPES,
    LAYERS,
    MAX_CHANNELS,
    MAX_INPUT_SIDE,
    MAX_WIDTH,
    REQUIRED,
    Pair,
    Place,
    Shape,
    fmt,
    positive_int,
    shape_text,
    where,
)
from cnnviz.errors import ArchitectureError
from cnnviz.parsing import parse_json

MAX_LAYERS = 200
BYTES_PER_NUMBER = 4  # float32
MAX_JSON_CHARACTERS = 200_000


@dataclass(frozen=True)
class LayerRow:
    """One layer of a summarized stack, with the numbers a student checks by hand."""

    index: int  # Position in the stack, from 0.
    name: str  # The Keras layer name, e.g. "conv2d_1".
    type: str  # One of LAYER_TYPES.
    keras_class: str  # e.g. "Conv2D".
    config: dict  # The layer with every argument explicit (Keras defaults filled in).
    input_shape: Shape  # Without the batch dimension, e.g. (28, 28, 1).
    output_shape: Shape  # Without the batch dimension, e.g. (26, 26, 8).
    params: int
    trainable_params: int
    non_trainable_params: int
    formula: str  # The parameter count written out, e.g. "(3·3·1 + 1)·8 = 80".
    mult_adds: int  # Multiply-adds for one image (see the package docstring).
    activation_size: int  # Numbers output for one image: the product of output_shape.
    receptive_field: Pair  # Input pixels (height, width) one output position sees.
    jump: Pair  # Input pixels between neighbouring output positions.
    sees_whole_input: bool  # True once every output depends on every input pixel.
    note: str = ""  # A remark worth showing (e.g. Dense on an unflattened volume).
    hidden_values: int = 0  # Numbers a block (residual_block) holds inside for one image, besides its output.

    @property
    def description(self) -> str:
        """A compact one-line description such as "Conv2D 8, 3x3, relu"."""
        return describe_layer(self.config)


@dataclass(frozen=True)
class Totals:
    """Sums over a summarized stack."""

    params: int
    trainable_params: int
    non_trainable_params: int
    mult_adds: int
    activation_values: int  # All layer outputs for one image (and what blocks hold inside), plus the input.
    parameter_bytes: int  # float32 weights.
    activation_bytes: int  # float32 activations of one image (forward pass).


def normalize_layer(layer: Mapping[str, Any], index: int | None = None) -> dict:
    """Check one layer's own arguments and return it with every Keras default filled in.

    Pairs become tuples; an activation of "linear" becomes None (Keras' default). Raises
    `ArchitectureError` for an unknown type or argument, or a value Keras would refuse.
    """
    if not isinstance(layer, Mapping):
        raise ArchitectureError(f"{where(index, None)}: a layer must be a dict such as "
                                f"{{'type': 'dense', 'units': 10}}, not {type(layer).__name__}.", index=index)
    layer_type = str(layer.get("type", "")).strip().lower()
    if layer_type not in LAYERS:
        raise ArchitectureError(f"Layer {'' if index is None else index + 1}: unknown layer type "
                                f"{layer.get('type')!r}; choose one of {', '.join(LAYER_TYPES)}.".replace(
                                    "Layer :", "Layer:"), index=index)
    kind = LAYERS[layer_type]
    place = where(index, layer_type)
    unknown = sorted(set(layer) - set(kind.arguments) - {"type"})
    if unknown:
        allowed = ", ".join(kind.arguments) or "no settings"
        raise ArchitectureError(f"{place}: unknown setting {', '.join(map(repr, unknown))}; "
                                f"{kind.keras_class} takes {allowed}.", index=index)
    values = {name: layer.get(name, default) for name, default in kind.arguments.items()}
    for name, value in values.items():
        if value is REQUIRED:
            raise ArchitectureError(f"{place}: the setting {name!r} is missing.", index=index)
    return {"type": layer_type, **kind.normalize(values, place, index)}


def normalize_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """Check an image input shape (height, width, channels) and return it as a tuple of ints."""
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
        raise ArchitectureError(f"The input shape must be three numbers (height, width, channels), "
                                f"not {input_shape!r}.")
    height = positive_int(input_shape[0], "the height", "The input", None, limit=MAX_INPUT_SIDE)
    width = positive_int(input_shape[1], "the width", "The input", None, limit=MAX_INPUT_SIDE)
    channels = positive_int(input_shape[2], "the number of channels", "The input", None, limit=MAX_CHANNELS)
    return (height, width, channels)


def layer_names(layers: Iterable[Mapping[str, Any]]) -> list[str]:
    """Keras-style names for a stack: conv2d, conv2d_1, max_pooling2d, dense, dense_1, ..."""
    counts: dict[str, int] = {}
    names = []
    for layer in layers:
        kind = LAYERS.get(str(layer.get("type", "")).strip().lower())
        prefix = kind.name_prefix if kind else "layer"
        seen = counts.get(prefix, 0)
        names.append(prefix if seen == 0 else f"{prefix}_{seen}")
        counts[prefix] = seen + 1
    return names


def describe_layer(layer: Mapping[str, Any]) -> str:
    """A compact description, e.g. "Conv2D 8, 3×3, relu" or "MaxPool 2×2"."""
    kind = LAYERS.get(str(layer.get("type")))
    return kind.describe(layer) if kind else str(layer.get("type"))


def summarize(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> list[LayerRow]:
    """Walk a stack as Keras would and return one `LayerRow` per layer.

    ``input_shape`` is (height, width, channels) without the batch dimension. Raises
    `ArchitectureError` naming the first layer that cannot work and why.
    """
    shape: Shape = normalize_input_shape(input_shape)
    if not isinstance(layers, (list, tuple)):
        raise ArchitectureError("The stack must be a list of layers.")
    if len(layers) == 0:
        raise ArchitectureError("The stack is empty: add at least one layer (for example a Dense "
                                "output layer).")
    if len(layers) > MAX_LAYERS:
        raise ArchitectureError(f"The stack has {len(layers)} layers; this calculator accepts at most "
                                f"{MAX_LAYERS}.")
    normalized = [normalize_layer(layer, index) for index, layer in enumerate(layers)]
    names = layer_names(normalized)
    image_h, image_w = shape[0], shape[1]
    rf = (1, 1)
    jump = (1, 1)
    whole = False
    rows: list[LayerRow] = []
    for index, (layer, name) in enumerate(zip(normalized, names)):
        kind = LAYERS[layer["type"]]
        place = Place(index=index, name=name, label=where(index, kind.type))
        if kind.image_input and len(shape) != 3:
            raise place.error(f"{kind.image_input} needs an image-shaped input (height, width, channels), "
                              f"but its input is the flat vector {shape_text(shape)}. Put it before Flatten "
                              f"(or before the global pooling), not after.")
        step = kind.step(layer, shape, place)
        # The receptive field grows by the window's extra extent, measured in input pixels.
        rf = (rf[0] + (step.window[0] - 1) * jump[0], rf[1] + (step.window[1] - 1) * jump[1])
        jump = (jump[0] * step.strides[0], jump[1] * step.strides[1])
        # A global pool or a Dense layer on a flat vector mixes every position: from there on,
        # each output depends on the whole image. Flatten alone only rearranges values.
        whole = whole or step.mixes_all
        rows.append(LayerRow(
            index=index, name=name, type=kind.type, keras_class=kind.keras_class, config=layer,
            input_shape=shape, output_shape=step.output_shape, params=step.params,
            trainable_params=step.trainable, non_trainable_params=step.non_trainable, formula=step.formula,
            mult_adds=step.mult_adds, activation_size=math.prod(step.output_shape),
            receptive_field=(image_h, image_w) if whole else rf, jump=jump, sees_whole_input=whole,
            note=step.note, hidden_values=step.hidden_values,
        ))
        shape = step.output_shape
    return rows


def totals(rows: Sequence[LayerRow]) -> Totals:
    """Sum parameters, multiply-adds and float32 memory over summarized rows."""
    params = sum(row.params for row in rows)
    activations = sum(row.activation_size + row.hidden_values for row in rows)
    if rows:
        activations += math.prod(rows[0].input_shape)
    return Totals(
        params=params,
        trainable_params=sum(row.trainable_params for row in rows),
        non_trainable_params=sum(row.non_trainable_params for row in rows),
        mult_adds=sum(row.mult_adds for row in rows),
        activation_values=activations,
        parameter_bytes=params * BYTES_PER_NUMBER,
        activation_bytes=activations * BYTES_PER_NUMBER,
    )


def dense_instead(input_shape: Sequence[int], units: int) -> tuple[int, str]:
    """Parameters of flattening the input straight into a Dense layer of ``units`` units.

    Returns (params, formula), e.g. 64×64×3 into 10 units: (12,288 + 1)·10 = 122,890.
    """
    shape = normalize_input_shape(input_shape)
    units = positive_int(units, "the number of units", "The Dense layer", None, limit=MAX_WIDTH)
    fan_in = math.prod(shape)
    params = (fan_in + 1) * units
    return params, f"({fmt(fan_in)} + 1)·{fmt(units)} = {fmt(params)}"


# ---------------------------------------------------------------------------------------------
# The compact form and JSON.


def compact_layer(layer: Mapping[str, Any]) -> dict:
    """A normalized layer with default-valued arguments left out (pairs as lists, for JSON)."""
    normalized = normalize_layer(layer)
    result: dict[str, Any] = {"type": normalized["type"]}
    for key, default in LAYERS[normalized["type"]].arguments.items():
        value = normalized[key]
        if default is not REQUIRED and value == default:
            continue
        if isinstance(value, tuple):
            value = list(value)
        result[key] = value
    return result


def stack_to_json(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]], *,
                  compact: bool = False) -> str:
    """JSON text ``{"input_shape": [...], "layers": [...]}`` with only non-default arguments."""
    document = {"input_shape": list(normalize_input_shape(input_shape)),
                "layers": [compact_layer(layer) for layer in layers]}
    if compact:
        return json.dumps(document, separators=(",", ":"))
    return json.dumps(document, indent=2)


def stack_from_json(text: str | bytes) -> tuple[tuple[int, int, int], list[dict]]:
    """Read JSON written by `stack_to_json` (or a bare list of layers, with input 28×28×1).

    Returns (input_shape, layers) after checking every layer; raises `ArchitectureError` with a
    readable message for malformed JSON or an impossible stack.
    """
    # The one bounded parser: size, nesting and every number checked before conversion.
    document = parse_json(text, what="The layer stack", max_characters=MAX_JSON_CHARACTERS,
                          error=ArchitectureError)
    if isinstance(document, list):
        document = {"input_shape": [28, 28, 1], "layers": document}
    if not isinstance(document, dict) or "layers" not in document:
        raise ArchitectureError('The JSON must be an object with "input_shape" and "layers" '
                                '(or a list of layers).')
    input_shape = normalize_input_shape(document.get("input_shape", [28, 28, 1]))
    layers = document["layers"]
    if not isinstance(layers, list):
        raise ArchitectureError('"layers" must be a list of layer objects.')
    summarize(input_shape, layers)
    return input_shape, [compact_layer(layer) for layer in layers]
