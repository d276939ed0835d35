"""What training does inside the network: per-layer gradient norms and weight histograms.

`record_gradients=True` in a `TrainConfig` makes the engine call `Recorder.record` at
initialisation and at the end of every epoch. Each record measures, on one fixed batch of the
training images (the first `batch_size` of them, in the prepared order), the L2 norm of the
gradient of the mean training loss (without regularisation terms) with respect to each trainable
layer's kernel, and a `HISTOGRAM_BINS`-bin histogram of that kernel (bins spanning its smallest to
largest weight at that moment). The forward pass runs in training mode (batch normalisation uses
the batch's statistics, as training does); the moving statistics it would update are restored,
so recording never changes the model.

`layer_gradient_norms` is also the vanishing-gradient demonstration's measurement at
initialisation (`cnnviz.lessons.explain`).

TensorFlow is imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnviz.architecture import scale_images

if TYPE_CHECKING:
    import keras

HISTOGRAM_BINS = 30


def kernel_layers(model: keras.Model) -> list[Any]:
    """The model's trainable layers that have a kernel (Conv2D, Dense, ...), in model order; the
    layers inside a block built as a nested model (`residual_block`) count one by one, in its order."""
    found = []
    for layer in model.layers:
        if not getattr(layer, "trainable", False):
            continue
        inner = getattr(layer, "layers", None)
        if isinstance(inner, list) and getattr(layer, "kernel", None) is None:
            found.extend(kernel_layers(layer))
        elif getattr(layer, "kernel", None) is not None:
            found.append(layer)
    return found


def layer_gradient_norms(model: keras.Model, images: np.ndarray, labels: np.ndarray, *,
                         from_logits: bool = False) -> dict[str, float]:
    """L2 norm of d(mean sparse cross-entropy on this batch)/d(kernel), per kernel layer (by name).

    `images` as the dataset gives them (uint8 NHWC, scaled by the one input-scaling rule) or
    already scaled floats. The forward pass runs with `training=True`; moving statistics are
    restored afterwards.
    """
    import keras
    import tensorflow as tf

    layers = kernel_layers(model)
    kernels = [layer.kernel for layer in layers]
    saved = [v.numpy() for v in model.non_trainable_variables]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    x = tf.constant(scale_images(images), tf.float32)
    y = tf.constant(np.asarray(labels).astype(np.int32))
    try:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, kernels)
    finally:
        for variable, value in zip(model.non_trainable_variables, saved):
            variable.assign(value)
    return {layer.name: float(tf.norm(g)) if g is not None else 0.0 for layer, g in zip(layers, gradients)}


def weight_histogram(weights: np.ndarray, bins: int = HISTOGRAM_BINS) -> tuple[list[float], list[int]]:
    """(edges, counts) of `bins` equal bins from the smallest to the largest weight; counts sum to its size."""
    values = np.asarray(weights, dtype=np.float64).ravel()
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return [float(e) for e in edges], [int(c) for c in counts]


@dataclass
class TrainingRecord:
    """Per-layer measurements at initialisation (index 0) and after each epoch (index e).

    `gradient_norms[i][j]` is layer `layers[j]`'s gradient norm at record i;
    `histograms[i][j]` is its (edges, counts) there.
    """

    layers: list[str] = field(default_factory=list)
    gradient_norms: list[list[float]] = field(default_factory=list)
    histograms: list[list[tuple[list[float], list[int]]]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "gradient_norms": self.gradient_norms,
                "histograms": [[[list(e), list(c)] for e, c in row] for row in self.histograms]}

    @classmethod
    def from_json(cls, data: Any) -> TrainingRecord | None:
        """The record stored by `to_json`; None when absent or malformed."""
        try:
            return cls(layers=[str(n) for n in data["layers"]],
                       gradient_norms=[[float(v) for v in row] for row in data["gradient_norms"]],
                       histograms=[[([float(v) for v in e], [int(v) for v in c]) for e, c in row]
                                   for row in data["histograms"]])
        except (TypeError, KeyError, ValueError):
            return None


class Recorder:
    """Measures one model on one fixed batch; `record()` appends a row to `record_`."""

    def __init__(self, model: keras.Model, images: np.ndarray, labels: np.ndarray, *, from_logits: bool) -> None:
        self.model = model
        self.images, self.labels = images, labels
        self.from_logits = from_logits
        self.record_ = TrainingRecord(layers=[layer.name for layer in kernel_layers(model)])

    def record(self) -> None:
        norms = layer_gradient_norms(self.model, self.images, self.labels, from_logits=self.from_logits)
        self.record_.gradient_norms.append([norms[name] for name in self.record_.layers])
        self.record_.histograms.append([weight_histogram(layer.kernel.numpy()) for layer in kernel_layers(self.model)])
