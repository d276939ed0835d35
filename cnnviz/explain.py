"""Why did the network decide? Grad-CAM, saliency, occlusion and feature visualisation.

Every function takes a trained Keras classifier and an image as the dataset gives it (uint8,
H x W x C; float images are taken as already scaled), scaled by the one input-scaling rule
(`cnnviz.architecture.scale_images`). Gradients are taken of the class LOGIT, the score before
the softmax: a model whose output layer is a softmax Dense layer gets its logits recomputed from
that layer's input, kernel and bias (`outputs_logits` tells which kind a model is).

TensorFlow is imported inside the functions. Student-facing problems raise `ExplainError`.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

from cnnviz import architecture
from cnnviz.errors import ExplainError
from cnnviz.lessons import train as train_lesson

DEFAULT_STEPS = 60  # Gradient-ascent steps of `maximize_activation`.

# The sub-models (input -> [a layer's output, the logits' input]) built per model, kept while the model lives.
_SUBMODELS: weakref.WeakKeyDictionary[Any, dict[str | None, Any]] = weakref.WeakKeyDictionary()
_SUBMODELS_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Layers, classes, inputs
# --------------------------------------------------------------------------------------------

def _feature_map_layers(model) -> list:
    """The model's Conv2D layers (`cnnviz.lessons.train.conv_layers`) and residual blocks (each a
    small nested model whose output is a (H, W, channels) volume), in forward order."""
    convs = {id(layer) for layer in train_lesson.conv_layers(model)}
    return [layer for layer in model.layers if id(layer) in convs
            or (type(layer).__name__ in ("Functional", "Model") and len(_output_shape(layer)) == 4)]


def conv_layer_names(model) -> list[str]:
    """The names of the model's Conv2D layers and residual blocks, in forward order: where Grad-CAM
    and feature visualisation look (a ResNet's last block is its usual Grad-CAM layer)."""
    return [layer.name for layer in _feature_map_layers(model)]


def spatial_layer_names(model) -> list[str]:
    """Every layer whose output is a (H, W, channels) volume: where Grad-CAM can look."""
    return [layer.name for layer in model.layers if len(_output_shape(layer)) == 4]


def _output_shape(layer) -> tuple:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):  # A layer never called on a symbolic input.
        return ()


def num_classes(model) -> int:
    return int(model.outputs[0].shape[-1])


def input_shape(model) -> tuple[int, int, int]:
    height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
    return height, width, channels


def _layer(model, layer_name: str):
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ExplainError(f"This network has no layer named {layer_name!r}; its layers are {', '.join(names)}.")
    return model.get_layer(layer_name)


def _grad_cam_layer(model, layer_name: str | None):
    if layer_name is None:
        convs = _feature_map_layers(model)
        if not convs:
            raise ExplainError("This network has no convolution layer, so Grad-CAM is unavailable (it weighs a "
                               "convolution layer's maps). Saliency and occlusion still work.")
        return convs[-1]
    layer = _layer(model, layer_name)
    if len(_output_shape(layer)) != 4:
        raise ExplainError(f"Grad-CAM needs a layer that outputs maps (height x width x channels); "
                           f"{layer_name} outputs shape {_output_shape(layer)[1:]}. "
                           f"Choose one of {', '.join(spatial_layer_names(model)) or 'none (no such layer)'}.")
    return layer


def _check_class(model, class_index: int) -> int:
    count = num_classes(model)
    if not isinstance(class_index, int | np.integer) or not 0 <= int(class_index) < count:
        raise ExplainError(f"Class {class_index} does not exist: this network has {count} classes (0 to {count - 1}).")
    return int(class_index)


