"""One class per layer type, and the registry `LAYERS` that the rest of cnnviz reads.

A layer type owns everything about itself: its Keras arguments and their defaults, the checks
of their values, its output shape, parameter count, multiply-adds and receptive-field window,
its Keras layer and its line of exported Keras code. Adding a layer type means writing one
class here and listing it in `LAYERS`; the stack walk (`cnnviz.architecture.stack`), the Keras
builder, the code export and the stack editor (`widgets/ui.py`, through `EDITOR_ARGUMENTS`)
all read the registry.

Nothing here imports TensorFlow except `LayerType.keras_layer`, which imports Keras lazily.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cnnviz.architecture import backbones
from cnnviz.convolution import output_size
from cnnviz.errors import ArchitectureError, KernelError

REQUIRED: Any = object()  # Marks an argument Keras insists on (no default).

# Activation names a stack may use (all exist in keras.activations); None means "linear".
ACTIVATIONS: tuple[str, ...] = (
    "linear", "relu", "tanh", "sigmoid", "softmax", "elu", "selu", "gelu", "silu", "swish",
    "leaky_relu", "relu6", "softplus", "softsign", "hard_sigmoid", "exponential", "mish",
)
PADDINGS: tuple[str, ...] = ("valid", "same")
BACKBONE_WEIGHTS: tuple[str, ...] = ("imagenet", "none")  # A backbone's weights as the editor offers them.

MAX_INPUT_SIDE = 4096
MAX_CHANNELS = 4096
MAX_WIDTH = 1_000_000  # Largest filter or unit count accepted.

Shape = tuple[int, ...]
Pair = tuple[int, int]


# ---------------------------------------------------------------------------------------------
# Checks of single values (shared by the layer types, the input shape and the presets).


def where(index: int | None, layer_type: str | None) -> str:
    """How an error message names a position: "The input" or "Layer 3 (Conv2D)"."""
    if index is None:
        return "The input"
    kind = LAYERS.get(layer_type or "")
    return f"Layer {index + 1} ({kind.keras_class if kind else 'layer'})"


def as_int(value: Any, what: str, place: str, index: int | None) -> int:
    """Accept ints and integral floats (tables deliver 8.0); reject text, booleans, fractions."""
    if isinstance(value, bool) or value is None:
        raise ArchitectureError(f"{place}: {what} must be a whole number, not {value!r}.", index=index)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            raise ArchitectureError(f"{place}: {what} must be a whole number, not {text!r}.",
                                    index=index) from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ArchitectureError(f"{place}: {what} must be a whole number, not {value!r}.",
                                index=index) from None
    if not math.isfinite(number) or number != int(number):
        raise ArchitectureError(f"{place}: {what} must be a whole number, not {value!r}.", index=index)
    return int(number)


def positive_int(value: Any, what: str, place: str, index: int | None, *, limit: int) -> int:
    number = as_int(value, what, place, index)
    if number < 1:
        raise ArchitectureError(f"{place}: {what} must be at least 1 (got {number}); with none "
                                f"there would be nothing to compute.", index=index)
    if number > limit:
        raise ArchitectureError(f"{place}: {what} = {number:,} is more than this calculator "
                                f"accepts ({limit:,}).", index=index)
    return number


def pair(value: Any, what: str, place: str, index: int | None, *, limit: int = MAX_INPUT_SIDE
         ) -> int | Pair:
    """An int or an (height, width) pair of positive ints; an equal pair stays a pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ArchitectureError(f"{place}: {what} must be one number or a pair (height, width), "
                                    f"not {len(value)} numbers.", index=index)
        return (positive_int(value[0], what, place, index, limit=limit),
                positive_int(value[1], what, place, index, limit=limit))
    if isinstance(value, str):
        # Text from a table cell: "3", "3x5", "3×5", "3,5" or "(3, 5)".
        parts = [part for part in re.split(r"[x×*,\s]+", value.strip().strip("()[]").lower()) if part]
        if len(parts) == 2:
            return pair(parts, what, place, index, limit=limit)
        if len(parts) == 1:
            value = parts[0]
        elif len(parts) > 2:
            raise ArchitectureError(f"{place}: {what} must be one number or a pair such as 3x5, "
                                    f"not {value!r}.", index=index)
    return positive_int(value, what, place, index, limit=limit)


