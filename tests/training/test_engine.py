"""The training engine: learning, determinism, stops, cache keys, disk cache, warm start and freezing.

Everything trains on a tiny synthetic dataset made here (three classes told apart by where a
bright block sits), injected with `train(..., data=...)`, so the tests need no files and are fast.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from cnnviz import training
from cnnviz.training import Progress, TrainConfig

SIDE = 12
TINY_STACK = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 8, "activation": "relu"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy (n, 12, 12, 1) uint8 images; class 0 has a bright top band, 1 a left band, 2 a centre block."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 80, (n, SIDE, SIDE, 1)).astype(np.uint8)
    for image, label in zip(images, labels):
        if label == 0:
            image[:4] += 150
        elif label == 1:
            image[:, :4] += 150
        else:
            image[4:8, 4:8] += 150
    return images, labels


@pytest.fixture(scope="module")
def tiny_data():
    x_train, y_train = synthetic_images(480, seed=1)
    x_test, y_test = synthetic_images(150, seed=2)
    return SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                           class_names=("top", "left", "centre"))


def tiny_config(**changes) -> TrainConfig:
    fields = dict(epochs=3, batch_size=32, learning_rate=0.01, seed=0)
    fields.update(changes)
    return TrainConfig.from_stack(TINY_STACK, **fields)


# ------------------------------------------------------------------------------------------
# Learning, history, progress
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
def test_learns_well_above_chance_and_reports_progress(tiny_data, fast):
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


def test_same_config_and_seed_give_the_same_history(tiny_data):
    first = training.train(tiny_config(), data=tiny_data)
    second = training.train(tiny_config(), data=tiny_data)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(first.history[name], second.history[name], rtol=1e-5, atol=1e-6)
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    other = training.train(tiny_config(seed=1), data=tiny_data)
    assert other.history["loss"] != first.history["loss"]


def test_divergence_stops_with_a_reason(tiny_data):
    result = training.train(tiny_config(optimizer="sgd", learning_rate=1e6), data=tiny_data)
    assert result.stopped_reason == "diverged"
    assert result.epochs_completed <= 1


@pytest.mark.parametrize("fast", [True, False])
def test_a_learning_rate_of_ten_diverges_in_both_engines(tiny_data, fast, tmp_path, monkeypatch):
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
def test_normal_learning_rates_never_count_as_diverged(tiny_data, optimizer, learning_rate):
    config = tiny_config(optimizer=optimizer, learning_rate=learning_rate, epochs=2, batch_size=8)
    assert training.train(config, data=tiny_data).stopped_reason == "finished"


def test_divergence_threshold_is_relative_to_guessing():
    # Ten times the loss of guessing uniformly among k classes (ln k).
    assert training.divergence_threshold(10) == pytest.approx(10 * math.log(10))
    assert training.divergence_threshold(2) == pytest.approx(10 * math.log(2))
    assert training.divergence_threshold(1) == training.divergence_threshold(2)


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
def test_returning_false_from_on_progress_stops_cleanly(tiny_data, fast):
    calls = []

    def stop_in_second_epoch(progress: Progress):
        calls.append(progress)
        return progress.epoch < 2

    result = training.train(tiny_config(epochs=6, batch_size=8, fast=fast), stop_in_second_epoch, data=tiny_data)
    assert result.stopped_reason == "stopped"
    assert 1 <= result.epochs_completed <= 2
    assert math.isfinite(result.test_accuracy)
    assert result.model is not None


# ------------------------------------------------------------------------------------------
# Configuration and cache keys
# ------------------------------------------------------------------------------------------

def _changed_value(name: str, value):
    changes = {
        "dataset": "mnist", "limit_train": 100, "limit_test": 50,
        "layers": training.freeze_stack(TINY_STACK[:-1] + [{"type": "dense", "units": 3}]),
        "optimizer": "sgd", "learning_rate": 0.5, "batch_size": 7, "epochs": 9, "seed": 3,
        "classes": (0, 2), "augmentation": (("rotation", 0.2),), "warm_start": tiny_config(epochs=1),
        "warm_start_layers": 1, "freeze_layers": 2, "fast": not value,
    }
    return changes[name]


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig)])
def test_every_field_changes_the_cache_key(name):
    base = tiny_config()
    changed = dataclasses.replace(base, **{name: _changed_value(name, getattr(base, name))})
    assert getattr(changed, name) != getattr(base, name)
    assert changed.key() != base.key()


def test_key_is_stable_and_independent_of_how_the_stack_was_written():
    as_lists = TrainConfig.from_stack([{**layer} for layer in TINY_STACK])
    as_tuples = TrainConfig(layers=training.freeze_stack(TINY_STACK))
    reordered = TrainConfig.from_stack([dict(reversed(list(layer.items()))) for layer in TINY_STACK])
    assert as_lists.key() == as_tuples.key() == reordered.key()
    assert as_lists == as_tuples and hash(as_lists) == hash(as_tuples)
    assert as_lists.stack() == [dict(layer) for layer in TINY_STACK]
    assert len(as_lists.key()) >= 16 and as_lists.key() == TrainConfig.from_stack(TINY_STACK).key()


def test_default_config_is_the_seeds_relu_cnn():
    import keras

    from cnnviz.architecture import build_keras_model

    model = build_keras_model((28, 28, 1), TrainConfig().stack())
    assert model.count_params() == 38_254
    assert isinstance(model.layers[0], keras.layers.Conv2D)


@pytest.mark.parametrize("changes, words", [
    ({"epochs": 0}, "at least one epoch"),
    ({"batch_size": 0}, "batch size"),
    ({"learning_rate": 0.0}, "learning rate"),
    ({"learning_rate": float("nan")}, "learning rate"),
    ({"optimizer": "lion"}, "optimizer"),
    ({"classes": (1,)}, "two classes"),
    ({"augmentation": (("blur", 0.5),)}, "augmentation"),
    ({"freeze_layers": 9}, "freeze"),
    ({"warm_start_layers": 2}, "warm-start"),
])
def test_bad_settings_raise_readable_errors(tiny_data, changes, words):
    with pytest.raises(ValueError, match=words):
        training.train(tiny_config(**changes), data=tiny_data)


def test_batch_larger_than_training_set_and_wrong_head_size(tiny_data):
    with pytest.raises(ValueError, match="larger than the training set"):
        training.train(tiny_config(batch_size=10_000), data=tiny_data)
    wrong_head = tiny_config().with_num_classes(10)
    with pytest.raises(ValueError, match="3 classes"):
        training.train(wrong_head, data=tiny_data)
    assert wrong_head.with_num_classes(3) == tiny_config()


def test_classes_filter_and_remap_labels(tiny_data):
    config = tiny_config(classes=(2, 0)).with_num_classes(2)
    result = training.train(config, data=tiny_data)
    images, labels = result.test_data()
    keep = np.isin(tiny_data.y_test, (2, 0))
    assert len(labels) == keep.sum()
    # Original class 2 becomes 0 and class 0 becomes 1, in the order given.
    np.testing.assert_array_equal(labels, np.where(tiny_data.y_test[keep] == 2, 0, 1))
    assert result.class_names == ("centre", "top")
    assert result.predict_test().shape == (keep.sum(), 2)
    assert result.test_accuracy > 0.9


def test_augmentation_trains_and_leaves_evaluation_untouched(tiny_data):
    result = training.train(tiny_config(augmentation=(("contrast", 0.3), ("translation", 0.1))), data=tiny_data)
    assert result.stopped_reason == "finished"
    assert result.test_accuracy > 0.8
    # Inference is deterministic (augmentation only runs while training).
    np.testing.assert_array_equal(result.predict(tiny_data.x_test[:5]), result.predict(tiny_data.x_test[:5]))


# ------------------------------------------------------------------------------------------
# Disk cache
# ------------------------------------------------------------------------------------------

def test_disk_cache_round_trip_and_corrupt_entries(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    config = tiny_config(epochs=2)
    assert training.load_cached(config) is None
    result = training.train(config, data=tiny_data)
    assert training.load_cached(config) is None  # injected data is not cached by default
    entry = training.store_cached(result)
    assert entry is not None and entry.parent == tmp_path / "training"
    loaded = training.load_cached(config, data=tiny_data)
    assert loaded is not None and loaded.from_cache and loaded.data_source == "injected"
    assert loaded.history == result.history
    assert loaded.test_accuracy == result.test_accuracy and loaded.class_names == result.class_names
    for a, b in zip(loaded.model.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.predict(tiny_data.x_test), result.predict(tiny_data.x_test), atol=1e-6)
    # With the cache on, train() returns the stored result without training.
    reports = []
    again = training.train(config, reports.append, data=tiny_data, use_cache=True)
    assert again.from_cache and again.history == result.history and reports
    # A corrupted entry is ignored.
    (entry / "model.keras").write_bytes(b"not a keras file")
    assert training.load_cached(config, data=tiny_data) is None
    (entry / "result.json").write_text("{broken")
    assert training.load_cached(config, data=tiny_data) is None
    assert not training.is_cached(config, data=tiny_data)


def test_a_cached_result_is_only_reused_on_the_same_data_source(tiny_data, tmp_path, monkeypatch):
    # A "full data" run trained on the bundled sample must not be reused once the full dataset is there.
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    sample = SimpleNamespace(**vars(tiny_data), source="bundled sample")
    full = SimpleNamespace(**vars(tiny_data), source="local")
    config = tiny_config(epochs=1)
    first = training.train(config, data=sample, use_cache=True)
    assert first.data_source == "bundled sample" and not first.from_cache
    assert training.is_cached(config, data=sample) and not training.is_cached(config, data=full)
    assert training.train(config, data=sample, use_cache=True).from_cache
    retrained = training.train(config, data=full, use_cache=True)
    assert not retrained.from_cache and retrained.data_source == "local"
    # The entry now holds the full-data run; the sample's is gone.
    assert training.load_cached(config, data=full).data_source == "local"
    assert training.load_cached(config, data=sample) is None
    # Without data, the entry must match the source `cnnviz.data.load` would use now.
    from cnnviz import data as data_module

    def status(source):
        return lambda name: data_module.SourceStatus(source=source, note="")

    monkeypatch.setattr(data_module, "source_status", status("local"))
    assert training.data_source(config) == "local" and training.is_cached(config)
    monkeypatch.setattr(data_module, "source_status", status("bundled sample"))
    assert not training.is_cached(config) and training.load_cached(config) is None
    # Entries written before the source was recorded are not trusted either.
    meta_path = training.cache_dir() / config.key() / "result.json"
    meta = json.loads(meta_path.read_text())
    del meta["data_source"]
    meta_path.write_text(json.dumps(meta))
    assert not training.is_cached(config, data=full)


def test_default_cache_dir_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNVIZ_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert training.cache_dir() == tmp_path / ".cache" / "cnnviz" / "training"


def test_results_download_formats(tiny_data):
    result = training.train(tiny_config(epochs=2), data=tiny_data)
    csv = result.history_csv().splitlines()
    assert csv[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds" and len(csv) == 3
    blob = result.model_bytes()
    assert blob[:2] == b"PK"  # a .keras file is a zip archive


# ------------------------------------------------------------------------------------------
# Warm start and freezing
# ------------------------------------------------------------------------------------------

def test_a_warm_start_waiting_for_a_slot_still_reports_its_queue_position(tiny_data, monkeypatch):
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
        with pytest.raises(training.TrainingCancelled):
            training.train(config, on_progress, data=tiny_data)
    finally:
        release.set()
        holder.join(timeout=30)
    assert seen and seen[0].phase == "waiting" and seen[0].metrics["queue_position"] == 1.0


def test_warm_start_copies_weights_and_freezing_keeps_them_bit_identical(tiny_data):
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


def test_warm_start_with_mismatched_shapes_is_a_readable_error(tiny_data):
    pretrain = TrainConfig.from_stack([{**TINY_STACK[0], "filters": 6}, *TINY_STACK[1:]], epochs=1,
                                      batch_size=32)
    config = tiny_config(warm_start=pretrain, warm_start_layers=1)
    with pytest.raises(ValueError, match="shapes"):
        training.train(config, data=tiny_data)


# ------------------------------------------------------------------------------------------
# Background jobs (what the Streamlit helper uses)
# ------------------------------------------------------------------------------------------

def test_background_job_can_be_stopped_and_reports_live_points(tiny_data):
    job = training.TrainingJob(tiny_config(epochs=200, batch_size=8), data=tiny_data).start()
    deadline = time.monotonic() + 60
    while not job.live_points and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.live_points and not job.done
    job.request_stop()
    assert job.wait(60)
    assert job.error is None and job.result.stopped_reason == "stopped" and not job.finished
    assert job.result.epochs_completed < 200


def test_background_job_hands_over_errors(tiny_data):
    job = training.TrainingJob(tiny_config(batch_size=100_000), data=tiny_data).start()
    assert job.wait(60)
    assert isinstance(job.error, ValueError) and job.result is None


def test_concurrent_trainings_stay_deterministic(tiny_data):
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
