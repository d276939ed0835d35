"""tanh LeNet vs ReLU CNN: seed models, variants, budgets, seeds and verdicts, confusion difference, activations.

Oracles: Keras itself for parameter counts and for the first-layer activations (checked against a
NumPy convolution), hand-computed values for the pure functions and budgets, and
`cnnviz.verdicts.compare` called directly on the same per-seed numbers for the report's verdicts.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cnnviz import architecture, training, verdicts
from cnnviz.errors import SettingsError
from cnnviz.figures import lenet_vs_relu as lenet_vs_relu_figures
from cnnviz.lessons import lenet_vs_relu
from cnnviz.lessons.lenet_vs_relu import (
    ALL_THREE,
    FACTORS,
    LENET,
    RELU_CNN,
    ComparisonSettings,
)
from cnnviz.training.results import confusion_matrix

MNIST_SHAPE = (28, 28, 1)
CIFAR_SHAPE = (32, 32, 3)


# --------------------------------------------------------------------------------------------
# Seed models and variants
# --------------------------------------------------------------------------------------------

def test_seed_models_built_through_keras_have_the_seeds_parameter_counts():
    relu = architecture.build_keras_model(MNIST_SHAPE, lenet_vs_relu.variant_stack(RELU_CNN, MNIST_SHAPE, 10))
    lenet = architecture.build_keras_model(MNIST_SHAPE, lenet_vs_relu.variant_stack(LENET, MNIST_SHAPE, 10))
    assert relu.count_params() == 38_254
    assert lenet.count_params() == 61_610


def test_seed_stacks_are_the_architecture_presets():
    assert lenet_vs_relu.variant_stack(RELU_CNN, MNIST_SHAPE, 10) == architecture.PRESETS["fashion_relu_cnn"].stack()
    assert lenet_vs_relu.variant_stack(LENET, MNIST_SHAPE, 10) == architecture.PRESETS["lenet5_tanh"].stack()


def test_lenet_variants_change_only_their_factor_and_keep_every_parameter():
    lenet = lenet_vs_relu.variant_stack(LENET, MNIST_SHAPE, 10)
    for item in lenet_vs_relu.VARIANTS:
        if item.preset != lenet_vs_relu.LENET_PRESET:
            continue
        stack = lenet_vs_relu.variant_stack(item, MNIST_SHAPE, 10)
        assert len(stack) == len(lenet)
        for before, after in zip(lenet, stack):
            changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
            if changed == {"activation"}:
                assert "activation" in item.changes and (before["activation"], after["activation"]) == ("tanh", "relu")
            elif changed == {"type"}:
                assert "pooling" in item.changes and (before["type"], after["type"]) == ("avgpool2d", "maxpool2d")
            else:
                assert changed == set(), f"{item.key} changed {changed} in {before}"
        # The output layer always stays a softmax over the classes.
        assert stack[-1] == {"type": "dense", "units": 10, "activation": "softmax"}
        # Activation and pooling have no weights: every LeNet variant has LeNet's 61,610 parameters.
        assert architecture.build_keras_model(MNIST_SHAPE, stack).count_params() == 61_610
    relu_lenet = lenet_vs_relu.variant_stack("lenet_activation", MNIST_SHAPE, 10)
    assert [layer.get("activation") for layer in relu_lenet if layer["type"] in ("conv2d", "dense")] == \
        ["relu", "relu", "relu", "relu", "softmax"]


def test_variants_cover_one_factor_at_a_time_plus_all_three_and_both_seeds():
    keys = [item.key for item in lenet_vs_relu.VARIANTS]
    assert keys == [LENET, "lenet_activation", "lenet_pooling", "lenet_optimizer", ALL_THREE, RELU_CNN]
    assert [lenet_vs_relu.variant(key).changes for key in lenet_vs_relu.SINGLE_FACTOR_KEYS] == [(f,) for f in FACTORS]
    assert lenet_vs_relu.variant(ALL_THREE).changes == FACTORS
    with pytest.raises(ValueError, match="Unknown model"):
        lenet_vs_relu.variant("alexnet")


def test_the_equal_budget_gives_every_variant_one_batch_size_and_the_same_updates():
    settings = ComparisonSettings(dataset="fashion_mnist", limit_train=640, limit_test=200, updates=60, seeds=(3, 4))
    configs = lenet_vs_relu.comparison_configs(settings)
    assert list(configs) == [item.key for item in lenet_vs_relu.VARIANTS]
    recipes = {key: (config.optimizer, config.learning_rate, config.batch_size) for key, config in configs.items()}
    sgd = ("sgd", lenet_vs_relu.EQUAL_BUDGET_SGD_LR, lenet_vs_relu.EQUAL_BATCH)
    assert recipes[LENET] == recipes["lenet_activation"] == recipes["lenet_pooling"] == sgd
    assert recipes[RELU_CNN] == recipes["lenet_optimizer"] == recipes[ALL_THREE] == ("adam", 0.001, 32)
    # 640 images: 20 batches of 32, so 3 epochs for 60 updates, for every variant.
    assert {config.epochs for config in configs.values()} == {3}
    for key, config in configs.items():
        assert (config.dataset, config.limit_train, config.limit_test, config.seed) == ("fashion_mnist", 640, 200, 3)
        assert config.fast is True  # One schedule for all; the seeds train together.
        assert lenet_vs_relu.variant_updates(key, settings) == 60
    assert len({config.key() for config in configs.values()}) == len(configs)
    assert configs[RELU_CNN].stack() == lenet_vs_relu.variant_stack(RELU_CNN, MNIST_SHAPE, 10)
    text = lenet_vs_relu.recipe_text(settings)
    assert "60 per seed" in text and f"learning rate {lenet_vs_relu.EQUAL_BUDGET_SGD_LR:g}" in text


def test_the_budget_rounds_up_to_whole_epochs_and_says_so():
    settings = ComparisonSettings(limit_train=330, limit_test=100, updates=10, seeds=(0, 1))
    # 330 images: 11 batches of 32 (the last one partial), so 1 epoch = 11 updates.
    assert lenet_vs_relu.steps_per_epoch(LENET, settings, 330) == 11 and lenet_vs_relu.variant_epochs(LENET, settings) == 1
    assert lenet_vs_relu.variant_updates(LENET, settings) == 11
    # The seeds' batch of 128: 3 batches per epoch.
    seeds = ComparisonSettings.as_in_the_seeds()
    assert lenet_vs_relu.steps_per_epoch(LENET, seeds, 330) == 3 and lenet_vs_relu.steps_per_epoch(RELU_CNN, seeds, 330) == 11


def test_the_default_comparison_trains_three_seeds_for_the_same_updates():
    settings = ComparisonSettings()
    assert settings.seeds == (0, 1, 2) and settings.equal_updates
    updates = {lenet_vs_relu.variant_updates(item, settings) for item in lenet_vs_relu.VARIANTS}
    assert updates == {lenet_vs_relu.DEFAULT_UPDATES}
    # Long enough to leave the start-up regime: more than the 72 SGD updates the old default gave.
    assert lenet_vs_relu.DEFAULT_UPDATES >= 4 * 72


def test_the_seeds_settings_are_the_seeds_runs():
    settings = ComparisonSettings.as_in_the_seeds("mnist", seeds=(0, 1))
    assert (settings.limit_train, settings.limit_test, settings.epochs, settings.updates, settings.fast) == \
        (None, None, 10, None, False)
    lenet, relu = (lenet_vs_relu.variant_config(key, settings) for key in (LENET, RELU_CNN))
    assert lenet.limit_train is None and lenet.epochs == relu.epochs == 10
    assert (lenet.optimizer, lenet.batch_size, relu.optimizer, relu.batch_size) == ("sgd", 128, "adam", 32)
    assert lenet_vs_relu.variant_updates(LENET, settings, 60_000) == 10 * 469
    assert lenet_vs_relu.variant_updates(RELU_CNN, settings, 60_000) == 10 * 1875
    assert "batches of 128" in lenet_vs_relu.recipe_text(settings) and "4x as many updates" in lenet_vs_relu.recipe_text(settings)


def test_cifar_retargeting_builds_with_keras_parameter_counts():
    for key in (RELU_CNN, LENET, ALL_THREE):
        stack = lenet_vs_relu.variant_stack(key, CIFAR_SHAPE, 10)
        rows = architecture.summarize(CIFAR_SHAPE, stack)
        model = architecture.build_keras_model(CIFAR_SHAPE, stack)
        assert model.count_params() == sum(row.params for row in rows)
    # The ReLU CNN on 32x32x3: conv 8@3x3 -> 30x30x8 -> pool 15x15x8 = 1,800 inputs to Dense 28.
    relu = architecture.build_keras_model(CIFAR_SHAPE, lenet_vs_relu.variant_stack(RELU_CNN, CIFAR_SHAPE, 10))
    assert relu.count_params() == (3 * 3 * 3 + 1) * 8 + (1800 + 1) * 28 + (28 + 1) * 10


def test_settings_refuse_impossible_values():
    with pytest.raises(SettingsError, match="at least one epoch"):
        ComparisonSettings(epochs=0)
    with pytest.raises(SettingsError, match="at least one weight update"):
        ComparisonSettings(updates=0)
    with pytest.raises(SettingsError, match="training-set size"):
        ComparisonSettings(limit_train=None)
    with pytest.raises(SettingsError, match="at least one seed"):
        ComparisonSettings(seeds=())
    with pytest.raises(ValueError, match="at least 10 images"):
        ComparisonSettings(limit_train=3)
    with pytest.raises(ValueError, match="Unknown dataset"):
        ComparisonSettings(dataset="imagenet")


# --------------------------------------------------------------------------------------------
# Histories, seeds and verdicts
# --------------------------------------------------------------------------------------------

def test_seconds_per_epoch_is_the_median_epoch_duration():
    assert lenet_vs_relu.seconds_per_epoch({"seconds": [5.0, 1.0, 1.2]}) == pytest.approx(1.2)
    assert np.isnan(lenet_vs_relu.seconds_per_epoch({}))


def fake_run(config, accuracy: float, seconds: float = 1.0, test_images: int = 1000, params: int = 100,
             test_hits=None):
    """What `experiment_report` reads from a TrainResult."""
    labels = np.zeros(test_images, dtype=np.int64)
    return SimpleNamespace(config=config, test_accuracy=accuracy, history={"seconds": [seconds] * 3},
                           stopped_reason="finished", model=SimpleNamespace(count_params=lambda: params),
                           test_data=lambda: (np.zeros((test_images, 28, 28, 1), np.uint8), labels),
                           test_hits=test_hits)


def fake_results(settings, accuracies: dict[str, list[float]], seconds: dict[str, float] | None = None):
    configs = lenet_vs_relu.comparison_configs(settings, list(accuracies))
    return {key: [fake_run(seed_config, value, (seconds or {}).get(key, 1.0))
                  for seed_config, value in zip(training.seed_configs(configs[key], settings.seeds), values)]
            for key, values in accuracies.items()}


CLEAR = {LENET: [0.70, 0.71, 0.69], "lenet_activation": [0.71, 0.69, 0.70], "lenet_pooling": [0.72, 0.70, 0.71],
         "lenet_optimizer": [0.85, 0.86, 0.84], ALL_THREE: [0.86, 0.85, 0.87], RELU_CNN: [0.80, 0.81, 0.79]}


def test_the_report_has_every_seed_and_the_verdicts_of_compare():
    settings = ComparisonSettings()
    report = lenet_vs_relu.experiment_report(settings, fake_results(settings, CLEAR))
    assert [item.name for item in report.variants] == [item.label for item in lenet_vs_relu.VARIANTS]
    assert all(item.seeds == (0, 1, 2) and item.updates == lenet_vs_relu.DEFAULT_UPDATES for item in report.variants)
    assert [v.factor for v in report.verdicts] == ["seed_models", "activation", "pooling", "optimizer", "all_three",
                                                   "architecture"]
    labels = {item.key: item.label for item in lenet_vs_relu.VARIANTS}
    # Every seed trained every variant: the block design's residual spread (no per-image hits here,
    # so the test-sampling part is compare's independent default).
    blocks = verdicts.block_residual_variance([CLEAR[item.key] for item in lenet_vs_relu.VARIANTS])
    for verdict, (factor, a, b) in zip(report.verdicts, lenet_vs_relu.COMPARISONS):
        expected = verdicts.compare(factor, labels[a], CLEAR[a], labels[b], CLEAR[b], test_images=1000,
                                    seed_variance=blocks)
        assert verdict == expected
    kinds = {v.factor: v.kind for v in report.verdicts}
    assert kinds["optimizer"] == kinds["all_three"] == "better"  # +15 points, three seeds each.
    assert kinds["architecture"] == "worse"  # The ReLU CNN 6 points below the all-three LeNet.
    assert kinds["activation"] == kinds["pooling"] == "undecided"  # Within ±3.6 points of test sampling.
    json = report.to_json()
    assert json["variants"][0]["test_accuracy"] == CLEAR[LENET] and json["variants"][0]["seeds"] == [0, 1, 2]


def test_per_image_hits_give_the_paired_test_sampling_error():
    """With every run's hits on the same test images, the verdicts use `paired_test_variance`."""
    settings = ComparisonSettings(seeds=(0, 1))
    rng = np.random.default_rng(0)
    common = rng.random(1000) < 0.7  # images every model gets right
    hits = {key: [common | (rng.random(1000) < 0.05 * (index + 1)) for _ in settings.seeds]
            for index, key in enumerate(item.key for item in lenet_vs_relu.VARIANTS)}
    configs = lenet_vs_relu.comparison_configs(settings)
    results = {key: [fake_run(seed_config, float(h.mean()), test_hits=h)
                     for seed_config, h in zip(training.seed_configs(configs[key], settings.seeds), hits[key])]
               for key in configs}
    report = lenet_vs_relu.experiment_report(settings, results)
    accuracy = {key: [float(h.mean()) for h in hits[key]] for key in hits}
    blocks = verdicts.block_residual_variance([accuracy[item.key] for item in lenet_vs_relu.VARIANTS])
    for verdict, (factor, a, b) in zip(report.verdicts, lenet_vs_relu.COMPARISONS):
        # Oracle for the test part: var over images of the per-image difference in mean hits, / N.
        d = np.mean(hits[a], axis=0).astype(float) - np.mean(hits[b], axis=0).astype(float)
        expected = verdicts.compare(factor, verdict.a, accuracy[a], verdict.b, accuracy[b], test_images=1000,
                                    seed_variance=blocks, test_variance=float(np.var(d, ddof=1) / 1000))
        assert (verdict.low, verdict.high, verdict.kind) == (expected.low, expected.high, expected.kind)


