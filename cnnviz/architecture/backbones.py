"""ImageNet backbones of `keras.applications` (VGG16, MobileNetV2) as plain data, and their weights.

A backbone is one layer type of a stack (`layers.PretrainedBackbone`): the convolutional base of
a `keras.applications` network (``include_top=False``), under which a stack puts a new head.
This module holds what that layer type needs without importing TensorFlow:

* `walk`: the base's layers written out (the same layers, in the same order, as
  `keras.applications` builds them), from which its output shape, parameter count (Keras'
  `count_params`, trainable and not), multiply-adds and receptive field follow;
* the input convention each base was trained with, as an affine map of the network's input
  (pixel / 255, the one scaling rule of `cnnviz.architecture.keras_model`): `input_affine`;
* the ImageNet weights: the file Keras uses, whether it is in the Keras cache
  (``$KERAS_HOME/models``, default ``~/.keras/models``) or can be downloaded right now
  (`weights_status`, which never waits longer than `cnnviz.data.sources.REACH_TIMEOUT_SECONDS`
  and remembers the answer), and `weights_file_for_keras`, which downloads it into that cache
  and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnviz.convolution import output_size
from cnnviz.data import sources
from cnnviz.errors import WeightsUnavailable

IMAGENET = "imagenet"
# Where `keras.applications` downloads its weights from (the host is checked before a download).
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
WEIGHTS_HOST = "storage.googleapis.com"
# The pixel range the ImageNet conventions are written in (Keras' `preprocess_input` takes 0-255).
IMAGENET_PIXEL_MAX = 255.0
# MobileNetV2 has ImageNet weights trained at these square input sizes; others load the 224 ones.
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class Backbone:
    """One `keras.applications` base: how cnnviz names it, builds it and feeds it."""

    name: str  # The stack's value, e.g. "mobilenet_v2".
    label: str  # e.g. "MobileNetV2".
    keras_function: str  # keras.applications.<keras_function>(include_top=False, ...).
    keras_module: str  # keras.applications.<keras_module>.preprocess_input is its convention.
    min_side: int  # Smallest input height and width Keras accepts without the top.
    bgr: bool  # The base expects blue, green, red channel order (Caffe).
    # Its input = pixel (0-255, in its channel order) × scale + offset (per channel when 3 numbers).
    pixel_scale: float
    pixel_offset: tuple[float, ...]
    convention: str  # The convention in words.
    light: bool  # Cheap enough for a class's shared server.


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("mobilenet_v2", "MobileNetV2", "MobileNetV2", "mobilenet_v2", 32, False,
             1 / 127.5, (-1.0,), "pixels scaled to [-1, 1]", True),
    Backbone("vgg16", "VGG16", "VGG16", "vgg16", 32, True,
             1.0, (-103.939, -116.779, -123.68),
             "pixels 0-255 in blue, green, red order, minus the ImageNet mean of each channel (Caffe)", False),
)}
BACKBONE_NAMES: tuple[str, ...] = tuple(BACKBONES)


def backbone(name: str) -> Backbone:
    """The backbone named `name`; ValueError for an unknown one (layers.py checks names first)."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}.") from None


def input_affine(name: str) -> tuple[float, tuple[float, ...]]:
    """(scale, offsets) that turn the network's input (pixel / IMAGENET_PIXEL_MAX, in [0, 1], already
    in the backbone's channel order) into the backbone's convention: ``x · scale + offset``."""
    spec = backbone(name)
    return spec.pixel_scale * IMAGENET_PIXEL_MAX, spec.pixel_offset


# ---------------------------------------------------------------------------------------------
# The bases written out.


@dataclass(frozen=True)
class Op:
    """One Keras layer of a base: "conv", "depthwise", "bn", "act", "pool", "pad" or "add"."""

    kind: str
    kernel: int = 1
    strides: int = 1
    filters: int = 0  # conv only
    bias: bool = False  # conv only
    padding: str = "same"


def _vgg16_ops() -> list[Op]:
    ops = []
    for filters, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        # Conv2D(filters, 3, activation="relu", padding="same"): the ReLU is inside the layer.
        ops += [Op("conv", 3, 1, filters, True) for _ in range(convs)]
        ops.append(Op("pool", 2, 2, padding="valid"))
    return ops


# MobileNetV2 (alpha 1.0): (expansion, output channels, repeats, first stride) per stage.
_MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                        (6, 160, 3, 2), (6, 320, 1, 1))


