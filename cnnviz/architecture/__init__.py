"""Layer stacks as plain data: shapes, parameter counts and receptive fields without TensorFlow.

A layer is a plain dict whose keys are Keras argument names, plus a ``"type"``::

    {"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu"}

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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnviz.errors import ArchitectureError

LAYER_TYPES: tuple[str, ...] = (
    "conv2d", "maxpool2d", "avgpool2d", "flatten", "dense", "dropout", "batchnorm",
    "globalavgpool2d", "globalmaxpool2d",
)

# The Keras class each layer type becomes.
KERAS_CLASSES: dict[str, str] = {
    "conv2d": "Conv2D",
    "maxpool2d": "MaxPooling2D",
    "avgpool2d": "AveragePooling2D",
    "flatten": "Flatten",
    "dense": "Dense",
    "dropout": "Dropout",
    "batchnorm": "BatchNormalization",
    "globalavgpool2d": "GlobalAveragePooling2D",
    "globalmaxpool2d": "GlobalMaxPooling2D",
}

# Keras' own default layer names (snake case of the class); the n-th repeat gets "_n".
NAME_PREFIXES: dict[str, str] = {
    "conv2d": "conv2d",
    "maxpool2d": "max_pooling2d",
    "avgpool2d": "average_pooling2d",
    "flatten": "flatten",
    "dense": "dense",
    "dropout": "dropout",
    "batchnorm": "batch_normalization",
    "globalavgpool2d": "global_average_pooling2d",
    "globalmaxpool2d": "global_max_pooling2d",
}

# Short labels for tables and menus.
LAYER_LABELS: dict[str, str] = {
    "conv2d": "Convolution (Conv2D)",
    "maxpool2d": "Max pooling",
    "avgpool2d": "Average pooling",
    "flatten": "Flatten",
    "dense": "Dense (fully connected)",
    "dropout": "Dropout",
    "batchnorm": "Batch normalization",
    "globalavgpool2d": "Global average pooling",
    "globalmaxpool2d": "Global max pooling",
}

_REQUIRED = object()

# Each type's arguments with Keras' defaults; `_REQUIRED` marks arguments Keras insists on.
LAYER_ARGUMENTS: dict[str, dict[str, Any]] = {
    "conv2d": {"filters": _REQUIRED, "kernel_size": _REQUIRED, "strides": 1, "padding": "valid",
               "activation": None, "dilation_rate": 1, "use_bias": True},
    "maxpool2d": {"pool_size": 2, "strides": None, "padding": "valid"},
    # Keras 3's AveragePooling2D has no default pool size; cnnviz uses 2, like MaxPooling2D.
    "avgpool2d": {"pool_size": 2, "strides": None, "padding": "valid"},
    "flatten": {},
    "dense": {"units": _REQUIRED, "activation": None, "use_bias": True},
    "dropout": {"rate": _REQUIRED},
    "batchnorm": {},
    "globalavgpool2d": {},
    "globalmaxpool2d": {},
}

# Activation names a stack may use (all exist in keras.activations); None means "linear".
ACTIVATIONS: tuple[str, ...] = (
    "linear", "relu", "tanh", "sigmoid", "softmax", "elu", "selu", "gelu", "silu", "swish",
    "leaky_relu", "relu6", "softplus", "softsign", "hard_sigmoid", "exponential", "mish",
)
PADDINGS: tuple[str, ...] = ("valid", "same")

MAX_LAYERS = 200
MAX_INPUT_SIDE = 4096
MAX_CHANNELS = 4096
MAX_WIDTH = 1_000_000  # Largest filter or unit count accepted.
BYTES_PER_NUMBER = 4  # float32


@dataclass(frozen=True)
class LayerRow:
    """One layer of a summarized stack, with the numbers a student checks by hand."""

    index: int  # Position in the stack, from 0.
    name: str  # The Keras layer name, e.g. "conv2d_1".
    type: str  # One of LAYER_TYPES.
    keras_class: str  # e.g. "Conv2D".
    config: dict  # The layer with every argument explicit (Keras defaults filled in).
    input_shape: tuple[int, ...]  # Without the batch dimension, e.g. (28, 28, 1).
    output_shape: tuple[int, ...]  # Without the batch dimension, e.g. (26, 26, 8).
    params: int
    trainable_params: int
    non_trainable_params: int
    formula: str  # The parameter count written out, e.g. "(3·3·1 + 1)·8 = 80".
    mult_adds: int  # Multiply-adds for one image (see the module docstring).
    activation_size: int  # Numbers output for one image: the product of output_shape.
    receptive_field: tuple[int, int]  # Input pixels (height, width) one output position sees.
    jump: tuple[int, int]  # Input pixels between neighbouring output positions.
    sees_whole_input: bool  # True once every output depends on every input pixel.
    note: str = ""  # A remark worth showing (e.g. Dense on an unflattened volume).

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
    activation_values: int  # All layer outputs for one image, plus the input itself.
    parameter_bytes: int  # float32 weights.
    activation_bytes: int  # float32 activations of one image (forward pass).


@dataclass(frozen=True)
class Preset:
    """A named stack to load into the calculator or the trainer."""

    key: str
    title: str
    input_shape: tuple[int, int, int]
    layers: tuple[dict, ...]
    description: str

    def stack(self) -> list[dict]:
        """A fresh, editable copy of the layers."""
        return [dict(layer) for layer in self.layers]

    @property
    def total_params(self) -> int:
        return totals(summarize(self.input_shape, self.layers)).params


# ---------------------------------------------------------------------------------------------
# Validation of single values.


def _where(index: int | None, layer_type: str | None) -> str:
    if index is None:
        return "The input"
    label = KERAS_CLASSES.get(layer_type or "", "layer")
    return f"Layer {index + 1} ({label})"


def _as_int(value: Any, what: str, where: str, index: int | None) -> int:
    """Accept ints and integral floats (tables deliver 8.0); reject text, booleans, fractions."""
    if isinstance(value, bool) or value is None:
        raise ArchitectureError(f"{where}: {what} must be a whole number, not {value!r}.", index=index)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            raise ArchitectureError(f"{where}: {what} must be a whole number, not {text!r}.",
                                    index=index) from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ArchitectureError(f"{where}: {what} must be a whole number, not {value!r}.",
                                index=index) from None
    if not math.isfinite(number) or number != int(number):
        raise ArchitectureError(f"{where}: {what} must be a whole number, not {value!r}.", index=index)
    return int(number)


def _positive_int(value: Any, what: str, where: str, index: int | None, *, limit: int) -> int:
    number = _as_int(value, what, where, index)
    if number < 1:
        raise ArchitectureError(f"{where}: {what} must be at least 1 (got {number}); with none "
                                f"there would be nothing to compute.", index=index)
    if number > limit:
        raise ArchitectureError(f"{where}: {what} = {number:,} is more than this calculator "
                                f"accepts ({limit:,}).", index=index)
    return number


def _pair(value: Any, what: str, where: str, index: int | None, *, limit: int = MAX_INPUT_SIDE
          ) -> int | tuple[int, int]:
    """An int or an (height, width) pair of positive ints; an equal pair stays a pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ArchitectureError(f"{where}: {what} must be one number or a pair (height, width), "
                                    f"not {len(value)} numbers.", index=index)
        return (_positive_int(value[0], what, where, index, limit=limit),
                _positive_int(value[1], what, where, index, limit=limit))
    if isinstance(value, str):
        # Text from a table cell: "3", "3x5", "3×5", "3,5" or "(3, 5)".
        parts = [part for part in re.split(r"[x×*,\s]+", value.strip().strip("()[]").lower()) if part]
        if len(parts) == 2:
            return _pair(parts, what, where, index, limit=limit)
        if len(parts) == 1:
            value = parts[0]
        elif len(parts) > 2:
            raise ArchitectureError(f"{where}: {what} must be one number or a pair such as 3x5, "
                                    f"not {value!r}.", index=index)
    return _positive_int(value, what, where, index, limit=limit)