def hw(value: int | Sequence[int]) -> Pair:
    """An int or a pair as (height, width)."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _activation(value: Any, place: str, index: int | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ArchitectureError(f"{place}: the activation must be a name such as 'relu', "
                                f"not {value!r}.", index=index)
    name = value.strip().lower()
    if name in ("", "none", "linear"):
        return None
    if name not in ACTIVATIONS:
        raise ArchitectureError(f"{place}: unknown activation {value!r}; choose one of "
                                f"{', '.join(ACTIVATIONS)}.", index=index)
    return name


def _padding(value: Any, place: str, index: int | None) -> str:
    name = str(value).strip().lower() if value is not None else "valid"
    if name not in PADDINGS:
        raise ArchitectureError(f"{place}: padding must be 'valid' or 'same', not {value!r}.", index=index)
    return name


def _bool(value: Any, what: str, place: str, index: int | None) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ArchitectureError(f"{place}: {what} must be true or false, not {value!r}.", index=index)


def fmt(number: int) -> str:
    """A count with thousands separators, as the formulas write it."""
    return f"{number:,}"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def python_value(value: Any) -> str:
    """A value as Python source (tuples stay tuples, text is quoted)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(python_value(v) for v in value) + ")"
    return repr(value)


def _stride_text(strides: Pair, prefix: str = "stride") -> str:
    sh, sw = strides
    return f"{prefix} {sh}" if sh == sw else f"{prefix} {sh}×{sw}"


# ---------------------------------------------------------------------------------------------
# The stack editor's columns: one per Keras argument, in the table's order.


PAIR_HELP = "One number, or height x width such as 3x5."


@dataclass(frozen=True)
class Argument:
    """One Keras argument as the stack editor shows it (a column of the table).

    ``kind`` says how a cell is edited and read back: "count" (a whole number of at least 1),
    "pair" (text: one number or height x width), "padding" and "activation" (a choice),
    "flag" (a checkbox), "fraction" (a number in [0, 1)), "backbone" or "weights" (a choice).
    ``show_default`` fills the cell with the Keras default for layers that take the argument, so
    a blank cell hides nothing.
    """

    name: str
    kind: str
    help: str
    show_default: bool = False

    @property
    def options(self) -> tuple[str, ...]:
        """The choices of a "padding" or "activation" column (empty for other kinds)."""
        return {"padding": PADDINGS, "activation": ACTIVATIONS, "backbone": backbones.BACKBONE_NAMES,
                "weights": BACKBONE_WEIGHTS}.get(self.kind, ())


EDITOR_ARGUMENTS: tuple[Argument, ...] = (
    Argument("filters", "count", "Conv2D and residual block: number of filters (output channels)."),
    Argument("units", "count", "Dense: number of units (outputs)."),
    Argument("kernel_size", "pair", "Conv2D (and residual block, default 3) kernel. " + PAIR_HELP),
    Argument("pool_size", "pair", "Pooling window (default 2). " + PAIR_HELP),
    Argument("strides", "pair", "Step of the window (Conv2D and residual block default 1, pooling "
             "default = pool size). "
             + PAIR_HELP),
    Argument("padding", "padding", "valid (default): no border; same: keep the size (divided by the stride).",
             show_default=True),
    Argument("dilation_rate", "pair", "Conv2D: gaps between kernel taps (default 1). " + PAIR_HELP),
    Argument("activation", "activation", "Blank or linear = no activation."),
    Argument("use_bias", "flag", "Blank = yes (Keras default).", show_default=True),
    Argument("rate", "fraction", "Dropout: fraction of values dropped in training."),
    Argument("backbone", "backbone", "Pre-trained backbone: mobilenet_v2 (light) or vgg16 (keras.applications)."),
    Argument("weights", "weights", "Pre-trained backbone: imagenet, or none for random weights.", show_default=True),
    Argument("trainable", "flag", "Pre-trained backbone: train its weights too (blank = frozen).", show_default=True),
)


# ---------------------------------------------------------------------------------------------
# Layer types.


@dataclass(frozen=True)
class Place:
    """Where a layer sits in its stack: what an error about it names."""

    index: int
    name: str  # The Keras layer name, e.g. "conv2d_1".
    label: str  # e.g. "Layer 2 (Conv2D)".

    def error(self, message: str) -> ArchitectureError:
        return ArchitectureError(f"{self.label} '{self.name}': {message}", index=self.index,
                                 layer_name=self.name)


@dataclass(frozen=True)
class Step:
    """What one layer does to the values flowing through a stack, and what it costs."""

    output_shape: Shape
    params: int = 0
    trainable: int = 0
    non_trainable: int = 0
    formula: str = "no weights: 0"
    mult_adds: int = 0  # Per image (bias additions, activations and pooling are not counted).
    note: str = ""
    window: Pair = (1, 1)  # Input positions one output position spans (a dilated kernel's extent).
    strides: Pair = (1, 1)  # Input positions between neighbouring output positions.
    mixes_all: bool = False  # Every output depends on every input position.
    hidden_values: int = 0  # Values a block holds inside for one image, besides its output.


