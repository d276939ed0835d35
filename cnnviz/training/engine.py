"""The training engine: `train(config, on_progress)` builds, trains and evaluates one model.

- The model is built only through `cnnviz.architecture.build_keras_model`; labels are sparse
  integers (sparse categorical cross-entropy is the seeds' one-hot categorical cross-entropy);
  the test split validates after every epoch, as the seeds do.
- With `fast=True` (the default) it reaches a given accuracy several times sooner than the seeds'
  plain `model.fit` (bench/train_speed.py): its own compiled loop over in-memory uint8 tensors
  runs several batches per graph call (`_fit_fast`), and the learning rate warms up briefly then
  follows a cosine decay to the end of the last epoch (`_fast_schedule`). `fast=False` is a plain
  `model.fit` with a constant learning rate.
- At most `CNNVIZ_MAX_TRAINING_JOBS` trainings run at once (`cnnviz.training.queue`); a run waits
  in line with phase "waiting".
- A warm start trains (or finds in the cache) the pre-trained model first and copies its layers.

TensorFlow and Keras are imported lazily inside functions: importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnviz import architecture
from cnnviz.architecture import budget, build_keras_model, input_scale, outputs_logits, scale_images
from cnnviz.errors import SettingsError, TrainingCancelled
from cnnviz.training import cache, inputs, queue
from cnnviz.training.augmenter import augmentation_model
from cnnviz.training.config import AugmentationSpec, TrainConfig
from cnnviz.training.diagnostics import Recorder
from cnnviz.training.inputs import Prepared
from cnnviz.training.progress import PROGRESS_INTERVAL, OnProgress, Reporter, waiting_reporter
from cnnviz.training.results import Progress, TrainResult

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# Seeding Keras is process-wide, so building a model, its augmentation layers and its shuffled
# input pipeline happens under this lock: two sessions training at once stay reproducible.
_SETUP_LOCK = threading.RLock()


def train(config: TrainConfig, on_progress: OnProgress | None = None, *,
          data: Any = None, use_cache: bool | None = None, source: str | None = None) -> TrainResult:
    """Train a model for `config` and return the result.

    `on_progress(Progress)` is called at least every ~0.5 s; returning False stops cleanly
    (stopped_reason "stopped"). A NaN or infinite loss, or a mean loss above
    `divergence_threshold(k)` over DIVERGENCE_WINDOW images, stops with "diverged".
    `data` is the dataset to train on (fields `x_train, y_train, x_test, y_test, class_names`,
    e.g. a `cnnviz.data.Dataset` a page already loaded for `config`); without it the engine calls
    `cnnviz.data.load`. The disk cache (see `cache.load_cached`) is on by default without `data`
    and off with it, unless `use_cache` says otherwise; entries are keyed by the config and the
    data's source, `source` when the caller already resolved it (see `inputs.data_source`).
    Raises `SettingsError` for settings that cannot train (with a message a student understands).
    """
    config.validate()
    if use_cache is None:
        use_cache = data is None
    if use_cache:
        # Without `data`, the source `cnnviz.data.load` would use now is checked without loading
        # anything, so that a cached revisit stays instant.
        if source is None:
            source = inputs.data_source(config, data)
        cached = cache.load_cached(config, data=data, source=source)
        if cached is not None:
            if on_progress is not None:
                on_progress(Progress(epoch=max(1, cached.epochs_completed), epochs=config.epochs, batch=1,
                                     batches=1, metrics={}, images_per_second=0.0,
                                     history_so_far=cached.history, elapsed=cached.seconds, phase="train"))
            return cached

    # The pre-trained model comes first (through the cache), before this run takes a slot.
    warm_result = None
    warm_start = config.warm_start
    if warm_start is not None and config.warm_start_layers > 0:
        warm_progress: OnProgress | None = None
        if on_progress is not None:
            report = on_progress

            def warm_progress(p: Progress) -> Any:
                # A wait for a training slot stays "waiting", so its queue position still shows.
                return report(p if p.phase == "waiting" else dataclasses.replace(p, phase="warm start"))
        # The source depends only on the data (or, without data, on the dataset's name).
        same_source = data is not None or warm_start.dataset == config.dataset
        warm_result = train(warm_start, warm_progress, data=data, use_cache=use_cache,
                            source=source if same_source else None)
        if warm_result.stopped_reason != "finished":
            raise TrainingCancelled(f"Training the pre-trained model {warm_result.stopped_reason}: "
                                    "no weights to copy.")

    # The images this run trains on (`data` stays as given: a warm start has its own config).
    images = data if data is not None else inputs.load_dataset(config)
    prepared = inputs.prepare(config, images)
    stack = config.stack()
    _check_output_layer(prepared.image_shape, stack, len(prepared.class_names))
    config.check_batch_fits(len(prepared.x_train))
    config.check_budget(prepared.image_shape, len(prepared.x_train), len(prepared.x_test))  # Before any build.

    try:
        with queue.training_queue.slot(waiting_reporter(config, on_progress), poll_seconds=PROGRESS_INTERVAL):
            result = _train_now(config, on_progress, prepared, stack, warm_result)
    except queue.QueueCancelled as error:
        raise TrainingCancelled("Training was stopped while waiting for a free training slot.") from error
    result.data_source = inputs.data_source(config, images)
    # Only complete runs are shared: a stopped or diverged run is never stored.
    if use_cache and result.stopped_reason == "finished":
        cache.store_cached(result)
    return result


def _train_now(config: TrainConfig, on_progress: OnProgress | None, prepared: Prepared,
               stack: list[dict[str, Any]], warm_result: TrainResult | None) -> TrainResult:
    import keras

    steps_per_epoch = math.ceil(len(prepared.x_train) / config.batch_size)
    from_logits = outputs_logits(stack)
    with _SETUP_LOCK:
        keras.utils.set_random_seed(config.seed)
        model = build_keras_model(prepared.image_shape, stack)
        layers = _keras_layers(model)
        if warm_result is not None:
            _copy_warm_start(warm_result.model, layers, config.warm_start_layers)
        # Frozen layers are set before compiling, so the optimizer never sees their weights.
        for layer in layers[:config.freeze_layers]:
            layer.trainable = False
        augmenter = _augmenter(config.augmentation, config.seed)
        optimizer = _make_optimizer(config, steps_per_epoch)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                      metrics=["accuracy"])
        optimizer.build(model.trainable_variables)
        train_data = (_train_dataset(prepared, config, augmenter)
                      if not config.fast and augmenter is not None else None)

    reporter = Reporter(config, on_progress, steps_per_epoch, len(prepared.x_train),
                        num_classes=len(prepared.class_names))
    recorder = None
    if config.record_gradients:
        # One fixed batch (the first training images), measured now and after every epoch.
        recorder = Recorder(model, prepared.x_train[:config.batch_size], prepared.y_train[:config.batch_size],
                            from_logits=from_logits)
        recorder.record()
    start = time.perf_counter()
    hits = None
    if config.fast:
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=None)
        steps_per_call = _steps_per_execution(config, steps_per_epoch, model.count_params())
        hits = _fit_fast(model, prepared, config, augmenter, loss_fn, reporter, steps_per_call, recorder)
    elif train_data is None:
        # Plain `model.fit` semantics, as in the seeds (float arrays, shuffled every epoch).
        model.fit(scale_images(prepared.x_train), prepared.y_train, batch_size=config.batch_size,
                  epochs=config.epochs, validation_data=(scale_images(prepared.x_test), prepared.y_test), shuffle=True,
                  callbacks=[_keras_callback(reporter, recorder)], verbose=0)
    else:
        # The tf.data pipeline shuffles (seeded) by itself.
        model.fit(train_data, epochs=config.epochs, validation_data=(scale_images(prepared.x_test), prepared.y_test),
                  shuffle=False, callbacks=[_keras_callback(reporter, recorder)], verbose=0)
    history = reporter.history
    reason = reporter.reason or "finished"

    if history["val_loss"] and math.isfinite(history["val_loss"][-1]):
        test_loss, test_accuracy = history["val_loss"][-1], history["val_accuracy"][-1]
    else:
        hits = None  # the latest evaluation (if any) is not of the final model
        test_loss, test_accuracy = _evaluate_in_batches(model, prepared)
    seconds = time.perf_counter() - start
    return TrainResult(config=config, model=model, history=history, test_accuracy=float(test_accuracy),
                       test_loss=float(test_loss), stopped_reason=reason, class_names=prepared.class_names,
                       input_shape=prepared.image_shape, seconds=seconds, test_hits=hits,
                       training_record=None if recorder is None else recorder.record_,
                       _test_images=prepared.x_test, _test_labels=prepared.y_test)


def _evaluate_in_batches(model: keras.Model, prepared: Prepared) -> tuple[float, float]:
    """The compiled loss and accuracy on the test images, scaled `budget.EVAL_BATCH` images at a
    time (as the fast loop evaluates), so that no float copy of the whole test split is made."""
    n_test, sums = len(prepared.x_test), np.zeros(2)
    for begin in range(0, n_test, budget.EVAL_BATCH):
        x = scale_images(prepared.x_test[begin:begin + budget.EVAL_BATCH])
        loss, accuracy = model.evaluate(x, prepared.y_test[begin:begin + len(x)], batch_size=len(x), verbose=0)[:2]
        sums += np.array([loss, accuracy]) * len(x)
    return float(sums[0] / n_test), float(sums[1] / n_test)


# --------------------------------------------------------------------------------------------
# Model set-up: output layer, warm start, optimizer and schedule, augmentation
# --------------------------------------------------------------------------------------------

def _keras_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers in stack order (without the InputLayer a Functional model lists)."""
    import keras

    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _check_output_layer(input_shape: tuple[int, int, int], stack: list[dict[str, Any]], num_classes: int) -> None:
    """Refuse a stack whose head cannot classify this data (the rule is `classifier_head_problem`)."""
    problem = architecture.classifier_head_problem(architecture.summarize(input_shape, stack), num_classes)
    if problem:
        raise SettingsError(problem)