def test_one_seed_decides_nothing():
    settings = ComparisonSettings(seeds=(0,))
    report = lenet_vs_relu.experiment_report(settings, fake_results(settings, {k: v[:1] for k, v in CLEAR.items()}))
    assert {v.kind for v in report.verdicts} == {"undecided"}
    assert all("at least 2 seeds" in v.text for v in report.verdicts)


def test_a_report_of_the_two_seed_models_has_only_their_verdict():
    settings = ComparisonSettings()
    report = lenet_vs_relu.experiment_report(settings, fake_results(settings, {k: CLEAR[k] for k in (LENET, RELU_CNN)}))
    assert [v.factor for v in report.verdicts] == ["seed_models"]
    assert report.verdicts[0].kind == "better" and report.verdicts[0].text.startswith("ReLU CNN (seed) beats")


def test_speed_verdict_uses_a_threshold():
    settings = ComparisonSettings()
    pair = {k: CLEAR[k] for k in (LENET, RELU_CNN)}
    close = lenet_vs_relu.speed_verdict(lenet_vs_relu.experiment_report(
        settings, fake_results(settings, pair, {LENET: 0.48, RELU_CNN: 0.47})))
    assert close.factor == "seconds_per_epoch" and close.kind != "better"  # 0.47 s against 0.48 s decides nothing.
    runs = fake_results(settings, pair)
    for index, run in enumerate(runs[RELU_CNN]):
        run.history = {"seconds": [0.20 + 0.01 * index] * 3}
    for index, run in enumerate(runs[LENET]):
        run.history = {"seconds": [0.50 + 0.01 * index] * 3}
    fast = lenet_vs_relu.speed_verdict(lenet_vs_relu.experiment_report(settings, runs))
    assert fast.kind == "better" and "s against" in fast.text


