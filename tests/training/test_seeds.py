"""cnnviz.training.seeds and seed_stack: several seeds trained together equal separate single-seed runs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from cnnviz import training
from cnnviz.errors import SettingsError
from cnnviz.training import TrainConfig, cache, engine, inputs, seed_stack, seeds
from cnnviz.training import progress as progress_module

# A LeNet-like stack at the tiny scale: tanh, 'same' padding, average pooling, two convolutions
# (the second one has several input channels per seed, so it runs unrolled), a tanh Dense layer.
TINY_LENET = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "tanh", "padding": "same"},
    {"type": "avgpool2d", "pool_size": 2, "strides": 2},
    {"type": "conv2d", "filters": 6, "kernel_size": 3, "activation": "tanh"},
    {"type": "avgpool2d", "pool_size": 2, "strides": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 12, "activation": "tanh"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]

# Max pooling after tanh and ReLU convolutions (pooled before bias and activation when seeds train
# together) and a last convolution whose kernel covers its 2x2 input (a batched matmul together).
POOL_FIRST_AND_COVERING = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "tanh", "padding": "same"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 6, "kernel_size": 3, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 8, "kernel_size": 2, "activation": "tanh"},
    {"type": "flatten"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]

# Float tolerances of "seed s trained together == seed s trained alone" (measured: about 1e-7).
WEIGHT_ATOL = 1e-5
HISTORY_ATOL = 1e-5


@pytest.fixture
def spy(monkeypatch):
    """Counts the groups trained together (and how many seeds each had)."""
    groups: list[int] = []
    original = seed_stack.train_together

    def counting(configs, prepared, on_progress=None, **options):
        groups.append(len(configs))
        return original(configs, prepared, on_progress, **options)
    monkeypatch.setattr(seed_stack, "train_together", counting)
    return groups


def assert_same_run(together: training.TrainResult, alone: training.TrainResult) -> None:
    assert together.config == alone.config
    assert together.stopped_reason == alone.stopped_reason == "finished"
    for a, b in zip(together.model.get_weights(), alone.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=WEIGHT_ATOL, rtol=0)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(together.history[name], alone.history[name], atol=HISTORY_ATOL, rtol=0)
    assert len(together.history["seconds"]) == len(alone.history["seconds"])
    assert together.test_accuracy == pytest.approx(alone.test_accuracy, abs=HISTORY_ATOL)
    assert together.test_loss == pytest.approx(alone.test_loss, abs=HISTORY_ATOL)
    # Per test image, right or wrong at the last evaluation (the stacked evaluation scores in chunks).
    assert together.test_hits is not None and alone.test_hits is not None
    assert np.array_equal(together.test_hits, alone.test_hits)
    assert together.class_names == alone.class_names and together.input_shape == alone.input_shape


@pytest.mark.parametrize("config", [
    TrainConfig.from_stack([  # the tiny ReLU CNN with Adam
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 8, "activation": "relu"},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ], epochs=3, batch_size=32, learning_rate=0.01),
    TrainConfig.from_stack(TINY_LENET, optimizer="sgd", epochs=3, batch_size=50, learning_rate=0.05),
    TrainConfig.from_stack(POOL_FIRST_AND_COVERING, epochs=2, batch_size=40, learning_rate=0.01),
], ids=["adam-relu-cnn", "sgd-tanh-lenet", "max-pool-first-and-covering-conv"])
def test_seeds_trained_together_equal_single_seed_runs(config, tiny_data, spy):
    together = training.train_seeds(config, [0, 1, 2], data=tiny_data)
    assert spy == [3]
    assert [r.config.seed for r in together] == [0, 1, 2]
    for result in together:
        assert_same_run(result, training.train(config.replace(seed=result.config.seed), data=tiny_data))
    # The seeds really differ (a shared slice would make them equal).
    assert not np.allclose(together[0].model.get_weights()[0], together[1].model.get_weights()[0])
    # An ordinary Keras model per seed: it predicts with its own weights.
    probabilities = together[1].predict(tiny_data.x_test[:5])
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_seeds_loaded_per_seed_train_together_on_their_own_images(tiny_data, tiny_config, spy, monkeypatch):
    """Without `data`, each seed loads its own subset: the group trains each on its own images."""
    def load_dataset(config):  # seed-dependent subsets, as `cnnviz.data.load` draws them
        rng = np.random.default_rng(config.seed)
        keep_train = rng.permutation(len(tiny_data.x_train))[:400]
        keep_test = rng.permutation(len(tiny_data.x_test))[:100]
        return SimpleNamespace(x_train=tiny_data.x_train[keep_train], y_train=tiny_data.y_train[keep_train],
                               x_test=tiny_data.x_test[keep_test], y_test=tiny_data.y_test[keep_test],
                               class_names=tiny_data.class_names, source=f"subset {config.seed}")
    monkeypatch.setattr(inputs, "load_dataset", load_dataset)
    config = tiny_config(epochs=2)
    together = training.train_seeds(config, [3, 4], use_cache=False)
    assert spy == [2]
    for result in together:
        alone = training.train(config.replace(seed=result.config.seed), use_cache=False)
        assert_same_run(result, alone)
        assert result.data_source == f"subset {result.config.seed}"


@pytest.mark.parametrize("copy, freeze", [(4, 4), (2, 2), (4, 0)],
                         ids=["frozen-all-but-the-head", "frozen-early-conv-new-head", "fine-tune-everything"])
def test_warm_started_and_frozen_seeds_train_together_equal_single_seed_runs(copy, freeze, tiny_data, tiny_config,
                                                                              spy, tmp_path, monkeypatch):
    """Each seed copies from its own pre-trained model (those train together first), its frozen
    layers stay out of the trainable variables; every seed equals `engine.train` on its own
    (pre-training included), and its frozen layers hold its pre-trained weights bit for bit."""
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    pretrain = tiny_config(epochs=1, learning_rate=0.02, seed=0)
    config = tiny_config(epochs=2, warm_start=pretrain, warm_start_layers=copy, freeze_layers=freeze)
    together = training.train_seeds(config, [0, 1, 2], data=tiny_data, use_cache=True, warm_start_per_seed=True)
    assert spy == [3, 3]  # the three pre-trainings together, then the three transfer runs together
    for result in together:
        seed = result.config.seed
        assert result.config.warm_start == pretrain.replace(seed=seed)
        alone = training.train(result.config, data=tiny_data, use_cache=False)  # pre-trains seed s alone too
        assert_same_run(result, alone)
        pretrained = training.train(result.config.warm_start, data=tiny_data, use_cache=True)
        assert pretrained.from_cache
        weights = [layer.get_weights() for layer in engine._keras_layers(result.model)]
        before = [layer.get_weights() for layer in engine._keras_layers(pretrained.model)]
        assert len(weights) == len(before) == 5
        for index in range(copy):
            frozen = index < freeze
            for new, old in zip(weights[index], before[index]):
                assert np.array_equal(new, old) == frozen
    # A cached transfer run needs no pre-training: nothing trains again.
    again = training.train_seeds(config, [0, 1, 2], data=tiny_data, use_cache=True, warm_start_per_seed=True)
    assert spy == [3, 3] and all(r.from_cache for r in again)


def test_a_shared_warm_start_trains_once(tiny_data, tiny_config, spy):
    pretrain = tiny_config(epochs=1, learning_rate=0.02, seed=7)
    config = tiny_config(epochs=1, warm_start=pretrain, warm_start_layers=4, freeze_layers=2)
    together = training.train_seeds(config, [0, 1], data=tiny_data)
    assert spy == [2]  # the one warm start trains alone, the two seeds together
    for result in together:
        assert result.config.warm_start == pretrain
        assert_same_run(result, training.train(result.config, data=tiny_data))


def test_warm_results_the_caller_holds_are_copied_from_without_a_cache_read(tiny_data, tiny_config, spy,
                                                                           tmp_path, monkeypatch):
    """The pre-trainings a caller has just trained (`warm_results`) are copied from directly: no
    Keras model is read back from the disk cache, and every seed still equals its run alone."""
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    pretrain = tiny_config(epochs=1, learning_rate=0.02, seed=0)
    held = training.train_seeds(pretrain, [0, 1], data=tiny_data, use_cache=True)
    reads: list[TrainConfig] = []
    original = cache.load_cached

    def counting(config, **options):
        reads.append(config)
        return original(config, **options)
    monkeypatch.setattr(cache, "load_cached", counting)
    config = tiny_config(epochs=1, warm_start=pretrain, warm_start_layers=4, freeze_layers=4)
    together = training.train_seeds(config, [0, 1], data=tiny_data, use_cache=True, warm_start_per_seed=True,
                                    warm_results=held)
    assert reads == [] and spy == [2, 2]
    assert [result.config.warm_start for result in together] == [pretrained.config for pretrained in held]
    # Seed 1 copied from seed 1's model: it equals its run alone (its pre-training included).
    assert_same_run(together[1], training.train(together[1].config, data=tiny_data, use_cache=False))
    # Results that are not the warm starts needed are not used: those are read from the cache.
    other = tiny_config(epochs=1, warm_start=pretrain.replace(learning_rate=0.03), warm_start_layers=4)
    training.train_seeds(other, [0, 1], data=tiny_data, use_cache=True, warm_start_per_seed=True, warm_results=held)
    assert spy == [2, 2, 2, 2]  # its own pre-trainings, then its runs


def test_a_frozen_batch_norm_layer_is_not_vectorised(tiny_config):
    stack = [{"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"}, {"type": "batchnorm"},
             {"type": "flatten"}, {"type": "dense", "units": 3, "activation": "softmax"}]
    config = TrainConfig.from_stack(stack, freeze_layers=2)
    assert seed_stack.unsupported_reason(config, (12, 12, 1)) == "a frozen batch-norm layer"
    assert seed_stack.unsupported_reason(config.replace(freeze_layers=1), (12, 12, 1)) is None
    assert seed_stack.unsupported_reason(config.replace(freeze_layers=4), (12, 12, 1)) == "every layer frozen"


@pytest.mark.parametrize("changes", [
    {"fast": False},
    {"augmentation": (("flip_horizontal", 0.5),)},
], ids=["fast-false", "augmentation"])
def test_settings_the_vectorised_model_does_not_cover_train_one_by_one(changes, tiny_data, tiny_config, spy):
    config = tiny_config(epochs=1, **changes)
    results = training.train_seeds(config, [0, 1], data=tiny_data)
    assert spy == []
    assert [r.config.seed for r in results] == [0, 1]
    assert all(r.stopped_reason == "finished" for r in results)


def test_one_seed_and_unsupported_layers_fall_back(tiny_data, tiny_config, spy):
    config = tiny_config(epochs=1)
    assert len(training.train_seeds(config, [5], data=tiny_data)) == 1
    # Dense applied to an image (no Flatten) is not vectorised.
    stack = [{"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
             {"type": "dense", "units": 4}, {"type": "flatten"}, {"type": "dense", "units": 3, "activation": "softmax"}]
    odd = TrainConfig.from_stack(stack, epochs=1, batch_size=32)
    assert seed_stack.unsupported_reason(odd, (12, 12, 1)) == "a dense layer on an image"
    assert len(training.train_seeds(odd, [0, 1], data=tiny_data)) == 2
    assert spy == []
    assert seed_stack.unsupported_reason(config, (12, 12, 1)) is None
    assert seed_stack.unsupported_reason(config.replace(fast=False), (12, 12, 1)) is not None
    softmax_conv = TrainConfig.from_stack([{"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "softmax"},
                                           {"type": "flatten"}, {"type": "dense", "units": 3}])
    assert seed_stack.unsupported_reason(softmax_conv, (12, 12, 1)) == "softmax inside the network"


def test_each_seed_is_cached_under_its_own_config(tiny_data, tiny_config, spy, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    config = tiny_config(epochs=1)
    first = training.train_seeds(config, [0, 1], data=tiny_data, use_cache=True)
    assert spy == [2]
    for result in first:
        assert training.is_cached(result.config, data=tiny_data)
        again = training.train(result.config, data=tiny_data, use_cache=True)  # a later single-seed run
        assert again.from_cache and again.history == result.history
    # Seeds 0 and 1 come from the cache; 2 and 3 train together.
    reports = []
    more = training.train_seeds(config, [0, 1, 2, 3], reports.append, data=tiny_data, use_cache=True)
    assert spy == [2, 2]
    assert [r.from_cache for r in more] == [True, True, False, False]
    assert [r.config.seed for r in more] == [0, 1, 2, 3]
    assert {p.metrics["seed_index"] for p in reports} == {0.0, 1.0, 2.0}
    assert all(p.metrics["seeds"] == 4.0 for p in reports)
    assert all(p.metrics["seeds_together"] == 2.0 for p in reports if p.metrics["seed_index"] == 2.0)


def test_stop_from_on_progress_stops_the_group(tiny_data, tiny_config, spy, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    seen = []

    def stop_at_first_batches(progress):
        seen.append(progress)
        return not (progress.phase == "train" and progress.batch > 0)
    config = tiny_config(epochs=3)
    results = training.train_seeds(config, [0, 1, 2], stop_at_first_batches, data=tiny_data, use_cache=True)
    assert spy == [3]
    assert len(results) == 1 and results[0].stopped_reason == "stopped"
    assert results[0].epochs_completed == 1
    assert all(p.metrics["seed_index"] == 0.0 and p.metrics["seeds"] == 3.0 for p in seen)
    assert not any(training.is_cached(config.replace(seed=s), data=tiny_data) for s in (0, 1, 2))


def test_a_stop_answered_to_the_epoch_end_report_ends_the_group_there(tiny_data, tiny_config, spy, monkeypatch):
    # No report inside an epoch: the first chance to stop is the end of epoch 1 (a fast machine
    # finishes a tiny epoch within one PROGRESS_INTERVAL). The stacked loop went on for another epoch.
    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL", 1e9)
    seen = []

    def stop_after_first_epoch(progress):
        seen.append((progress.epoch, progress.batch))
        return progress.batch == 0
    results = training.train_seeds(tiny_config(epochs=3), [0, 1, 2], stop_after_first_epoch, data=tiny_data)
    assert spy == [3]
    assert seen[-1][0] == 1 and seen[-1][1] > 0  # the group stopped at the end of epoch 1
    assert len(results) == 1 and results[0].stopped_reason == "stopped"
    assert results[0].epochs_completed == 1


def test_divergence_is_judged_per_seed(tiny_data, tiny_config, spy):
    results = training.train_seeds(tiny_config(epochs=2, learning_rate=1e4, optimizer="sgd"), [0, 1], data=tiny_data)
    assert spy == [2]
    assert results[0].stopped_reason == "diverged" and len(results) == 1


def test_seed_list_rules():
    assert seeds.seed_list(3) == (0, 1, 2)
    assert seeds.seed_list([4, 2]) == (4, 2)
    for bad in ([], [1, 1], [-1], list(range(seeds.MAX_SEEDS + 1))):
        with pytest.raises(SettingsError):
            seeds.seed_list(bad)


def test_the_vectorised_plan_uses_the_shortcuts():
    """The covering convolution runs as a matmul and both max-pooled convolutions pool first."""
    import keras

    from cnnviz.architecture import build_keras_model

    models = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        models.append(build_keras_model((12, 12, 1), POOL_FIRST_AND_COVERING))
    stack = seed_stack.SeedStack(POOL_FIRST_AND_COVERING, (12, 12, 1), models, [0, 1])
    convs = [entry for entry in stack.plan if entry["type"] == "conv2d"]
    assert [entry["impl"] for entry in convs] == ["depthwise", "unrolled", "dense"]
    assert [entry["pool_first"] for entry in convs] == [True, True, False]
    # The stacked forward pass equals each seed's Keras model on its own images.
    x = np.random.default_rng(0).random((2, 5, 12, 12, 1)).astype(np.float32)
    together = np.asarray(stack(x, training=False))
    for s, model in enumerate(models):
        np.testing.assert_allclose(together[s], np.asarray(model(x[s], training=False)), atol=1e-6)


def test_the_stacked_evaluation_never_runs_a_forward_pass_larger_than_the_budgets():
    from cnnviz.architecture import budget

    chunks = {count: seed_stack.eval_chunk(count) for count in range(1, 17)}
    assert max(chunks.values()) <= budget.EVAL_BATCH  # 2 seeds asked for 160 before this bound.
    assert chunks[5] == seed_stack.EVAL_IMAGE_SEEDS // 5
    assert min(chunks.values()) >= seed_stack.EVAL_CHUNK_MIN


# In a child process with TensorFlow's oneDNN kernels on (the app's setting; the tests otherwise run
# them off, see tests/conftest.py, and without oneDNN there are no grouped-convolution gradients):
# the middle convolution runs as ONE grouped convolution, and every seed still equals its run alone.
GROUPED_TOGETHER = """
import json, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
from types import SimpleNamespace
import numpy as np
import keras
from conftest import synthetic_images
from test_seeds import POOL_FIRST_AND_COVERING
from cnnviz.architecture import build_keras_model
from cnnviz import training
from cnnviz.training import TrainConfig, seed_stack

