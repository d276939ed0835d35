"""cnnviz.training.engine: learning, determinism, stops, divergence, settings, warm start and freezing.

Everything trains on the tiny synthetic dataset of conftest.py, injected with `train(..., data=...)`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from cnnviz import training
from cnnviz.errors import SettingsError, TrainingCancelled
from cnnviz.training import Progress, TrainConfig, inputs

# ------------------------------------------------------------------------------------------
# Learning, history, progress
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
def test_learns_well_above_chance_and_reports_progress(tiny_data, tiny_config, fast):
    reports: list[Progress] = []
    result = training.train(tiny_config(fast=fast), reports.append, data=tiny_data)
    assert result.stopped_reason == "finished"
    assert result.test_accuracy > 0.9  # chance is 1/3
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert all(len(values) == 3 for values in result.history.values())
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert result.test_accuracy == pytest.approx(result.history["val_accuracy"][-1])
    # The test accuracy is the real accuracy of the returned model on the test split.
    predicted = result.predicted_labels()
    assert np.mean(predicted == tiny_data.y_test) == pytest.approx(result.test_accuracy, abs=1e-6)
    assert result.confusion_matrix().sum() == len(tiny_data.y_test)
    # Progress: first report before any batch, one at every epoch end, fractions never go back.
    train_reports = [p for p in reports if p.phase == "train"]
    assert train_reports[0].batch == 0
    ends = [p for p in train_reports if p.batch == p.batches and len(p.history_so_far["loss"]) == p.epoch]
    assert [p.epoch for p in ends] == [1, 2, 3]
    fractions = [p.fraction for p in train_reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert ends[-1].images_per_second > 0
    assert ends[-1].batches == math.ceil(480 / 32)


def test_same_config_and_seed_give_the_same_history(tiny_data, tiny_config):
    first = training.train(tiny_config(), data=tiny_data)
    second = training.train(tiny_config(), data=tiny_data)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(first.history[name], second.history[name], rtol=1e-5, atol=1e-6)
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    other = training.train(tiny_config(seed=1), data=tiny_data)
    assert other.history["loss"] != first.history["loss"]


def test_divergence_stops_with_a_reason(tiny_data, tiny_config):
    result = training.train(tiny_config(optimizer="sgd", learning_rate=1e6), data=tiny_data)
    assert result.stopped_reason == "diverged"
    assert result.epochs_completed <= 1


@pytest.mark.parametrize("fast", [True, False])
def test_a_learning_rate_of_ten_diverges_in_both_engines(tiny_data, tiny_config, fast, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    # Adam at 10 (the page's "try 10 to see training blow up"): the loss explodes in the first
    # batches, then the ReLUs die and it settles near ln(3). The fast engine's warm-up kept the
    # epoch's mean loss (about 28) under the old absolute limit of 1000, so it said "finished".
    config = tiny_config(optimizer="adam", learning_rate=10, epochs=2, fast=fast)
    result = training.train(config, data=tiny_data, use_cache=True)
    assert result.stopped_reason == "diverged"
    assert result.epochs_completed <= 1
    # A diverged run is never stored as if it were a finished one.
    assert not training.is_cached(config, data=tiny_data)
    assert training.load_cached(config, data=tiny_data) is None


@pytest.mark.parametrize("optimizer, learning_rate", [("adam", 0.001), ("adam", 0.01), ("sgd", 0.01),
                                                      ("sgd", 0.1), ("rmsprop", 0.001)])
def test_normal_learning_rates_never_count_as_diverged(tiny_data, tiny_config, optimizer, learning_rate):
    config = tiny_config(optimizer=optimizer, learning_rate=learning_rate, epochs=2, batch_size=8)
    assert training.train(config, data=tiny_data).stopped_reason == "finished"


def test_divergence_on_nan_loss(tiny_data):
    # NaN pixels make the loss NaN on the very first batch (float images are taken as scaled).
    x_train = tiny_data.x_train.astype(np.float32) / 255
    x_train[::7] = np.nan
    data = SimpleNamespace(**{**vars(tiny_data), "x_train": x_train})
    # No ReLU or pooling in between (they may swallow NaN): the NaN reaches the softmax.
    config = TrainConfig.from_stack([{"type": "flatten"}, {"type": "dense", "units": 3, "activation": "softmax"}],
                                    epochs=2, batch_size=32)
    result = training.train(config, data=data)
    assert result.stopped_reason == "diverged"
    assert math.isnan(result.history["loss"][0])


@pytest.mark.parametrize("fast", [True, False])
def test_returning_false_from_on_progress_stops_cleanly(tiny_data, tiny_config, fast):
    calls = []

    def stop_in_second_epoch(progress: Progress):
        calls.append(progress)
        return progress.epoch < 2

    result = training.train(tiny_config(epochs=6, batch_size=8, fast=fast), stop_in_second_epoch, data=tiny_data)
    assert result.stopped_reason == "stopped"
    assert 1 <= result.epochs_completed <= 2
    assert math.isfinite(result.test_accuracy)
    assert result.model is not None


def test_batch_larger_than_training_set_and_wrong_head_size(tiny_data, tiny_config, tiny_stack):
    with pytest.raises(ValueError, match="larger than the training set"):
        training.train(tiny_config(batch_size=10_000), data=tiny_data)
    ten_units = tiny_stack[:-1] + [{**tiny_stack[-1], "units": 10}]
    wrong_head = tiny_config().replace(layers=ten_units)
    with pytest.raises(ValueError, match="3 classes"):
        training.train(wrong_head, data=tiny_data)


def test_classes_filter_and_remap_labels(tiny_data, tiny_config, tiny_stack):
    two_units = tiny_stack[:-1] + [{**tiny_stack[-1], "units": 2}]
    config = tiny_config(classes=(2, 0)).replace(layers=two_units)
    result = training.train(config, data=tiny_data)
    images, labels = result.test_data()
    keep = np.isin(tiny_data.y_test, (2, 0))
    assert len(labels) == keep.sum()
    # Original class 2 becomes 0 and class 0 becomes 1, in the order given.
    np.testing.assert_array_equal(labels, np.where(tiny_data.y_test[keep] == 2, 0, 1))
    assert result.class_names == ("centre", "top")
    assert result.predict_test().shape == (keep.sum(), 2)
    assert result.test_accuracy > 0.9


def test_augmentation_trains_and_leaves_evaluation_untouched(tiny_data, tiny_config):
    result = training.train(tiny_config(augmentation=(("contrast", 0.3), ("translation", 0.1))), data=tiny_data)
    assert result.stopped_reason == "finished"
    assert result.test_accuracy > 0.8
    # Inference is deterministic (augmentation only runs while training).
    np.testing.assert_array_equal(result.predict(tiny_data.x_test[:5]), result.predict(tiny_data.x_test[:5]))


# ------------------------------------------------------------------------------------------
# Warm start and freezing
# ------------------------------------------------------------------------------------------

def test_a_warm_start_waiting_for_a_slot_still_reports_its_queue_position(tiny_data, tiny_config, monkeypatch):
    import threading

    from cnnviz.training import queue as job_queue

    queue = job_queue.TrainingQueue(1)
    monkeypatch.setattr(job_queue, "training_queue", queue)
    held, release = threading.Event(), threading.Event()

    def hold():
        with queue.slot():
            held.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(timeout=30)
    seen = []

    def on_progress(progress):
        seen.append(progress)
        return False  # Leave the queue at once: nothing trains.

    config = tiny_config(epochs=1, warm_start=tiny_config(epochs=1), warm_start_layers=2)
    try:
        with pytest.raises(TrainingCancelled):
            training.train(config, on_progress, data=tiny_data)
    finally:
        release.set()
        holder.join(timeout=30)
    assert seen and seen[0].phase == "waiting" and seen[0].metrics["queue_position"] == 1.0


def test_warm_start_copies_weights_and_freezing_keeps_them_bit_identical(tiny_data, tiny_config):
    pretrain = tiny_config(epochs=2)
    pretrained = training.train(pretrain, data=tiny_data)
    # Copy conv + pool + flatten + hidden dense (4 layers), freeze the conv layer only.
    config = tiny_config(epochs=2, seed=5, warm_start=pretrain, warm_start_layers=4, freeze_layers=1)
    phases = []
    result = training.train(config, lambda p: phases.append(p.phase), data=tiny_data)
    assert "warm start" in phases and "train" in phases
    source, target = pretrained.model.layers, result.model.layers
    # The frozen conv layer is bit-identical to the pre-trained one.
    for a, b in zip(source[0].get_weights(), target[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not target[0].trainable
    # The copied but trainable hidden Dense layer started from the copy and then moved.
    assert not all(np.array_equal(a, b) for a, b in zip(source[3].get_weights(), target[3].get_weights()))
    # With no layers frozen, the conv layer changes too.
    unfrozen = training.train(dataclasses.replace(config, freeze_layers=0), data=tiny_data)
    assert not np.array_equal(source[0].get_weights()[0], unfrozen.model.layers[0].get_weights()[0])


def test_warm_start_with_mismatched_shapes_is_a_readable_error(tiny_data, tiny_config, tiny_stack):
    pretrain = TrainConfig.from_stack([{**tiny_stack[0], "filters": 6}, *tiny_stack[1:]], epochs=1,
                                      batch_size=32)
    config = tiny_config(warm_start=pretrain, warm_start_layers=1)
    with pytest.raises(ValueError, match="shapes"):
        training.train(config, data=tiny_data)


def test_concurrent_trainings_stay_deterministic(tiny_data, tiny_config):
    results = {}

    def run(seed):
        results[seed] = training.train(tiny_config(seed=seed, epochs=2), data=tiny_data)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = training.train(tiny_config(seed=0, epochs=2), data=tiny_data)
    np.testing.assert_allclose(results[0].history["loss"], alone.history["loss"], rtol=1e-5)


def test_validating_only_after_the_last_epoch_trains_the_same_model(tiny_data, tiny_config):
    """`validate_every_epoch=False` skips the test split until the last epoch; training is unchanged."""
    every = training.train(tiny_config(epochs=3), data=tiny_data)
    last = training.train(tiny_config(epochs=3, validate_every_epoch=False), data=tiny_data)
    assert last.stopped_reason == "finished"
    assert [math.isnan(v) for v in last.history["val_accuracy"]] == [True, True, False]
    for a, b in zip(last.model.get_weights(), every.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    np.testing.assert_allclose(last.history["loss"], every.history["loss"], atol=1e-6, rtol=0)
    assert last.test_accuracy == pytest.approx(every.test_accuracy, abs=1e-6)
    # Oracle: Keras's own evaluation of the returned model on the test split.
    x_test, y_test = last.test_data()
    probabilities = last.predict(x_test)
    assert last.test_accuracy == pytest.approx(float(np.mean(probabilities.argmax(axis=1) == y_test)), abs=1e-6)
    # Seeds trained together skip the same evaluations and match single runs.
    together = training.train_seeds(tiny_config(epochs=3, validate_every_epoch=False), [0, 1], data=tiny_data)
    assert together[0].test_accuracy == pytest.approx(last.test_accuracy, abs=1e-5)
    assert [math.isnan(v) for v in together[1].history["val_accuracy"]] == [True, True, False]


def test_validate_every_epoch_keeps_earlier_keys_and_needs_the_fast_engine(tiny_config):
    config = tiny_config()
    assert "validate_every_epoch" not in config.to_json()  # default: the cache keys of earlier runs stay valid
    assert config.replace(validate_every_epoch=False).key() != config.key()
    with pytest.raises(SettingsError, match="fast engine"):
        config.replace(fast=False, validate_every_epoch=False).validate()


def test_the_final_evaluation_records_every_test_images_hit_and_the_cache_keeps_it(
        tiny_data, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    result = training.train(tiny_config(epochs=2), data=tiny_data)
    x_test, y_test = result.test_data()
    # Oracle: the returned Keras model's own predictions.
    np.testing.assert_array_equal(result.test_hits, result.predict(x_test).argmax(axis=1) == y_test)
    assert result.test_hits.mean() == pytest.approx(result.test_accuracy, abs=1e-9)
    together = training.train_seeds(tiny_config(epochs=2), [0, 1], data=tiny_data)
    for run in together:
        np.testing.assert_array_equal(run.test_hits, run.predict(x_test).argmax(axis=1) == y_test)
    training.store_cached(result)
    cached = training.load_cached(result.config, data=tiny_data)
    np.testing.assert_array_equal(cached.test_hits, result.test_hits)


# ------------------------------------------------------------------------------------------
# Recording gradients and weights (explain training)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
def test_recorded_gradient_norms_and_histograms_match_an_independent_tape(tiny_data, tiny_config, fast):
    import keras
    import tensorflow as tf

    config = tiny_config(epochs=2, fast=fast, record_gradients=True)
    result = training.train(config, data=tiny_data, use_cache=False)
    record = result.training_record
    kernels = [layer for layer in result.model.layers if hasattr(layer, "kernel")]
    assert record.layers == [layer.name for layer in kernels] and len(kernels) == 3
    assert len(record.gradient_norms) == len(record.histograms) == 1 + config.epochs  # init + each epoch
    # Oracle: the final model's gradient on the same fixed batch (the first batch_size training images).
    prepared = inputs.prepare(config, tiny_data)
    x = tf.constant(prepared.x_train[:config.batch_size].astype(np.float32) / 255.0)
    y = tf.constant(prepared.y_train[:config.batch_size])
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, result.model(x, training=True))
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, [layer.kernel for layer in kernels])
    expected = [float(np.sqrt(np.sum(np.square(g.numpy())))) for g in gradients]
    np.testing.assert_allclose(record.gradient_norms[-1], expected, rtol=1e-4)
    assert record.gradient_norms[0] != record.gradient_norms[-1]  # training moved them
    for (edges, counts), layer in zip(record.histograms[-1], kernels):
        weights = layer.kernel.numpy()
        assert sum(counts) == weights.size and len(counts) == 30
        np.testing.assert_array_equal(counts, np.histogram(weights, bins=30, range=(edges[0], edges[-1]))[0])


def test_recording_is_off_by_default_keeps_keys_and_survives_the_cache(tiny_data, tiny_config, tmp_path, monkeypatch):
    # Hard-coded before record_gradients existed: the default key and a short run's key.
    assert TrainConfig().key() == "4957d630711a2190933e981d"
    assert TrainConfig(epochs=2, limit_train=512).key() == "49a31e8d73c19cac3682468c"
    assert "record_gradients" not in TrainConfig().to_json()
    assert TrainConfig(record_gradients=True).key() != TrainConfig().key()
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    assert training.train(tiny_config(epochs=1), data=tiny_data, use_cache=False).training_record is None
    runs = training.train_seeds(tiny_config(epochs=1, record_gradients=True), [0, 1], data=tiny_data, use_cache=True)
    assert [len(run.training_record.gradient_norms) for run in runs] == [2, 2]  # one seed at a time
    assert runs[0].training_record.gradient_norms != runs[1].training_record.gradient_norms
    cached = training.load_cached(runs[0].config, data=tiny_data)
    assert cached.from_cache and cached.training_record == runs[0].training_record


def _live_tensors_shaped_like(images: np.ndarray) -> int:
    """Eager tensors alive in this process holding as many images as `images` (or a multiple), found
    through every object the garbage collector tracks and what those refer to."""
    import gc

    import tensorflow as tf

    gc.collect()
    seen, found = set(), 0
    for holder in gc.get_objects():
        for candidate in (holder, *gc.get_referents(holder)):
            if id(candidate) in seen or not isinstance(candidate, tf.Tensor) or not hasattr(candidate, "numpy"):
                continue
            seen.add(id(candidate))
            shape = tuple(candidate.shape)
            if len(shape) == 4 and shape[1:] == images.shape[1:] and shape[0] % len(images) == 0:
                found += 1
    return found


def test_a_finished_run_leaves_no_training_images_behind_in_tensorflow(tiny_data, tiny_config):
    # TensorFlow keeps a traced graph, with the eager tensors it captured, alive after the run's
    # functions are gone (issue 15: every group of 3 LeNet seeds left 9 MB of images). The fast
    # loops pass their data tensors as arguments; a capture would show up here after the run.
    before = _live_tensors_shaped_like(tiny_data.x_train)
    for _ in range(2):
        training.train(tiny_config(epochs=1), data=tiny_data)
        training.train_seeds(tiny_config(epochs=1), [0, 1], data=tiny_data)
    assert _live_tensors_shaped_like(tiny_data.x_train) == before


def _traced_graphs_alive() -> int:
    import gc

    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(candidate, FuncGraph) for candidate in gc.get_objects())


def _custom_gradients_registered() -> int:
    from tensorflow.python.framework import ops

    return sum(name.startswith("CustomGradient") for name in ops._gradient_registry.list())


def test_a_finished_run_leaves_no_traced_graph_and_no_gradient_registration_behind(tiny_data, tiny_config):
    # Keras's TensorFlow optimizer sums gradients over replicas through a tf.custom_gradient,
    # which, traced, registers a gradient function holding the graph in TensorFlow's global
    # registry for ever (issue 15: 3-4 MB per LeNet run). `engine.without_replica_sum` drops that
    # identity sum; every loop (fast, seeds together, plain model.fit) must leave nothing behind.
    training.train(tiny_config(epochs=1), data=tiny_data)  # the first run may trace shared helpers
    graphs, registered = _traced_graphs_alive(), _custom_gradients_registered()
    for _ in range(2):
        training.train(tiny_config(epochs=1), data=tiny_data)
        training.train_seeds(tiny_config(epochs=1), [0, 1], data=tiny_data)
        training.train(tiny_config(epochs=1, fast=False), data=tiny_data)
    assert _custom_gradients_registered() == registered
    assert _traced_graphs_alive() <= graphs


# In a child process with two logical CPU devices (set before TensorFlow starts): under a strategy
# of two replicas the gradients must still be summed over them, so the optimizer is left alone.
TWO_REPLICAS = """
import sys
sys.path.insert(0, {root!r})
import keras
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cnnviz.training import engine
plain = engine.without_replica_sum(keras.optimizers.SGD())
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    mirrored = engine.without_replica_sum(keras.optimizers.SGD())
print(plain._all_reduce_sum_gradients is list, mirrored._all_reduce_sum_gradients is list)
"""


def test_the_replica_sum_is_kept_under_a_strategy_with_several_replicas():
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", TWO_REPLICAS.format(root=root)], capture_output=True, text=True,
                         check=True, timeout=300).stdout.split()
    assert out[-2:] == ["True", "False"]