def _scaled(model, image) -> np.ndarray:
    """One image (H, W, C) -> the network input (1, H, W, C), float32, by the one scaling rule."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    expected = input_shape(model)
    if array.shape != expected:
        raise ExplainError(f"This network takes {expected[0]}x{expected[1]}x{expected[2]} images, "
                           f"not an image of shape {array.shape}.")
    return architecture.scale_images(array)[None]


def _model_inputs(model):
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _node_tensor(model, layer, *, side: str = "output"):
    """`layer`'s output (or input) tensor on the model's OWN graph.

    `layer.output` is the layer's first call, which is not always the model's: a model loaded from
    the disk cache (`keras.models.load_model`) has layers called several times while it was rebuilt,
    and a sub-model built on `layer.output` would then be cut off from the logits (no gradient).
    """
    graph = getattr(model, "_functional", None) or model  # A Sequential model keeps its graph there.
    for nodes in getattr(graph, "_nodes_by_depth", {}).values():
        for node in nodes:
            if node.operation is layer:
                return (node.output_tensors if side == "output" else node.input_tensors)[0]
    return layer.output if side == "output" else layer.input


def _submodel(model, layer):
    """input -> [layer output (or None), the input of the logits]: cached per model and layer."""
    import keras

    key = None if layer is None else layer.name
    with _SUBMODELS_LOCK:
        per_model = _SUBMODELS.setdefault(model, {})
        if key not in per_model:
            last = model.layers[-1]
            logits_from = model.outputs[0] if architecture.outputs_logits(model) else \
                _node_tensor(model, _softmax_dense(last), side="input")
            outputs = [logits_from] if layer is None else [_node_tensor(model, layer), logits_from]
            per_model[key] = keras.Model(inputs=_model_inputs(model), outputs=outputs)
        return per_model[key]


def _softmax_dense(layer):
    if type(layer).__name__ != "Dense":
        raise ExplainError("The network ends in a softmax that is not a Dense layer, so its logits (the class "
                           "scores before the softmax) cannot be read.")
    return layer


def _logits(model, tail):
    """The logits (N, K) from the sub-model's last output (the logits themselves, or the softmax Dense layer's input)."""
    if architecture.outputs_logits(model):
        return tail
    import keras

    dense = model.layers[-1]
    out = keras.ops.matmul(tail, dense.kernel)
    return out + dense.bias if dense.use_bias else out


def logits(model, images) -> np.ndarray:
    """The class scores before the softmax, (N, K), for uint8 images (N, H, W, C)."""
    x = architecture.scale_images(images)
    return np.asarray(_logits(model, _submodel(model, None)(x, training=False)))


def _normalised(values: np.ndarray) -> np.ndarray:
    """values / max (all zeros when the max is not positive)."""
    top = float(values.max()) if values.size else 0.0
    return (values / top).astype(np.float32) if top > 0 else np.zeros_like(values, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Grad-CAM and saliency
# --------------------------------------------------------------------------------------------

def grad_cam(model, image, class_index: int, layer_name: str | None = None) -> np.ndarray:
    """The Grad-CAM map of `class_index` at `layer_name`'s resolution (None: the last conv layer).

    The layer's output maps weighted by the spatial mean of the gradient of the class logit,
    summed over channels, ReLU, divided by its maximum (all zeros when it is 0). (h, w) float32.
    """
    import tensorflow as tf

    layer = _grad_cam_layer(model, layer_name)
    class_index = _check_class(model, class_index)
    x = tf.constant(_scaled(model, image))
    with tf.GradientTape() as tape:
        maps, tail = _submodel(model, layer)(x, training=False)
        score = _logits(model, tail)[:, class_index]
    gradient = tape.gradient(score, maps)
    weights = tf.reduce_mean(gradient, axis=(1, 2))  # (1, channels)
    cam = tf.nn.relu(tf.reduce_sum(maps * weights[:, None, None, :], axis=-1))[0]
    return _normalised(np.asarray(cam, dtype=np.float64))


def _input_gradients(model, batch: np.ndarray, class_index: int) -> np.ndarray:
    """d logit[class] / d input for each image of a scaled batch (N, H, W, C)."""
    import tensorflow as tf

    x = tf.constant(batch)
    with tf.GradientTape() as tape:
        tape.watch(x)
        # The images of a batch do not interact (inference mode), so the gradient of the sum is per image.
        score = tf.reduce_sum(_logits(model, _submodel(model, None)(x, training=False))[:, class_index])
    return np.asarray(tape.gradient(score, x))


def saliency(model, image, class_index: int) -> np.ndarray:
    """|d logit / d scaled input|, maximum over channels, divided by its maximum: (H, W) float32."""
    class_index = _check_class(model, class_index)
    gradient = _input_gradients(model, _scaled(model, image), class_index)[0]
    return _normalised(np.abs(gradient).max(axis=-1))


def smooth_saliency(model, image, class_index: int, *, samples: int = 16, noise: float = 0.15,
                    seed: int = 0) -> np.ndarray:
    """SmoothGrad: the saliency map averaged over `samples` copies of the image with Gaussian noise
    (standard deviation `noise` in scaled units, seeded), so single-pixel speckle averages out."""
    class_index = _check_class(model, class_index)
    if samples < 1:
        raise ExplainError("SmoothGrad needs at least one noisy sample.")
    x = _scaled(model, image)
    rng = np.random.default_rng(seed)
    noisy = (x + rng.normal(0.0, noise, size=(samples,) + x.shape[1:])).astype(np.float32)
    gradients = _input_gradients(model, noisy, class_index)
    return _normalised(np.abs(gradients).max(axis=-1).mean(axis=0))


# --------------------------------------------------------------------------------------------
# Occlusion
# --------------------------------------------------------------------------------------------

def occlusion_positions(height: int, width: int, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (rows, columns) of every patch fully inside the image, at multiples of `stride`."""
    if patch < 1 or stride < 1:
        raise ExplainError("The occlusion patch and its stride must be at least 1 pixel.")
    if patch > min(height, width):
        raise ExplainError(f"A {patch}x{patch} patch does not fit in a {height}x{width} image.")
    return np.arange(0, height - patch + 1, stride), np.arange(0, width - patch + 1, stride)


def occlude(image: np.ndarray, top: int, left: int, patch: int, fill: float) -> np.ndarray:
    """A copy of a scaled image (H, W, C) with one patch set to `fill`."""
    covered = np.array(image, dtype=np.float32, copy=True)
    covered[top:top + patch, left:left + patch, :] = fill
    return covered


