"""Named stacks to load into the calculator or the trainer, and `stack_for` to re-target them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnviz.architecture.layers import MAX_WIDTH, positive_int
from cnnviz.architecture.stack import summarize, totals


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


def _residual(filters: int, strides: int = 1) -> dict:
    layer: dict[str, Any] = {"type": "residual_block", "filters": filters}
    if strides != 1:
        layer["strides"] = strides
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
        key="small_resnet",
        title="Small ResNet (residual blocks)",
        input_shape=(28, 28, 1),
        layers=(_conv(16, 3, padding="same"), dict(_MAXPOOL), _residual(16), _residual(32, strides=2), _residual(32),
                {"type": "globalavgpool2d"}, _dense(10, "softmax")),
        description="A 3×3 convolution and max-pooling stem, then three ResNet basic blocks (two 3×3 convolutions with "
                    "batch normalization, plus a skip connection that adds the block's input to its "
                    "output; the second block halves the size with stride 2 and its shortcut is a 1×1 "
                    "convolution), global average pooling and a softmax layer. Works on any image size.",
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
        units = positive_int(num_classes, "the number of classes", "The output layer", None, limit=MAX_WIDTH)
        for layer in reversed(layers):
            if layer["type"] == "dense":
                layer["units"] = units
                break
    summarize(preset.input_shape if input_shape is None else input_shape, layers)
    return layers