def test_report_records_show_the_budget_the_mean_the_interval_and_every_seed():
    settings = ComparisonSettings()
    report = lenet_vs_relu.experiment_report(settings, fake_results(settings, CLEAR))
    records = lenet_vs_relu.report_records(report)
    assert [record["Model"] for record in records] == [item.label for item in lenet_vs_relu.VARIANTS]
    assert records[0]["Changed from LeNet"] == "—" and records[-1]["Changed from LeNet"] == "other architecture"
    assert records[0]["Updates per seed"] == lenet_vs_relu.DEFAULT_UPDATES
    # 3,840 images: 120 batches of 32 for every variant.
    assert records[0]["Epochs"] == records[-1]["Epochs"] == lenet_vs_relu.DEFAULT_UPDATES / 120
    assert records[-1]["Per seed (%)"] == "80.0, 81.0, 79.0"
    assert records[-1]["Mean test accuracy (%)"] == 80.0
    text = lenet_vs_relu.budget_text(report, settings)
    assert f"{lenet_vs_relu.DEFAULT_UPDATES:,} weight updates" in text and "seeds 0, 1, 2" in text


def test_the_lesson_writes_no_verdict_of_its_own():
    source = Path(lenet_vs_relu.__file__).read_text()
    for removed in ("def conclusion", "_why_text", "_head_to_head_text", "relu_alone_hurts_note", "noise_margin",
                    "come from the architecture", "makes the LeNet worse"):
        assert removed not in source


