"""Transfer learning core: the class split, its remap, stratified sizes, the four cases, and (with
the training engine) pre-training, frozen weights, feature extraction and the strategy comparison."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from cnnviz import data
from cnnviz.lessons import transfer
from cnnviz.lessons.transfer import (
    FOUR_CASES,
    STRATEGIES,
    SplitError,
    StrategyComparison,
    case_for,
    case_measurements,
    judge_similarity,
    make_split,
    size_ladder,
)

FASHION = data.spec("fashion_mnist")
FASHION_NAMES = FASHION.class_names


# ---------------------------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------------------------

def test_default_split_is_the_seeds_split_and_remaps_in_order():
    split = make_split(transfer.DEFAULT_PRETRAIN_CLASSES, transfer.DEFAULT_TRANSFER_CLASSES, FASHION_NAMES)
    assert split.pretrain == (3, 4, 5, 6, 7, 8, 9)
    assert split.transfer == (0, 1, 2)
    table = {(row.role, row.original_label): row.new_label for row in split.remap_table()}
    assert table == {**{("pre-train", label): label - 3 for label in range(3, 10)},
                     **{("transfer", label): label for label in range(3)}}
    labels = np.array([9, 3, 5, 3])
    np.testing.assert_array_equal(split.remap(labels, "pre-train"), [6, 0, 2, 0])


def test_split_is_sorted_so_selection_order_does_not_change_the_experiment():
    a = make_split([9, 4, 7], [2, 0], FASHION_NAMES)
    b = make_split([4, 7, 9], [0, 2], FASHION_NAMES)
    assert a == b
    assert [row.new_label for row in a.remap_table() if row.original_label == 9] == [2]
    assert a.unused == (1, 3, 5, 6, 8)


def test_remap_rejects_labels_outside_the_set():
    split = make_split([3, 4], [0, 1], FASHION_NAMES)
    with pytest.raises(SplitError, match=r"\[5\]"):
        split.remap(np.array([3, 5]), "pre-train")


@pytest.mark.parametrize("pretrain, transfer_classes, message", [
    ([], [0, 1], "pre-training set is empty"),
    ([3, 4], [], "transfer set is empty"),
    ([3], [0, 1], "only Dress"),
    ([3, 4, 0], [0, 1], "both contain T-shirt/top"),
    ([3, 4, 1, 0], [0, 1, 2], "T-shirt/top, Trouser"),
    ([3, 12], [0, 1], "does not have"),
])
def test_invalid_splits_explain_themselves(pretrain, transfer_classes, message):
    with pytest.raises(SplitError, match=message):
        make_split(pretrain, transfer_classes, FASHION_NAMES)
    # A SplitError is a ValueError, so callers catching ValueError see it too.
    assert issubclass(SplitError, ValueError)


def test_every_valid_split_is_disjoint_and_keeps_all_chosen_classes():
    rng = np.random.default_rng(0)
    for _ in range(200):
        labels = rng.permutation(10)
        cut = rng.integers(2, 9)
        pretrain, rest = labels[:cut], labels[cut:]
        chosen_transfer = rest[: rng.integers(2, len(rest) + 1)] if len(rest) >= 2 else None
        if chosen_transfer is None:
            continue
        split = make_split(pretrain, chosen_transfer, FASHION_NAMES)
        assert not set(split.pretrain) & set(split.transfer)
        assert set(split.pretrain) == set(pretrain.tolist())
        assert set(split.transfer) == set(chosen_transfer.tolist())
        new_labels = [row.new_label for row in split.remap_table() if row.role == "transfer"]
        assert new_labels == list(range(len(split.transfer)))


# ---------------------------------------------------------------------------------------------
# Stratified sizes
# ---------------------------------------------------------------------------------------------

def test_size_ladder_runs_from_about_thirty_images_to_the_full_set_in_whole_classes():
    sizes = size_ladder(18_000, 3)
    assert sizes[0] == 30 and sizes[-1] == 18_000
    assert all(size % 3 == 0 for size in sizes)
    assert list(sizes) == sorted(set(sizes)) and len(sizes) == 5
    # Growth is roughly geometric: each step multiplies the size by a similar factor.
    ratios = np.array(sizes[1:]) / np.array(sizes[:-1])
    assert ratios.max() / ratios.min() < 1.1
    # 428 images per class at most; about 30 images is 5 per class; the middle is sqrt(5 * 428) ~ 46 per class.
    assert size_ladder(3_000, 7, steps=3) == (35, 322, 2996)
    assert size_ladder(20, 3) == (18,)  # Smaller than the smallest size: just the full set.


# ---------------------------------------------------------------------------------------------
# The four cases
# ---------------------------------------------------------------------------------------------

def test_four_cases_cover_every_size_and_similarity_once_with_the_prescribed_strategy():
    pairs = {(case.data_size, case.similarity) for case in FOUR_CASES}
    assert pairs == {("small", "similar"), ("small", "different"), ("large", "similar"), ("large", "different")}
    assert case_for("small", "similar").strategy == "frozen_features"
    assert case_for("small", "different").strategy == "early_features"
    assert case_for("large", "similar").strategy == "fine_tune"
    assert case_for("large", "different").strategy == "fine_tune"
    assert all(case.compared_with == ("scratch",) for case in FOUR_CASES if case.data_size == "large")
    assert "early layers" in case_for("small", "different").keep
    with pytest.raises(ValueError, match="No case"):
        case_for("medium", "similar")


def test_small_and_large_are_fixed_by_images_per_class_not_by_results():
    assert transfer.data_size_of(transfer.SMALL_PER_CLASS) == "small"
    assert transfer.data_size_of(transfer.SMALL_PER_CLASS + 1) == "large"
    assert transfer.strategies_for("similar") == ("frozen_features", "fine_tune", "scratch")
    assert transfer.strategies_for("different") == ("early_features", "fine_tune", "scratch")


def test_similarity_of_the_seeds_split_and_of_a_footwear_only_split():
    seeds = make_split((3, 4, 5, 6, 7, 8, 9), (0, 1, 2), FASHION_NAMES)
    verdict = judge_similarity(seeds, FASHION.class_families)
    assert verdict.verdict == "similar"
    assert verdict.related == (0, 2) and verdict.unrelated == (1,)
    shoes_to_clothes = make_split((5, 7, 9), (0, 2, 3), FASHION_NAMES)
    assert judge_similarity(shoes_to_clothes, FASHION.class_families).verdict == "different"


def _comparison(small, fine_tune, scratch, sizes=(30, 300, 3000), similarity="similar", test_images=3000):
    name = transfer.strategies_for(similarity)[0]
    return StrategyComparison(sizes=sizes, num_classes=3, similarity=similarity, seeds=(0, 1, 2),
                              accuracy={name: small, "fine_tune": fine_tune, "scratch": scratch},
                              test_images=test_images)


def test_cases_are_measured_with_their_strategy_and_judged_by_compare():
    clear = ((0.80, 0.81, 0.79), (0.85, 0.86, 0.84), (0.88, 0.89, 0.87))
    comparison = _comparison(clear, ((0.60, 0.61, 0.59), (0.86, 0.85, 0.87), (0.93, 0.94, 0.92)),
                             ((0.50, 0.52, 0.48), (0.75, 0.74, 0.76), (0.80, 0.81, 0.79)))
    measured = case_measurements(comparison)
    assert [(m.case.key, m.size) for m in measured] == [("small_similar", 30), ("large_similar", 3000)]
    small, large = measured
    assert [v.factor for v in small.verdicts] == ["frozen_features vs fine_tune", "frozen_features vs scratch"]
    assert [v.kind for v in small.verdicts] == ["better", "better"]
    assert [(v.factor, v.kind) for v in large.verdicts] == [("fine_tune vs scratch", "better")]
    assert small.verdicts[0].text.startswith("With 30 transfer images (10 per class, small): ")
    # No pre-written explanation: the text is compare's own (numbers and the verdict), after the size.
    for verdict in small.verdicts + large.verdicts:
        assert "because" not in verdict.text and "the cases say" not in verdict.text


def test_one_lucky_seed_does_not_decide_and_undecided_says_what_would_settle_it():
    # Seed 1 alone would say "fine-tuning wins by 28 points"; the spread of three seeds does not.
    comparison = _comparison(((0.84, 0.56, 0.83),) * 3, ((0.70, 0.84, 0.60),) * 3, ((0.6, 0.7, 0.5),) * 3,
                             test_images=600)
    small = case_measurements(comparison)[0]
    assert small.verdicts[0].kind == "undecided"
    assert "more seeds" in small.verdicts[0].text
    # One seed per strategy never decides anything.
    single = StrategyComparison(sizes=(30,), num_classes=3, similarity="different", seeds=(0,),
                                accuracy={"early_features": ((0.9,),), "fine_tune": ((0.3,),)}, test_images=600)
    (case,) = case_measurements(single)
    assert case.case.key == "small_different" and [v.kind for v in case.verdicts] == ["undecided"]


def test_a_seed_that_moves_every_strategy_alike_cancels_in_the_blocked_verdict():
    """Every seed trains every strategy (its own transfer images and pre-trained network), so what a
    seed does to all strategies alike is a block effect: the verdict uses the two-way residual, and
    on a shared test set the paired per-image test error."""
    from scipy import stats

    from cnnviz import verdicts

    frozen, fine_tune, scratch = (0.60, 0.80, 0.70), (0.70, 0.90, 0.79), (0.68, 0.88, 0.79)
    comparison = StrategyComparison(sizes=(90,), num_classes=3, similarity="similar", seeds=(0, 1, 2),
                                    accuracy={"frozen_features": (frozen,), "fine_tune": (fine_tune,),
                                              "scratch": (scratch,)}, test_images=3000)
    (small,) = case_measurements(comparison)
    # The residual of the 3 x 3 table (strategies x seeds), computed here by hand: 4 degrees of freedom.
    table = np.array([frozen, fine_tune, scratch])
    residual = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + table.mean()
    variance_of_one = float((residual ** 2).sum() / 4)
    seed_part = variance_of_one * (2 / 3)
    p_a, p_b = np.mean(frozen), np.mean(fine_tune)
    test_part = p_a * (1 - p_a) / 3000 + p_b * (1 - p_b) / 3000
    first = small.verdicts[0]
    assert first.factor == "frozen_features vs fine_tune" and first.kind == "worse"
    assert first.difference == pytest.approx(np.mean(frozen) - np.mean(fine_tune))
    variance = seed_part + test_part
    # Student's t at the Satterthwaite degrees of freedom of the residual part.
    assert (first.high - first.low) / 2 == pytest.approx(
        float(stats.t.ppf(0.975, variance ** 2 / (seed_part ** 2 / 4))) * variance ** 0.5, rel=1e-6)
    # Each side's own spread (no blocks) cannot tell: the seeds moved every strategy by up to 20 points.
    unblocked = verdicts.compare("x", "a", frozen, "b", fine_tune, test_images=3000)
    assert unblocked.kind == "undecided"
    # On a shared test set the per-image hits give the paired test error.
    rng = np.random.default_rng(0)
    base = rng.random((3, 3000)) < 0.7
    flipped = base.copy()
    flipped[:, :150] = True  # B gets 150 more images right than A, on every seed
    shared = dataclasses.replace(comparison, shared_test_set=True,
                                 hits={"frozen_features": ((*base,),), "fine_tune": ((*flipped,),),
                                       "scratch": ((*base,),)})
    paired = case_measurements(shared)[0].verdicts[0]
    d = base.mean(axis=0) - flipped.mean(axis=0)
    expected = verdicts.compare("x", "a", frozen, "b", fine_tune, test_images=3000,
                                seed_variance=(variance_of_one, 4), test_variance=float(np.var(d, ddof=1) / 3000))
    assert (paired.low, paired.high) == pytest.approx((expected.low, expected.high))
    assert (paired.low, paired.high) != pytest.approx((first.low, first.high))


def test_comparison_validates_its_shape_and_reports_as_an_experiment():
    with pytest.raises(ValueError, match="2 sizes' accuracies for 3 sizes"):
        _comparison(((0.1,),) * 2, ((0.1,),) * 3, ((0.1,),) * 3)
    with pytest.raises(ValueError, match="Unknown strategy"):
        StrategyComparison(sizes=(30,), num_classes=3, similarity="similar", seeds=(0,), accuracy={"magic": ((0.5,),)})
    assert set(STRATEGIES) == {"frozen_features", "early_features", "fine_tune", "scratch"}
    comparison = _comparison(((0.8, 0.7, 0.75),) * 3, ((0.6, 0.65, 0.7),) * 3, ((0.5, 0.55, 0.6),) * 3)
    report = transfer.experiment_report(comparison)
    assert [v.name for v in report.variants][:3] == ["frozen_features @ 30", "fine_tune @ 30", "scratch @ 30"]
    as_json = report.to_json()
    assert as_json["variants"][0]["test_accuracy"] == [0.8, 0.7, 0.75]
    assert as_json["variants"][0]["data_size"] == "small" and as_json["variants"][-1]["data_size"] == "large"
    assert {v["factor"] for v in as_json["verdicts"]} == {"frozen_features vs fine_tune",
                                                          "frozen_features vs scratch", "fine_tune vs scratch"}
    assert all(v["kind"] in ("better", "worse", "no measurable difference", "undecided") for v in as_json["verdicts"])
    records = transfer.comparison_records(comparison)
    assert len(records) == 9 and records[0]["Per seed %"] == "80.0 70.0 75.0" and records[0]["Data"] == "small"


# ---------------------------------------------------------------------------------------------
# "Predicted as which seen class" and the figures
# ---------------------------------------------------------------------------------------------

def test_predicted_as_table_counts_each_unseen_image_once_and_rows_sum_to_100():
    split = make_split((3, 4, 6), (0, 1), FASHION_NAMES)
    true_labels = np.array([0, 0, 0, 0, 1, 1])
    # Head units 0, 1, 2 mean Dress, Coat, Shirt.
    predicted = np.array([2, 2, 2, 1, 0, 0])
    table = transfer.predicted_as_table(predicted, true_labels, split)
    np.testing.assert_array_equal(table.counts, [[0, 1, 3], [2, 0, 0]])
    np.testing.assert_allclose(table.percent.sum(axis=1), 100.0)
    assert table.most_predicted() == {0: (6, 75.0), 1: (3, 100.0)}
    records = table.as_records()
    assert records[0] == {"Unseen class": "T-shirt/top", "Images": 4, "Dress": 0.0, "Coat": 25.0, "Shirt": 75.0}
    with pytest.raises(ValueError, match="0..2"):
        transfer.predicted_as_table(np.array([3]), np.array([0]), split)
    with pytest.raises(SplitError):
        transfer.predicted_as_table(np.array([0]), np.array([3]), split)


def test_feature_space_pair_shares_one_axis_range_covering_both_panels():
    from cnnviz.figures import transfer as transfer_figures

    before = transfer.FeatureSpace(np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([0, 1]), FASHION_NAMES, "before")
    after = transfer.FeatureSpace(np.array([[-10.0, 5.0], [3.0, -4.0]]), np.array([0, 1]), FASHION_NAMES, "after")
    figure = transfer_figures.feature_space_pair(before, after)
    layout = figure.layout
    assert tuple(layout.xaxis.range) == tuple(layout.xaxis2.range)
    assert tuple(layout.yaxis.range) == tuple(layout.yaxis2.range)
    assert layout.xaxis.range[0] < -10 and layout.xaxis.range[1] > 3
    assert layout.yaxis.range[0] < -4 and layout.yaxis.range[1] > 5
    # One trace per class per panel; the legend lists each class once.
    assert len(figure.data) == 4
    assert [trace.name for trace in figure.data if trace.showlegend] == ["T-shirt/top", "Trouser"]
    # The same class has the same colour in both panels.
    assert figure.data[0].marker.color == figure.data[2].marker.color


def test_accuracy_curves_show_every_seed_the_mean_and_a_band():
    from cnnviz.figures import transfer as transfer_figures

    comparison = _comparison(((0.5, 0.6, 0.7), (0.8, 0.8, 0.8), (0.9, 0.9, 0.9)),
                             ((0.4, 0.4, 0.4),) * 3, ((0.3, 0.3, 0.3),) * 3)
    figure = transfer_figures.accuracy_curves(comparison, chance=1 / 3)
    means = [trace for trace in figure.data if trace.mode == "lines"]
    assert [trace.name for trace in means] == ["Frozen features, new output layer only", "Fine-tune everything",
                                               "Train from scratch"]
    np.testing.assert_allclose(means[0].y, [60.0, 80.0, 90.0])
    points = [trace for trace in figure.data if trace.mode == "markers"]
    assert len(points) == 3 and len(points[0].y) == 9 and list(points[0].customdata[:3]) == [0, 1, 2]
    bands = [trace for trace in figure.data if trace.fill == "toself"]
    assert len(bands) == 3 and max(bands[0].y) > 70.0  # The spread of seeds 50-70 % widens the band.
    assert figure.layout.xaxis.type == "log"
    assert any("small | large" in (a.text or "") for a in figure.layout.annotations)


def test_layer_roles_figure_builds():
    from cnnviz.figures import transfer as transfer_figures

    roles = transfer_figures.layer_roles_figure(["conv2d", "dense"], ["Conv2D", "Dense"], [80, 22],
                                                ["frozen", "new"])
    assert len(roles.layout.shapes) == 2
    assert roles.layout.shapes[0].fillcolor == transfer_figures.ROLE_COLOURS["frozen"]


# ---------------------------------------------------------------------------------------------
# Configurations, layer roles and tiny real runs through the training engine
# ---------------------------------------------------------------------------------------------

TINY = transfer.ExperimentSettings(pretrain_per_class=20, test_per_class=10, pretrain_epochs=1,
                                   transfer_epochs=1, min_transfer_updates=8)


@pytest.fixture(scope="module")
def seeds_split():
    return make_split(transfer.DEFAULT_PRETRAIN_CLASSES, transfer.DEFAULT_TRANSFER_CLASSES, FASHION_NAMES)


def test_pretrain_config_is_the_bottleneck_preset_with_a_head_for_the_pretrain_classes(seeds_split):
    from cnnviz.architecture import PRESETS
    from cnnviz.data import load

    config = transfer.pretrain_config(seeds_split, TINY)
    stack = config.stack()
    preset = list(PRESETS["bottleneck_cnn"].layers)
    assert len(stack) == len(preset)
    assert [layer["type"] for layer in stack] == [layer["type"] for layer in preset]
    assert stack[-1]["units"] == 7 and stack[transfer.bottleneck_index(stack)]["units"] == 2
    assert config.classes == (3, 4, 5, 6, 7, 8, 9)
    assert config.warm_start is None and config.freeze_layers == 0
    # The dataset-wide limit leaves exactly `pretrain_per_class` images of every class.
    subset = load(config.dataset, limit_train=config.limit_train, limit_test=config.limit_test, seed=config.seed)
    assert np.bincount(subset.y_train, minlength=10).tolist() == [20] * 10
    assert np.bincount(subset.y_test, minlength=10).tolist() == [10] * 10


def test_strategy_configs_copy_and_freeze_what_each_strategy_says(seeds_split):
    stack = transfer.bottleneck_stack((28, 28, 1), 3)
    depth = transfer.conv_block_depth(stack)
    assert [layer["type"] for layer in stack[:depth]] == ["conv2d", "maxpool2d", "conv2d", "maxpool2d",
                                                          "conv2d", "flatten"]
    frozen = transfer.strategy_config("frozen_features", seeds_split, TINY, 10)
    early = transfer.strategy_config("early_features", seeds_split, TINY, 10)
    fine_tune = transfer.strategy_config("fine_tune", seeds_split, TINY, 10)
    scratch = transfer.strategy_config("scratch", seeds_split, TINY, 10)
    # Small + similar: everything but the output layer copied and frozen; only the output layer trains.
    assert (frozen.warm_start_layers, frozen.freeze_layers) == (len(stack) - 1, len(stack) - 1)
    # Only the new output layer trains, at 30x the shared peak rate (the others train at the shared one).
    assert frozen.learning_rate == pytest.approx(30 * TINY.learning_rate) == 30 * fine_tune.learning_rate
    assert frozen.learning_rate == transfer.strategy_learning_rate("frozen_features", TINY)
    assert fine_tune.learning_rate == early.learning_rate == scratch.learning_rate == TINY.learning_rate
    # Small + different: only the first convolution and its pooling, frozen; the rest is new.
    assert (early.warm_start_layers, early.freeze_layers) == (2, 2)
    assert [layer["type"] for layer in stack[:2]] == ["conv2d", "maxpool2d"]
    assert (fine_tune.warm_start_layers, fine_tune.freeze_layers) == (len(stack) - 1, 0)
    assert scratch.warm_start is None and scratch.freeze_layers == 0
    pretrain = transfer.pretrain_config(seeds_split, TINY)
    assert frozen.warm_start == pretrain == fine_tune.warm_start == early.warm_start
    # Seed s transfers from the network pre-trained with seed s.
    seed_2 = transfer.strategy_config("fine_tune", seeds_split, dataclasses.replace(TINY, seed=2), 10)
    assert seed_2.seed == 2 and seed_2.warm_start.seed == 2
    for config in (frozen, early, fine_tune, scratch):
        assert config.classes == (0, 1, 2) and config.stack()[-1]["units"] == 3
        assert config.limit_train == 100 and config.limit_test == pretrain.limit_test
    with pytest.raises(ValueError, match="Unknown strategy"):
        transfer.strategy_config("distil", seeds_split, TINY, 10)


def test_transfer_schedule_gives_small_sets_small_batches_and_enough_steps():
    batch_size, epochs = transfer.transfer_schedule(30, 8)
    assert batch_size <= 30 // 4 + 1 and math.ceil(30 / batch_size) * epochs >= transfer.MIN_TRANSFER_UPDATES == 240
    assert transfer.transfer_schedule(18_000, 8) == (64, 8)
    for size in (3, 6, 30, 90, 300, 900, 3000):
        for min_updates in (8, 240):
            batch_size, epochs = transfer.transfer_schedule(size, 2, min_updates)
            updates = math.ceil(size / batch_size) * epochs
            assert 1 <= batch_size <= size and epochs >= 2 and updates >= min_updates
            # No more epochs than the budget needs (beyond the minimum epoch count).
            assert epochs == 2 or math.ceil(size / batch_size) * (epochs - 1) < min_updates
    # The default settings' budget: every transfer run makes at least 240 updates.
    settings = transfer.ExperimentSettings()
    split = transfer.default_split()
    for size in (30, 900):
        config = transfer.strategy_config("fine_tune", split, settings, size // 3, num_images=size)
        assert transfer.weight_updates(size, config) >= 240


def test_layer_plan_counts_match_keras_trainable_weights():
    import keras

    from cnnviz.architecture import build_keras_model

    stack = transfer.bottleneck_stack((28, 28, 1), 3)
    for freeze in range(len(stack)):
        plan = transfer.layer_plan((28, 28, 1), stack, copy_layers=len(stack) - 1, freeze_layers=freeze)
        model = build_keras_model((28, 28, 1), stack)
        for layer in model.layers[:freeze]:
            layer.trainable = False
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
        assert (plan.trainable_params, plan.frozen_params) == (trainable, frozen)
        assert [row.role for row in plan.rows] == (["frozen"] * freeze + ["fine-tuned"] * (len(stack) - 1 - freeze)
                                                   + ["new"])
        assert [row.name for row in plan.rows] == [layer.name for layer in model.layers]
    del keras
    with pytest.raises(ValueError, match="Only copied layers can be frozen"):
        transfer.layer_plan((28, 28, 1), stack, copy_layers=2, freeze_layers=3)


@pytest.fixture(scope="module")
def tiny_transfer(seeds_split):
    """A tiny pre-training (140 images, 1 epoch) and a transfer run with the conv block frozen."""
    from cnnviz import training

    depth = transfer.conv_block_depth(transfer.bottleneck_stack((28, 28, 1), 3))
    config = transfer.transfer_config(seeds_split, TINY, freeze_layers=depth)
    result = training.train(config)
    pretrained = training.train(config.warm_start)
    return config, pretrained, result, depth


def test_frozen_layers_are_bit_identical_after_retraining(tiny_transfer):
    config, pretrained, result, depth = tiny_transfer
    assert result.stopped_reason == "finished" and config.freeze_layers == depth
    before = [layer for layer in pretrained.model.layers if type(layer).__name__ != "InputLayer"]
    after = [layer for layer in result.model.layers if type(layer).__name__ != "InputLayer"]
    compared = 0
    for index in range(depth):
        for old, new in zip(before[index].get_weights(), after[index].get_weights(), strict=True):
            assert np.array_equal(old, new), f"frozen layer {after[index].name} changed"
            compared += 1
    assert compared == 6  # Three Conv2D layers, a kernel and a bias each.
    assert transfer.frozen_layers_unchanged(pretrained.model, result.model, depth)
    # The copied but trainable bottleneck did train: the check can fail.
    bottleneck = transfer.bottleneck_index(config.stack())
    assert not np.array_equal(before[bottleneck].get_weights()[0], after[bottleneck].get_weights()[0])
    assert not transfer.frozen_layers_unchanged(pretrained.model, result.model, bottleneck + 1)


def test_bottleneck_features_equal_a_layer_by_layer_forward_pass(tiny_transfer):
    config, pretrained, result, _ = tiny_transfer
    images, _ = result.test_data()
    points = transfer.bottleneck_features(result.model, images, config.stack())
    assert points.shape == (len(images), 2)
    x = images.astype(np.float32) / 255.0
    layers = [layer for layer in result.model.layers if type(layer).__name__ != "InputLayer"]
    for layer in layers[: transfer.bottleneck_index(config.stack()) + 1]:
        x = layer(x)
    np.testing.assert_allclose(points, np.asarray(x), rtol=1e-5, atol=1e-5)
    units = transfer.predicted_units(result.model, images)
    np.testing.assert_array_equal(units, np.argmax(result.predict(images), axis=1))


@pytest.mark.slow
def test_strategy_comparison_measures_every_seed_of_every_strategy_and_size(seeds_split, monkeypatch, tmp_path):
    from cnnviz.training import seed_stack

    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))  # nothing cached by other tests: every run trains

    runs, calls, groups = [], [], []
    original = seed_stack.train_together

    def counting(configs, prepared, on_progress=None, **options):
        groups.append(len(configs))
        return original(configs, prepared, on_progress, **options)

    def recording_train(config, seeds, on_progress=None):
        results = transfer.train_strategy_seeds(config, seeds, on_progress)
        calls.append(tuple(seeds))
        runs.extend((result.config, result) for result in results)
        return results

    progress = []
    monkeypatch.setattr(seed_stack, "train_together", counting)
    comparison = transfer.compare_strategies(seeds_split, TINY, (6, 12), seeds=(0, 1), train_fn=recording_train,
                                             on_progress=progress.append)
    assert comparison.sizes == (6, 12) and comparison.seeds == (0, 1) and comparison.similarity == "similar"
    assert comparison.strategies == ("frozen_features", "fine_tune", "scratch")
    # One call per run with both seeds: the pre-training, then 3 strategies x 2 sizes; the two seeds
    # of every run trained together (warm starts and frozen layers included).
    assert calls == [(0, 1)] * 7 and groups == [2] * 7
    # 2 pre-trainings, then 3 strategies x 2 sizes x 2 seeds, each its own config.
    assert len(runs) == 2 + 12 and len({config.key() for config, _ in runs}) == 14
    for strategy in comparison.strategies:
        assert [len(per_size) for per_size in comparison.accuracy[strategy]] == [2, 2]
    measured = {(config.warm_start_layers, config.freeze_layers, config.limit_train, config.seed): result.test_accuracy
                for config, result in runs if config.classes == (0, 1, 2)}
    assert comparison.accuracy["frozen_features"][1] == (measured[(7, 7, 40, 0)], measured[(7, 7, 40, 1)])
    assert comparison.accuracy["scratch"][0][1] == measured[(0, 0, 20, 1)]
    assert comparison.pretrain_accuracy == tuple(result.test_accuracy for _, result in runs[:2])
    # Each transfer run of seed s copies from the network pre-trained with seed s.
    assert all(config.warm_start.seed == config.seed for config, _ in runs if config.warm_start is not None)
    # Every transfer run of one seed was scored on the same test images (the subset that seed draws).
    for seed in (0, 1):
        labels = [result.test_data()[1] for config, result in runs if config.classes == (0, 1, 2) and config.seed == seed]
        assert len(labels) == 6 and all(np.array_equal(labels[0], other) for other in labels[1:])
    assert comparison.test_images == len(labels[0]) == 30
    # The budget in weight updates: the same for every strategy at one size, at least TINY's 8
    # (4 images a batch: 6 images x 4 epochs = 8, 12 images x 3 epochs = 9).
    assert comparison.updates == {strategy: (8, 9) for strategy in comparison.strategies}
    for config, result in runs:
        if config.classes == (0, 1, 2):
            assert len(result.history["loss"]) == config.epochs == {20: 4, 40: 3}[config.limit_train]
    assert progress[0].run == 1 and progress[0].strategy == transfer.PRETRAIN_RUN
    assert progress[-1].run == 7 and progress[-1].runs == 7 and progress[-1].seeds == (0, 1)
    assert max(p.overall for p in progress) <= 1.0
    assert transfer.comparison_cached(seeds_split, TINY, (6, 12), (0, 1))
    assert not transfer.comparison_cached(seeds_split, TINY, (6, 12), (0, 1, 2))
    # Both sizes are small (2 and 4 per class): only the small case is measured.
    assert [m.case.key for m in case_measurements(comparison)] == ["small_similar"]


def test_by_default_every_seed_and_strategy_is_scored_on_the_same_whole_test_split(seeds_split):
    """No test limit: each seed's transfer runs load the same test images (the whole split), while
    their training subsets differ."""
    settings = transfer.ExperimentSettings()
    configs = [transfer.strategy_config(strategy, seeds_split, dataclasses.replace(settings, seed=seed), 10,
                                        num_images=30)
               for strategy in ("frozen_features", "scratch") for seed in (0, 1)]
    assert all(config.limit_test is None for config in configs)
    loaded = [data.load(c.dataset, limit_train=c.limit_train, limit_test=c.limit_test, seed=c.seed) for c in configs]
    full = data.load("fashion_mnist")
    for dataset in loaded:
        np.testing.assert_array_equal(dataset.y_test, full.y_test)
        np.testing.assert_array_equal(dataset.x_test[:50], full.x_test[:50])
    assert not np.array_equal(loaded[0].y_train, loaded[1].y_train) or not np.array_equal(loaded[0].x_train,
                                                                                          loaded[1].x_train)


def test_strategy_comparison_rejects_sizes_that_are_not_whole_classes_and_can_stop(seeds_split):
    with pytest.raises(ValueError, match="multiple of the 3 transfer classes"):
        transfer.compare_strategies(seeds_split, TINY, (7,))
    with pytest.raises(transfer.ComparisonStopped):
        transfer.compare_strategies(seeds_split, TINY, (6,), on_progress=lambda progress: False)


def test_feature_space_draws_seen_classes_faintly_behind_and_inside_the_shared_range():
    from cnnviz.figures import transfer as transfer_figures

    before = transfer.FeatureSpace(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([0, 1]), FASHION_NAMES, "before",
                                   context_points=np.array([[20.0, -30.0], [5.0, 5.0]]),
                                   context_labels=np.array([3, 6]))
    after = transfer.FeatureSpace(np.array([[2.0, 2.0], [3.0, 3.0]]), np.array([0, 1]), FASHION_NAMES, "after")
    figure = transfer_figures.feature_space_pair(before, after)
    names = [trace.name for trace in figure.data]
    assert names[0] == "seen classes"  # Drawn first, so it sits behind the unseen classes.
    assert figure.data[0].marker.opacity < 0.5 and list(figure.data[0].customdata) == ["Dress", "Shirt"]
    assert {annotation.text for annotation in figure.layout.annotations} >= {"Dress", "Shirt"}
    assert figure.layout.xaxis.range[1] > 20 and figure.layout.yaxis.range[0] < -30
    assert tuple(figure.layout.xaxis.range) == tuple(figure.layout.xaxis2.range)


def test_queue_position_reaches_the_strategy_comparison_progress(seeds_split):
    """A run waiting for a training slot reports its place in the queue through `RunProgress`,
    and the comparison's status line shows it (not just "Run n of m")."""
    from types import SimpleNamespace

    from cnnviz import training
    from cnnviz.training.progress import waiting_reporter

    history = {"loss": [0.9], "accuracy": [0.6], "val_loss": [1.0], "val_accuracy": [0.5], "seconds": [0.4]}

    def queued_train(config, seeds, on_progress=None):
        # The engine's own waiting reporter, as `training.train` calls it from the queue.
        waiting = waiting_reporter(config, on_progress)
        for position in (3, 2, 1):
            waiting(position)
        on_progress(training.Progress(epoch=1, epochs=config.epochs, batch=1, batches=2, metrics={"loss": 0.9},
                                      images_per_second=10.0, history_so_far=history, phase="train"))
        return [SimpleNamespace(stopped_reason="finished", test_accuracy=0.5, seconds=0.4, history=history,
                                test_data=lambda: (None, [0] * 30)) for _ in seeds]

    progress = []
    comparison = transfer.compare_strategies(seeds_split, TINY, (6,), seeds=(0,), train_fn=queued_train,
                                             on_progress=progress.append)
    waiting = [p for p in progress if p.phase == "waiting"]
    assert [p.queue_position for p in waiting] == [3, 2, 1] * 4  # Pre-training, then 3 strategies.
    assert all(p.fraction == 0.0 for p in waiting)
    assert [p.queue_position for p in progress if p.phase == "train"] == [0] * 8
    text = transfer.describe_run_progress(waiting[0])
    assert text.startswith("Run 1 of 4: **pre-training** one network per seed")
    assert "place 3 in the queue" in text
    text = transfer.describe_run_progress(waiting[3])
    assert text.startswith("Run 2 of 4: **Frozen features, new output layer only** on 6 images, seed 0")
    assert "queue" not in transfer.describe_run_progress(progress[-1])
    # Each strategy's per-epoch history is kept for the replay.
    assert comparison.histories == {strategy: (history,) for strategy in comparison.strategies}

    # The background job the page polls shows the place while the run waits in the queue.
    import threading
    import time

    admitted = threading.Event()

    def waiting_train(config, seeds, on_progress=None):
        waiting_reporter(config, on_progress)(2)
        admitted.wait(30)
        return queued_train(config, seeds, on_progress)

    job = transfer.comparison_job(seeds_split, TINY, (6,), seeds=(0,), train_fn=waiting_train).start()
    deadline = time.monotonic() + 30
    while (job.latest is None or job.latest.phase != "waiting") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.latest.phase == "waiting" and job.latest.queue_position == 2
    assert "place 2 in the queue" in transfer.describe_run_progress(job.latest)
    admitted.set()
    assert job.wait(30) and job.error is None and job.result.histories["scratch"] == (history,)