class LayerType:
    """The behaviour of one kind of layer; subclasses fill in the class attributes."""

    type: ClassVar[str]  # The key in a layer dict, e.g. "conv2d".
    keras_class: ClassVar[str]  # e.g. "Conv2D".
    name_prefix: ClassVar[str]  # Keras' default layer name, e.g. "max_pooling2d".
    label: ClassVar[str]  # For tables and menus, e.g. "Max pooling".
    # The Keras arguments with Keras' defaults, in Keras' order; REQUIRED marks those without one.
    arguments: ClassVar[dict[str, Any]] = {}
    # Arguments the exported code always writes, even at their default value.
    always_written: ClassVar[tuple[str, ...]] = ()
    # Non-empty for layers that need an image-shaped input: how an error message calls the layer.
    image_input: ClassVar[str] = ""
    # Source the exported code must define before using this layer type (a block's function).
    helper_code: ClassVar[str] = ""

    def normalize(self, values: Mapping[str, Any], place: str, index: int | None) -> dict[str, Any]:
        """Check the arguments (every key of `arguments` is present) and return them normalized."""
        return {}

    def describe(self, layer: Mapping[str, Any]) -> str:
        """A compact description of a normalized layer, e.g. "Conv2D 8, 3×3, relu"."""
        return self.keras_class

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        """The layer applied to an input of ``shape`` (without the batch dimension)."""
        return Step(output_shape=shape)

    def keras_layer(self, layer: Mapping[str, Any], name: str, input_shape: Shape | None = None) -> Any:
        """The Keras layer object (not yet built) for a normalized layer; Keras is imported here.

        ``input_shape`` (without the batch dimension) is needed only by blocks built as a
        small Functional model (`ResidualBlock`)."""
        import keras

        keras_class = getattr(keras.layers, self.keras_class)
        return keras_class(**{key: layer[key] for key in self.arguments}, name=name)

    def keras_code(self, layer: Mapping[str, Any], name: str) -> str:
        """The layer as Keras source, e.g. ``layers.Conv2D(8, 3, activation="relu", name="conv2d")``."""
        written = []
        for key, default in self.arguments.items():
            value = layer[key]
            if default is REQUIRED:
                written.append(python_value(value))
            elif value != default or key in self.always_written:
                written.append(f"{key}={python_value(value)}")
        written.append(f"name={python_value(name)}")
        return f"layers.{self.keras_class}({', '.join(written)})"


class Conv2D(LayerType):
    type = "conv2d"
    keras_class = "Conv2D"
    name_prefix = "conv2d"
    label = "Convolution (Conv2D)"
    arguments = {"filters": REQUIRED, "kernel_size": REQUIRED, "strides": 1, "padding": "valid",
                 "activation": None, "dilation_rate": 1, "use_bias": True}
    image_input = "a convolution"

    def normalize(self, values: Mapping[str, Any], place: str, index: int | None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "filters": positive_int(values["filters"], "the number of filters", place, index, limit=MAX_WIDTH),
            "kernel_size": pair(values["kernel_size"], "the kernel size", place, index),
            "strides": pair(values["strides"], "the stride", place, index),
            "padding": _padding(values["padding"], place, index),
            "activation": _activation(values["activation"], place, index),
            "dilation_rate": pair(values["dilation_rate"], "the dilation rate", place, index),
            "use_bias": _bool(values["use_bias"], "use_bias", place, index),
        }
        if max(hw(result["strides"])) > 1 and max(hw(result["dilation_rate"])) > 1:
            raise ArchitectureError(
                f"{place}: a stride above 1 together with a dilation rate above 1 is not supported "
                f"by Keras (whatever the padding). Use stride 1 with dilation, or dilation 1 with "
                f"a stride.", index=index)
        return result

    def describe(self, layer: Mapping[str, Any]) -> str:
        kh, kw = hw(layer["kernel_size"])
        parts = [f"Conv2D {layer['filters']}, {kh}×{kw}"]
        strides = hw(layer.get("strides", 1))
        if strides != (1, 1):
            parts.append(_stride_text(strides))
        dilation = hw(layer.get("dilation_rate", 1))
        if dilation != (1, 1):
            parts.append(_stride_text(dilation, "dilation"))
        if layer.get("padding", "valid") == "same":
            parts.append("same")
        if layer.get("activation"):
            parts.append(layer["activation"])
        if layer.get("use_bias") is False:
            parts.append("no bias")
        return ", ".join(parts)

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        h, w, depth = shape
        kh, kw = hw(layer["kernel_size"])
        sh, sw = hw(layer["strides"])
        dh, dw = hw(layer["dilation_rate"])
        try:
            out_h = output_size(h, kh, sh, layer["padding"], dh)
            out_w = output_size(w, kw, sw, layer["padding"], dw)
        except KernelError:
            eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
            dilated = f" (dilated to {eh}×{ew})" if (dh, dw) != (1, 1) else ""
            raise place.error(f"the {kh}×{kw} kernel{dilated} is larger than its {h}×{w} input "
                              f"under 'valid' padding, so it fits nowhere and the output would "
                              f"have no size. Use a smaller kernel, 'same' padding, or fewer "
                              f"pooling layers before it.") from None
        filters = layer["filters"]
        params = kh * kw * depth * filters + (filters if layer["use_bias"] else 0)
        if layer["use_bias"]:
            formula = f"({kh}·{kw}·{depth} + 1)·{filters} = {fmt(params)}"
        else:
            formula = f"{kh}·{kw}·{depth}·{filters} = {fmt(params)} (no bias)"
        return Step(output_shape=(out_h, out_w, filters), params=params, trainable=params, formula=formula,
                    mult_adds=out_h * out_w * filters * kh * kw * depth,
                    window=(dh * (kh - 1) + 1, dw * (kw - 1) + 1), strides=(sh, sw))


