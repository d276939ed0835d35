"""Several seeds of one configuration trained together, in one compiled TensorFlow program.

`train_together(configs, prepared, on_progress)` trains configs that differ only in their seed
(`seeds.train_seeds` calls it for the seeds that are not in the disk cache) and returns one
ordinary `TrainResult` per seed, as `engine.train` would: the S copies of the network live side
by side in one `SeedStack`:

* image tensors use the *seeds-as-channels* layout ``(B, H, W, S*C)`` (channel ``s*C + c`` is
  channel ``c`` of seed ``s``), so pooling, elementwise activations and batch-norm statistics
  (per channel) never mix seeds, and one pooling op serves all seeds;
* a convolution whose input has one channel per seed (the first layer on grey images) is exactly
  a depthwise convolution with F filters per channel (one op for all seeds); one whose 'valid'
  kernel covers its whole input (LeNet's C5) is a batched matmul; the other convolutions run as
  one grouped convolution where TensorFlow has its gradients on the CPU (with oneDNN, its default on
  x86), else as S ordinary convolutions inside the same graph;
* a convolution followed by max pooling with a non-decreasing activation pools first and then adds
  its bias and activates (the same numbers: max and the activation commute);
* after Flatten (or global pooling) the layout is ``(S, B, D)`` and Dense is one batched matmul;
* the test split is scored for every seed in one graph call, `eval_chunk(S)` images at a time
  (about `EVAL_IMAGE_SEEDS` // S: S seeds' activations of `EVAL_BATCH` images at once do not stay
  in the CPU's caches).

Each seed keeps what it has alone (`engine._train_now`, `engine._fit_fast`): its initial weights
(its own Keras model, built after `keras.utils.set_random_seed(seed)`; the trained weights are
copied back into that model at the end), its own data order (`np.random.default_rng(seed)`,
one permutation per epoch), its own images when the data is loaded per seed, the engine's
optimizer and learning-rate schedule (`engine._make_optimizer`). The loss is the sum over seeds
of each seed's mean loss, so each slice receives exactly the gradient it would get alone, and the
elementwise optimizers (Adam, SGD, RMSprop) update it exactly as alone. Divergence is judged per
seed by its own `Reporter`; progress is reported for the whole group.

A warm start copies each seed's first layers from its own pre-trained model (`warm_models`,
trained before by `seeds.train_seeds`); frozen layers are left out of the trainable variables, so
the optimizer never sees them, as in `engine._train_now`.

Not vectorised (`unsupported_reason` says why, and `train_seeds` trains those seeds one after
another through `engine.train`): `fast=False`, augmentation, a frozen batch-norm layer, a dense
layer on an image (no Flatten before it), softmax inside the network, a layer type not in
`SUPPORTED_LAYERS` (a residual block: its Keras form is a small Functional model), models above
`MAX_PARAMS` parameters. Dropout masks are drawn per seed but not as a lone run draws them, so
with dropout the seeds match single runs statistically rather than step by step.

TensorFlow and Keras are imported lazily inside functions: importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cnnviz.architecture import budget, build_keras_model, input_scale, outputs_logits, summarize
from cnnviz.errors import TrainingCancelled
from cnnviz.training import engine, inputs, queue
from cnnviz.training.config import TrainConfig
from cnnviz.training.inputs import Prepared
from cnnviz.training.progress import PROGRESS_INTERVAL, OnProgress, Reporter, waiting_reporter
from cnnviz.training.results import Progress, TrainResult

SUPPORTED_LAYERS = ("conv2d", "maxpool2d", "avgpool2d", "flatten", "dense", "dropout", "batchnorm",
                    "globalavgpool2d", "globalmaxpool2d")
# Above this many parameters per seed one batch is already slow (the engine runs one batch per
# call): stacking gains nothing, so such models train one seed after another.
MAX_PARAMS = 500_000
# The test images one Keras model scores per call (one place for it, the budget's; see there).
EVAL_BATCH = budget.EVAL_BATCH
# The stacked evaluation scores about EVAL_IMAGE_SEEDS (image, seed) pairs per step of its loop, at
# least EVAL_CHUNK_MIN images and at most EVAL_BATCH (`eval_chunk`; 5 seeds: 64 images at a time).
EVAL_IMAGE_SEEDS = 320
EVAL_CHUNK_MIN = 32
# Non-decreasing activations: they commute with max pooling (see `SeedStack`'s "pool_first").
MONOTONE_ACTIVATIONS = (None, "linear", "relu", "relu6", "tanh", "sigmoid", "elu", "selu", "softplus",
                        "leaky_relu", "hard_sigmoid", "softsign", "exponential")


def eval_chunk(seeds: int) -> int:
    """Images per step of the stacked evaluation of `seeds` seeds: about EVAL_IMAGE_SEEDS (image, seed)
    pairs, at least EVAL_CHUNK_MIN images, and never more than the budget's EVAL_BATCH (the largest
    forward pass anything runs; 2 seeds: 128, 5 seeds: 64)."""
    return min(EVAL_BATCH, max(EVAL_CHUNK_MIN, EVAL_IMAGE_SEEDS // max(1, seeds)))


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


def unsupported_reason(config: TrainConfig, image_shape: Sequence[int]) -> str | None:
    """Why the seeds of `config` cannot train together (None when they can)."""
    if not config.fast:
        return "fast=False trains with model.fit"
    if any(strength > 0 for _, strength in config.augmentation):
        return "augmentation"
    if config.record_gradients:
        return "recording gradients and weights"
    rows = summarize(tuple(int(d) for d in image_shape), config.stack())
    if config.freeze_layers >= len(rows):
        return "every layer frozen"
    for row in rows:
        if row.type == "batchnorm" and row.index < config.freeze_layers:
            return "a frozen batch-norm layer"  # Keras runs it in inference mode
        if row.type not in SUPPORTED_LAYERS:
            return f"layer type {row.type}"
        if row.type == "dense" and len(row.input_shape) != 1:
            return "a dense layer on an image"
        if row.type == "conv2d" and row.config.get("activation") == "softmax":
            return "softmax inside the network"
    if rows[-1].type != "dense":
        return "no dense output layer"
    if sum(row.params for row in rows) > MAX_PARAMS:
        return f"more than {MAX_PARAMS:,} parameters"
    return None


class SeedStack:
    """S copies of one layer stack, vectorised, starting from the weights of S Keras models.

    ``stack(x, training)`` maps ``(S, B, H, W, C)`` float images (seed s sees ``x[s]``) to
    ``(S, B, K)`` outputs; `forward_channels` takes the seeds-as-channels layout instead.
    """

    def __init__(self, stack: Sequence[Mapping[str, Any]], input_shape: Sequence[int],
                 models: Sequence[Any], dropout_seeds: Sequence[int], *, frozen_layers: int = 0) -> None:
        import keras

        self.S = S = len(models)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.rows = summarize(self.input_shape, stack)
        per_seed = [[layer.get_weights() for layer in engine._keras_layers(model)] for model in models]
        self.vars: list[dict[str, Any]] = []  # per layer: weight name -> Variable with a leading seed axis
        self.plan: list[dict[str, Any]] = []
        for index, row in enumerate(self.rows):
            cfg = row.config
            entry: dict[str, Any] = {"type": row.type, "cfg": cfg, "in_shape": tuple(row.input_shape)}
            names = {"conv2d": ["kernel", "bias"], "dense": ["kernel", "bias"],
                     "batchnorm": ["gamma", "beta", "moving_mean", "moving_variance"]}.get(row.type, [])
            if row.type in ("conv2d", "dense") and not cfg.get("use_bias", True):
                names = ["kernel"]
            variables = {}
            for position, name in enumerate(names):
                value = np.stack([per_seed[s][index][position] for s in range(S)]).astype(np.float32)
                # The first `frozen_layers` layers keep their weights: left out of the trainable variables.
                trainable = index >= frozen_layers and name not in ("moving_mean", "moving_variance")
                variables[name] = keras.Variable(value, trainable=trainable, name=f"{row.name}_{name}")
            if row.type == "conv2d":
                entry["impl"] = _conv_impl(row)
                following = self.rows[index + 1] if index + 1 < len(self.rows) else None
                # conv -> max pooling with a monotone activation: pool first, then add the bias and
                # activate (max(f(x + b)) = f(max(x) + b) for a non-decreasing f and a per-channel b):
                # the same numbers, with the bias and activation on a pool's worth fewer values.
                entry["pool_first"] = (following is not None and following.type == "maxpool2d"
                                       and cfg.get("activation") in MONOTONE_ACTIVATIONS)
            if row.type == "dropout":
                entry["seed_gen"] = keras.random.SeedGenerator(int(dropout_seeds[0]) * 7919 + index)
            self.vars.append(variables)
            self.plan.append(entry)

    @property
    def trainable_variables(self) -> list[Any]:
        return [v for layer in self.vars for v in layer.values() if v.trainable]

    def seed_weights(self, s: int) -> list[list[np.ndarray]]:
        """Seed s's weights, per layer, in Keras's `get_weights` order."""
        return [[np.array(v.numpy()[s]) for v in layer.values()] for layer in self.vars]

    def __call__(self, x: Any, training: bool = False) -> Any:
        import tensorflow as tf

        h, w, c = self.input_shape
        x = tf.reshape(tf.transpose(x, [1, 2, 3, 0, 4]), [-1, h, w, self.S * c])
        return self.forward_channels(x, training)

    def forward_channels(self, x: Any, training: bool = False) -> Any:
        """x in the seeds-as-channels layout (B, H, W, S*C) -> (S, B, K)."""
        import keras
        import tensorflow as tf

        S = self.S
        pending: tuple[dict[str, Any], dict[str, Any]] | None = None
        for entry, variables in zip(self.plan, self.vars):
            kind, cfg = entry["type"], entry["cfg"]
            if kind == "conv2d":
                x = self._conv(x, entry, variables)
                if entry["pool_first"]:
                    pending = (entry, variables)  # bias and activation come after the pooling
                else:
                    x = _activate(self._bias(x, entry, variables), cfg.get("activation"))
            elif kind in ("maxpool2d", "avgpool2d"):
                pool = _pair(cfg["pool_size"])
                strides = _pair(cfg["strides"] if cfg.get("strides") is not None else cfg["pool_size"])
                op = tf.nn.max_pool2d if kind == "maxpool2d" else tf.nn.avg_pool2d
                x = op(x, pool, strides, str(cfg.get("padding", "valid")).upper())
                if pending is not None:
                    conv_entry, conv_variables = pending
                    x = _activate(self._bias(x, conv_entry, conv_variables), conv_entry["cfg"].get("activation"))
                    pending = None
            elif kind in ("globalavgpool2d", "globalmaxpool2d"):
                op = tf.reduce_mean if kind == "globalavgpool2d" else tf.reduce_max
                x = tf.transpose(tf.reshape(op(x, axis=[1, 2]), [-1, S, entry["in_shape"][2]]), [1, 0, 2])
            elif kind == "flatten":
                hh, ww, cc = entry["in_shape"]
                x = tf.transpose(tf.reshape(x, [-1, hh, ww, S, cc]), [3, 0, 1, 2, 4])
                x = tf.reshape(x, [S, -1, hh * ww * cc])
            elif kind == "dense":
                x = tf.matmul(x, variables["kernel"].value)
                if "bias" in variables:
                    x = x + variables["bias"].value[:, None, :]
                x = _activate(x, cfg.get("activation"))
            elif kind == "dropout":
                if training and cfg["rate"] > 0:
                    x = keras.random.dropout(x, cfg["rate"], seed=entry["seed_gen"])
            elif kind == "batchnorm":
                x = self._batchnorm(x, entry, variables, training)
        return x

    def _conv(self, x: Any, entry: dict[str, Any], variables: dict[str, Any]) -> Any:
        import tensorflow as tf

        S, cfg = self.S, entry["cfg"]
        kernel = variables["kernel"].value  # (S, kh, kw, C, F)
        kh, kw = _pair(cfg["kernel_size"])
        F, C = int(cfg["filters"]), int(entry["in_shape"][2])
        strides, dilation = _pair(cfg["strides"]), _pair(cfg["dilation_rate"])
        padding = str(cfg["padding"]).upper()
        if entry["impl"] == "depthwise":  # one input channel per seed: output channel s*F + f
            depthwise = tf.reshape(tf.transpose(kernel, [1, 2, 0, 3, 4]), [kh, kw, S * C, F])
            return tf.nn.depthwise_conv2d(x, depthwise, [1, strides[0], strides[1], 1], padding, dilations=dilation)
        if entry["impl"] == "dense":  # the kernel covers the whole input: one batched matmul per batch
            h, w, _ = entry["in_shape"]
            flat = tf.reshape(tf.transpose(tf.reshape(x, [-1, h * w, S, C]), [2, 0, 1, 3]), [S, -1, h * w * C])
            y = tf.matmul(flat, tf.reshape(kernel, [S, kh * kw * C, F]))  # (S, B, F)
            return tf.reshape(tf.transpose(y, [1, 0, 2]), [-1, 1, 1, S * F])
        if entry["impl"] == "grouped":  # one op: group s reads channels s*C.. and writes s*F..
            grouped = tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]), [kh, kw, C, S * F])
            return tf.nn.conv2d(x, grouped, strides, padding)
        parts = tf.split(x, S, axis=-1)
        return tf.concat([tf.nn.conv2d(parts[s], kernel[s], strides, padding, dilations=dilation)
                          for s in range(S)], axis=-1)

    def _bias(self, x: Any, entry: dict[str, Any], variables: dict[str, Any]) -> Any:
        import tensorflow as tf

        if "bias" not in variables:
            return x
        return x + tf.reshape(variables["bias"].value, [self.S * int(entry["cfg"]["filters"])])

    def _batchnorm(self, x: Any, entry: dict[str, Any], variables: dict[str, Any], training: bool) -> Any:
        import tensorflow as tf

        cfg = entry["cfg"]
        momentum, epsilon = float(cfg.get("momentum", 0.99)), float(cfg.get("epsilon", 1e-3))
        axes, shape = ([0, 1, 2], [-1]) if len(entry["in_shape"]) == 3 else ([1], [self.S, 1, -1])
        moving_mean, moving_variance = variables["moving_mean"], variables["moving_variance"]
        if training:
            mean, variance = tf.nn.moments(x, axes=axes)
            moving_mean.assign(moving_mean.value * momentum + tf.reshape(mean, [self.S, -1]) * (1.0 - momentum))
            moving_variance.assign(moving_variance.value * momentum
                                   + tf.reshape(variance, [self.S, -1]) * (1.0 - momentum))
            mean, variance = tf.reshape(mean, shape), tf.reshape(variance, shape)
        else:
            mean, variance = tf.reshape(moving_mean.value, shape), tf.reshape(moving_variance.value, shape)
        return tf.nn.batch_normalization(x, mean, variance, tf.reshape(variables["beta"].value, shape),
                                         tf.reshape(variables["gamma"].value, shape), epsilon)


def grouped_conv_gradients() -> bool:
    """Whether this TensorFlow computes the gradients of a grouped convolution on the CPU.

    With oneDNN (TensorFlow's default on x86) it does; without it (TF_ENABLE_ONEDNN_OPTS=0, as the
    tests run) it refuses them. Measured 2026-12-02 with oneDNN (2 cores, forward and backward of
    LeNet's second convolution, 6 -> 16 channels, batch 32): 5 seeds 1.22 ms a step as one grouped
    convolution against 2.94 ms as 5 convolutions; 3 seeds 0.76 against 1.59 ms. Probed once, eagerly
    (`SeedStack` asks while it is built, before anything is traced).
    """
    import tensorflow as tf

    if tf.inside_function():  # Not probed inside a graph (there it would be a graph op, not an answer).
        return False
    return _grouped_conv_gradients_probe()


@functools.cache
def _grouped_conv_gradients_probe() -> bool:
    import tensorflow as tf

    try:
        x = tf.ones([1, 4, 4, 2])
        kernel = tf.ones([3, 3, 1, 2])
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = tf.nn.conv2d(x, kernel, 1, "VALID")
        grad_x, grad_kernel = tape.gradient(y, [x, kernel])
        # Each of the 18 kernel weights meets 4 input ones (a 2 x 2 output): 72 in all.
        return bool(grad_x is not None and grad_kernel is not None and float(tf.reduce_sum(grad_kernel)) == 72.0)
    except (tf.errors.OpError, ValueError):
        return False


def _conv_impl(row: Any) -> str:
    """How the S copies of one Conv2D run: "depthwise" (one input channel per seed: one op for all
    seeds), "dense" (a 'valid' kernel as large as its input, e.g. LeNet's C5: a batched matmul, the
    same sums as the convolution), "grouped" (one grouped convolution, where TensorFlow has its
    gradients: `grouped_conv_gradients`) or "unrolled" (S ordinary convolutions in the graph)."""
    cfg = row.config
    height, width, channels = row.input_shape
    if channels == 1:
        return "depthwise"
    if (str(cfg["padding"]).lower() == "valid" and _pair(cfg["kernel_size"]) == (height, width)
            and _pair(cfg["dilation_rate"]) == (1, 1)):
        return "dense"
    if _pair(cfg["dilation_rate"]) == (1, 1) and grouped_conv_gradients():
        return "grouped"
    return "unrolled"


def _activate(x: Any, name: Any) -> Any:
    import keras

    if name in (None, "linear"):
        return x
    return keras.activations.get(name)(x)


def _stacked(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """One array when every seed has the same one (shared data), else them stacked on a seed axis."""
    if all(a is arrays[0] for a in arrays):
        return arrays[0][None]
    return np.stack(arrays)


def train_together(configs: Sequence[TrainConfig], prepared: Sequence[Prepared],
                   on_progress: OnProgress | None = None, *,
                   warm_models: Sequence[Any] | None = None) -> list[TrainResult]:
    """Train configs that differ only in their seed together; one `TrainResult` per config.

    `prepared[i]` is config i's data (the same object for every seed when the data is shared;
    otherwise every seed's must have the same numbers of images). With a warm start,
    `warm_models[i]` is the trained Keras model config i copies its first `warm_start_layers`
    layers from (as `engine.train` copies them: after building seed i's model); the first
    `freeze_layers` layers are left out of the trainable variables. The whole group holds one
    training slot. `on_progress` sees the group: running metrics are the means over the seeds
    still training; returning False stops every seed ("stopped"). A diverged seed stops alone.
    The caller checks `unsupported_reason` and stores the results in the cache.
    """
    import keras

    first = configs[0]
    stack = first.stack()
    image_shape = prepared[0].image_shape
    if first.warm_start is not None and first.warm_start_layers and (
            warm_models is None or len(warm_models) != len(configs)):
        raise ValueError("A warm start needs one trained model per config (warm_models).")
    for config, data in zip(configs, prepared):
        config.validate()
        engine._check_output_layer(data.image_shape, stack, len(data.class_names))
        config.check_batch_fits(len(data.x_train))
        # The seeds' models live side by side: the group must fit the budget as a whole.
        config.check_budget(data.image_shape, len(data.x_train), len(data.x_test), seeds=len(configs))
    steps_per_epoch = math.ceil(len(prepared[0].x_train) / first.batch_size)

    try:
        with queue.training_queue.slot(waiting_reporter(first, on_progress), poll_seconds=PROGRESS_INTERVAL):
            with engine._SETUP_LOCK:
                models = []
                for index, config in enumerate(configs):
                    keras.utils.set_random_seed(config.seed)
                    models.append(build_keras_model(image_shape, stack))
                    layers = engine._keras_layers(models[-1])
                    if warm_models is not None and config.warm_start_layers:
                        engine._copy_warm_start(warm_models[index], layers, config.warm_start_layers)
                    for layer in layers[:config.freeze_layers]:
                        layer.trainable = False  # as engine.train leaves a frozen layer
                model = SeedStack(stack, image_shape, models, [c.seed for c in configs],
                                  frozen_layers=first.freeze_layers)
                optimizer = engine._make_optimizer(first, steps_per_epoch)
                optimizer.build(model.trainable_variables)
            results = _fit_together(model, models, optimizer, configs, prepared, on_progress)
    except queue.QueueCancelled as error:
        raise TrainingCancelled("Training was stopped while waiting for a free training slot.") from error
    return results


def _fit_together(model: SeedStack, models: list[Any], optimizer: Any, configs: Sequence[TrainConfig],
                  prepared: Sequence[Prepared], on_progress: OnProgress | None) -> list[TrainResult]:
    """`engine._fit_fast` for S seeds at once (see the module docstring)."""
    import keras
    import tensorflow as tf

    S, first = len(configs), configs[0]
    stack = first.stack()
    from_logits = outputs_logits(stack)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=None)
    x_train = _stacked([p.x_train for p in prepared])
    y_train = _stacked([p.y_train for p in prepared])
    x_test = _stacked([p.x_test for p in prepared])
    y_test = _stacked([p.y_test for p in prepared])
    per_seed_train, per_seed_test = len(x_train) > 1, len(x_test) > 1
    n_train, n_test, batch_size = x_train.shape[1], x_test.shape[1], first.batch_size
    steps_per_epoch = math.ceil(n_train / batch_size)
    scale = input_scale(x_train)
    num_classes = len(prepared[0].class_names)
    # uint8 tensors sharing the arrays' memory where they can (`inputs.image_tensor`: no second copy).
    images = inputs.image_tensor(x_train.reshape((-1,) + x_train.shape[2:]))  # (S or 1) * N images
    labels = tf.constant(y_train.reshape(-1))
    test_images, test_labels = inputs.image_tensor(x_test), tf.constant(y_test)  # (S or 1, N_test, ...)
    offsets = tf.constant((np.arange(S) * n_train if per_seed_train else np.zeros(S)).astype(np.int32)[:, None])
    variables = model.trainable_variables
    h, w, c = model.input_shape

    def correct_count(predictions: Any, y: Any) -> Any:
        hits = tf.equal(tf.argmax(predictions, axis=-1, output_type=tf.int32), y)
        return tf.reduce_sum(tf.cast(hits, tf.float32), axis=1)

    # The data tensors are arguments, not captures: TensorFlow keeps a traced graph, and the eager
    # tensors it captured, alive after the function is gone (measured: every group of 3 LeNet seeds
    # left its 9 MB of stacked training images behind).
    @tf.function(input_signature=[tf.TensorSpec([S, None], tf.int32), tf.TensorSpec([], tf.int32),
                                  tf.TensorSpec([], tf.int32), tf.TensorSpec(images.shape, images.dtype),
                                  tf.TensorSpec(labels.shape, labels.dtype)], autograph=False)
    def run_steps_on(order: Any, first_step: Any, steps: Any, images: Any, labels: Any) -> Any:
        def body(step: Any, loss_sum: Any, correct_sum: Any, seen: Any) -> Any:
            begin = step * batch_size
            indices = order[:, begin:tf.minimum(begin + batch_size, n_train)] + offsets  # (S, B)
            x = tf.cast(tf.gather(images, indices), tf.float32) * scale  # (S, B, H, W, C)
            y = tf.gather(labels, indices)
            with tf.GradientTape() as tape:
                predictions = model(x, training=True)
                loss = tf.reduce_mean(loss_fn(y, predictions), axis=1)  # (S,): each seed's own mean
                total = tf.reduce_sum(loss)
            gradients = tape.gradient(total, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            count = tf.cast(tf.shape(indices)[1], tf.float32)
            return step + 1, loss_sum + loss * count, correct_sum + correct_count(predictions, y), seen + count

        zeros = tf.zeros([S])
        _, loss_sum, correct_sum, seen = tf.while_loop(
            lambda step, *_: step < first_step + steps, body, (first_step, zeros, zeros, tf.constant(0.0)))
        return loss_sum, correct_sum, seen

    def run_steps(order: Any, first_step: Any, steps: Any) -> Any:
        return run_steps_on(order, first_step, steps, images, labels)

    # The whole test split in one graph call, `chunk` images (for every seed) at a time: the S seeds'
    # activations of EVAL_BATCH images at once leave the CPU caches (measured on the page's models,
    # 5 seeds: 64 images at a time ran 2-4x faster per image than 512), and one call saves a Python
    # round trip per chunk.
    chunk = eval_chunk(S)

    @tf.function(autograph=False)
    def evaluate_all(test_images: Any, test_labels: Any) -> Any:
        def body(begin: Any, loss_sum: Any, correct_sum: Any, hits: Any) -> Any:
            end = tf.minimum(begin + chunk, n_test)
            x = tf.cast(test_images[:, begin:end], tf.float32) * scale
            if per_seed_test:
                predictions = model(x, training=False)
            else:  # the same images for every seed: tile them into the seeds-as-channels layout
                predictions = model.forward_channels(tf.tile(x[0], [1, 1, 1, S]), training=False)
            y = tf.broadcast_to(test_labels[:, begin:end], tf.shape(predictions)[:2])
            right = tf.equal(tf.argmax(predictions, axis=-1, output_type=tf.int32), y)  # (S, chunk)
            return (end, loss_sum + tf.reduce_sum(loss_fn(y, predictions), axis=1),
                    correct_sum + correct_count(predictions, y), hits.write(begin // chunk, tf.transpose(right)))

        hits = tf.TensorArray(tf.bool, size=0, dynamic_size=True, infer_shape=False)
        zeros = tf.zeros([S])
        _, loss_sum, correct_sum, hits = tf.while_loop(lambda begin, *_: begin < n_test, body,
                                                       (tf.constant(0), zeros, zeros, hits))
        return loss_sum, correct_sum, tf.transpose(hits.concat())  # (S, N_test)

    last_hits: list[np.ndarray] = []  # [(S, N_test)]: right or wrong at the latest evaluation

    def evaluate() -> tuple[np.ndarray, np.ndarray]:
        loss_sum, correct_sum, hits = evaluate_all(test_images, test_labels)
        last_hits[:] = [hits.numpy()]
        return loss_sum.numpy() / n_test, correct_sum.numpy() / n_test

    reporters = [Reporter(config, None, steps_per_epoch, n_train, num_classes=num_classes) for config in configs]
    group = Reporter(first, _group_progress(on_progress, configs), steps_per_epoch, n_train, num_classes=num_classes)
    group.threshold = math.inf  # Divergence is judged per seed; the group only reports and hears a stop.
    rngs = [np.random.default_rng(config.seed) for config in configs]
    alive = [True] * S  # still training (a seed stops at the end of the epoch it diverged or was stopped in)
    calls = {"steps_per_call": engine._steps_per_execution(first, steps_per_epoch, models[0].count_params()),
             "traced": False}
    start = time.perf_counter()
    for reporter in reporters:
        reporter.begin()
    group.begin()
    for epoch in range(first.epochs):
        for reporter in (*reporters, group):
            reporter.epoch_begin(epoch)
        order = tf.constant(np.stack([rng.permutation(n_train) for rng in rngs]).astype(np.int32))
        loss_sum, correct_sum, seen = np.zeros(S), np.zeros(S), 0.0
        step, go_on = 0, True
        for step, parts in engine.epoch_calls(run_steps, order, steps_per_epoch, calls):
            loss_sum += parts[0].numpy()
            correct_sum += parts[1].numpy()
            seen += float(parts[2])
            training = []
            for s in range(S):
                if alive[s] and reporters[s].reason is None:
                    reporters[s].batches_done(step, {"loss": loss_sum[s] / seen, "accuracy": correct_sum[s] / seen})
                    if reporters[s].reason is None:
                        training.append(s)
            if not training:
                break
            go_on = group._report(step, {"loss": float(np.mean(loss_sum[training])) / seen,
                                         "accuracy": float(np.mean(correct_sum[training])) / seen})
            if not go_on:
                for s in training:
                    reporters[s].reason = "stopped"
                break
        for reporter in (*reporters, group):
            reporter.train_part_done()
        validated = engine.validates(first, epoch, go_on)
        if validated:
            val_loss, val_accuracy = evaluate()
        for s in range(S):
            if not alive[s]:
                continue
            metrics = {"loss": loss_sum[s] / max(seen, 1.0), "accuracy": correct_sum[s] / max(seen, 1.0)}
            if reporters[s].reason == "diverged":
                metrics["val_loss"] = metrics["val_accuracy"] = float("nan")
            elif validated:
                metrics["val_loss"], metrics["val_accuracy"] = float(val_loss[s]), float(val_accuracy[s])
            if not reporters[s].epoch_end(metrics, step):
                alive[s] = False
        reporting = [s for s in range(S) if reporters[s].reason in (None, "stopped")
                     and len(reporters[s].history["loss"]) == epoch + 1]
        if reporting:
            names = ("loss", "accuracy", "val_loss", "val_accuracy") if validated else ("loss", "accuracy")
            go_on = group.epoch_end({name: float(np.mean([reporters[s].history[name][-1] for s in reporting]))
                                     for name in names}, step)
            if not go_on:  # A stop answered to the epoch's own report.
                for s in range(S):
                    if alive[s]:
                        reporters[s].reason, alive[s] = "stopped", False
        if not any(alive):
            break
    seconds = time.perf_counter() - start

    results = []
    for s, (config, data, keras_model) in enumerate(zip(configs, prepared, models)):
        for layer, weights in zip(engine._keras_layers(keras_model), model.seed_weights(s)):
            if weights:
                layer.set_weights(weights)
        history = reporters[s].history
        hits = None
        if history["val_loss"] and math.isfinite(history["val_loss"][-1]):
            test_loss, test_accuracy = history["val_loss"][-1], history["val_accuracy"][-1]
            hits = np.concatenate([part[s] for part in last_hits])  # the latest evaluation is of this model
        else:
            test_loss, test_accuracy = _evaluate_model(keras_model, data, loss_fn)
        results.append(TrainResult(config=config, model=keras_model, history=history,
                                   test_accuracy=float(test_accuracy), test_loss=float(test_loss),
                                   stopped_reason=reporters[s].reason or "finished", class_names=data.class_names,
                                   input_shape=data.image_shape, seconds=seconds, test_hits=hits,
                                   _test_images=data.x_test, _test_labels=data.y_test))
    return results


def _group_progress(on_progress: OnProgress | None, configs: Sequence[TrainConfig]) -> OnProgress | None:
    """The group's reports, marked with the seeds it trains (`seeds.train_seeds` adds the rest)."""
    if on_progress is None:
        return None

    def report(progress: Progress) -> Any:
        metrics = {**progress.metrics, "seeds_together": float(len(configs))}
        return on_progress(dataclasses.replace(progress, metrics=metrics))
    return report


def _evaluate_model(keras_model: Any, data: Prepared, loss_fn: Any) -> tuple[float, float]:
    """Test loss and accuracy of one Keras model (for a seed whose last evaluation was skipped)."""
    loss_sum = correct = 0.0
    scale = input_scale(data.x_test)
    for begin in range(0, len(data.x_test), EVAL_BATCH):
        x = data.x_test[begin:begin + EVAL_BATCH].astype(np.float32) * scale
        y = data.y_test[begin:begin + EVAL_BATCH]
        predictions = keras_model(x, training=False)
        loss_sum += float(np.sum(np.asarray(loss_fn(y, predictions))))
        correct += float(np.sum(np.argmax(np.asarray(predictions), axis=-1) == y))
    return loss_sum / len(data.x_test), correct / len(data.x_test)