# ---------------------------------------------------------------------------------------------
# What the page shows
# ---------------------------------------------------------------------------------------------

def test_comparison_sizes_follow_the_rarest_class_and_the_largest_choice():
    split = make_split(transfer.DEFAULT_PRETRAIN_CLASSES, transfer.DEFAULT_TRANSFER_CLASSES, FASHION_NAMES)
    labels = np.array([0] * 50 + [1] * 40 + [2] * 60 + [3] * 5)
    assert transfer.transfer_capacity(labels, split) == 40
    everything = transfer.comparison_sizes(split, 40, smallest=30, largest=None, steps=3)
    assert everything[-1] == 120 and everything[0] >= 30
    assert transfer.comparison_sizes(split, 40, smallest=30, largest=90, steps=2)[-1] == 90
    with pytest.raises(ValueError):
        transfer.comparison_sizes(split, 0, smallest=30, largest=None, steps=2)


def test_the_freeze_slider_and_the_predicted_as_sentence():
    deepest, default = transfer.freeze_choices(transfer.ExperimentSettings())
    assert 0 < default <= deepest
    split = make_split(transfer.DEFAULT_PRETRAIN_CLASSES, transfer.DEFAULT_TRANSFER_CLASSES, FASHION_NAMES)
    table = transfer.predicted_as_table(np.array([0, 0, 1, 2]), np.array([0, 0, 1, 1]), split)
    assert transfer.predicted_as_text(table).startswith(f"**{FASHION_NAMES[0]}** is mostly taken for "
                                                        f"**{FASHION_NAMES[3]}** (100%)")
    assert set(transfer.STRATEGY_TEXTS) == set(STRATEGIES)
    plan = transfer.freeze_plan(split, transfer.ExperimentSettings(), default)
    assert len(plan.rows) == deepest + 1 and plan.rows[-1].role == "new"
    assert [row.role for row in plan.rows[:default]] == ["frozen"] * default