class _Pooling(LayerType):
    image_input = "a pooling layer"
    short_name: ClassVar[str]  # "Max" or "Avg".

    def normalize(self, values: Mapping[str, Any], place: str, index: int | None) -> dict[str, Any]:
        strides = values["strides"]
        return {
            "pool_size": pair(values["pool_size"], "the pool size", place, index),
            "strides": None if strides is None or (isinstance(strides, float) and math.isnan(strides))
            else pair(strides, "the stride", place, index),
            "padding": _padding(values["padding"], place, index),
        }

    def describe(self, layer: Mapping[str, Any]) -> str:
        ph, pw = hw(layer.get("pool_size", 2))
        text = f"{self.short_name}Pool {ph}×{pw}"
        strides = layer.get("strides")
        if strides is not None and hw(strides) != (ph, pw):
            text += ", " + _stride_text(hw(strides))
        if layer.get("padding", "valid") == "same":
            text += ", same"
        return text

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        h, w, depth = shape
        ph, pw = hw(layer["pool_size"])
        sh, sw = hw(layer["strides"] if layer["strides"] is not None else layer["pool_size"])
        try:
            out_h = output_size(h, ph, sh, layer["padding"])
            out_w = output_size(w, pw, sw, layer["padding"])
        except KernelError:
            raise place.error(f"a {ph}×{pw} pool does not fit in its {h}×{w} input under 'valid' "
                              f"padding, so it would leave zero size. Remove a pooling layer, "
                              f"use a smaller pool, or 'same' padding.") from None
        return Step(output_shape=(out_h, out_w, depth), window=(ph, pw), strides=(sh, sw))


class MaxPooling2D(_Pooling):
    type = "maxpool2d"
    keras_class = "MaxPooling2D"
    name_prefix = "max_pooling2d"
    label = "Max pooling"
    short_name = "Max"
    arguments = {"pool_size": 2, "strides": None, "padding": "valid"}


class AveragePooling2D(_Pooling):
    type = "avgpool2d"
    keras_class = "AveragePooling2D"
    name_prefix = "average_pooling2d"
    label = "Average pooling"
    short_name = "Avg"
    # Keras 3's AveragePooling2D has no default pool size; cnnviz uses 2, like MaxPooling2D, and
    # so the exported code always writes it.
    arguments = {"pool_size": 2, "strides": None, "padding": "valid"}
    always_written = ("pool_size",)


class Flatten(LayerType):
    type = "flatten"
    keras_class = "Flatten"
    name_prefix = "flatten"
    label = "Flatten"

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        note = (f"{shape_text(shape)} values laid out as one vector; nothing is learned here."
                if len(shape) == 3 else "")
        return Step(output_shape=(math.prod(shape),), note=note)


