"""tanh LeNet vs ReLU CNN: seed models, variants, table, conclusion, confusion difference, activations.

Oracles: Keras itself for parameter counts and for the first-layer activations (checked against a
NumPy convolution), hand-computed values for the pure functions, and the table's own numbers for
the generated conclusion.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from cnnviz import architecture
from cnnviz.figures import lenet_vs_relu as lenet_vs_relu_figures
from cnnviz.lessons import lenet_vs_relu
from cnnviz.lessons.lenet_vs_relu import (
    ALL_THREE,
    FACTORS,
    LENET,
    RELU_CNN,
    ComparisonRow,
    ComparisonSettings,
    ComparisonTable,
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


def test_configs_keep_each_recipe_and_share_data_seed_and_epochs():
    settings = ComparisonSettings(dataset="fashion_mnist", limit_train=500, limit_test=200, epochs=2, seed=3)
    configs = lenet_vs_relu.comparison_configs(settings)
    assert list(configs) == [item.key for item in lenet_vs_relu.VARIANTS]
    recipes = {key: (config.optimizer, config.learning_rate, config.batch_size) for key, config in configs.items()}
    assert recipes[LENET] == recipes["lenet_activation"] == recipes["lenet_pooling"] == ("sgd", 0.01, 128)
    assert recipes[RELU_CNN] == recipes["lenet_optimizer"] == recipes[ALL_THREE] == ("adam", 0.001, 32)
    for config in configs.values():
        assert (config.dataset, config.limit_train, config.limit_test, config.epochs, config.seed) == \
            ("fashion_mnist", 500, 200, 2, 3)
        # Plain `fit` semantics (constant learning rate), as the seeds train.
        assert config.fast is False
    assert len({config.key() for config in configs.values()}) == len(configs)
    assert configs[RELU_CNN].stack() == lenet_vs_relu.variant_stack(RELU_CNN, MNIST_SHAPE, 10)


def test_full_data_settings_are_the_seeds_runs():
    settings = ComparisonSettings.as_in_the_seeds("mnist")
    assert (settings.limit_train, settings.limit_test, settings.epochs) == (None, None, 10)
    config = lenet_vs_relu.variant_config(LENET, settings)
    assert config.limit_train is None and config.epochs == 10


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
    with pytest.raises(ValueError, match="at least one epoch"):
        ComparisonSettings(epochs=0)
    with pytest.raises(ValueError, match="at least 10 images"):
        ComparisonSettings(limit_train=3)
    with pytest.raises(ValueError, match="Unknown dataset"):
        ComparisonSettings(dataset="imagenet")


# --------------------------------------------------------------------------------------------
# Histories
# --------------------------------------------------------------------------------------------

def test_epochs_to_reach_counts_from_one_and_says_never():
    history = {"val_accuracy": [0.55, 0.71, 0.69, 0.8]}
    assert lenet_vs_relu.epochs_to_reach(history, 0.7) == 2
    assert lenet_vs_relu.epochs_to_reach(history, 0.55) == 1
    assert lenet_vs_relu.epochs_to_reach(history, 0.8) == 4
    assert lenet_vs_relu.epochs_to_reach(history, 0.81) is None
    assert lenet_vs_relu.epochs_to_reach({"val_accuracy": [float("nan"), 0.9]}, 0.5) == 2
    assert lenet_vs_relu.epochs_to_reach({}, 0.5) is None


def test_seconds_per_epoch_is_the_median_epoch_duration():
    assert lenet_vs_relu.seconds_per_epoch({"seconds": [3.0, 1.0, 1.2]}) == pytest.approx(1.2)
    assert lenet_vs_relu.seconds_per_epoch({"seconds": [2.0]}) == 2.0
    assert math.isnan(lenet_vs_relu.seconds_per_epoch({"seconds": []}))


# --------------------------------------------------------------------------------------------
# The conclusion, generated from synthetic tables
# --------------------------------------------------------------------------------------------

def make_table(accuracies: dict[str, float], *, test_images: int = 10_000, epochs: int = 10,
               target: float = 0.85, seconds: dict[str, float] | None = None) -> ComparisonTable:
    """A table with the given test accuracies; each model reaches the target at the last epoch if its
    accuracy is at least the target, else never."""
    rows = []
    for item in lenet_vs_relu.VARIANTS:
        if item.key not in accuracies:
            continue
        accuracy = accuracies[item.key]
        rows.append(ComparisonRow(
            key=item.key, label=item.label, changes=item.changes,
            params=38_254 if item.key == RELU_CNN else 61_610,
            seconds_per_epoch=(seconds or {}).get(item.key, 9.0 if item.settings.batch_size == 32 else 3.0),
            test_accuracy=accuracy, epochs_to_target=epochs if accuracy >= target else None,
            epochs_trained=epochs,
        ))
    return ComparisonTable(rows=tuple(rows), target_accuracy=target, test_images=test_images, epochs=epochs)


SEEDS_LIKE = {LENET: 0.817, "lenet_activation": 0.842, "lenet_pooling": 0.823, "lenet_optimizer": 0.861,
              ALL_THREE: 0.866, RELU_CNN: 0.877}


def test_conclusion_names_the_relu_cnn_when_it_wins_and_quotes_the_numbers():
    table = make_table(SEEDS_LIKE)
    text = lenet_vs_relu.conclusion(table)
    assert lenet_vs_relu.head_to_head_winner(table) == RELU_CNN
    assert "**the ReLU CNN is better by 6.0 percentage points**" in text
    assert "**87.7%**" in text and "**81.7%**" in text
    assert "fewer parameters (38,254 against 61,610)" in text
    # Speed: the LeNet (3 s per epoch) is faster than the ReLU CNN (9 s) in this table.
    assert "The tanh LeNet was faster per epoch (3.00 s against 9.00 s)" in text
    assert "the ReLU CNN got there after 10 epochs; the tanh LeNet never got there in 10 epochs" in text
    # Gains over the LeNet, largest first: Adam/32 +4.4, ReLU +2.5, max pooling +0.6 (noise ~ ±1.1).
    assert text.index("Adam with batch 32: **+4.4**") < text.index("tanh for ReLU: **+2.5**") \
        < text.index("max pooling: **+0.6**")
    assert "The single change that helps most is **swapping SGD with batch 128 for Adam with batch 32**" in text
    assert "Also clearly helpful: swapping tanh for ReLU (+2.5)" in text
    assert lenet_vs_relu.factor_verdicts(table) == {"optimizer": "helps", "activation": "helps",
                                                 "pooling": "within noise"}
    assert "Swapping average for max pooling on its own changes accuracy by less than" in text
    # All three: +4.9 against a sum of +7.5 -> the factors overlap; they close 4.9/6.0 = 82% of the gap.
    assert "All three changes together give 86.6% (+4.9 points), less than the sum" in text
    assert "close about 82% of the 6.0-point gap" in text
    assert "remaining 1.1 points come from the architecture itself" in text


def test_conclusion_names_the_lenet_when_the_numbers_go_the_other_way():
    table = make_table({LENET: 0.877, "lenet_activation": 0.85, "lenet_pooling": 0.87, "lenet_optimizer": 0.84,
                        ALL_THREE: 0.83, RELU_CNN: 0.817},
                       seconds={LENET: 9.0, RELU_CNN: 2.0})
    text = lenet_vs_relu.conclusion(table)
    assert lenet_vs_relu.head_to_head_winner(table) == LENET
    assert "**the tanh LeNet is better by 6.0 percentage points**" in text
    assert "ReLU CNN is better" not in text
    assert "It also has more parameters (61,610 against 38,254)" in text
    assert "The ReLU CNN was faster per epoch (2.00 s against 9.00 s)" in text
    assert "the ReLU CNN never got there in 10 epochs; the tanh LeNet got there after 10 epochs" in text
    assert "No single change improves the LeNet" in text
    assert "helps most" not in text
    neither = make_table({LENET: 0.5, RELU_CNN: 0.6})
    assert "Neither model reached 85% validation accuracy in 10 epochs." in lenet_vs_relu.conclusion(neither)
    assert "each make the LeNet worse" in text
    assert lenet_vs_relu.factor_verdicts(table) == {"pooling": "within noise", "activation": "hurts",
                                                 "optimizer": "hurts"}
    assert "the tanh LeNet already beats the ReLU CNN, so there is no gap for the factors to explain" in text


def test_conclusion_calls_a_tie_within_the_noise_of_a_small_test_set():
    table = make_table({LENET: 0.80, "lenet_activation": 0.80, "lenet_pooling": 0.80, "lenet_optimizer": 0.80,
                        ALL_THREE: 0.80, RELU_CNN: 0.82}, test_images=200)
    text = lenet_vs_relu.conclusion(table)
    assert lenet_vs_relu.head_to_head_winner(table) is None
    assert "neither model is clearly better" in text and "is better by" not in text
    # With 10,000 test images the same two points are a real difference.
    assert lenet_vs_relu.head_to_head_winner(make_table({LENET: 0.80, RELU_CNN: 0.82})) == RELU_CNN


def test_conclusion_when_the_recipe_explains_the_whole_gap_or_more():
    level = make_table({**SEEDS_LIKE, ALL_THREE: 0.876})
    assert "level with the ReLU CNN" in lenet_vs_relu.conclusion(level)
    beyond = make_table({**SEEDS_LIKE, ALL_THREE: 0.90})
    assert "even beats the ReLU CNN (87.7%) by 2.3 points" in lenet_vs_relu.conclusion(beyond)
    nothing = make_table({**SEEDS_LIKE, ALL_THREE: 0.80})
    assert "do not close any of the 6.0-point gap" in lenet_vs_relu.conclusion(nothing)


@pytest.mark.parametrize("seed", range(20))
def test_conclusion_never_contradicts_random_tables(seed):
    rng = np.random.default_rng(seed)
    accuracies = {item.key: float(rng.uniform(0.1, 0.95)) for item in lenet_vs_relu.VARIANTS}
    table = make_table(accuracies, test_images=int(rng.choice([100, 1000, 10_000])))
    text = lenet_vs_relu.conclusion(table)
    winner = lenet_vs_relu.head_to_head_winner(table)
    assert ("ReLU CNN is better" in text) == (winner == RELU_CNN)
    assert ("tanh LeNet is better" in text) == (winner == LENET)
    assert ("neither model is clearly better" in text) == (winner is None)
    # Every accuracy quoted in bold for the two seeds is the table's, rounded to 0.1.
    quoted = [float(value) for value in re.findall(r"\*\*(\d+\.\d)%\*\*", text)]
    assert quoted == [round(100 * accuracies[RELU_CNN], 1), round(100 * accuracies[LENET], 1)]
    # The factor named as most helpful is the one with the largest gain.
    gains = lenet_vs_relu.factor_gains(table)
    if "helps most is" in text:
        best = max(gains, key=gains.get)
        assert f"helps most is **{lenet_vs_relu.FACTOR_PHRASES[best]}**" in text
        assert gains[best] > 0
    named = re.search(r"helps most(?: clearly)? is \*\*(.+?)\*\*", text)
    if named:
        assert gains[{phrase: f for f, phrase in lenet_vs_relu.FACTOR_PHRASES.items()}[named.group(1)]] > 0
    else:
        assert "No single change improves the LeNet" in text


RELU_HURTS = {LENET: 0.80, "lenet_activation": 0.75, "lenet_pooling": 0.80, "lenet_optimizer": 0.85,
              ALL_THREE: 0.85, RELU_CNN: 0.86}


def test_relu_alone_hurts_note_only_when_the_numbers_say_so():
    assert lenet_vs_relu.factor_verdicts(make_table(SEEDS_LIKE))["activation"] == "helps"
    assert lenet_vs_relu.relu_alone_hurts_note(make_table(SEEDS_LIKE)) is None
    within = make_table({**RELU_HURTS, "lenet_activation": 0.795})
    assert lenet_vs_relu.factor_verdicts(within)["activation"] == "within noise"
    assert lenet_vs_relu.relu_alone_hurts_note(within) is None
    text = lenet_vs_relu.relu_alone_hurts_note(make_table(RELU_HURTS))
    assert text.startswith("**Why can ReLU alone make the LeNet worse?**")
    # The old fixed claims are gone: more steps is something to try, and Adam "does not mind" is measured.
    assert "does not mind" not in text and "the gap narrows" not in text
    assert "try more training images or epochs" in text and "should narrow" in text


def test_relu_alone_hurts_note_follows_the_all_three_and_adam_rows():
    # All three within noise of Adam/32 (85.0 against 85.0): level.
    level = lenet_vs_relu.relu_alone_hurts_note(make_table(RELU_HURTS))
    assert "which can make up for the small start" in level
    assert "*LeNet + all three* (ReLU trained with Adam/32, 85.0%) is level with *LeNet + Adam/32* (85.0%)" in level
    # Clearly above: says by how much.
    ahead = lenet_vs_relu.relu_alone_hurts_note(make_table({**RELU_HURTS, ALL_THREE: 0.88}))
    assert "is 3.0 points ahead of *LeNet + Adam/32* (85.0%)" in ahead
    # Clearly below (beyond the noise): the text must not claim Adam copes.
    behind_table = make_table({**RELU_HURTS, ALL_THREE: 0.80})
    behind = lenet_vs_relu.relu_alone_hurts_note(behind_table)
    margin = lenet_vs_relu.noise_margin(0.80, 0.85, behind_table.test_images)
    assert 0.05 > margin
    assert "can make up" not in behind and "level with" not in behind
    assert "does not make up for it" in behind and "stays 5.0 points below *LeNet + Adam/32* (85.0%)" in behind
    # Just below but within the noise of a small test set: level, not "below".
    small = make_table({**RELU_HURTS, "lenet_activation": 0.60, ALL_THREE: 0.83}, test_images=300)
    assert lenet_vs_relu.noise_margin(0.83, 0.85, 300) > 0.02
    assert "is level with" in lenet_vs_relu.relu_alone_hurts_note(small)
    # Without the rows to compare, no Adam sentence at all.
    missing = lenet_vs_relu.relu_alone_hurts_note(make_table({k: v for k, v in RELU_HURTS.items() if k != ALL_THREE}))
    assert "Adam" not in missing


@pytest.mark.parametrize("seed", range(20))
def test_relu_alone_hurts_note_never_contradicts_random_tables(seed):
    rng = np.random.default_rng(100 + seed)
    accuracies = {item.key: float(rng.uniform(0.5, 0.95)) for item in lenet_vs_relu.VARIANTS}
    accuracies["lenet_activation"] = accuracies[LENET] - 0.1  # ReLU alone clearly hurts
    table = make_table(accuracies, test_images=int(rng.choice([300, 1000, 10_000])))
    text = lenet_vs_relu.relu_alone_hurts_note(table)
    combined, adam = accuracies[ALL_THREE], accuracies["lenet_optimizer"]
    margin = lenet_vs_relu.noise_margin(combined, adam, table.test_images)
    assert ("can make up for the small start" in text) == (combined - adam >= -margin)
    assert ("does not make up for it" in text) == (combined - adam < -margin)
    assert ("ahead of" in text) == (combined - adam > margin)


def test_conclusion_flags_models_that_did_not_finish():
    table = make_table(SEEDS_LIKE)
    rows = tuple(row if row.key != "lenet_activation" else
                 ComparisonRow(**{**row.__dict__, "stopped_reason": "diverged"}) for row in table.rows)
    text = lenet_vs_relu.conclusion(ComparisonTable(rows, table.target_accuracy, table.test_images, table.epochs))
    assert "LeNet + ReLU did not finish normally" in text


def test_conclusion_needs_both_seed_models():
    with pytest.raises(ValueError, match="both seed models"):
        lenet_vs_relu.conclusion(make_table({LENET: 0.8}))


def test_noise_margin_shrinks_with_more_test_images():
    assert lenet_vs_relu.noise_margin(0.8, 0.8, 10_000) == pytest.approx(1.96 * math.sqrt(2 * 0.16 / 10_000))
    assert lenet_vs_relu.noise_margin(0.8, 0.8, 100) > lenet_vs_relu.noise_margin(0.8, 0.8, 10_000)
    assert lenet_vs_relu.noise_margin(0.8, 0.8, 0) == float("inf")


def test_table_records_read_like_the_page_table():
    table = make_table(SEEDS_LIKE)
    records = table.records()
    assert [record["Model"] for record in records] == [item.label for item in lenet_vs_relu.VARIANTS]
    assert records[0]["Changed from LeNet"] == "—"
    assert records[-1]["Changed from LeNet"] == "other architecture"
    assert records[-1]["Test accuracy (%)"] == 87.7 and records[-1]["Epochs to 85%"] == "10"
    assert records[0]["Epochs to 85%"] == "not in 10"


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


def test_figures_build_from_a_table_and_arrays():
    table = make_table(SEEDS_LIKE)
    bars = lenet_vs_relu_figures.variant_accuracy_figure(table)
    assert list(bars.data[0].y) == [row.label for row in table.rows]
    assert list(bars.data[0].x) == pytest.approx([100 * row.test_accuracy for row in table.rows])
    heatmap = lenet_vs_relu_figures.confusion_difference_figure(np.array([[0.1, -0.1], [-0.3, 0.3]]), ["a", "b"])
    # The one diverging scale: negative (the LeNet ahead) blue, positive (the ReLU CNN ahead) red.
    assert heatmap.data[0].colorscale[0][1] == "rgb(5,48,97)" and heatmap.data[0].colorscale[-1][1] == "rgb(103,0,31)"
    assert heatmap.data[0].zmid == 0 and heatmap.data[0].zmin == -heatmap.data[0].zmax
    curves = lenet_vs_relu_figures.overlaid_curves(
        {LENET: {"loss": [1.0, 0.8], "val_loss": [1.1, 0.9], "accuracy": [0.6, 0.7], "val_accuracy": [0.55, 0.65]}},
        {LENET: "LeNet"}, epochs=2)
    assert len(curves.data) == 4
    histograms = lenet_vs_relu_figures.activation_histograms(
        {LENET: np.tanh(np.linspace(-3, 3, 100)), RELU_CNN: np.maximum(np.linspace(-1, 1, 100), 0)},
        {LENET: "tanh", RELU_CNN: "relu"}, {LENET: "LeNet", RELU_CNN: "ReLU"})
    assert sum(trace.y.sum() for trace in histograms.data) == pytest.approx(2.0)
    notes = [annotation.text for annotation in histograms.layout.annotations]
    assert any("saturated" in note for note in notes) and any("50.0% exactly zero" in note for note in notes)


# --------------------------------------------------------------------------------------------
# Real training on a tiny subset (six models, 300 images, one epoch: marked slow on a busy machine)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_results():
    from cnnviz import training

    settings = ComparisonSettings(dataset="fashion_mnist", limit_train=300, limit_test=100, epochs=1)
    return settings, {key: training.train(config) for key, config in lenet_vs_relu.comparison_configs(settings).items()}


@pytest.mark.slow
def test_variants_table_has_one_row_per_variant_from_actual_training(tiny_results):
    settings, results = tiny_results
    table = lenet_vs_relu.build_table(results, target_accuracy=0.3, test_images=100, epochs=1)
    assert [row.key for row in table.rows] == [item.key for item in lenet_vs_relu.VARIANTS]
    for row in table.rows:
        result = results[row.key]
        assert row.params == result.model.count_params()
        assert row.test_accuracy == result.test_accuracy
        # The final test accuracy is the model's accuracy on the 100 test images, recomputed here.
        images, labels = result.test_data()
        assert len(labels) == 100
        predicted = lenet_vs_relu.predicted_labels(result.model, images)
        assert row.test_accuracy == pytest.approx(np.mean(predicted == labels), abs=1e-6)
        assert row.epochs_trained == 1 and row.seconds_per_epoch > 0
        assert row.epochs_to_target == (1 if result.history["val_accuracy"][0] >= 0.3 else None)
    assert table.row(RELU_CNN).params == 38_254 and table.row(LENET).params == 61_610
    text = lenet_vs_relu.conclusion(table)
    relu, lenet = table.row(RELU_CNN), table.row(LENET)
    assert f"**{100 * relu.test_accuracy:.1f}%**" in text and f"**{100 * lenet.test_accuracy:.1f}%**" in text
    winner = lenet_vs_relu.head_to_head_winner(table)
    assert ("ReLU CNN is better" in text) == (winner == RELU_CNN)
    assert ("tanh LeNet is better" in text) == (winner == LENET)


@pytest.mark.slow
def test_first_layer_activations_match_a_numpy_convolution(tiny_results):
    _, results = tiny_results
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

def test_the_widgets_describe_a_comparison_and_the_full_data_switch_wins():
    small = lenet_vs_relu.settings_from_widgets("mnist", full=False, train_images=300, test_images=100, epochs=2)
    assert (small.dataset, small.limit_train, small.limit_test, small.epochs) == ("mnist", 300, 100, 2)
    full = lenet_vs_relu.settings_from_widgets("fashion_mnist", full=True, train_images=300, test_images=100, epochs=2)
    assert full == ComparisonSettings.as_in_the_seeds("fashion_mnist")
    assert "87.7% (ReLU CNN)" in lenet_vs_relu.seed_reference(full)
    assert lenet_vs_relu.seed_reference(small) is None


def test_class_differences_name_the_best_classes_of_each_model():
    difference = np.diag([0.2, -0.1, 0.0])
    text = lenet_vs_relu.class_differences_text(difference, ["a", "b", "c"])
    assert text == "ReLU CNN better on: a (+20)  \ntanh LeNet better on: b (-10)"
    assert lenet_vs_relu.class_differences_text(np.zeros((2, 2)), ["a", "b"]).endswith("better on: no class")


def test_a_comparison_counts_as_cached_only_when_every_model_is(monkeypatch):
    from cnnviz import training

    settings = ComparisonSettings()
    seen = []
    monkeypatch.setattr(training, "is_cached", lambda config: seen.append(config) or True)
    assert lenet_vs_relu.comparison_cached(settings) and len(seen) == len(lenet_vs_relu.VARIANTS)
    monkeypatch.setattr(training, "is_cached", lambda config: config.key() != seen[0].key())
    assert not lenet_vs_relu.comparison_cached(settings)