# --------------------------------------------------------------------------------------------
# Confusion difference and activation statistics
# --------------------------------------------------------------------------------------------

def test_confusion_difference_is_row_normalised_a_minus_b():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    better = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    worse = np.array([0, 1, 1, 1, 1, 0, 2, 2])
    a = confusion_matrix(y_true, better, 3)
    b = confusion_matrix(y_true, worse, 3)
    assert a.tolist() == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    difference = lenet_vs_relu.confusion_difference(a, b)
    expected = np.array([[3 / 4 - 1 / 4, 1 / 4 - 3 / 4, 0], [0 - 1 / 2, 1 - 1 / 2, 0], [1 / 2, 0, 1 / 2 - 1]])
    np.testing.assert_allclose(difference, expected)
    np.testing.assert_allclose(difference.sum(axis=1), 0, atol=1e-12)
    ranked = lenet_vs_relu.class_accuracy_differences(difference, ["a", "b", "c"])
    assert ranked == [("a", 0.5), ("b", 0.5), ("c", -0.5)]
    with pytest.raises(ValueError, match="different shapes"):
        lenet_vs_relu.confusion_difference(a, np.zeros((2, 2)))


def test_activation_statistics_count_saturation_and_zeros():
    values = np.array([-0.99, -0.5, 0.0, 0.0, 0.2, 0.96, 0.94, 1.0])
    stats = lenet_vs_relu.activation_statistics(values, "tanh")
    assert stats.saturated_fraction == pytest.approx(3 / 8)
    assert stats.zero_fraction == pytest.approx(2 / 8)
    with pytest.raises(ValueError, match="empty"):
        lenet_vs_relu.activation_statistics(np.array([]), "relu")