class Dense(LayerType):
    type = "dense"
    keras_class = "Dense"
    name_prefix = "dense"
    label = "Dense (fully connected)"
    arguments = {"units": REQUIRED, "activation": None, "use_bias": True}

    def normalize(self, values: Mapping[str, Any], place: str, index: int | None) -> dict[str, Any]:
        return {
            "units": positive_int(values["units"], "the number of units", place, index, limit=MAX_WIDTH),
            "activation": _activation(values["activation"], place, index),
            "use_bias": _bool(values["use_bias"], "use_bias", place, index),
        }

    def describe(self, layer: Mapping[str, Any]) -> str:
        text = f"Dense {layer['units']}"
        if layer.get("activation"):
            text += f", {layer['activation']}"
        if layer.get("use_bias") is False:
            text += ", no bias"
        return text

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        units = layer["units"]
        fan_in = shape[-1]
        params = fan_in * units + (units if layer["use_bias"] else 0)
        if layer["use_bias"]:
            formula = f"({fmt(fan_in)} + 1)·{fmt(units)} = {fmt(params)}"
        else:
            formula = f"{fmt(fan_in)}·{fmt(units)} = {fmt(params)} (no bias)"
        note = ""
        if len(shape) > 1:
            note = (f"Dense acts on the last axis only: the same {fmt(fan_in)}→{fmt(units)} weights are "
                    f"applied at each of the {shape_text(shape[:-1])} positions. Add Flatten before it "
                    f"to connect every value.")
        # On a flat vector every output mixes every input position.
        return Step(output_shape=shape[:-1] + (units,), params=params, trainable=params, formula=formula,
                    mult_adds=math.prod(shape[:-1]) * fan_in * units, note=note, mixes_all=len(shape) == 1)


class Dropout(LayerType):
    type = "dropout"
    keras_class = "Dropout"
    name_prefix = "dropout"
    label = "Dropout"
    arguments = {"rate": REQUIRED}

    def normalize(self, values: Mapping[str, Any], place: str, index: int | None) -> dict[str, Any]:
        rate = values["rate"]
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise ArchitectureError(f"{place}: the dropout rate must be a number, not {rate!r}.",
                                    index=index) from None
        if not (0.0 <= rate < 1.0):
            raise ArchitectureError(f"{place}: the dropout rate is the fraction of values dropped, so "
                                    f"it must be at least 0 and below 1 (got {rate:g}).", index=index)
        return {"rate": rate}

    def describe(self, layer: Mapping[str, Any]) -> str:
        return f"Dropout {layer['rate']:g}"


class BatchNormalization(LayerType):
    type = "batchnorm"
    keras_class = "BatchNormalization"
    name_prefix = "batch_normalization"
    label = "Batch normalization"

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        channels = shape[-1]
        # The moving mean and variance are non-trainable, as Keras counts them.
        params, trainable, non_trainable = 4 * channels, 2 * channels, 2 * channels
        return Step(output_shape=shape, params=params, trainable=trainable, non_trainable=non_trainable,
                    formula=(f"4·{channels} = {fmt(params)} ({fmt(trainable)} trainable γ and β, "
                             f"{fmt(non_trainable)} non-trainable moving mean and variance)"))


class _GlobalPooling(LayerType):
    image_input = "a global pooling layer"

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        return Step(output_shape=(shape[2],), mixes_all=True)


class GlobalAveragePooling2D(_GlobalPooling):
    type = "globalavgpool2d"
    keras_class = "GlobalAveragePooling2D"
    name_prefix = "global_average_pooling2d"
    label = "Global average pooling"


class GlobalMaxPooling2D(_GlobalPooling):
    type = "globalmaxpool2d"
    keras_class = "GlobalMaxPooling2D"
    name_prefix = "global_max_pooling2d"
    label = "Global max pooling"


BLOCK_BN_MOMENTUM = 0.9  # The residual block's batch normalizations (see `ResidualBlock`).