def _copy_warm_start(source_model: keras.Model, layers: list[keras.layers.Layer], count: int) -> None:
    """Copy the weights of the first `count` layers of `source_model` into `layers` (shapes must match)."""
    source_layers = _keras_layers(source_model)
    for index in range(count):
        source, target = source_layers[index], layers[index]
        source_weights, target_weights = source.get_weights(), target.get_weights()
        shapes_from = [w.shape for w in source_weights]
        shapes_to = [w.shape for w in target_weights]
        if shapes_from != shapes_to:
            raise SettingsError(f"Cannot copy layer {index + 1} ({target.name}) from the pre-trained model: "
                                f"weight shapes {shapes_from} and {shapes_to} differ.")
        if target_weights:
            target.set_weights(source_weights)


def _make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    import keras

    learning_rate: Any = config.learning_rate
    if config.fast:
        learning_rate = _fast_schedule(config.learning_rate, steps_per_epoch, config.epochs)
    optimizer: keras.optimizers.Optimizer
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    elif config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
    else:
        optimizer = keras.optimizers.RMSprop(learning_rate=learning_rate)
    return without_replica_sum(optimizer)


def without_replica_sum(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer, minus the sum of gradients over replicas that Keras's TensorFlow optimizer
    does before every update (issue 15: memory).

    cnnviz never trains under a distribution strategy, so there is one replica and that sum is the
    identity. But in a traced function, `ReplicaContext.all_reduce` wraps it in a
    `tf.custom_gradient`, which registers a gradient function in TensorFlow's global gradient
    registry and never removes it; that function's closure holds tensors of the traced graph, so
    every training run's whole graph (3-4 MB for a LeNet) stayed alive for the life of the server.
    `tests/training/test_engine.py` checks that a run adds no such entry and leaves no graph behind.
    Under a strategy with several replicas in scope (never in cnnviz) the optimizer is left as it is.
    """
    import tensorflow as tf

    single_replica = tf.distribute.get_strategy().num_replicas_in_sync == 1
    if single_replica and hasattr(optimizer, "_all_reduce_sum_gradients"):  # Keras 3's TensorFlow optimizer
        optimizer._all_reduce_sum_gradients = list  # (gradient, variable) pairs in, the same pairs out
    return optimizer


def _fast_schedule(peak: float, steps_per_epoch: int, epochs: int) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from peak/10 over the first fifth of the run (at most half an epoch),
    then a cosine decay to peak/50 at the end of the last epoch."""
    import keras

    total = max(1, steps_per_epoch * epochs)
    warmup = max(1, min(total // 5, steps_per_epoch // 2))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10.0, decay_steps=max(1, total - warmup), alpha=0.02,
        warmup_target=peak, warmup_steps=warmup)


def _augmenter(augmentation: AugmentationSpec, seed: int) -> keras.Sequential | None:
    """The Keras random preprocessing layers of `cnnviz.training.augmenter` (training only), or None.

    The augmentation page previews exactly these layers, so students see what the model sees.
    """
    if not any(strength > 0 for _, strength in augmentation):
        return None
    return augmentation_model(augmentation, seed=seed)


# --------------------------------------------------------------------------------------------
# The two loops: the fast compiled loop, and `model.fit` fed by a callback
# --------------------------------------------------------------------------------------------

# The engine's speed tricks (fast=True); measured by bench/train_speed.py.
# (XLA `jit_compile` was measured 2-4x slower on CPU for these small convolutions: not used.)
# Batches per graph call start at ~4096 images' worth and then adapt so that one call takes about
# `seconds_per_call`: long enough to amortise Python overhead, short enough for 0.4 s progress.
_FAST_OPTIONS = {"images_per_execution": 4096, "max_steps_per_execution": 64, "seconds_per_call": 0.2}


def _steps_per_execution(config: TrainConfig, steps_per_epoch: int, params: int) -> int:
    """The first call's number of batches (one for big models, whose single batch is slow)."""
    if not config.fast or params > 500_000:
        return 1
    per_call = int(_FAST_OPTIONS["images_per_execution"]) // max(1, config.batch_size)
    return int(max(1, min(steps_per_epoch, _FAST_OPTIONS["max_steps_per_execution"], per_call)))


def _next_steps_per_call(steps: int, seconds: float) -> int:
    """Scale the batches per call towards `seconds_per_call` (at most doubling at a time)."""
    most = int(_FAST_OPTIONS["max_steps_per_execution"])
    if seconds <= 0:
        return min(steps * 2, most)
    wanted = steps * _FAST_OPTIONS["seconds_per_call"] / seconds
    return int(max(1, min(most, steps * 2, round(wanted))))


def validates(config: TrainConfig, epoch: int, go_on: bool) -> bool:
    """Whether the fast loop measures the test split after this epoch: every epoch, or with
    `validate_every_epoch=False` only after the last one (and never after a stop: the caller
    then evaluates the final model once)."""
    return config.validate_every_epoch or (go_on and epoch == config.epochs - 1)


def epoch_calls(run_steps: Any, order: Any, steps_per_epoch: int, state: dict[str, Any]) -> Any:
    """One epoch of the fast loop as graph calls: yields (steps done, the call's outputs) after each.

    `run_steps(order, first_step, steps)` runs `steps` batches in one compiled call. The number of
    batches per call starts at `state["steps_per_call"]` and adapts towards `seconds_per_call`
    (`_next_steps_per_call`), except after the very first call, which also traced the graph
    (`state["traced"]`). `state` carries both across epochs. Both loops (`_fit_fast` here and
    `seed_stack`'s seeds trained together) run their epochs through this.
    """
    import tensorflow as tf

    step = 0
    while step < steps_per_epoch:
        steps = min(state["steps_per_call"], steps_per_epoch - step)
        call_start = time.perf_counter()
        parts = run_steps(order, tf.constant(step, tf.int32), tf.constant(steps, tf.int32))
        step += steps
        yield step, parts  # the caller reads the outputs, which waits for the call to finish
        if state["traced"]:
            state["steps_per_call"] = _next_steps_per_call(steps, time.perf_counter() - call_start)
        state["traced"] = True  # the first call also traced the graph: not a fair timing


def _train_dataset(prepared: Prepared, config: TrainConfig, augmenter: Any) -> tf.data.Dataset:
    """A tf.data pipeline over in-memory tensors (used with `fast=False` and augmentation)."""
    import tensorflow as tf

    images = tf.constant(prepared.x_train)
    labels = tf.constant(prepared.y_train)
    n = len(prepared.x_train)
    scale = input_scale(prepared.x_train)

    def gather(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.cast(tf.gather(images, indices), tf.float32) * scale
        if augmenter is not None:
            batch = tf.clip_by_value(augmenter(batch, training=True), 0.0, 1.0)
        return batch, tf.gather(labels, indices)

    return (tf.data.Dataset.range(n)
            .shuffle(n, seed=config.seed, reshuffle_each_iteration=True)
            .batch(config.batch_size)
            .map(gather, num_parallel_calls=1 if augmenter is None else tf.data.AUTOTUNE, deterministic=True)
            .prefetch(2))


def _keras_callback(reporter: Reporter, recorder: Recorder | None = None) -> keras.callbacks.Callback:
    """A Keras callback that feeds `model.fit`'s events to the reporter (the `fast=False` path),
    and records gradients and weights after each epoch when `recorder` is given."""
    import keras

    class ProgressCallback(keras.callbacks.Callback):
        _batch_done = 0

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            reporter.begin()

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            reporter.epoch_begin(epoch)
            self._batch_done = 0

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self._batch_done = batch + 1
            if not reporter.batches_done(batch + 1, logs or {}):
                self.model.stop_training = True

        def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
            reporter.train_part_done()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if recorder is not None:
                recorder.record()
            if not reporter.epoch_end(logs or {}, self._batch_done):
                self.model.stop_training = True

    return ProgressCallback()


def _fit_fast(model: keras.Model, prepared: Prepared, config: TrainConfig, augmenter: Any, loss_fn: Any,
              reporter: Reporter, steps_per_call: int, recorder: Recorder | None = None) -> np.ndarray | None:
    """The engine's own training loop (fast=True); returns, per test image, whether the latest
    evaluation classified it correctly (None when nothing was evaluated).

    The images stay in memory as one uint8 tensor (N, H, W, C); each epoch draws a seeded
    permutation, and one compiled graph call runs `steps_per_call` batches in a `tf.while_loop`
    (gather, scale to [0, 1], augment, forward, backward, optimizer step), returning the summed
    loss and correct count. Keras's `fit` pays seconds of set-up per model; this traces two small
    functions once. Metrics match `fit`'s: running means over the epoch, weighted by batch size.
    """
    import tensorflow as tf

    images = inputs.image_tensor(prepared.x_train)  # (N, H, W, C) uint8, sharing the array's memory
    labels = tf.constant(prepared.y_train)  # (N,) int32
    test_images = inputs.image_tensor(prepared.x_test)
    test_labels = tf.constant(prepared.y_test)
    n_train, batch_size = len(prepared.x_train), config.batch_size
    steps_per_epoch = math.ceil(n_train / batch_size)
    optimizer = model.optimizer
    variables = model.trainable_variables
    regularised = bool(model.losses)
    scale = input_scale(prepared.x_train)

    def batch_stats(x_raw: tf.Tensor, y: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(x_raw, tf.float32) * scale
        if training and augmenter is not None:
            x = tf.clip_by_value(augmenter(x, training=True), 0.0, 1.0)
        predictions = model(x, training=training)
        per_example = loss_fn(y, predictions)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(predictions, axis=-1, output_type=tf.int32), y),
                                        tf.float32))
        return per_example, correct

    # The data tensors are arguments, not captures: TensorFlow keeps a traced graph, and the eager
    # tensors it captured, alive after the function is gone (issue 15; `seed_stack` does the same).
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32),
                                  tf.TensorSpec([], tf.int32), tf.TensorSpec(images.shape, images.dtype),
                                  tf.TensorSpec(labels.shape, labels.dtype)], autograph=False)
    def run_steps_on(order: tf.Tensor, first_step: tf.Tensor, steps: tf.Tensor, images: tf.Tensor,
                     labels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        def body(step: tf.Tensor, loss_sum: tf.Tensor, correct_sum: tf.Tensor,
                 seen: tf.Tensor) -> tuple[tf.Tensor, ...]:
            begin = step * batch_size
            indices = order[begin:tf.minimum(begin + batch_size, n_train)]
            x, y = tf.gather(images, indices), tf.gather(labels, indices)
            with tf.GradientTape() as tape:
                per_example, correct = batch_stats(x, y, True)
                loss = tf.reduce_mean(per_example)
                total = loss + tf.add_n(model.losses) if regularised else loss
            gradients = tape.gradient(total, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            count = tf.cast(tf.shape(indices)[0], tf.float32)
            return step + 1, loss_sum + loss * count, correct_sum + correct, seen + count

        zero = tf.constant(0.0)
        _, loss_sum, correct_sum, seen = tf.while_loop(
            lambda step, *_: step < first_step + steps, body, (first_step, zero, zero, zero))
        return loss_sum, correct_sum, seen

    def run_steps(order: tf.Tensor, first_step: tf.Tensor, steps: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return run_steps_on(order, first_step, steps, images, labels)

    eval_batch = budget.EVAL_BATCH

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec(test_images.shape, test_images.dtype),
                                  tf.TensorSpec(test_labels.shape, test_labels.dtype)], autograph=False)
    def evaluate_chunk(begin: tf.Tensor, test_images: tf.Tensor,
                       test_labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        end = tf.minimum(begin + eval_batch, tf.shape(test_labels)[0])
        predictions = model(tf.cast(test_images[begin:end], tf.float32) * scale, training=False)
        y = test_labels[begin:end]
        hits = tf.equal(tf.argmax(predictions, axis=-1, output_type=tf.int32), y)
        return tf.reduce_sum(loss_fn(y, predictions)), tf.reduce_sum(tf.cast(hits, tf.float32)), hits

    last_hits: list[np.ndarray] = []  # per test image: right or wrong at the latest evaluation

    def evaluate() -> tuple[float, float]:
        n_test = len(prepared.x_test)
        loss_sum = correct_sum = 0.0
        last_hits.clear()
        for begin in range(0, n_test, eval_batch):
            loss_part, correct_part, hits = evaluate_chunk(tf.constant(begin, tf.int32), test_images, test_labels)
            loss_sum += float(loss_part)
            correct_sum += float(correct_part)
            last_hits.append(hits.numpy())
        return loss_sum / n_test, correct_sum / n_test

    rng = np.random.default_rng(config.seed)
    calls = {"steps_per_call": steps_per_call, "traced": False}
    reporter.begin()
    for epoch in range(config.epochs):
        reporter.epoch_begin(epoch)
        order = tf.constant(rng.permutation(n_train).astype(np.int32))
        loss_sum = correct_sum = seen = 0.0
        step, go_on = 0, True
        for step, parts in epoch_calls(run_steps, order, steps_per_epoch, calls):
            loss_sum += float(parts[0])  # float() waits for the call to finish
            correct_sum += float(parts[1])
            seen += float(parts[2])
            go_on = reporter.batches_done(step, {"loss": loss_sum / seen, "accuracy": correct_sum / seen})
            if not go_on:
                break
        reporter.train_part_done()
        if recorder is not None:
            recorder.record()  # after this epoch's training, on the same fixed batch
        metrics = {"loss": loss_sum / max(seen, 1.0), "accuracy": correct_sum / max(seen, 1.0)}
        if reporter.reason == "diverged":
            metrics["val_loss"] = metrics["val_accuracy"] = float("nan")
        elif validates(config, epoch, go_on):
            metrics["val_loss"], metrics["val_accuracy"] = evaluate()
        if not reporter.epoch_end(metrics, step) or not go_on:
            break
    return np.concatenate(last_hits) if last_hits else None