def test_silent_channels_are_zero_everywhere_in_the_batch():
    values = np.ones((2, 3, 3, 4))
    values[..., 1] = 0.0
    values[0, ..., 2] = 0.0  # Zero for one image only: not silent.
    assert lenet_vs_relu.silent_channels(values) == 1
    with pytest.raises(ValueError, match="shaped"):
        lenet_vs_relu.silent_channels(np.zeros(3))


def test_figures_build_from_a_report_and_arrays():
    settings = ComparisonSettings()
    report = lenet_vs_relu.experiment_report(settings, fake_results(settings, CLEAR))
    spreads = lenet_vs_relu_figures.variant_spread_figure(report)
    # Per variant: the mean with its interval, then one point per seed.
    assert len(spreads.data) == 2 * len(report.variants)
    for item, mean, points in zip(report.variants, spreads.data[0::2], spreads.data[1::2]):
        assert list(points.x) == pytest.approx([100 * value for value in item.test_accuracy])
        assert list(mean.x) == pytest.approx([100 * item.spread.mean])
        assert mean.error_x.array[0] == pytest.approx(100 * (item.spread.high - item.spread.mean))
    heatmap = lenet_vs_relu_figures.confusion_difference_figure(np.array([[0.1, -0.1], [-0.3, 0.3]]), ["a", "b"])
    # The one diverging scale: negative (the LeNet ahead) blue, positive (the ReLU CNN ahead) red.
    assert heatmap.data[0].colorscale[0][1] == "rgb(5,48,97)" and heatmap.data[0].colorscale[-1][1] == "rgb(103,0,31)"
    assert heatmap.data[0].zmid == 0 and heatmap.data[0].zmin == -heatmap.data[0].zmax
    curves = lenet_vs_relu_figures.overlaid_curves(
        {LENET: {"loss": [1.0, 0.8], "val_loss": [1.1, 0.9], "accuracy": [0.6, 0.7], "val_accuracy": [0.55, 0.65]}},
        {LENET: "LeNet"}, epochs=2)
    assert len(curves.data) == 4
    by_updates = lenet_vs_relu_figures.overlaid_curves(
        {LENET: {"loss": [1.0, 0.8], "accuracy": [0.6, 0.7]}}, {LENET: "LeNet"}, steps_per_epoch={LENET: 30})
    assert list(by_updates.data[0].x) == [30, 60]
    histograms = lenet_vs_relu_figures.activation_histograms(
        {LENET: np.tanh(np.linspace(-3, 3, 100)), RELU_CNN: np.maximum(np.linspace(-1, 1, 100), 0)},
        {LENET: "tanh", RELU_CNN: "relu"}, {LENET: "LeNet", RELU_CNN: "ReLU"})
    assert sum(trace.y.sum() for trace in histograms.data) == pytest.approx(2.0)
    notes = [annotation.text for annotation in histograms.layout.annotations]
    assert any("saturated" in note for note in notes) and any("50.0% exactly zero" in note for note in notes)