class ResidualBlock(LayerType):
    """The ResNet basic block (He et al., 2015), as one row of a stack.

    Conv2D(F, k, strides=s, padding="same", use_bias=False) → BatchNormalization → ReLU →
    Conv2D(F, k, padding="same", use_bias=False) → BatchNormalization, plus the shortcut (the
    identity when the input has F channels and s = 1, else Conv2D(F, 1, strides=s, use_bias=False)
    → BatchNormalization), added, then ReLU. Its batch normalizations average their moving
    statistics with momentum `BLOCK_BN_MOMENTUM` (0.9, PyTorch's default as in the usual ResNet
    code; Keras' 0.99 lags so far behind in a short run that a small ResNet trained on 10,000
    Fashion-MNIST images for 5 epochs reached 89% training but 60% test accuracy, against 88%
    with 0.9; the counts do not change). Keras builds it as one small Functional model named
    like the row (`keras_layer`), so a stack's rows and its Keras model's layers still match one
    to one; the exported code defines the same block as the function `residual_block`.
    """

    type = "residual_block"
    keras_class = "ResidualBlock"
    name_prefix = "residual_block"
    label = "Residual block (ResNet)"
    arguments = {"filters": REQUIRED, "kernel_size": 3, "strides": 1}
    image_input = "a residual block"
    # The function the exported code defines when a stack uses the block (`code_export`).
    helper_code = '''def residual_block(filters, kernel_size=3, strides=1, name="residual_block"):
    """The ResNet basic block as one named sub-model (one row of model.summary())."""

    def apply(inputs):
        block_input = keras.Input(shape=inputs.shape[1:], name=f"{name}_input")
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_conv1")(block_input)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn1")(x)
        x = layers.ReLU(name=f"{name}_relu1")(x)
        x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv2")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn2")(x)
        shortcut = block_input
        if strides not in (1, (1, 1)) or block_input.shape[-1] != filters:
            # A 1x1 convolution matches the shortcut's size and channels to the main path's.
            shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False,
                                     name=f"{name}_shortcut_conv")(block_input)
            shortcut = layers.BatchNormalization(momentum=0.9, name=f"{name}_shortcut_bn")(shortcut)
        x = layers.Add(name=f"{name}_add")([x, shortcut])
        outputs = layers.ReLU(name=f"{name}_relu2")(x)
        return keras.Model(block_input, outputs, name=name)(inputs)

    return apply
'''

    def normalize(self, values: Mapping[str, Any], place: str, index: int | None) -> dict[str, Any]:
        return {
            "filters": positive_int(values["filters"], "the number of filters", place, index, limit=MAX_WIDTH),
            "kernel_size": pair(values["kernel_size"], "the kernel size", place, index),
            "strides": pair(values["strides"], "the stride", place, index),
        }

    def describe(self, layer: Mapping[str, Any]) -> str:
        kh, kw = hw(layer.get("kernel_size", 3))
        text = f"Residual block {layer['filters']}, {kh}×{kw}"
        strides = hw(layer.get("strides", 1))
        if strides != (1, 1):
            text += ", " + _stride_text(strides)
        return text

    @staticmethod
    def projects(layer: Mapping[str, Any], channels: int) -> bool:
        """True when the shortcut needs a 1×1 convolution (a stride, or a change of channels)."""
        return hw(layer["strides"]) != (1, 1) or channels != layer["filters"]

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        h, w, depth = shape
        filters = layer["filters"]
        kh, kw = hw(layer["kernel_size"])
        sh, sw = hw(layer["strides"])
        # Both convolutions use 'same' padding: only the first one's stride changes the size.
        out_h, out_w = output_size(h, kh, sh, "same"), output_size(w, kw, sw, "same")
        projection = self.projects(layer, depth)
        conv1, conv2 = kh * kw * depth * filters, kh * kw * filters * filters
        shortcut = depth * filters if projection else 0
        norms = 3 if projection else 2  # Batch normalizations, 4·F parameters each (2·F trainable).
        params = conv1 + conv2 + shortcut + norms * 4 * filters
        non_trainable = norms * 2 * filters
        formula = (f"conv {kh}·{kw}·{depth}·{filters} + BN 4·{filters} + conv {kh}·{kw}·{filters}·{filters} "
                   f"+ BN 4·{filters} + "
                   + (f"shortcut conv 1·1·{depth}·{filters} + BN 4·{filters}" if projection
                      else "identity shortcut 0")
                   + f" = {fmt(params)} ({fmt(params - non_trainable)} trainable, {fmt(non_trainable)} "
                   f"non-trainable BN moving means and variances; no biases)")
        if projection:
            why = " and ".join(([_stride_text((sh, sw))] if (sh, sw) != (1, 1) else [])
                               + ([f"{depth}→{filters} channels"] if depth != filters else []))
            note = (f"The shortcut is a 1×1 convolution ({why}), so that it can be added to the main "
                    f"path's {shape_text((out_h, out_w, filters))} output.")
        else:
            note = "The shortcut is the identity: the block's input is added, unchanged, to the main path."
        outputs = out_h * out_w * filters
        return Step(
            output_shape=(out_h, out_w, filters), params=params, trainable=params - non_trainable,
            non_trainable=non_trainable, formula=formula,
            mult_adds=out_h * out_w * filters * (kh * kw * depth + kh * kw * filters + (depth if projection else 0)),
            note=note,
            # Two k×k windows in a row, the first strided: k + (k − 1)·s input positions.
            window=((kh - 1) * (1 + sh) + 1, (kw - 1) * (1 + sw) + 1), strides=(sh, sw),
            # conv, BN, ReLU, conv, BN and the sum (+ the shortcut's conv and BN) are held inside.
            hidden_values=outputs * (8 if projection else 6),
        )

    def keras_layer(self, layer: Mapping[str, Any], name: str, input_shape: Shape | None = None) -> Any:
        """The block as a small Functional `keras.Model` named ``name`` (its layers are prefixed
        with it); the shortcut's projection depends on the input channels, so ``input_shape``
        is required."""
        import keras

        if input_shape is None:
            raise ValueError("A residual block is built for a known input shape.")
        L = keras.layers
        filters, kernel, strides = layer["filters"], layer["kernel_size"], layer["strides"]
        inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
        x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv1")(inputs)
        x = L.BatchNormalization(momentum=BLOCK_BN_MOMENTUM, name=f"{name}_bn1")(x)
        x = L.ReLU(name=f"{name}_relu1")(x)
        x = L.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv2")(x)
        x = L.BatchNormalization(momentum=BLOCK_BN_MOMENTUM, name=f"{name}_bn2")(x)
        shortcut = inputs
        if self.projects(layer, int(input_shape[-1])):
            shortcut = L.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_shortcut_conv")(inputs)
            shortcut = L.BatchNormalization(momentum=BLOCK_BN_MOMENTUM, name=f"{name}_shortcut_bn")(shortcut)
        x = L.Add(name=f"{name}_add")([x, shortcut])
        outputs = L.ReLU(name=f"{name}_relu2")(x)
        return keras.Model(inputs, outputs, name=name)

    def keras_code(self, layer: Mapping[str, Any], name: str) -> str:
        """A call of the exported code's `residual_block` function (see `helper_code`)."""
        written = [python_value(layer["filters"]), python_value(layer["kernel_size"])]
        if hw(layer["strides"]) != (1, 1):
            written.append(f"strides={python_value(layer['strides'])}")
        written.append(f"name={python_value(name)}")
        return f"residual_block({', '.join(written)})"