def _mobilenet_v2_ops() -> list[Op]:
    ops = [Op("conv", 3, 2, 32), Op("bn"), Op("act")]
    channels, block = 32, 0
    for expansion, filters, repeats, first_stride in _MOBILENET_V2_STAGES:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            if block:  # The first block does not expand.
                ops += [Op("conv", 1, 1, expansion * channels), Op("bn"), Op("act")]
            if stride == 2:  # ZeroPadding2D then a 'valid' depthwise convolution.
                ops += [Op("pad"), Op("depthwise", 3, 2, padding="valid")]
            else:
                ops.append(Op("depthwise", 3, 1))
            ops += [Op("bn"), Op("act"), Op("conv", 1, 1, filters), Op("bn")]
            if channels == filters and stride == 1:
                ops.append(Op("add"))
            channels, block = filters, block + 1
    return ops + [Op("conv", 1, 1, 1280), Op("bn"), Op("act")]


_OPS = {"vgg16": _vgg16_ops, "mobilenet_v2": _mobilenet_v2_ops}


@dataclass(frozen=True)
class Walk:
    """A base applied to an input: shapes, counts and the receptive field (in input pixels)."""

    output_shape: tuple[int, int, int]
    params: int
    batchnorm_statistics: int  # Moving means and variances: never trainable.
    mult_adds: int  # Per image, counted as cnnviz counts them (no biases, activations, pooling).
    layers: int  # Keras layers in the base.
    convolutions: int
    window: tuple[int, int]
    strides: tuple[int, int]
    outputs: tuple[int, ...]  # Values each layer outputs for one image, in order.


def walk(name: str, input_shape: Sequence[int]) -> Walk:
    """The base of backbone `name` applied to a (height, width, 3) input (see `Op`)."""
    backbone(name)
    h, w, channels = (int(v) for v in input_shape)
    params = statistics = mult_adds = convolutions = 0
    rf, jump = [1, 1], [1, 1]
    outputs = []
    ops = _OPS[name]()
    for op in ops:
        if op.kind == "pad":
            # Keras' correct_pad for a 3×3 stride-2 window: one row (column) after, one before when odd.
            h, w = h + h % 2 + 1, w + w % 2 + 1
        elif op.kind in ("conv", "depthwise", "pool"):
            h = output_size(h, op.kernel, op.strides, op.padding)
            w = output_size(w, op.kernel, op.strides, op.padding)
            if op.kind == "conv":
                weights = op.kernel * op.kernel * channels * op.filters
                params += weights + (op.filters if op.bias else 0)
                mult_adds += h * w * weights
                channels = op.filters
            elif op.kind == "depthwise":
                params += op.kernel * op.kernel * channels
                mult_adds += h * w * op.kernel * op.kernel * channels
            convolutions += op.kind != "pool"
            for axis in (0, 1):
                rf[axis] += (op.kernel - 1) * jump[axis]
                jump[axis] *= op.strides
        elif op.kind == "bn":
            params += 4 * channels
            statistics += 2 * channels
        outputs.append(h * w * channels)
    return Walk(output_shape=(h, w, channels), params=params, batchnorm_statistics=statistics,
                mult_adds=mult_adds, layers=len(ops), convolutions=convolutions, window=(rf[0], rf[1]),
                strides=(jump[0], jump[1]), outputs=tuple(outputs))


# ---------------------------------------------------------------------------------------------
# ImageNet weights: the file, the Keras cache, the download.


def weights_file(name: str, input_shape: Sequence[int]) -> str:
    """The file name `keras.applications` stores the base's ImageNet weights under."""
    if backbone(name).name == "vgg16":
        return "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    h, w = int(input_shape[0]), int(input_shape[1])
    rows = h if h == w and h in MOBILENET_V2_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


def weights_url(name: str, input_shape: Sequence[int]) -> str:
    return f"{WEIGHTS_URL}{backbone(name).keras_module}/{weights_file(name, input_shape)}"


def keras_models_dir() -> Path:
    """The Keras cache's model folder: ``$KERAS_HOME/models`` (Keras' own rules, `sources.keras_homes`)."""
    return sources.keras_homes()[0] / "models"


def _writable(folder: Path) -> bool:
    """Whether `folder` can be written, or created under its nearest existing parent."""
    for path in (folder, *folder.parents):
        if path.exists():
            return path.is_dir() and os.access(path, os.W_OK | os.X_OK)
    return False