# --------------------------------------------------------------------------------------------
# Real training on a tiny subset (six models, 300 images, one epoch: marked slow on a busy machine)
# --------------------------------------------------------------------------------------------

TINY = ComparisonSettings(dataset="fashion_mnist", limit_train=320, limit_test=100, updates=6, seeds=(0, 1))


@pytest.fixture(scope="module")
def tiny_runs():
    return lenet_vs_relu.run_comparison(TINY)


@pytest.fixture(scope="module")
def tiny_results(tiny_runs):
    return {key: runs[0] for key, runs in tiny_runs.items()}


@pytest.mark.slow
def test_every_variant_trains_every_seed_for_the_budget(tiny_runs):
    assert list(tiny_runs) == [item.key for item in lenet_vs_relu.VARIANTS]
    report = lenet_vs_relu.experiment_report(TINY, tiny_runs)
    for item, (key, runs) in zip(report.variants, tiny_runs.items()):
        assert [run.config.seed for run in runs] == [0, 1] and item.seeds == (0, 1)
        assert len(runs[0].history["loss"]) == lenet_vs_relu.variant_epochs(key, TINY)
        assert item.updates >= 6 and item.test_images == 100
        for run, accuracy in zip(runs, item.test_accuracy):
            images, labels = run.test_data()
            predicted = lenet_vs_relu.predicted_labels(run.model, images)
            assert accuracy == pytest.approx(np.mean(predicted == labels), abs=1e-6)
    assert tiny_runs[LENET][0].model.count_params() == 61_610
    assert {v.kind for v in report.verdicts} <= set(verdicts.VERDICT_KINDS)