def _backbone_helper_code() -> str:
    """The exported code's `pretrained_backbone` function, with every base's input convention."""
    table = "".join(
        f"    {python_value(b.name)}: (keras.applications.{b.keras_function}, {b.bgr}, "
        f"{backbones.input_affine(b.name)[0]!r}, {list(backbones.input_affine(b.name)[1])!r}),\n"
        for b in backbones.BACKBONES.values())
    return ('''# The ImageNet bases: (application, BGR order, scale, offset) applied to the input (pixel / 255).
BACKBONES = {
''' + table + '''}


def pretrained_backbone(backbone, weights="imagenet", trainable=False, name="pretrained_backbone"):
    """A keras.applications base (no top) fed in its own convention, as one named sub-model."""

    def apply(inputs):
        application, bgr, scale, offset = BACKBONES[backbone]
        block_input = keras.Input(shape=inputs.shape[1:], name=f"{name}_input")
        x = block_input
        if x.shape[-1] == 1:
            x = layers.Concatenate(name=f"{name}_grey_to_rgb")([x, x, x])
        if bgr:
            x = keras.ops.flip(x, axis=-1)  # RGB -> BGR
        x = layers.Rescaling(scale, offset=offset, name=f"{name}_preprocess")(x)
        base = application(include_top=False, weights=weights, input_shape=tuple(x.shape[1:]))
        base.trainable = trainable
        return keras.Model(block_input, base(x), name=name)(inputs)

    return apply
''')