@dataclass(frozen=True)
class WeightsStatus:
    """Whether a backbone's weights can be had here, where from, and what to tell the student."""

    backbone: str
    weights: str | None  # "imagenet", or None (random weights: nothing to fetch)
    available: bool
    where: str  # "cache", "download", "none" (random weights) or "" (unavailable)
    path: Path | None  # The weights file in the Keras cache (present or to be downloaded).
    message: str


def weights_status(name: str, input_shape: Sequence[int], weights: str | None = IMAGENET) -> WeightsStatus:
    """Whether the base's `weights` are in the Keras cache or downloadable now (see the module
    docstring); never blocks longer than `sources.REACH_TIMEOUT_SECONDS`, answers remembered."""
    spec = backbone(name)
    if weights is None:
        return WeightsStatus(name, None, True, "none", None,
                             f"{spec.label} with random weights (weights=None): nothing to download.")
    path = keras_models_dir() / weights_file(name, input_shape)
    if path.is_file():
        return WeightsStatus(name, weights, True, "cache", path,
                             f"The ImageNet weights of {spec.label} are in the Keras cache ({path}).")
    why = _download_blocked(path.parent)
    if why is None:
        return WeightsStatus(name, weights, True, "download", path,
                             f"The ImageNet weights of {spec.label} ({weights_file(name, input_shape)}) will be "
                             f"downloaded once into the Keras cache ({path.parent}) when it first trains.")
    return WeightsStatus(name, weights, False, "", path,
                         f"The ImageNet weights of {spec.label} are not available: they are not in the Keras "
                         f"cache ({path}) and {why}. To use them, allow this server internet access, or copy "
                         f"{weights_file(name, input_shape)} (from {weights_url(name, input_shape)}) into "
                         f"{path.parent}. Random weights (weights=None) still train.")


def _download_blocked(folder: Path) -> str | None:
    """Why nothing can be downloaded into `folder` now (a fragment), or None."""
    if sources.offline():
        return "downloads are switched off (CNNVIZ_OFFLINE)"
    if not _writable(folder):
        # Keras would download into /tmp/.keras instead: never outside the Keras cache.
        return f"the Keras cache ({folder}) cannot be written, so nothing can be downloaded into it"
    if not sources.host_reachable(WEIGHTS_HOST):
        return f"there is no internet ({WEIGHTS_HOST}, where Keras downloads them from, cannot be reached)"
    return None


def weights_file_for_keras(name: str, input_shape: Sequence[int], weights: str | None) -> str | None:
    """What to pass as ``weights=`` to keras.applications: None, or the path of the ImageNet
    weights file in the Keras cache, downloaded there first when needed (Keras is imported here).
    Raises `WeightsUnavailable` (with the student's message) when they cannot be had."""
    if weights is None:
        return None
    status = weights_status(name, input_shape, weights)
    if not status.available or status.path is None:
        raise WeightsUnavailable(status.message)
    if status.where == "cache":
        return str(status.path)
    import keras

    try:
        # An explicit cache folder (checked writable above), so Keras never falls back to /tmp/.keras.
        downloaded = keras.utils.get_file(status.path.name, weights_url(name, input_shape),
                                          cache_dir=str(status.path.parent.parent), cache_subdir="models")
    except Exception as error:  # noqa: BLE001 - a failed download is explained, not raised as is.
        raise WeightsUnavailable(f"Downloading the ImageNet weights of {backbone(name).label} failed "
                                 f"({type(error).__name__}). Random weights (weights=None) still train.") from error
    return str(downloaded)


def frozen_working_set(walk_: Walk, input_values: int) -> int:
    """The values a forward pass through a frozen base holds at once for one image: the widest pair
    of neighbouring layer outputs (nothing is kept for a backward pass through frozen weights)."""
    sizes = (input_values, *walk_.outputs)
    return max(a + b for a, b in zip(sizes, sizes[1:])) if len(sizes) > 1 else input_values


__all__ = ["BACKBONES", "BACKBONE_NAMES", "IMAGENET", "Backbone", "Walk", "WeightsStatus", "backbone",
           "frozen_working_set", "input_affine", "keras_models_dir", "walk", "weights_file",
           "weights_file_for_keras", "weights_status", "weights_url"]