x_train, y_train = synthetic_images(480, seed=1)
x_test, y_test = synthetic_images(150, seed=2)
data = SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                       class_names=("top", "left", "centre"))
models = []
for seed in (0, 1):
    keras.utils.set_random_seed(seed)
    models.append(build_keras_model((12, 12, 1), POOL_FIRST_AND_COVERING))
plan = seed_stack.SeedStack(POOL_FIRST_AND_COVERING, (12, 12, 1), models, [0, 1]).plan
config = TrainConfig.from_stack(POOL_FIRST_AND_COVERING, epochs=2, batch_size=40, learning_rate=0.01)
together = training.train_seeds(config, [0, 1, 2], data=data, use_cache=False)
report = {{"impl": [e["impl"] for e in plan if e["type"] == "conv2d"], "weights": [], "hits": [], "seeds": []}}
for result in together:
    alone = training.train(config.replace(seed=result.config.seed), data=data, use_cache=False)
    report["seeds"].append(result.config.seed)
    report["weights"].append(max(float(np.max(np.abs(a - b))) for a, b in
                                 zip(result.model.get_weights(), alone.model.get_weights(), strict=True)))
    report["hits"].append(bool(np.array_equal(result.test_hits, alone.test_hits)))
print("REPORT", json.dumps(report))
"""


def test_with_onednn_the_seeds_share_one_grouped_convolution_and_still_equal_single_runs(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "CNNVIZ_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", GROUPED_TOGETHER.format(root=str(here.parents[1]), here=str(here))],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.split("REPORT", 1)[1])
    assert report["impl"] == ["depthwise", "grouped", "dense"]
    assert report["seeds"] == [0, 1, 2]
    assert max(report["weights"]) < WEIGHT_ATOL, report
    assert all(report["hits"]), report