class PretrainedBackbone(LayerType):
    """The convolutional base of a `keras.applications` network (VGG16 or MobileNetV2,
    ``include_top=False``), as one row of a stack: ``{"type": "pretrained_backbone",
    "backbone": "mobilenet_v2", "weights": "imagenet", "trainable": False}``.

    Its arithmetic is `backbones.walk` (the base's layers written out); its parameters are
    Keras' `count_params`, all non-trainable when frozen (``trainable: false``, the default), else
    all but MobileNetV2's batch-normalization statistics. Inside the block the network's input
    (pixel / 255, in [0, 1]) is turned into the base's own `preprocess_input` convention, once
    (`backbones.input_affine`; a grey input is repeated into three channels first), so the rest of
    cnnviz scales images by its one rule. Keras builds it as one small Functional model named like
    the row; ``weights: "imagenet"`` loads the file from the Keras cache, downloading it there
    first when possible (`backbones.weights_file_for_keras`), else raises `WeightsUnavailable`.
    A frozen base is counted, for the memory budget, as holding only a forward pass's working set.
    """

    type = "pretrained_backbone"
    keras_class = "PretrainedBackbone"
    name_prefix = "pretrained_backbone"
    label = "Pre-trained backbone (ImageNet)"
    arguments = {"backbone": REQUIRED, "weights": backbones.IMAGENET, "trainable": False}
    image_input = "a pre-trained backbone"
    helper_code = _backbone_helper_code()

    def normalize(self, values: Mapping[str, Any], place: str, index: int | None) -> dict[str, Any]:
        name = str(values["backbone"]).strip().lower()
        if name not in backbones.BACKBONES:
            raise ArchitectureError(f"{place}: unknown backbone {values['backbone']!r}; choose one of "
                                    f"{', '.join(backbones.BACKBONE_NAMES)}.", index=index)
        weights = values["weights"]
        if isinstance(weights, str) and weights.strip().lower() in ("", "none", "random"):
            weights = None
        if weights is not None and str(weights).strip().lower() != backbones.IMAGENET:
            raise ArchitectureError(f"{place}: the weights must be 'imagenet' (pre-trained) or none (random), "
                                    f"not {weights!r}.", index=index)
        return {"backbone": name, "weights": None if weights is None else backbones.IMAGENET,
                "trainable": _bool(values["trainable"], "trainable", place, index)}

    def describe(self, layer: Mapping[str, Any]) -> str:
        spec = backbones.backbone(layer["backbone"])
        weights = "ImageNet" if layer.get("weights", backbones.IMAGENET) else "random weights"
        return f"{spec.label} ({weights}, {'trainable' if layer.get('trainable') else 'frozen'})"

    def step(self, layer: Mapping[str, Any], shape: Shape, place: Place) -> Step:
        spec = backbones.backbone(layer["backbone"])
        h, w, channels = shape
        if channels not in (1, 3):
            raise place.error(f"{spec.label} takes colour (3 channels) or grey (1 channel, repeated) "
                              f"images, not {channels} channels.")
        if min(h, w) < spec.min_side:
            raise place.error(f"{spec.label} needs an input of at least {spec.min_side}×{spec.min_side} "
                              f"pixels (its five halvings would leave nothing), but gets {h}×{w}: use "
                              f"larger images.")
        walk = backbones.walk(spec.name, (h, w, 3))
        trainable = walk.params - walk.batchnorm_statistics if layer["trainable"] else 0
        frozen = walk.params - trainable
        state = (f"{fmt(trainable)} trainable, {fmt(frozen)} non-trainable" if layer["trainable"]
                 else "all frozen (trainable=False)")
        formula = (f"{spec.label} base: {walk.convolutions} convolutions, {walk.layers} Keras layers = "
                   f"{fmt(walk.params)}, {state}")
        weights = "ImageNet weights" if layer["weights"] else "random weights (weights=None), a baseline"
        note = (f"{weights}; inside the block the input is turned into {spec.label}'s convention: "
                f"{spec.convention}" + (", the grey channel repeated three times" if channels == 1 else "") + ".")
        # Every layer output inside, plus the channel copy and the preprocessed input.
        inside = sum(walk.outputs[:-1]) + 2 * h * w * 3
        if not layer["trainable"]:
            inside = backbones.frozen_working_set(walk, h * w * 3)
        return Step(output_shape=walk.output_shape, params=walk.params, trainable=trainable,
                    non_trainable=frozen, formula=formula, mult_adds=walk.mult_adds, note=note,
                    window=walk.window, strides=walk.strides, hidden_values=inside)

    def keras_layer(self, layer: Mapping[str, Any], name: str, input_shape: Shape | None = None) -> Any:
        """The base as a small Functional `keras.Model` named ``name``: channel copy (grey input),
        channel order, `backbones.input_affine`, then the keras.applications base."""
        import keras

        if input_shape is None:
            raise ValueError("A pre-trained backbone is built for a known input shape.")
        spec = backbones.backbone(layer["backbone"])
        h, w = int(input_shape[0]), int(input_shape[1])
        weights = backbones.weights_file_for_keras(spec.name, (h, w, 3), layer["weights"])
        inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
        x = inputs
        if int(input_shape[-1]) == 1:
            x = keras.layers.Concatenate(name=f"{name}_grey_to_rgb")([x, x, x])
        if spec.bgr:
            x = keras.ops.flip(x, axis=-1)  # RGB -> BGR
        scale, offset = backbones.input_affine(spec.name)
        x = keras.layers.Rescaling(scale, offset=list(offset), name=f"{name}_preprocess")(x)
        base = getattr(keras.applications, spec.keras_function)(include_top=False, weights=weights,
                                                                input_shape=(h, w, 3))
        base.trainable = bool(layer["trainable"])
        return keras.Model(inputs, base(x), name=name)

    def keras_code(self, layer: Mapping[str, Any], name: str) -> str:
        """A call of the exported code's `pretrained_backbone` function (see `helper_code`)."""
        return (f"pretrained_backbone({python_value(layer['backbone'])}, weights={python_value(layer['weights'])}, "
                f"trainable={layer['trainable']!r}, name={python_value(name)})")


# The registry: every layer type a stack may use, in menu order.
LAYERS: dict[str, LayerType] = {kind.type: kind for kind in (
    Conv2D(), MaxPooling2D(), AveragePooling2D(), Flatten(), Dense(), Dropout(), BatchNormalization(),
    GlobalAveragePooling2D(), GlobalMaxPooling2D(), ResidualBlock(), PretrainedBackbone(),
)}
LAYER_TYPES: tuple[str, ...] = tuple(LAYERS)