def occlusion(model, image, class_index: int, patch: int = 4, stride: int = 2, fill: float = 0.0) -> np.ndarray:
    """The drop of the class probability when a patch is covered, per patch position.

    Entry [i, j]: the softmax probability of `class_index` on the image minus on the image with the
    `patch` x `patch` square at (i * stride, j * stride) set to `fill` (scaled units: 0 is black).
    Shape ((H - patch) // stride + 1, (W - patch) // stride + 1); the occluded images are scored in
    batches of `architecture.EVAL_BATCH`.
    """
    class_index = _check_class(model, class_index)
    x = _scaled(model, image)[0]
    rows, columns = occlusion_positions(x.shape[0], x.shape[1], patch, stride)
    batch = np.repeat(x[None], 1 + len(rows) * len(columns), axis=0)
    for i, top in enumerate(rows):
        for j, left in enumerate(columns):
            batch[1 + i * len(columns) + j, top:top + patch, left:left + patch, :] = fill
    probabilities = train_lesson.predict_probabilities(model, batch)[:, class_index]  # Float: taken as scaled.
    return (probabilities[0] - probabilities[1:]).reshape(len(rows), len(columns)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Feature visualisation
# --------------------------------------------------------------------------------------------

def filter_count(model, layer_name: str) -> int:
    return int(_output_shape(_layer(model, layer_name))[-1])


def mean_activations(model, layer_name: str, images, *, batch_size: int = architecture.EVAL_BATCH) -> np.ndarray:
    """Each image's mean activation of every filter (unit) of a layer: (N, filters)."""
    import keras

    layer = _layer(model, layer_name)
    submodel = keras.Model(inputs=_model_inputs(model), outputs=_node_tensor(model, layer))
    x = architecture.scale_images(images)
    outputs = []
    for start in range(0, len(x), batch_size):
        out = np.asarray(submodel(x[start:start + batch_size], training=False))
        outputs.append(out.reshape(len(out), -1, out.shape[-1]).mean(axis=1))
    return np.concatenate(outputs) if outputs else np.zeros((0, filter_count(model, layer_name)), np.float32)


def maximize_activation(model, layer_name: str, filter_index: int, steps: int = DEFAULT_STEPS, seed: int = 0, *,
                        step_size: float = 0.05, decay: float = 0.01, blur_every: int = 4) -> np.ndarray:
    """An input that drives the mean activation of one filter far up: uint8 (H, W, C).

    Gradient ascent from seeded faint noise around mid-grey on the scaled input (full-range noise
    when the filter is silent there, so has no gradient), each step of
    `step_size` along the normalised gradient; light regularisation: the image decays towards
    mid-grey by `decay` per step and is blurred (3x3, weight 1/2 in the centre) every `blur_every`
    steps; pixels stay in [0, 1].
    """
    import keras
    import tensorflow as tf

    layer = _layer(model, layer_name)
    count = filter_count(model, layer_name)
    if not isinstance(filter_index, int | np.integer) or not 0 <= int(filter_index) < count:
        raise ExplainError(f"{layer_name} has {count} filters (0 to {count - 1}), not filter {filter_index}.")
    submodel = keras.Model(inputs=_model_inputs(model), outputs=_node_tensor(model, layer))
    height, width, channels = input_shape(model)
    rng = np.random.default_rng(seed)
    x = tf.Variable((0.5 + 0.05 * rng.standard_normal((1, height, width, channels))).astype(np.float32))
    blur = tf.constant(np.tile(np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32)[:, :, None, None] / 16.0,
                               (1, 1, channels, 1)))
    index = int(filter_index)

    @tf.function
    def ascend(step: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            out = submodel(x, training=False)
            objective = tf.reduce_mean(out[..., index])
        gradient = tape.gradient(objective, x)
        gradient = gradient / (tf.sqrt(tf.reduce_mean(tf.square(gradient))) + 1e-8)
        value = x + step_size * gradient
        value = 0.5 + (value - 0.5) * (1.0 - decay)
        if blur_every > 0 and step % blur_every == blur_every - 1:
            value = 0.5 * value + 0.5 * tf.nn.depthwise_conv2d(value, blur, [1, 1, 1, 1], "SAME")
        x.assign(tf.clip_by_value(value, 0.0, 1.0))

    with tf.GradientTape() as tape:
        start_objective = tf.reduce_mean(submodel(x, training=False)[..., index])
    if not np.any(np.asarray(tape.gradient(start_objective, x))):
        # The filter is silent (a ReLU below zero) on faint noise, so it has no gradient there:
        # start from full-range seeded noise instead, where some pixels usually wake it up.
        x.assign(rng.uniform(0.0, 1.0, (1, height, width, channels)).astype(np.float32))
    for step in range(int(steps)):
        ascend(tf.constant(step))
    return np.clip(np.round(x.numpy()[0] * architecture.PIXEL_MAX), 0, 255).astype(np.uint8)