def _hw(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _activation(value: Any, where: str, index: int | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ArchitectureError(f"{where}: the activation must be a name such as 'relu', "
                                f"not {value!r}.", index=index)
    name = value.strip().lower()
    if name in ("", "none", "linear"):
        return None
    if name not in ACTIVATIONS:
        raise ArchitectureError(f"{where}: unknown activation {value!r}; choose one of "
                                f"{', '.join(ACTIVATIONS)}.", index=index)
    return name


def _padding(value: Any, where: str, index: int | None) -> str:
    name = str(value).strip().lower() if value is not None else "valid"
    if name not in PADDINGS:
        raise ArchitectureError(f"{where}: padding must be 'valid' or 'same', not {value!r}.", index=index)
    return name


def _bool(value: Any, what: str, where: str, index: int | None) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ArchitectureError(f"{where}: {what} must be true or false, not {value!r}.", index=index)


def normalize_layer(layer: Mapping[str, Any], index: int | None = None) -> dict:
    """Check one layer's own arguments and return it with every Keras default filled in.

    Pairs become tuples; an activation of "linear" becomes None (Keras' default). Raises
    `ArchitectureError` for an unknown type or argument, or a value Keras would refuse.
    """
    if not isinstance(layer, Mapping):
        raise ArchitectureError(f"{_where(index, None)}: a layer must be a dict such as "
                                f"{{'type': 'dense', 'units': 10}}, not {type(layer).__name__}.", index=index)
    layer_type = str(layer.get("type", "")).strip().lower()
    if layer_type not in LAYER_TYPES:
        raise ArchitectureError(f"Layer {'' if index is None else index + 1}: unknown layer type "
                                f"{layer.get('type')!r}; choose one of {', '.join(LAYER_TYPES)}.".replace(
                                    "Layer :", "Layer:"), index=index)
    where = _where(index, layer_type)
    defaults = LAYER_ARGUMENTS[layer_type]
    unknown = sorted(set(layer) - set(defaults) - {"type"})
    if unknown:
        allowed = ", ".join(defaults) or "no settings"
        raise ArchitectureError(f"{where}: unknown setting {', '.join(map(repr, unknown))}; "
                                f"{KERAS_CLASSES[layer_type]} takes {allowed}.", index=index)
    values = {name: layer.get(name, default) for name, default in defaults.items()}
    for name, value in values.items():
        if value is _REQUIRED:
            raise ArchitectureError(f"{where}: the setting {name!r} is missing.", index=index)

    result: dict[str, Any] = {"type": layer_type}
    if layer_type == "conv2d":
        result["filters"] = _positive_int(values["filters"], "the number of filters", where, index,
                                          limit=MAX_WIDTH)
        result["kernel_size"] = _pair(values["kernel_size"], "the kernel size", where, index)
        result["strides"] = _pair(values["strides"], "the stride", where, index)
        result["padding"] = _padding(values["padding"], where, index)
        result["activation"] = _activation(values["activation"], where, index)
        result["dilation_rate"] = _pair(values["dilation_rate"], "the dilation rate", where, index)
        result["use_bias"] = _bool(values["use_bias"], "use_bias", where, index)
        if max(_hw(result["strides"])) > 1 and max(_hw(result["dilation_rate"])) > 1:
            raise ArchitectureError(
                f"{where}: a stride above 1 together with a dilation rate above 1 is not supported "
                f"by Keras (whatever the padding). Use stride 1 with dilation, or dilation 1 with "
                f"a stride.", index=index)
    elif layer_type in ("maxpool2d", "avgpool2d"):
        result["pool_size"] = _pair(values["pool_size"], "the pool size", where, index)
        strides = values["strides"]
        result["strides"] = None if strides is None or (isinstance(strides, float) and math.isnan(strides)) \
            else _pair(strides, "the stride", where, index)
        result["padding"] = _padding(values["padding"], where, index)
    elif layer_type == "dense":
        result["units"] = _positive_int(values["units"], "the number of units", where, index, limit=MAX_WIDTH)
        result["activation"] = _activation(values["activation"], where, index)
        result["use_bias"] = _bool(values["use_bias"], "use_bias", where, index)
    elif layer_type == "dropout":
        rate = values["rate"]
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise ArchitectureError(f"{where}: the dropout rate must be a number, not {rate!r}.",
                                    index=index) from None
        if not (0.0 <= rate < 1.0):
            raise ArchitectureError(f"{where}: the dropout rate is the fraction of values dropped, so "
                                    f"it must be at least 0 and below 1 (got {rate:g}).", index=index)
        result["rate"] = rate
    return result


def normalize_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """Check an image input shape (height, width, channels) and return it as a tuple of ints."""
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
        raise ArchitectureError(f"The input shape must be three numbers (height, width, channels), "
                                f"not {input_shape!r}.")
    height = _positive_int(input_shape[0], "the height", "The input", None, limit=MAX_INPUT_SIDE)
    width = _positive_int(input_shape[1], "the width", "The input", None, limit=MAX_INPUT_SIDE)
    channels = _positive_int(input_shape[2], "the number of channels", "The input", None, limit=MAX_CHANNELS)
    return (height, width, channels)


# ---------------------------------------------------------------------------------------------
# Shape arithmetic.


def conv_output_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Keras' output length along one axis (may be 0 or negative when nothing fits)."""
    if padding == "same":
        return -(-size // stride)
    effective = dilation * (kernel - 1) + 1
    return (size - effective) // stride + 1


def _fmt(number: int) -> str:
    return f"{number:,}"


def _shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def layer_names(layers: Iterable[Mapping[str, Any]]) -> list[str]:
    """Keras-style names for a stack: conv2d, conv2d_1, max_pooling2d, dense, dense_1, ..."""
    counts: dict[str, int] = {}
    names = []
    for layer in layers:
        prefix = NAME_PREFIXES.get(str(layer.get("type", "")).strip().lower(), "layer")
        seen = counts.get(prefix, 0)
        names.append(prefix if seen == 0 else f"{prefix}_{seen}")
        counts[prefix] = seen + 1
    return names


def describe_layer(layer: Mapping[str, Any]) -> str:
    """A compact description, e.g. "Conv2D 8, 3×3, relu" or "MaxPool 2×2"."""
    t = layer.get("type")
    if t == "conv2d":
        kh, kw = _hw(layer["kernel_size"])
        parts = [f"Conv2D {layer['filters']}, {kh}×{kw}"]
        sh, sw = _hw(layer.get("strides", 1))
        if (sh, sw) != (1, 1):
            parts.append(f"stride {sh}" if sh == sw else f"stride {sh}×{sw}")
        dh, dw = _hw(layer.get("dilation_rate", 1))
        if (dh, dw) != (1, 1):
            parts.append(f"dilation {dh}" if dh == dw else f"dilation {dh}×{dw}")
        if layer.get("padding", "valid") == "same":
            parts.append("same")
        if layer.get("activation"):
            parts.append(layer["activation"])
        if layer.get("use_bias") is False:
            parts.append("no bias")
        return ", ".join(parts)
    if t in ("maxpool2d", "avgpool2d"):
        ph, pw = _hw(layer.get("pool_size", 2))
        text = f"{'Max' if t == 'maxpool2d' else 'Avg'}Pool {ph}×{pw}"
        strides = layer.get("strides")
        if strides is not None and _hw(strides) != (ph, pw):
            sh, sw = _hw(strides)
            text += f", stride {sh}" if sh == sw else f", stride {sh}×{sw}"
        if layer.get("padding", "valid") == "same":
            text += ", same"
        return text
    if t == "dense":
        text = f"Dense {layer['units']}"
        if layer.get("activation"):
            text += f", {layer['activation']}"
        if layer.get("use_bias") is False:
            text += ", no bias"
        return text
    if t == "dropout":
        return f"Dropout {layer['rate']:g}"
    return KERAS_CLASSES.get(t, str(t))


def _spatial_error(where: str, index: int, name: str, message: str) -> ArchitectureError:
    return ArchitectureError(f"{where} '{name}': {message}", index=index, layer_name=name)


def summarize(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> list[LayerRow]:
    """Walk a stack as Keras would and return one `LayerRow` per layer.

    ``input_shape`` is (height, width, channels) without the batch dimension. Raises
    `ArchitectureError` naming the first layer that cannot work and why.
    """
    shape: tuple[int, ...] = normalize_input_shape(input_shape)
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
        t = layer["type"]
        where = _where(index, t)
        in_shape = shape
        params = trainable = non_trainable = 0
        formula = "no weights: 0"
        mult_adds = 0
        note = ""
        if t in ("conv2d", "maxpool2d", "avgpool2d", "globalavgpool2d", "globalmaxpool2d") and len(shape) != 3:
            what = {"conv2d": "a convolution", "maxpool2d": "a pooling layer", "avgpool2d": "a pooling layer"}.get(
                t, "a global pooling layer")
            raise _spatial_error(where, index, name,
                                 f"{what} needs an image-shaped input (height, width, channels), but its "
                                 f"input is the flat vector {_shape_text(shape)}. Put it before Flatten "
                                 f"(or before the global pooling), not after.")
        if t == "conv2d":
            h, w, depth = shape
            kh, kw = _hw(layer["kernel_size"])
            sh, sw = _hw(layer["strides"])
            dh, dw = _hw(layer["dilation_rate"])
            out_h = conv_output_size(h, kh, sh, layer["padding"], dh)
            out_w = conv_output_size(w, kw, sw, layer["padding"], dw)
            if out_h < 1 or out_w < 1:
                eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
                dilated = f" (dilated to {eh}×{ew})" if (dh, dw) != (1, 1) else ""
                raise _spatial_error(where, index, name,
                                     f"the {kh}×{kw} kernel{dilated} is larger than its {h}×{w} input "
                                     f"under 'valid' padding, so it fits nowhere and the output would "
                                     f"have no size. Use a smaller kernel, 'same' padding, or fewer "
                                     f"pooling layers before it.")
            filters = layer["filters"]
            weights = kh * kw * depth * filters
            params = weights + (filters if layer["use_bias"] else 0)
            trainable = params
            if layer["use_bias"]:
                formula = f"({kh}·{kw}·{depth} + 1)·{filters} = {_fmt(params)}"
            else:
                formula = f"{kh}·{kw}·{depth}·{filters} = {_fmt(params)} (no bias)"
            mult_adds = out_h * out_w * filters * kh * kw * depth
            shape = (out_h, out_w, filters)
            rf = (rf[0] + (dh * (kh - 1)) * jump[0], rf[1] + (dw * (kw - 1)) * jump[1])
            jump = (jump[0] * sh, jump[1] * sw)
        elif t in ("maxpool2d", "avgpool2d"):
            h, w, depth = shape
            ph, pw = _hw(layer["pool_size"])
            sh, sw = _hw(layer["strides"] if layer["strides"] is not None else layer["pool_size"])
            out_h = conv_output_size(h, ph, sh, layer["padding"])
            out_w = conv_output_size(w, pw, sw, layer["padding"])
            if out_h < 1 or out_w < 1:
                raise _spatial_error(where, index, name,
                                     f"a {ph}×{pw} pool does not fit in its {h}×{w} input under 'valid' "
                                     f"padding, so it would leave zero size. Remove a pooling layer, "
                                     f"use a smaller pool, or 'same' padding.")
            shape = (out_h, out_w, depth)
            rf = (rf[0] + (ph - 1) * jump[0], rf[1] + (pw - 1) * jump[1])
            jump = (jump[0] * sh, jump[1] * sw)
        elif t == "flatten":
            shape = (math.prod(shape),)
            if len(in_shape) == 3:
                note = f"{_shape_text(in_shape)} values laid out as one vector; nothing is learned here."
        elif t == "dense":
            units = layer["units"]
            fan_in = shape[-1]
            params = fan_in * units + (units if layer["use_bias"] else 0)
            trainable = params
            if layer["use_bias"]:
                formula = f"({_fmt(fan_in)} + 1)·{_fmt(units)} = {_fmt(params)}"
            else:
                formula = f"{_fmt(fan_in)}·{_fmt(units)} = {_fmt(params)} (no bias)"
            positions = math.prod(shape[:-1])
            mult_adds = positions * fan_in * units
            if len(shape) > 1:
                note = (f"Dense acts on the last axis only: the same {_fmt(fan_in)}→{_fmt(units)} weights are "
                        f"applied at each of the {_shape_text(shape[:-1])} positions. Add Flatten before it "
                        f"to connect every value.")
            shape = shape[:-1] + (units,)
        elif t == "batchnorm":
            channels = shape[-1]
            params = 4 * channels
            trainable = 2 * channels
            non_trainable = 2 * channels
            formula = (f"4·{channels} = {_fmt(params)} ({_fmt(trainable)} trainable γ and β, "
                       f"{_fmt(non_trainable)} non-trainable moving mean and variance)")
        elif t in ("globalavgpool2d", "globalmaxpool2d"):
            shape = (shape[2],)
        # Dropout changes nothing in shape and has no weights.
        # A global pool or a Dense layer on a flat vector mixes every position: from there on,
        # each output depends on the whole image. Flatten alone only rearranges values.
        if t in ("globalavgpool2d", "globalmaxpool2d") or (t == "dense" and len(in_shape) == 1):
            whole = True
        if whole:
            rf_now = (image_h, image_w)
        else:
            rf_now = rf
        rows.append(LayerRow(
            index=index, name=name, type=t, keras_class=KERAS_CLASSES[t], config=layer,
            input_shape=in_shape, output_shape=shape, params=params, trainable_params=trainable,
            non_trainable_params=non_trainable, formula=formula, mult_adds=mult_adds,
            activation_size=math.prod(shape), receptive_field=rf_now, jump=jump,
            sees_whole_input=whole, note=note,
        ))
    return rows


def totals(rows: Sequence[LayerRow]) -> Totals:
    """Sum parameters, multiply-adds and float32 memory over summarized rows."""
    params = sum(row.params for row in rows)
    activations = sum(row.activation_size for row in rows)
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
    units = _positive_int(units, "the number of units", "The Dense layer", None, limit=MAX_WIDTH)
    fan_in = math.prod(shape)
    params = (fan_in + 1) * units
    return params, f"({_fmt(fan_in)} + 1)·{_fmt(units)} = {_fmt(params)}"


# ---------------------------------------------------------------------------------------------
# Keras: the only place a model is built from a stack.


def keras_layer(layer: Mapping[str, Any], name: str):
    """One Keras layer object (not yet built) for a normalized layer dict."""
    from keras import layers as keras_layers

    t = layer["type"]
    if t == "conv2d":
        return keras_layers.Conv2D(
            layer["filters"], layer["kernel_size"], strides=layer["strides"], padding=layer["padding"],
            dilation_rate=layer["dilation_rate"], activation=layer["activation"],
            use_bias=layer["use_bias"], name=name)
    if t == "maxpool2d":
        return keras_layers.MaxPooling2D(layer["pool_size"], strides=layer["strides"],
                                         padding=layer["padding"], name=name)
    if t == "avgpool2d":
        return keras_layers.AveragePooling2D(layer["pool_size"], strides=layer["strides"],
                                             padding=layer["padding"], name=name)
    if t == "flatten":
        return keras_layers.Flatten(name=name)
    if t == "dense":
        return keras_layers.Dense(layer["units"], activation=layer["activation"],
                                  use_bias=layer["use_bias"], name=name)
    if t == "dropout":
        return keras_layers.Dropout(layer["rate"], name=name)
    if t == "batchnorm":
        return keras_layers.BatchNormalization(name=name)
    if t == "globalavgpool2d":
        return keras_layers.GlobalAveragePooling2D(name=name)
    if t == "globalmaxpool2d":
        return keras_layers.GlobalMaxPooling2D(name=name)
    raise ArchitectureError(f"Unknown layer type {t!r}.")


def build_keras_model(input_shape: Sequence[int], layers: Sequence[Mapping[str, Any]], *,
                      name: str | None = None):
    """Build the (untrained, uncompiled) `keras.Sequential` model for a stack.

    The stack is checked with `summarize` first, so an impossible stack raises
    `ArchitectureError` before Keras is touched. ``model.layers[i]`` is ``layers[i]`` and is
    named ``summarize(...)[i].name``. Keras (and so TensorFlow) is imported here, lazily.
    """
    rows = summarize(input_shape, layers)
    import keras

    return keras.Sequential(
        [keras.Input(shape=tuple(normalize_input_shape(input_shape)), name="input")]
        + [keras_layer(row.config, row.name) for row in rows],
        name=name or "cnnviz_model",
    )


# ---------------------------------------------------------------------------------------------
# Export and import: runnable Keras code (text only) and JSON.


def compact_layer(layer: Mapping[str, Any]) -> dict:
    """A normalized layer with default-valued arguments left out (pairs as lists, for JSON)."""
    normalized = normalize_layer(layer)
    result: dict[str, Any] = {"type": normalized["type"]}
    for key, default in LAYER_ARGUMENTS[normalized["type"]].items():
        value = normalized[key]
        if default is not _REQUIRED and value == default:
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
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchitectureError("The file is not UTF-8 text, so it cannot be JSON.") from None
    if len(text) > 200_000:
        raise ArchitectureError("The JSON is too long (over 200,000 characters) to be a layer stack.")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ArchitectureError(f"This is not valid JSON ({error.msg} at line {error.lineno}, "
                                f"column {error.colno}).") from None
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


def _python_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_python_value(v) for v in value) + ")"
    return repr(value)


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
        f"        keras.Input(shape={_python_value(tuple(normalize_input_shape(input_shape)))}),",
    ]
    for row in rows:
        config = row.config
        defaults = LAYER_ARGUMENTS[row.type]
        arguments = []
        for key, default in defaults.items():
            value = config[key]
            if default is _REQUIRED:
                arguments.append(_python_value(value) if key in ("filters", "kernel_size", "units", "rate")
                                 else f"{key}={_python_value(value)}")
            elif value != default or (row.type == "avgpool2d" and key == "pool_size"):
                # Keras 3's AveragePooling2D has no default pool size, so it is always written.
                arguments.append(f"{key}={_python_value(value)}")
        arguments.append(f"name={_python_value(row.name)}")
        lines.append(f"        layers.{row.keras_class}({', '.join(arguments)}),")
    lines += [
        "    ],",
        f"    name={_python_value(model_name)},",
        ")",
        "model.summary()",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Presets.


def _conv(filters: int, kernel: int, activation: str | None = "relu", **extra: Any) -> dict:
    layer = {"type": "conv2d", "filters": filters, "kernel_size": kernel}
    if activation:
        layer["activation"] = activation
    layer.update(extra)
    return layer


def _dense(units: int, activation: str | None = None) -> dict:
    layer: dict[str, Any] = {"type": "dense", "units": units}
    if activation:
        layer["activation"] = activation
    return layer


_MAXPOOL = {"type": "maxpool2d", "pool_size": 2}
_AVGPOOL = {"type": "avgpool2d", "pool_size": 2, "strides": 2}
_FLATTEN = {"type": "flatten"}


def _vgg16_layers() -> tuple[dict, ...]:
    layers: list[dict] = []
    for filters, repeats in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        layers += [_conv(filters, 3, padding="same") for _ in range(repeats)]
        layers.append(dict(_MAXPOOL))
    layers += [dict(_FLATTEN), _dense(4096, "relu"), _dense(4096, "relu"), _dense(1000, "softmax")]
    return tuple(layers)


PRESETS: dict[str, Preset] = {preset.key: preset for preset in (
    Preset(
        key="fashion_relu_cnn",
        title="ReLU CNN for Fashion-MNIST",
        input_shape=(28, 28, 1),
        layers=(_conv(8, 3), dict(_MAXPOOL), dict(_FLATTEN), _dense(28, "relu"), _dense(10, "softmax")),
        description="One convolution with 8 ReLU filters, a 2×2 max pool and a small Dense head: "
                    "the smallest network that already beats a plain Dense classifier.",
    ),
    Preset(
        key="lenet5_tanh",
        title="LeNet-5 variant (tanh) for 28×28 images",
        input_shape=(28, 28, 1),
        layers=(_conv(6, 3, "tanh", padding="same"), dict(_AVGPOOL), _conv(16, 5, "tanh"), dict(_AVGPOOL),
                _conv(120, 5, "tanh"), dict(_FLATTEN), _dense(84, "tanh"), _dense(10, "softmax")),
        description="LeNet-5's layout adapted to 28×28 input: tanh activations and average pooling, "
                    "as in the 1990s.",
    ),
    Preset(
        key="cifar10_cnn",
        title="Small CNN for CIFAR-10",
        input_shape=(32, 32, 3),
        layers=(_conv(32, 3), dict(_MAXPOOL), _conv(32, 3), dict(_MAXPOOL), _conv(64, 3), dict(_FLATTEN),
                _dense(64, "relu"), _dense(10, "softmax")),
        description="Three 3×3 ReLU convolutions with max pooling, then a Dense head, for 32×32 colour "
                    "images. (Written with a softmax output; a version that outputs logits has the same "
                    "94,890 parameters.)",
    ),
    Preset(
        key="bottleneck_cnn",
        title="CNN with a 2-unit bottleneck",
        input_shape=(28, 28, 1),
        layers=(_conv(8, 3), dict(_MAXPOOL), _conv(16, 3), dict(_MAXPOOL), _conv(32, 3), dict(_FLATTEN),
                _dense(2), _dense(10, "softmax")),
        description="Three convolutions feed a Dense layer of only 2 units, so every image becomes a "
                    "point in a 2-D feature space that can be plotted; a softmax layer classifies from it.",
    ),
    Preset(
        key="lenet5_classic",
        title="Classic LeNet-5 (32×32)",
        input_shape=(32, 32, 1),
        layers=(_conv(6, 5, "tanh"), dict(_AVGPOOL), _conv(16, 5, "tanh"), dict(_AVGPOOL),
                _conv(120, 5, "tanh"), dict(_FLATTEN), _dense(84, "tanh"), _dense(10, "softmax")),
        description="LeCun's 1998 layout on 32×32 input: 5×5 convolutions shrink 32→28→10→1 with "
                    "average pooling in between (the original's sparse C3 connections are not modelled).",
    ),
    Preset(
        key="alexnet_style",
        title="AlexNet-style (227×227×3)",
        input_shape=(227, 227, 3),
        layers=(_conv(96, 11, strides=4), {"type": "maxpool2d", "pool_size": 3, "strides": 2},
                _conv(256, 5, padding="same"), {"type": "maxpool2d", "pool_size": 3, "strides": 2},
                _conv(384, 3, padding="same"), _conv(384, 3, padding="same"), _conv(256, 3, padding="same"),
                {"type": "maxpool2d", "pool_size": 3, "strides": 2}, dict(_FLATTEN),
                _dense(4096, "relu"), {"type": "dropout", "rate": 0.5}, _dense(4096, "relu"),
                {"type": "dropout", "rate": 0.5}, _dense(1000, "softmax")),
        description="AlexNet's 2012 layout on one device (no split into two groups): a large strided "
                    "first kernel, overlapping 3×3 max pools, and two 4096-unit Dense layers with dropout.",
    ),
    Preset(
        key="vgg16",
        title="VGG16 (224×224×3, 1000 classes)",
        input_shape=(224, 224, 3),
        layers=_vgg16_layers(),
        description="Thirteen 3×3 'same' convolutions in five blocks, each closed by a 2×2 max pool, then "
                    "three Dense layers: 138,357,544 parameters, most of them in the first Dense layer.",
    ),
)}


def stack_for(preset_key: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None
              ) -> list[dict]:
    """A preset's layers re-targeted to another input shape and class count.

    The layers are the preset's; the last Dense layer (the head) gets ``num_classes`` units.
    Raises `ArchitectureError` when the layers cannot work on ``input_shape`` (for example
    classic LeNet-5's 5×5 convolutions on 28×28 images), and `KeyError` for an unknown preset.
    """
    if preset_key not in PRESETS:
        raise KeyError(f"Unknown preset {preset_key!r}; choose one of {', '.join(PRESETS)}.")
    preset = PRESETS[preset_key]
    layers = preset.stack()
    if num_classes is not None:
        units = _positive_int(num_classes, "the number of classes", "The output layer", None, limit=MAX_WIDTH)
        for layer in reversed(layers):
            if layer["type"] == "dense":
                layer["units"] = units
                break
    summarize(preset.input_shape if input_shape is None else input_shape, layers)
    return layers