@pytest.mark.slow
def test_first_layer_activations_match_a_numpy_convolution(tiny_results):
    results = tiny_results
    images, _ = results[RELU_CNN].test_data()
    images = images[:4]
    x = images.astype(np.float64) / 255.0  # (4, 28, 28, 1)
    for key, activation, size in ((RELU_CNN, np.vectorize(lambda v: max(v, 0.0)), 26), (LENET, np.tanh, 28)):
        model = results[key].model
        kernel, bias = (np.asarray(w, dtype=np.float64) for w in model.layers[0].get_weights())
        k = kernel.shape[0]
        padded = x if size == 26 else np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        # Valid cross-correlation by explicit windows: (4, size, size, filters).
        windows = np.stack([padded[:, i:i + size, j:j + size, :] for i in range(k) for j in range(k)], axis=-1)
        expected = activation(np.einsum("nhwcq,qcf->nhwf", windows, kernel.reshape(k * k, 1, -1)) + bias)
        got = lenet_vs_relu.first_layer_activations(model, images)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)
    relu_values = lenet_vs_relu.first_layer_activations(results[RELU_CNN].model, images)
    tanh_values = lenet_vs_relu.first_layer_activations(results[LENET].model, images)
    assert relu_values.min() >= 0 and np.abs(tanh_values).max() <= 1
    assert lenet_vs_relu.activation_statistics(relu_values, "relu").zero_fraction == pytest.approx(np.mean(relu_values == 0))


# --------------------------------------------------------------------------------------------
# What the page shows
# --------------------------------------------------------------------------------------------

def test_the_widgets_describe_a_comparison_and_the_seeds_settings_switch_wins():
    small = lenet_vs_relu.settings_from_widgets("mnist", seeds_settings=False, train_images=320, test_images=100,
                                                updates=60, seeds=2)
    assert (small.dataset, small.limit_train, small.limit_test, small.updates, small.seeds) == \
        ("mnist", 320, 100, 60, (0, 1))
    full = lenet_vs_relu.settings_from_widgets("fashion_mnist", seeds_settings=True, train_images=320,
                                               test_images=100, updates=60, seeds=3)
    assert full == ComparisonSettings.as_in_the_seeds("fashion_mnist")
    assert "87.7% (ReLU CNN)" in lenet_vs_relu.seed_reference(full)
    assert lenet_vs_relu.seed_reference(small) is None


def test_class_differences_name_the_best_classes_of_each_model():
    difference = np.diag([0.2, -0.1, 0.0])
    text = lenet_vs_relu.class_differences_text(difference, ["a", "b", "c"])
    assert text == "ReLU CNN better on: a (+20)  \ntanh LeNet better on: b (-10)"
    assert lenet_vs_relu.class_differences_text(np.zeros((2, 2)), ["a", "b"]).endswith("better on: no class")


def test_a_comparison_counts_as_cached_only_when_every_seed_of_every_model_is(monkeypatch):
    settings = ComparisonSettings()
    seen = []
    monkeypatch.setattr(training, "is_cached", lambda config: seen.append(config) or True)
    assert lenet_vs_relu.comparison_cached(settings) and len(seen) == 3 * len(lenet_vs_relu.VARIANTS)
    assert {config.seed for config in seen} == {0, 1, 2}
    monkeypatch.setattr(training, "is_cached", lambda config: config.key() != seen[0].key())
    assert not lenet_vs_relu.comparison_cached(settings)
